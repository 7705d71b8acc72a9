package cmk_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/azurecloud"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// BenchmarkRotationRewrap measures how long orgkms takes to follow a
// rotation of the customer's key when N orgs use it: from the rotation in
// the vault to every org's root key re-wrapped by the new version, against
// the emulator with 10 ms added to every vault call, on each store. It
// reports the two phases (detect: one probe round has started a rotation
// job for every org; rewrap: the jobs have re-wrapped every org) and the
// vault calls per org. Run it with:
//
//	go test ./internal/cmk/ -run '^$' -bench RotationRewrap -benchtime 1x -timeout 30m
//
// (PostgreSQL: eval "$(bash .ci/postgres.sh)" first.) store=… and orgs=N
// in the sub-benchmark name pick the store and the size; 10000 is the
// figure of record. ORGKMS_BENCH_CPUPROFILE=FILE writes a CPU profile of
// the measured phase alone.
func BenchmarkRotationRewrap(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, n := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("store=%s/orgs=%d", backend, n), func(b *testing.B) {
				r := newRotationRig(b, backend, n)
				r.activateAll(b)
				b.ResetTimer()
				res := r.rotateAll(b, 10*time.Millisecond)
				b.StopTimer()
				b.ReportMetric(res.total.Seconds(), "s/rotation")
				b.ReportMetric(res.detect.Seconds(), "s/detect")
				b.ReportMetric(res.rewrap.Seconds(), "s/rewrap")
				b.ReportMetric(float64(res.calls[azureemu.OpWrapKey])/float64(n), "wraps/org")
				b.ReportMetric(float64(res.calls[azureemu.OpUnwrapKey])/float64(n), "unwraps/org")
				b.ReportMetric(float64(res.calls[azureemu.OpGet])/float64(n), "gets/org")
				b.ReportMetric(res.cpu.Seconds(), "cpu-s")
				b.ReportMetric(res.serverCPU.Seconds(), "server-cpu-s")
				calls := res.calls[azureemu.OpWrapKey] + res.calls[azureemu.OpUnwrapKey] + res.calls[azureemu.OpGet]
				floor := time.Duration(calls) * 10 * time.Millisecond / time.Duration(benchWorkers)
				b.ReportMetric(floor.Seconds(), "latency-floor-s")
				b.Logf("%s: %d orgs re-wrapped to version %s in %v (detect %v, rewrap %v); vault calls: %v; CPU of the measured phase: orgkms+emulator %v, database server %v; latency floor (calls × 10 ms / %d workers) %v",
					backend, n, res.version, res.total.Round(time.Millisecond), res.detect.Round(time.Millisecond), res.rewrap.Round(time.Millisecond), res.calls,
					res.cpu.Round(time.Millisecond), res.serverCPU.Round(time.Millisecond), benchWorkers, floor.Round(time.Millisecond))
				r.checkWrapped(b, res.version)
			})
		}
	}
}

// TestRotationRewrapMany follows one rotation of a key 50 orgs share, on
// each store, through the same paths as the benchmark: exactly one wrap and
// one unwrap per org, one Describe per probe round, every org active on the
// new version with one wrapping, every ciphertext decrypts, and every
// org's audit chain verifies.
func TestRotationRewrapMany(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			const n = 50
			r := newRotationRig(t, backend, n)
			r.activateAll(t)
			samples := make([]sample, n)
			for i, org := range r.orgs {
				ct, err := r.ks.Encrypt(t.Context(), "svc", org, "default", []byte("secret of "+org), nil)
				if err != nil {
					t.Fatalf("Encrypt(%s): %v", org, err)
				}
				samples[i] = sample{ct: ct.Bytes, pt: []byte("secret of " + org), org: org}
			}
			res := r.rotateAll(t, 0)
			if got := res.calls[azureemu.OpWrapKey]; got != n {
				t.Errorf("wrapKey calls = %d, want %d (one per org)", got, n)
			}
			if got := res.calls[azureemu.OpUnwrapKey]; got != n {
				t.Errorf("unwrapKey calls = %d, want %d (one per org)", got, n)
			}
			if got := res.calls[azureemu.OpGet]; got != 1 {
				t.Errorf("get calls = %d, want 1 (one Describe per key per probe round)", got)
			}
			r.checkWrapped(t, res.version)
			r.ks.Cache().PurgeAll()
			for _, s := range samples {
				pt, _, err := r.ks.Decrypt(t.Context(), "svc", s.org, "default", s.ct, nil)
				if err != nil || string(pt) != string(s.pt) {
					t.Fatalf("Decrypt(%s) = %q, %v; want %q", s.org, pt, err, s.pt)
				}
			}
			for _, org := range r.orgs {
				evs, err := r.st.AuditEvents(t.Context(), org, 0, 1000)
				if err != nil {
					t.Fatal(err)
				}
				if err := audit.Verify(evs); err != nil {
					t.Fatalf("audit chain of %s: %v", org, err)
				}
				var started, done bool
				for _, e := range evs {
					started = started || e.Action == "cmk.rotate.start"
					done = done || e.Action == "cmk.rotate.done"
				}
				if !started || !done {
					t.Fatalf("audit of %s lacks the rotation's start or end: %+v", org, evs)
				}
			}
		})
	}
}

// rigStore is what the rig needs of a store: both backends have it.
type rigStore interface {
	cmk.Store
	keys.Store
	AuditEvents(ctx context.Context, orgID string, afterSeq int64, limit int) ([]audit.Event, error)
	DB() *sql.DB
	Close() error
}

// rotationRig is n orgs on one customer key of the emulator, on a store.
type rotationRig struct {
	backend string
	orgs    []string
	emu     *azureemu.Emulator
	demo    azureemu.Demo
	st      rigStore
	poll    *sql.DB // the benchmark's own reads (waitCount), off the SQLite writer
	ks      *keys.Service
	cs      *cmk.Service
	keyURI  string
}

func newRotationRig(tb testing.TB, backend string, n int) *rotationRig {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: tb.TempDir(), Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		tb.Fatal(err)
	}
	demo, _ := azureemu.SeedDemo(emu, nil)
	emu.GrantConsent(demo.TenantID, demo.ClientID)
	dir := tb.TempDir()
	r := &rotationRig{backend: backend, emu: emu, demo: demo}
	switch backend {
	case "sqlite":
		st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "k.db")})
		if err != nil {
			tb.Fatal(err)
		}
		r.st = st
		// The benchmark's polling reads through a connection of its own:
		// DB is the store's single writer, and each count held it.
		poll, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "k.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { poll.Close() })
		r.poll = poll
	case "postgres":
		st, err := postgres.Open(ctx, postgres.Config{URL: pgtest.URL(tb)})
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := st.Migrate(ctx); err != nil {
			tb.Fatal(err)
		}
		r.st, r.poll = st, st.DB()
	}
	tb.Cleanup(func() { r.st.Close() })
	kp := filepath.Join(dir, "master.key")
	localkey.EnsureFile(kp)
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	// The emulator does not throttle; lift orgkms' own per-vault limit so
	// the figure measures orgkms, not the limiter.
	az, _ := azurekv.New(azurekv.Config{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/",
		HTTPClient: emu.HTTPClient(), VaultRate: 1e6, VaultBurst: 1e6})
	reg.Register(az.Driver(), masterkey.NewKeeper(azurekv.Scheme, az, masterkey.KeeperOptions{Logger: log}))
	platform, _ := reg.ParseRef("local://" + kp)
	var guard func(context.Context, string) error
	ks, err := keys.New(keys.Config{Store: r.st, Keepers: reg, PlatformKey: platform, Logger: log, CacheTTL: time.Hour,
		Guard: func(ctx context.Context, org string) error { return guard(ctx, org) }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ks.Close(ctx) })
	cs, err := cmk.New(cmk.Config{Store: r.st, Keys: ks, Keepers: reg, Logger: log, CallbackURL: callbackURL, ProbeInterval: time.Hour, JobPoll: 20 * time.Millisecond,
		Clouds: []cmk.Cloud{azurecloud.Cloud{Provider: az, ClientID: demo.ClientID, AuthorityHost: emu.URL() + "/"}}})
	if err != nil {
		tb.Fatal(err)
	}
	guard = cs.Guard
	ref, _, _ := azurecloud.Cloud{Provider: az}.ParseKey(map[string]string{azurecloud.FieldVaultURI: demo.VaultURI, azurecloud.FieldKeyName: demo.KeyName}, demo.TenantID)
	r.ks, r.cs, r.keyURI = ks, cs, azurecloud.Cloud{}.KeyURI(ref)
	r.orgs = make([]string, n)
	for i := range n {
		r.orgs[i] = fmt.Sprintf("org-%05d", i)
	}
	return r
}

// activateAll creates the orgs and activates each on the customer key,
// through the real paths (keys.Service.CreateOrg, Store.StartJobs, the job
// runner's activation jobs against the emulator), only with more
// concurrency than a server would use: orgs are created setupConcurrency
// at a time, activations start startBatch per transaction, and the
// runner has setupWorkers workers. The measured phase (rotateAll) is
// unchanged by it.
func (r *rotationRig) activateAll(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	sem := make(chan struct{}, setupConcurrency)
	for _, org := range r.orgs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := r.ks.CreateOrg(ctx, "bench", org, ""); err != nil {
				mu.Lock()
				ferr = errors.Join(ferr, fmt.Errorf("CreateOrg(%s): %w", org, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ferr != nil {
		tb.Fatal(ferr)
	}
	created := time.Now()
	now := time.Now().UTC()
	const startBatch = 256
	for i := 0; i < len(r.orgs); i += startBatch {
		batch := r.orgs[i:min(i+startBatch, len(r.orgs))]
		starts := make([]cmk.JobStart, len(batch))
		for k, org := range batch {
			starts[k] = cmk.JobStart{
				Record: cmk.Record{OrgID: org, State: cmk.StateActivating, TenantID: r.demo.TenantID, ConsentedAt: now, ConsentedBy: "bench",
					VaultURI: r.demo.VaultURI, KeyName: r.demo.KeyName, KeyURI: r.keyURI, UpdatedAt: now},
				Job:   cmk.Job{OrgID: org, Kind: cmk.JobActivate, Target: r.keyURI, State: cmk.JobPending, CreatedAt: now, UpdatedAt: now, NotBefore: now},
				Event: audit.Event{OrgID: org, Time: now, Actor: "bench", Action: "cmk.activate.start", Target: "cmk"},
			}
		}
		res, err := r.st.StartJobs(ctx, starts)
		if err != nil {
			tb.Fatal(err)
		}
		for k, sr := range res {
			if sr.Err != nil {
				tb.Fatalf("StartJobs(%s): %v", batch[k], sr.Err)
			}
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	wg.Go(func() { r.cs.Run(runCtx, setupWorkers) })
	r.waitCount(tb, `state = 'active' AND active_version = `+r.quote(r.demo.KeyVersion))
	stop()
	wg.Wait()
	tb.Logf("setup of %d orgs on %s: %v (create %v, activate %v)", len(r.orgs), r.backend,
		time.Since(start).Round(time.Millisecond), created.Sub(start).Round(time.Millisecond), time.Since(created).Round(time.Millisecond))
}

// setupConcurrency and setupWorkers are the concurrency of the setup.
const (
	setupConcurrency = 32
	setupWorkers     = 256
)

func (r *rotationRig) quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// waitCount waits until cond holds for every org: it polls a count, not the
// records, so the polling does not compete with the work it measures.
func (r *rotationRig) waitCount(tb testing.TB, cond string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Minute)
	for {
		var done int
		if err := r.poll.QueryRowContext(context.Background(), `SELECT count(*) FROM cmk_orgs WHERE `+cond).Scan(&done); err != nil {
			tb.Fatal(err)
		}
		if done == len(r.orgs) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d orgs have %s after 20 minutes", done, len(r.orgs), cond)
		}
		// Every 200 ms: a count scans the table, and polling it more often
		// takes CPU from the work measured (the figure errs long by up to
		// one interval, never short).
		time.Sleep(200 * time.Millisecond)
	}
}

type rotationResult struct {
	version               string
	detect, rewrap, total time.Duration
	calls                 map[string]int
	// cpu is the CPU time (user+sys) of this process (orgkms and the
	// emulator) during the measured phase; serverCPU that of the
	// PostgreSQL backends serving the store's connections (0 on SQLite; a
	// lower bound: a backend that exited during the phase is not counted).
	// On 2 cores, (cpu+serverCPU)/2 is a floor on the quiet-machine time.
	cpu, serverCPU time.Duration
}

// rotateAll rotates the key in the vault (tagging the new version for
// every org), adds latency to every vault call, and runs the service until
// every org is active on the new version.
func (r *rotationRig) rotateAll(tb testing.TB, latency time.Duration) rotationResult {
	tb.Helper()
	rot, err := r.emu.RotateKey(azureemu.DemoVault, r.demo.KeyName)
	if err != nil {
		tb.Fatal(err)
	}
	// orgkms follows only versions tagged for the org.
	if _, err := r.emu.SetKeyTags(azureemu.DemoVault, r.demo.KeyName, rot.Version, map[string]string{cmk.OwnershipTag: strings.Join(r.orgs, ",")}); err != nil {
		tb.Fatal(err)
	}
	r.emu.SetFault(azureemu.DemoVault, azureemu.Fault{Latency: latency})
	r.emu.ResetCounters()
	// Every org due for its probe at once, as when the probe interval has
	// passed: the first claim takes them all (up to a batch), and the round
	// describes the key once.
	if _, err := r.st.DB().ExecContext(context.Background(), `UPDATE cmk_orgs SET probe_due_at = NULL`); err != nil {
		tb.Fatal(err)
	}
	if path := os.Getenv("ORGKMS_BENCH_CPUPROFILE"); path != "" {
		// The profile of the measured phase alone, not of the setup.
		f, err := os.Create(path)
		if err != nil {
			tb.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			tb.Fatal(err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	cpu0, server0 := processCPU(tb), r.serverCPU(tb)
	start := time.Now()
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.cs.Run(runCtx, benchWorkers) }) // its probe loop claims the due orgs at once
	v := r.quote(rot.Version)
	r.waitCount(tb, `state = 'rotating' OR (state = 'active' AND active_version = `+v+`)`)
	detected := time.Now()
	r.waitCount(tb, `state = 'active' AND active_version = `+v)
	end := time.Now()
	cpu, server := processCPU(tb)-cpu0, r.serverCPU(tb)-server0
	stop()
	wg.Wait()
	r.emu.SetFault(azureemu.DemoVault, azureemu.Fault{})
	return rotationResult{version: rot.Version, detect: detected.Sub(start), rewrap: end.Sub(detected), total: end.Sub(start),
		calls: r.emu.VaultCounters(azureemu.DemoVault), cpu: cpu, serverCPU: server}
}

// serverCPU is the CPU time (user+sys) the PostgreSQL backends of the
// store's database have used so far, read from /proc (the server runs on
// this machine in the benchmark); 0 on SQLite or where /proc is missing.
func (r *rotationRig) serverCPU(tb testing.TB) time.Duration {
	tb.Helper()
	if r.backend != "postgres" {
		return 0
	}
	rows, err := r.st.DB().QueryContext(context.Background(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database()`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			tb.Fatal(err)
		}
		total += procCPU(pid)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return total
}

// checkWrapped checks that every org has exactly one wrapping, by version.
func (r *rotationRig) checkWrapped(tb testing.TB, version string) {
	tb.Helper()
	for _, org := range r.orgs {
		ws, err := r.st.RootKeys(context.Background(), org)
		if err != nil || len(ws) != 1 || ws[0].Wrapped.Key.Version != version {
			tb.Fatalf("org %s wrappings %+v, %v", org, ws, err)
		}
	}
}

// benchWorkers is the number of concurrent re-wrap jobs (cmk.job_workers).
var benchWorkers = 64
