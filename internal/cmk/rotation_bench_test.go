package cmk_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// BenchmarkRotationRewrap measures how long orgkms takes to follow a
// rotation of the customer's key when N orgs use it: from the rotation in
// the vault to every org's root key re-wrapped by the new version, against
// the emulator with 10 ms added to every vault call, and the remote calls
// made. Run it with:
//
//	go test ./internal/cmk/ -run '^$' -bench RotationRewrap -benchtime 1x -timeout 30m
//
// ORGS=N in the sub-benchmark name picks the size; 10000 is the figure of
// record.
func BenchmarkRotationRewrap(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("orgs=%d", n), func(b *testing.B) { benchRotation(b, n) })
	}
}

func benchRotation(b *testing.B, n int) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: b.TempDir(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Close()
	if err := emu.Start(); err != nil {
		b.Fatal(err)
	}
	demo, _ := azureemu.SeedDemo(emu, nil)
	emu.GrantConsent(demo.TenantID, demo.ClientID)
	dir := b.TempDir()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "k.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
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
	ks, _ := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log, CacheTTL: time.Hour,
		Guard: func(ctx context.Context, org string) error { return guard(ctx, org) }})
	defer ks.Close(ctx)
	cs, _ := cmk.New(cmk.Config{Store: st, Keys: ks, Keepers: reg, Logger: log, CallbackURL: callbackURL, ProbeInterval: time.Hour, JobPoll: 20 * time.Millisecond,
		Cloud: cmk.Azure{Provider: az, ClientID: demo.ClientID, AuthorityHost: emu.URL() + "/"}})
	guard = cs.Guard
	ref, _ := cmk.Azure{Provider: az}.ParseKey(demo.VaultURI, demo.KeyName, "", demo.TenantID)
	keyURI := cmk.Azure{}.KeyURI(ref)

	// Setup: n orgs, each activated on the same customer key.
	b.Logf("setting up %d orgs", n)
	now := time.Now().UTC()
	for i := range n {
		org := fmt.Sprintf("org-%05d", i)
		if _, err := ks.CreateOrg(ctx, "bench", org, ""); err != nil {
			b.Fatal(err)
		}
		rec := cmk.Record{OrgID: org, State: cmk.StateActivating, TenantID: demo.TenantID, ConsentedAt: now, ConsentedBy: "bench",
			VaultURI: demo.VaultURI, KeyName: demo.KeyName, KeyURI: keyURI, UpdatedAt: now}
		j := cmk.Job{OrgID: org, Kind: cmk.JobActivate, Target: keyURI, State: cmk.JobPending, CreatedAt: now, UpdatedAt: now, NotBefore: now}
		if _, err := st.StartJob(ctx, j, rec, audit.Event{OrgID: org, Time: now, Actor: "bench", Action: "cmk.activate.start", Target: "cmk"}); err != nil {
			b.Fatal(err)
		}
	}
	// waitAll polls cheaply (a count, not the records) so the benchmark's
	// own polling does not compete with the work it measures.
	waitAll := func(state cmk.State, version string) {
		for {
			var done int
			q := `SELECT count(*) FROM cmk_orgs WHERE state = ? AND (? = '' OR active_version = ?)`
			if err := st.DB().QueryRowContext(ctx, q, string(state), version, version).Scan(&done); err != nil {
				b.Fatal(err)
			}
			if done == n {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { cs.Run(runCtx, 64) })
	waitAll(cmk.StateActive, demo.KeyVersion)
	stop()
	wg.Wait()

	// Measured: rotate in the vault, then one probe round detects it and the
	// jobs re-wrap every org.
	rot, err := emu.RotateKey(azureemu.DemoVault, demo.KeyName)
	if err != nil {
		b.Fatal(err)
	}
	// orgkms follows only versions tagged for the org.
	orgs := make([]string, n)
	for i := range n {
		orgs[i] = fmt.Sprintf("org-%05d", i)
	}
	if _, err := emu.SetKeyTags(azureemu.DemoVault, demo.KeyName, rot.Version, map[string]string{cmk.OwnershipTag: strings.Join(orgs, ",")}); err != nil {
		b.Fatal(err)
	}
	emu.SetFault(azureemu.DemoVault, azureemu.Fault{Latency: 10 * time.Millisecond})
	emu.ResetCounters()
	b.ResetTimer()
	start := time.Now()
	runCtx, stop = context.WithCancel(ctx)
	wg.Go(func() { cs.Run(runCtx, benchWorkers) }) // Run probes at once, then every hour
	waitAll(cmk.StateActive, rot.Version)
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	wg.Wait()
	calls := emu.VaultCounters(azureemu.DemoVault)
	b.ReportMetric(elapsed.Seconds(), "s/rotation")
	b.ReportMetric(float64(calls[azureemu.OpWrapKey])/float64(n), "wraps/org")
	b.ReportMetric(float64(calls[azureemu.OpUnwrapKey])/float64(n), "unwraps/org")
	b.ReportMetric(float64(calls[azureemu.OpGet])/float64(n), "gets/org")
	b.Logf("%d orgs re-wrapped to version %s in %v; vault calls: %v", n, rot.Version, elapsed.Round(time.Millisecond), calls)
	// Every org: exactly one wrapping, by the new version.
	for i := range n {
		org := fmt.Sprintf("org-%05d", i)
		ws, err := st.RootKeys(ctx, org)
		if err != nil || len(ws) != 1 || ws[0].Wrapped.Key.Version != rot.Version {
			b.Fatalf("org %s wrappings %+v, %v", org, ws, err)
		}
	}
}

// benchWorkers is the number of concurrent re-wrap jobs (cmk.job_workers).
var benchWorkers = 64
