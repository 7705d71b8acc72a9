package cmk_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/azurecloud"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

const callbackURL = "http://127.0.0.1:1/v1/cmk/callback"

// world is orgkms (SQLite, local platform key, the real azurekv driver)
// against the Azure emulator over TLS, all in-process.
type world struct {
	t     *testing.T
	emu   *azureemu.Emulator
	demo  azureemu.Demo
	st    *sqlite.Store
	keys  *keys.Service
	cmk   *cmk.Service
	calls func() map[string]map[string]int
	skew  *atomic.Int64 // added to the service's clock (job backoff)

	keepers *masterkey.Registry
	cloud   cmk.Cloud
	cfg     cmk.Config // the service's configuration, for a restarted service
	guard   *atomic.Pointer[cmk.Service]
}

// restart replaces the service by a new one on the same store, as after a
// restart of the process, with node identity nodeID.
func (w *world) restart(nodeID string) *cmk.Service {
	w.t.Helper()
	cfg := w.cfg
	cfg.NodeID = nodeID
	cs, err := cmk.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.cmk = cs
	w.guard.Store(cs)
	return cs
}

// option changes the emulator's or the service's configuration of a world.
type option struct {
	emu func(*azureemu.Config)
	cmk func(*cmk.Config)
}

func newWorld(t *testing.T, opts ...option) *world {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	ecfg := azureemu.Config{Dir: t.TempDir(), Logger: log}
	for _, o := range opts {
		if o.emu != nil {
			o.emu(&ecfg)
		}
	}
	emu, err := azureemu.Open(ctx, ecfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	demo, err := azureemu.SeedDemo(emu, []string{callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	// The customer tags the key for the orgs it serves (ownership check).
	if _, err := emu.SetKeyTags(azureemu.DemoVault, azureemu.DemoKey, "", map[string]string{"orgkms-org": "acme,globex,initech"}); err != nil {
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
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	az, err := azurekv.New(azurekv.Config{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/",
		HTTPClient: emu.HTTPClient(), MaxRetries: 1, RetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(az.Driver(), masterkey.NewKeeper(azurekv.Scheme, az, masterkey.KeeperOptions{Logger: log}))
	platform, _ := reg.ParseRef("local://" + kp)
	guard := &atomic.Pointer[cmk.Service]{}
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log,
		Guard:    func(ctx context.Context, org string) error { return guard.Load().Guard(ctx, org) },
		DataLost: func(org string) time.Time { return guard.Load().DataLost(org) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close(context.Background()) })
	skew := &atomic.Int64{}
	ccfg := cmk.Config{Store: st, Keys: ks, Keepers: reg, Logger: log, CallbackURL: callbackURL,
		Now:    func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Clouds: []cmk.Cloud{azurecloud.Cloud{Provider: az, ClientID: demo.ClientID, AuthorityHost: emu.URL() + "/"}}}
	for _, o := range opts {
		if o.cmk != nil {
			o.cmk(&ccfg)
		}
	}
	cs, err := cmk.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	guard.Store(cs)
	return &world{t: t, emu: emu, demo: demo, st: st, keys: ks, cmk: cs, calls: emu.Counters, skew: skew,
		keepers: reg, cloud: ccfg.Clouds[0], cfg: ccfg, guard: guard}
}

var (
	csrfRe   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// consent drives the real consent round trip: Authorize, the emulator's
// consent page (button), the redirect back to the callback.
func (w *world) consent(org, tenant, button string) (cmk.ConsentRequest, error) {
	w.t.Helper()
	ctx := w.t.Context()
	u, err := w.cmk.Authorize(ctx, "user:alice", org, tenant)
	if err != nil {
		return cmk.ConsentRequest{}, err
	}
	hc := w.emu.HTTPClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(u)
	if err != nil {
		w.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf, action := csrfRe.FindSubmatch(page), actionRe.FindSubmatch(page)
	if csrf == nil || action == nil {
		w.t.Fatalf("consent page has no form: %s", page)
	}
	resp, err = hc.PostForm(w.emu.URL()+string(action[1]), url.Values{"csrf_token": {string(csrf[1])}, "action": {button}})
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), callbackURL) {
		w.t.Fatalf("consent redirect to %q, want the callback", resp.Header.Get("Location"))
	}
	q := loc.Query()
	return w.cmk.Callback(ctx, cmk.ConsentResult{State: q.Get("state"), AdminConsent: q.Get("admin_consent"), Tenant: q.Get("tenant"),
		Error: q.Get("error"), ErrorDescription: q.Get("error_description")})
}

// activate runs the whole customer flow for org with the demo key.
func (w *world) activate(org, vaultURI, keyName, version string) cmk.Status {
	w.t.Helper()
	ctx := w.t.Context()
	if _, err := w.consent(org, w.demo.TenantID, "accept"); err != nil {
		w.t.Fatalf("consent: %v", err)
	}
	if _, err := w.cmk.Configure(ctx, "user:alice", org, vaultURI, keyName, version); err != nil {
		w.t.Fatalf("Configure: %v", err)
	}
	if rep := w.cmk.Test(ctx, org); !rep.OK {
		w.t.Fatalf("Test Managed Key failed: %+v", rep.Checks)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", org); err != nil {
		w.t.Fatalf("Enable: %v", err)
	}
	return w.runJobs(org, cmk.StateActive)
}

// rotate rotates the demo key in the vault, as the customer does, and tags
// the new version for the test orgs (orgkms follows only tagged versions).
func (w *world) rotate() azureemu.KeyInfo {
	w.t.Helper()
	k, err := w.emu.RotateKey(azureemu.DemoVault, w.demo.KeyName)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.emu.SetKeyTags(azureemu.DemoVault, w.demo.KeyName, k.Version, map[string]string{"orgkms-org": "acme,globex,initech"}); err != nil {
		w.t.Fatal(err)
	}
	return k
}

func (w *world) runJobs(org string, want cmk.State) cmk.Status {
	w.t.Helper()
	if err := w.cmk.RunPendingJobs(w.t.Context()); err != nil {
		w.t.Fatal(err)
	}
	st, err := w.cmk.Status(w.t.Context(), org)
	if err != nil {
		w.t.Fatal(err)
	}
	if st.State != want {
		w.t.Fatalf("org %s state %s (reason %q, job %+v), want %s", org, st.State, st.Reason, st.Job, want)
	}
	return st
}

func (w *world) probe(org string, want cmk.State) cmk.Status {
	w.t.Helper()
	if err := w.cmk.Probe(w.t.Context(), org); err != nil {
		w.t.Fatalf("Probe: %v", err)
	}
	return w.runJobs(org, want)
}

// wrappings returns the org's root key wrappings.
func (w *world) wrappings(org string) []keys.RootKeyWrapping {
	w.t.Helper()
	ws, err := w.st.RootKeys(w.t.Context(), org)
	if err != nil {
		w.t.Fatal(err)
	}
	return ws
}

type sample struct {
	ct, pt []byte
	org    string
}

func (w *world) encrypt(org, text string) sample {
	w.t.Helper()
	ct, err := w.keys.Encrypt(w.t.Context(), "svc", org, "default", []byte(text), nil)
	if err != nil {
		w.t.Fatalf("Encrypt(%s): %v", org, err)
	}
	return sample{ct: ct.Bytes, pt: []byte(text), org: org}
}

// decryptAll purges the cache first, so the root key is unwrapped through
// its current master key.
func (w *world) decryptAll(samples ...sample) error {
	w.t.Helper()
	w.keys.Cache().PurgeAll()
	for _, s := range samples {
		pt, _, err := w.keys.Decrypt(w.t.Context(), "svc", s.org, "default", s.ct, nil)
		if err != nil {
			return err
		}
		if string(pt) != string(s.pt) {
			w.t.Fatalf("decrypted %q, want %q", pt, s.pt)
		}
	}
	return nil
}

func wantKind(t *testing.T, what string, err error, want fault.Kind) {
	t.Helper()
	if got := fault.KindOf(err); err == nil || got != want {
		t.Fatalf("%s: kind = %v (err %v), want %v", what, got, err, want)
	}
}

func boolp(b bool) *bool { return &b }
