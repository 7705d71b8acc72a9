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
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/azurecloud"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/store/sqlite"
	"github.com/orgkms/orgkms/internal/testwait"
)

// admission is one call a recordingGate saw: its class and org, the
// sequence number when it asked and when it was admitted.
type admission struct {
	class         budget.Class
	org           string
	vault         string
	asked, passed int
}

// recordingGate records the order in which the budget admits calls.
type recordingGate struct {
	b   *budget.Budget
	mu  sync.Mutex
	seq int
	log []admission
}

func (g *recordingGate) Admit(ctx context.Context, v masterkey.Vault) (func(bool, time.Duration), error) {
	class, org := budget.Of(ctx)
	g.mu.Lock()
	asked := g.seq
	g.seq++
	g.mu.Unlock()
	done, err := g.b.Admit(ctx, v)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.log = append(g.log, admission{class: class, org: org, vault: v.Name, asked: asked, passed: g.seq})
	g.seq++
	g.mu.Unlock()
	return done, nil
}

// snapshot returns the admissions so far.
func (g *recordingGate) snapshot() []admission {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]admission(nil), g.log...)
}

const (
	otherVault   = "fabrikam-kv" // a second customer vault, same tenant
	bystanderKey = "bystander"   // a second key in the shared vault, not rotated
)

// sharedVaultRig is orgkms with its vault budget (ceiling per second) in
// front of the emulator, whose demo vault is shared by n rotating orgs and
// one bystander org on another key of the same vault; one more org uses
// another vault.
type sharedVaultRig struct {
	emu    *azureemu.Emulator
	demo   azureemu.Demo
	st     *sqlite.Store
	ks     *keys.Service
	cs     *cmk.Service
	budget *budget.Budget
	gate   *recordingGate
	orgs   []string // on the demo key
	az     *azurekv.Provider
}

func newSharedVaultRig(t *testing.T, n int, bcfg budget.Config) *sharedVaultRig {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	demo, err := azureemu.SeedDemo(emu, nil)
	if err != nil {
		t.Fatal(err)
	}
	emu.GrantConsent(demo.TenantID, demo.ClientID)
	if _, err := emu.CreateKey(azureemu.DemoVault, bystanderKey, azureemu.KeyOptions{Kty: "RSA", Size: 2048}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.CreateVault(demo.TenantID, otherVault, azureemu.VaultOptions{SoftDeleteDays: 90, PurgeProtection: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.CreateKey(otherVault, demo.KeyName, azureemu.KeyOptions{Kty: "RSA", Size: 2048}); err != nil {
		t.Fatal(err)
	}
	if err := emu.SetPolicy(otherVault, demo.ClientID, azureemu.DemoPermissions); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kp := filepath.Join(dir, "master.key")
	localkey.EnsureFile(kp)
	b := budget.New(bcfg)
	gate := &recordingGate{b: b}
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	az, err := azurekv.New(azurekv.Config{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/",
		HTTPClient: emu.HTTPClient(), Gate: gate, MaxRetries: 4, Timeout: time.Minute, TryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(az.Driver(), masterkey.NewKeeper(azurekv.Scheme, az, masterkey.KeeperOptions{Logger: log, Timeout: 2 * time.Minute}))
	platform, _ := reg.ParseRef("local://" + kp)
	var guard func(context.Context, string) error
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log, CacheTTL: time.Hour,
		Guard: func(ctx context.Context, org string) error { return guard(ctx, org) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close(context.Background()) })
	cs, err := cmk.New(cmk.Config{Store: st, Keys: ks, Keepers: reg, Logger: log, CallbackURL: callbackURL, ProbeInterval: time.Hour, JobPoll: 20 * time.Millisecond, VaultBudget: b,
		Clouds: []cmk.Cloud{azurecloud.Cloud{Provider: az, ClientID: demo.ClientID, AuthorityHost: emu.URL() + "/"}}})
	if err != nil {
		t.Fatal(err)
	}
	guard = cs.Guard
	r := &sharedVaultRig{emu: emu, demo: demo, st: st, ks: ks, cs: cs, budget: b, gate: gate, az: az}
	for i := range n {
		r.orgs = append(r.orgs, fmt.Sprintf("org-%03d", i))
	}
	r.activate(t, r.orgs, demo.VaultURI, demo.KeyName)
	r.activate(t, []string{"bystander"}, demo.VaultURI, bystanderKey)
	r.activate(t, []string{"elsewhere"}, "https://"+otherVault+".vault.azure.net/", demo.KeyName)
	return r
}

// activate creates orgs and activates each on the key, through the store's
// job start and the service's activation jobs.
func (r *sharedVaultRig) activate(t *testing.T, orgs []string, vaultURI, keyName string) {
	t.Helper()
	ctx := t.Context()
	ref, _, err := azurecloud.Cloud{Provider: r.az}.ParseKey(map[string]string{azurecloud.FieldVaultURI: vaultURI, azurecloud.FieldKeyName: keyName}, r.demo.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	keyURI := azurecloud.Cloud{}.KeyURI(ref)
	now := time.Now().UTC()
	var starts []cmk.JobStart
	for _, org := range orgs {
		if _, err := r.ks.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
		starts = append(starts, cmk.JobStart{
			Record: cmk.Record{OrgID: org, State: cmk.StateActivating, TenantID: r.demo.TenantID, ConsentedAt: now, ConsentedBy: "test",
				VaultURI: vaultURI, KeyName: keyName, KeyURI: keyURI, UpdatedAt: now},
			Job:   cmk.Job{OrgID: org, Kind: cmk.JobActivate, Target: keyURI, State: cmk.JobPending, CreatedAt: now, UpdatedAt: now, NotBefore: now},
			Event: audit.Event{OrgID: org, Time: now, Actor: "test", Action: "cmk.activate.start", Target: "cmk"},
		})
	}
	res, err := r.st.StartJobs(ctx, starts)
	if err != nil {
		t.Fatal(err)
	}
	for _, sr := range res {
		if sr.Err != nil {
			t.Fatal(sr.Err)
		}
	}
	if err := r.cs.RunPendingJobs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, org := range orgs {
		if st, err := r.cs.Status(ctx, org); err != nil || st.State != cmk.StateActive {
			t.Fatalf("org %s after activation: %+v, %v", org, st.State, err)
		}
	}
}

// rotate rotates the demo key, tags the new version for the rotating orgs
// and makes every org due for its probe.
func (r *sharedVaultRig) rotate(t *testing.T) string {
	t.Helper()
	rot, err := r.emu.RotateKey(azureemu.DemoVault, r.demo.KeyName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.emu.SetKeyTags(azureemu.DemoVault, r.demo.KeyName, rot.Version, map[string]string{cmk.OwnershipTag: strings.Join(r.orgs, ",")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.st.DB().ExecContext(t.Context(), `UPDATE cmk_orgs SET probe_due_at = NULL`); err != nil {
		t.Fatal(err)
	}
	return rot.Version
}

// rotated counts the orgs active on version.
func (r *sharedVaultRig) rotated(t *testing.T, version string) int {
	t.Helper()
	var n int
	if err := r.st.DB().QueryRowContext(t.Context(), `SELECT count(*) FROM cmk_orgs WHERE state = 'active' AND active_version = ?`, version).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor polls cond with a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, 3*time.Minute, cond)
}

var sharedVault = masterkey.Vault{Cloud: "azure", Name: azureemu.DemoVault + ".vault.azure.net"}

// TestSharedVaultMassRotation: a mass rotation on a shared vault stays
// within the vault budget (counted at the emulator, per window), and
// during it a data-plane load and a probe of another org on the same
// vault are admitted ahead of the queued re-wrap jobs.
func TestSharedVaultMassRotation(t *testing.T) {
	const ceiling = 25 // per second; the vault's own limit is 50 per second
	r := newSharedVaultRig(t, 40, budget.Config{Ceilings: map[string]float64{"azure": ceiling}})
	bystanderCT, err := r.ks.Encrypt(t.Context(), "svc", "bystander", "default", []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.emu.SetThrottle(azureemu.DemoVault, azureemu.Throttle{Limit: 50, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	version := r.rotate(t)
	runCtx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { r.cs.Run(runCtx, 16) })

	// Wait until re-wrap jobs queue for the vault's budget.
	waitFor(t, "re-wrap jobs waiting for the budget", func() bool {
		s, ok := r.budget.State(sharedVault)
		return ok && s.Waiting["job"] >= 4
	})
	// A data-plane load of the bystander (cache purged) and its probe,
	// meanwhile.
	r.ks.Cache().Purge("bystander")
	pt, _, err := r.ks.Decrypt(t.Context(), "svc", "bystander", "default", bystanderCT.Bytes, nil)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("bystander decrypt during the mass re-wrap: %q, %v", pt, err)
	}
	if err := r.cs.Probe(t.Context(), "bystander"); err != nil {
		t.Fatalf("bystander probe during the mass re-wrap: %v", err)
	}
	if n := r.rotated(t, version); n == len(r.orgs) {
		t.Fatal("the re-wrap finished before the bystander's calls: the test measured nothing")
	}
	waitFor(t, "every org re-wrapped", func() bool { return r.rotated(t, version) == len(r.orgs) })
	stop()
	wg.Wait()

	// Order: jobs already waiting when the bystander asked were not served
	// before it (at most one that was being admitted at that moment).
	log := r.gate.snapshot()
	for _, a := range log {
		if a.org != "bystander" {
			continue
		}
		waitingJobs, jumped := 0, 0
		for _, b := range log {
			if b.class == budget.Job && b.asked < a.asked && b.passed > a.asked {
				waitingJobs++
				if b.passed < a.passed {
					jumped++
				}
			}
		}
		if jumped > 1 || (waitingJobs > 2 && jumped*2 > waitingJobs) {
			t.Errorf("bystander %v call: %d of the %d jobs waiting when it asked were admitted before it", a.class, jumped, waitingJobs)
		}
	}
	classes := map[budget.Class]bool{}
	for _, a := range log {
		if a.org == "bystander" {
			classes[a.class] = true
		}
	}
	if !classes[budget.Load] || !classes[budget.Probe] {
		t.Fatalf("bystander calls by class %v, want a load and a probe", classes)
	}

	// Budget: never more than ceiling + burst per second at the vault, and
	// the vault never had to throttle.
	ts, _ := r.emu.ThrottleStats(azureemu.DemoVault)
	if ts.MaxInWindow > ceiling+3 {
		t.Errorf("%d requests reached the vault within one second; the budget is %d/s", ts.MaxInWindow, ceiling)
	}
	if ts.Throttled != 0 {
		t.Errorf("the vault throttled %d requests below its limit", ts.Throttled)
	}
	if ts.Served < len(r.orgs) {
		t.Errorf("the vault served %d requests for %d re-wraps", ts.Served, len(r.orgs))
	}
	s, _ := r.budget.State(sharedVault)
	if s.Throttling || s.Rate != ceiling || s.Calls["job"][budget.OutcomeOK] == 0 {
		t.Errorf("budget state after the rotation: %+v", s)
	}
}

// TestSharedVaultThrottledRecovers: when the shared vault's own limit is
// below orgkms' budget (the customer's workloads take their share), its
// 429s shrink the budget, no call reaches it before the Retry-After it
// sent, every org still ends re-wrapped, the budget grows back afterwards,
// and another vault is not affected at any time.
func TestSharedVaultThrottledRecovers(t *testing.T) {
	const ceiling = 40
	r := newSharedVaultRig(t, 30, budget.Config{Ceilings: map[string]float64{"azure": ceiling}, GrowEvery: 200 * time.Millisecond, ThrottlingFor: time.Second})
	elsewhereCT, err := r.ks.Encrypt(t.Context(), "svc", "elsewhere", "default", []byte("there"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.emu.SetThrottle(azureemu.DemoVault, azureemu.Throttle{Limit: 10, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	version := r.rotate(t)
	runCtx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { r.cs.Run(runCtx, 16) })
	waitFor(t, "the shared vault throttling orgkms", func() bool {
		s, ok := r.budget.State(sharedVault)
		return ok && s.Throttled > 0 && s.Rate < ceiling
	})
	// The org's status says its vault is throttling orgkms.
	st, err := r.cs.Status(t.Context(), "bystander")
	if err != nil || st.VaultBudget == nil || !st.VaultBudget.Throttling || st.VaultBudget.Vault != sharedVault {
		t.Fatalf("Status(bystander).VaultBudget while the vault throttles = %+v, %v", st.VaultBudget, err)
	}
	// The other vault: served, not throttling, its full budget.
	r.ks.Cache().Purge("elsewhere")
	if pt, _, err := r.ks.Decrypt(t.Context(), "svc", "elsewhere", "default", elsewhereCT.Bytes, nil); err != nil || string(pt) != "there" {
		t.Fatalf("decrypt on another vault while the shared one throttles: %q, %v", pt, err)
	}
	other := masterkey.Vault{Cloud: "azure", Name: otherVault + ".vault.azure.net"}
	if s, _ := r.budget.State(other); s.Throttling || s.Rate != ceiling || !s.PausedUntil.IsZero() {
		t.Fatalf("the other vault's budget while the shared one throttles: %+v", s)
	}
	waitFor(t, "every org re-wrapped", func() bool { return r.rotated(t, version) == len(r.orgs) })
	stop()
	wg.Wait()

	ts, _ := r.emu.ThrottleStats(azureemu.DemoVault)
	if ts.Throttled == 0 {
		t.Fatal("the vault never throttled")
	}
	// No request arrived in the second half of any Retry-After (the first
	// half allows for requests admitted before the 429 came back).
	arrivals := append(append([]time.Time(nil), ts.Times...), ts.ThrottledTimes...)
	for i, at := range ts.ThrottledTimes {
		ra := ts.RetryAfters[i]
		for _, s := range arrivals {
			if s.After(at.Add(ra/2)) && s.Before(at.Add(ra)) {
				t.Fatalf("a request arrived %v after a 429 with Retry-After %v", s.Sub(at), ra)
			}
		}
	}
	// Recovery: a tenth of the ceiling per GrowEvery without a 429.
	waitFor(t, "the budget grown back", func() bool {
		s, _ := r.budget.State(sharedVault)
		return s.Rate == ceiling && !s.Throttling
	})
}
