package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, to inspect orgkms's database

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// Bounds of the crash tests' waits, which all poll a condition. They are
// only there to fail a stuck test with a message, so they are generous: the
// tests run under -race next to every other package on a loaded machine;
// nothing asserts how long a step took.
const (
	crashReadyTimeout = 3 * time.Minute // a server answers /readyz
	crashJobTimeout   = 3 * time.Minute // a job finishes, or kills its server
	crashStopTimeout  = 2 * time.Minute // a server stops after SIGINT
	crashPollInterval = 25 * time.Millisecond
)

// crashKey2 is the second key of the demo vault, the target of replace.
const crashKey2 = "orgkms-cmk-2"

// TestCrash proves invariant 4 of DESIGN.md on a real orgkms process: for
// every re-wrap job (activate, rotate, replace, deactivate), a SIGKILL right
// after each step (copied, verified, switched; the server kills itself when
// ORGKMS_TEST_CRASH_AT names the step, which only a binary built with
// -tags crashtest does: see crashhook.go) loses no org and no ciphertext.
// After the crash the database must still hold the active wrapping (plus
// the pending copy before the switch), or only the new one after the
// switch; after a restart the same job must finish (resumed once its lease
// expired), every ciphertext made before must decrypt, and the org's root
// key must be wrapped exactly once, by the expected master key and version
// (invariant 3: no platform-wrapped copy after activation).
//
// The Azure emulator runs in the test process, so it survives the restarts;
// orgkms is built once with -tags crashtest; one data directory and org per
// case.
func TestCrash(t *testing.T) {
	bin := buildOrgkms(t, t.TempDir(), "crashtest")
	emu, demo := startCrashEmulator(t)
	tests := []struct {
		kind string // the job
		at   string // the step after which the server kills itself
	}{
		{"activate", "copied"}, {"activate", "verified"}, {"activate", "switched"},
		{"rotate", "copied"}, {"rotate", "verified"}, {"rotate", "switched"},
		{"replace", "copied"}, {"replace", "verified"}, {"replace", "switched"},
		{"deactivate", "copied"}, {"deactivate", "verified"}, {"deactivate", "switched"},
	}
	for _, tc := range tests {
		t.Run(tc.kind+"/"+tc.at, func(t *testing.T) {
			t.Parallel()
			c := newCrashCase(t, bin, emu, demo, tc.kind+"-"+tc.at)
			c.run(tc.kind, tc.at)
		})
	}
}

// startCrashEmulator starts the in-memory Azure emulator with the demo world
// (tenant, vault, key orgkms-cmk, access policy for the orgkms app, which
// covers every key of the vault) and the second key of the vault.
func startCrashEmulator(t *testing.T) (*azureemu.Emulator, azureemu.Demo) {
	t.Helper()
	emu, err := azureemu.Open(t.Context(), azureemu.Config{})
	if err != nil {
		t.Fatalf("azureemu.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := emu.Close(); err != nil {
			t.Errorf("emulator Close: %v", err)
		}
	})
	if err := emu.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	// Every case listens on its own loopback port.
	demo, err := azureemu.SeedDemo(emu, []string{"http://127.0.0.1:*/v1/cmk/callback"})
	if err != nil {
		t.Fatalf("SeedDemo: %v", err)
	}
	if _, err := emu.CreateKey(azureemu.DemoVault, crashKey2, azureemu.KeyOptions{Kty: "RSA", Size: 2048}); err != nil {
		t.Fatalf("CreateKey %s: %v", crashKey2, err)
	}
	return emu, demo
}

// wrapping is a row of root_keys: the org's root key wrapped by a master key.
type wrapping struct {
	Provider, KeyID, Version, State string
}

func (w wrapping) String() string {
	return w.State + " " + w.ref().String()
}

// ref is the master key of w.
func (w wrapping) ref() masterkey.Ref {
	return masterkey.Ref{Provider: w.Provider, ID: w.KeyID, Version: w.Version}
}

// matches reports whether w is want: same state and master key, and same
// version (compared as the jobs compare them, case-insensitively), or any
// recorded version when want has none.
func (w wrapping) matches(want wrapping) bool {
	return w.State == want.State && w.Provider == want.Provider && w.KeyID == want.KeyID &&
		(want.Version == "" && w.Version != "" || strings.EqualFold(w.Version, want.Version))
}

// sealed is a ciphertext and the plaintext it must decrypt to.
type sealed struct {
	plaintext, ciphertext []byte
}

// crashCase is one org in its own orgkms data directory.
type crashCase struct {
	t    *testing.T
	bin  string // orgkms built with -tags crashtest
	emu  *azureemu.Emulator
	demo azureemu.Demo
	org  string
	dir  string
	cfg  string // config file
	url  string // http://127.0.0.1:PORT, the same across restarts
	http *http.Client

	env        []string       // added to every server's environment (KEY=VALUE)
	pg         *pgtest.Server // the case's PostgreSQL, when its database is one (else SQLite in dir)
	database   string         // the postgres:// URL of the case's database, with pg
	proc       *orgkmsProc    // the running server, if any
	n          int            // servers started so far
	op         *client.Client // operator (bootstrap token)
	sec, svc   *client.Client // the org's security admin and service
	ciphertext []sealed
}

// newCrashCase makes the case's data directory and config. With pg set,
// the case's database is a new database of pg instead of SQLite.
func newCrashCase(t *testing.T, bin string, emu *azureemu.Emulator, demo azureemu.Demo, org string, pg ...*pgtest.Server) *crashCase {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &crashCase{t: t, bin: bin, emu: emu, demo: demo, org: org, dir: dir, cfg: filepath.Join(dir, "orgkms.json"), url: "http://" + addr,
		// No keep-alive: the server behind the address restarts.
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}}
	cfg := map[string]any{
		"addr": addr, "data_dir": filepath.Join(dir, "data"), "public_url": c.url, "log_format": "text",
		"cmk": map[string]any{
			// The probe runs at start, then every probe_interval: the start
			// is enough to see a rotation, and no later probe can overwrite
			// the record while the test changes it (see waitProbe).
			"cloud": "azure", "probe_interval": "1h", "job_lease": "1s",
			"azure": map[string]any{
				"client_id": demo.ClientID, "client_secret": demo.Secret, "authority_host": emu.URL() + "/",
				"ca_file": emu.CAFile(), "emulator_addr": emu.Addr(),
			},
		},
	}
	if len(pg) > 0 {
		c.pg = pg[0]
		c.database = crashDatabase(t, c.pg)
		cfg["database"] = c.database
	}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// run brings the org to the state before the job, restarts orgkms so that
// it kills itself after step at of the job, triggers the job, restarts
// orgkms once more and checks the outcome.
func (c *crashCase) run(kind, at string) {
	t := c.t
	ctx := t.Context()
	var from, to wrapping // the master key before and after the job
	switch kind {
	case "activate":
		// Nothing runs a job before enable: set up on the crashing server.
		c.start(at)
		platform := c.setUp()
		c.authorize()
		c.configure(azureemu.DemoKey)
		from, to = platform, c.cmkKey(azureemu.DemoKey)
		c.trigger(func() error { _, err := c.sec.CMKEnable(ctx, c.org); return err })

	case "rotate":
		// A key of its own: rotating the shared demo key would start
		// rotations in the other cases.
		name := "rotate-" + at
		if _, err := c.emu.CreateKey(azureemu.DemoVault, name, azureemu.KeyOptions{Kty: "RSA", Size: 2048}); err != nil {
			t.Fatalf("CreateKey %s: %v", name, err)
		}
		c.start("")
		c.setUp()
		c.activate(name)
		from = c.cmkKey(name)
		c.stop()
		rotated, err := c.emu.RotateKey(azureemu.DemoVault, name)
		if err != nil {
			t.Fatalf("RotateKey %s: %v", name, err)
		}
		tagKey(t, c.emu, name, c.org) // orgkms follows only versions tagged for the org
		to = from
		to.Version = rotated.Version
		// The first probe, at start, sees the new version and starts the
		// rotation: the server may die before it is ready.
		c.start(at)

	case "replace":
		c.start("")
		c.setUp()
		c.activate(azureemu.DemoKey)
		c.stop()
		c.start(at)
		c.waitProbe()
		c.configure(crashKey2)
		from, to = c.cmkKey(azureemu.DemoKey), c.cmkKey(crashKey2)
		c.trigger(func() error { _, err := c.sec.CMKEnable(ctx, c.org); return err })

	case "deactivate":
		c.start("")
		platform := c.setUp()
		c.activate(azureemu.DemoKey)
		from = c.cmkKey(azureemu.DemoKey)
		c.stop()
		c.start(at)
		c.waitProbe()
		to = platform
		c.trigger(func() error { _, err := c.sec.CMKDisable(ctx, c.org); return err })

	default:
		t.Fatalf("unknown job kind %q", kind)
	}

	c.waitCrash(at)
	jobID := c.checkAfterCrash(kind, at, from, to)

	c.start("")
	st := c.waitJob(kind)
	c.checkOutcome(kind, st, jobID, to)
	// The resumed job may have left the root key in the cache: decrypt
	// with what the final wrapping unwraps.
	if err := c.op.PurgeCache(ctx, c.org); err != nil {
		t.Fatalf("PurgeCache(%s): %v", c.org, err)
	}
	c.checkCiphertexts()
	if v, err := c.sec.VerifyAudit(ctx, c.org); err != nil || !v.OK {
		t.Errorf("VerifyAudit(%s) = %+v, %v; want an intact chain", c.org, v, err)
	}
	c.stop()
	// The database once the server is gone, not only what it reports.
	if ws := c.wrappings(); len(ws) != 1 || !ws[0].matches(to) {
		t.Errorf("after restart and stop, root key wrappings of %s:\n%s\nwant exactly one, active, by %s", c.org, wrappingList(ws), to)
	}
}

// setUp creates the org, a security admin token (admin + key_admin) and a
// service token, and encrypts a few ciphertexts on the platform key. It
// returns the org's platform wrapping.
func (c *crashCase) setUp() wrapping {
	t := c.t
	ctx := t.Context()
	b, err := os.ReadFile(filepath.Join(c.dir, "data", "bootstrap-token"))
	if err != nil {
		t.Fatalf("bootstrap token: %v", err)
	}
	op := c.client(strings.TrimSpace(string(b)))
	c.op = op
	if _, err := op.CreateOrg(ctx, c.org, "Crash "+c.org); err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	sec, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "sec", Org: c.org, Roles: []string{"admin", "key_admin"}})
	if err != nil {
		t.Fatalf("CreateToken sec: %v", err)
	}
	svc, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "svc", Org: c.org, Roles: []string{"service"}})
	if err != nil {
		t.Fatalf("CreateToken svc: %v", err)
	}
	c.sec, c.svc = c.client(sec.Secret), c.client(svc.Secret)
	c.encrypt("platform", 3)
	ws := c.wrappings()
	if len(ws) != 1 || ws[0].State != "active" || ws[0].Provider != "local" || ws[0].Version == "" {
		t.Fatalf("root key wrappings of a new org:\n%s\nwant one, active, by the local platform key, with its version", wrappingList(ws))
	}
	return ws[0]
}

func (c *crashCase) client(token string) *client.Client {
	cl, err := client.New(client.Config{Addr: c.url, Token: token, HTTPClient: c.http})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// encrypt makes n ciphertexts under the org's default key.
func (c *crashCase) encrypt(label string, n int) {
	for i := range n {
		pt := fmt.Appendf(nil, "%s %s secret %d", c.org, label, i)
		ct, _, err := c.svc.Encrypt(c.t.Context(), c.org, "default", pt, nil)
		if err != nil {
			c.t.Fatalf("Encrypt (%s): %v", label, err)
		}
		c.ciphertext = append(c.ciphertext, sealed{plaintext: pt, ciphertext: ct})
	}
}

func (c *crashCase) checkCiphertexts() {
	for i, s := range c.ciphertext {
		pt, err := c.svc.Decrypt(c.t.Context(), c.org, "default", s.ciphertext, nil)
		if err != nil {
			c.t.Errorf("Decrypt(ciphertext %d, %q) after the crash: %v", i, s.plaintext, err)
			continue
		}
		if !bytes.Equal(pt, s.plaintext) {
			c.t.Errorf("Decrypt(ciphertext %d) = %q, want %q", i, pt, s.plaintext)
		}
	}
}

// cmkKey is the wrapping key of the demo vault's key name at its current
// version.
func (c *crashCase) cmkKey(name string) wrapping {
	k, err := c.emu.GetKey(azureemu.DemoVault, name)
	if err != nil {
		c.t.Fatalf("GetKey %s: %v", name, err)
	}
	id, err := azurekv.ParseKeyID(c.demo.VaultURI, name, "", c.demo.TenantID, azurekv.DefaultHostSuffixes)
	if err != nil {
		c.t.Fatalf("ParseKeyID: %v", err)
	}
	ref := id.Ref()
	return wrapping{Provider: ref.Provider, KeyID: ref.ID, Version: k.Version, State: "active"}
}

var (
	csrfRE       = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// authorize does the admin-consent round trip of the case's org.
func (c *crashCase) authorize() {
	authorizeOrg(c.t, c.emu, c.http, c.url, c.sec, c.org, c.demo.TenantID)
}

// authorizeOrg does the admin-consent round trip of org in tenant as the
// customer's administrator would in a browser: sec (the org's security
// admin) asks the orgkms at baseURL to authorize, the browser opens the
// consent page, accepts, and follows the redirect to orgkms (through hc).
func authorizeOrg(t *testing.T, emu *azureemu.Emulator, hc *http.Client, baseURL string, sec *client.Client, org, tenant string) {
	t.Helper()
	r, err := sec.CMKAuthorize(t.Context(), org, tenant)
	if err != nil {
		t.Fatalf("CMKAuthorize: %v", err)
	}
	browser := emu.HTTPClient() // trusts the emulator CA
	browser.Timeout = 30 * time.Second
	browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := browser.Get(r.ConsentURL)
	if err != nil {
		t.Fatalf("consent page: %v", err)
	}
	page := readBody(t, resp)
	tok, action := csrfRE.FindStringSubmatch(page), formActionRE.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || tok == nil || action == nil {
		t.Fatalf("consent page %s: %s\n%s", r.ConsentURL, resp.Status, page)
	}
	post, err := resp.Request.URL.Parse(html.UnescapeString(action[1]))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = browser.PostForm(post.String(), url.Values{"csrf_token": {html.UnescapeString(tok[1])}, "action": {"accept"}})
	if err != nil {
		t.Fatalf("accept consent: %v", err)
	}
	body := readBody(t, resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, baseURL+"/") {
		t.Fatalf("accept consent: %s, Location %q, want a redirect to orgkms\n%s", resp.Status, loc, body)
	}
	resp, err = hc.Get(loc)
	if err != nil {
		t.Fatalf("consent callback: %v", err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("consent callback: %s\n%s", resp.Status, body)
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", resp.Request.URL, err)
	}
	return string(b)
}

// configure sets the org's key to name in the demo vault, following the
// latest version.
// keyOrgs accumulates, per key, the orgs whose cases use it: the customer's
// ownership tag (orgkms-org) lists them all, and cases run in parallel.
var (
	keyOrgsMu sync.Mutex
	keyOrgs   = map[string]map[string]bool{}
)

func tagKey(t *testing.T, emu *azureemu.Emulator, name, org string) {
	keyOrgsMu.Lock()
	defer keyOrgsMu.Unlock()
	if keyOrgs[name] == nil {
		keyOrgs[name] = map[string]bool{}
	}
	keyOrgs[name][org] = true
	var orgs []string
	for o := range keyOrgs[name] {
		orgs = append(orgs, o)
	}
	slices.Sort(orgs)
	if _, err := emu.SetKeyTags(azureemu.DemoVault, name, "", map[string]string{"orgkms-org": strings.Join(orgs, ",")}); err != nil {
		t.Fatalf("SetKeyTags %s: %v", name, err)
	}
}

func (c *crashCase) configure(name string) {
	tagKey(c.t, c.emu, name, c.org)
	if _, err := c.sec.CMKConfigure(c.t.Context(), c.org, client.CMKConfigureRequest{VaultURI: c.demo.VaultURI, KeyName: name}); err != nil {
		c.t.Fatalf("CMKConfigure %s: %v", name, err)
	}
}

// activate authorizes orgkms, enables key name, waits until it is active
// and encrypts a few more ciphertexts.
func (c *crashCase) activate(name string) {
	c.authorize()
	c.configure(name)
	if _, err := c.sec.CMKEnable(c.t.Context(), c.org); err != nil {
		c.t.Fatalf("CMKEnable: %v", err)
	}
	c.waitJob("activate")
	c.encrypt(name, 2)
	// The switch makes the org due for a probe at once. Let it finish: a
	// stop that cancels it leaves its lease taken, and with probe_interval
	// 1h the next server would not probe the org within the test.
	c.waitProbe()
}

// waitProbe waits until the server's first probe of the org is done.
//
// Probe reads the org's CMK record, calls the vault, then writes the whole
// record back unconditionally: a change made in between (configure, enable,
// disable, a job's switch) is lost. Until it writes conditionally, the test
// changes an active org's record only once the probe at start is done, and
// probe_interval is long enough that no other probe runs.
func (c *crashCase) waitProbe() {
	t := c.t
	deadline := time.Now().Add(crashJobTimeout)
	for {
		st, err := c.sec.CMKStatus(t.Context(), c.org)
		if err == nil && st.LastProbeAt != nil && st.LastProbeAt.After(c.proc.started) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe of %s within %v of the start (last status %+v, error %v)", c.org, crashJobTimeout, st, err)
		}
		time.Sleep(crashPollInterval)
	}
}

// trigger starts the job. The server may kill itself before it answers;
// waitCrash then checks how it died.
func (c *crashCase) trigger(start func() error) {
	err := start()
	var apiErr *client.Error
	if errors.As(err, &apiErr) {
		c.t.Fatalf("starting the job: %v (HTTP %d, %s)", err, apiErr.Status, apiErr.Code)
	}
	if err != nil {
		select {
		case <-c.proc.done:
		case <-time.After(crashJobTimeout):
			c.t.Fatalf("starting the job failed and the server is still running: %v", err)
		}
	}
}

// waitJob waits until the org's latest job is a done job of kind and the
// org's state is no longer transitional, and returns the status.
func (c *crashCase) waitJob(kind string) client.CMKStatus {
	t := c.t
	deadline := time.Now().Add(crashJobTimeout)
	var st client.CMKStatus
	var err error
	for {
		st, err = c.sec.CMKStatus(t.Context(), c.org)
		if err == nil && st.Job != nil && st.Job.Kind == kind {
			switch st.Job.State {
			case "done":
				if st.State == "active" || st.State == "authorized" {
					return st
				}
			case "failed":
				t.Fatalf("%s job failed: %s (status %+v)", kind, st.Job.Error, st)
			}
		}
		select {
		case <-c.proc.done:
			t.Fatalf("orgkms exited (%v) while waiting for the %s job", c.proc.cmd.ProcessState, kind)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s job did not finish within %v; last status %+v, job %+v, error %v", kind, crashJobTimeout, st, st.Job, err)
		}
		time.Sleep(crashPollInterval)
	}
}

// waitCrash waits until the server dies and checks that it killed itself
// with SIGKILL.
func (c *crashCase) waitCrash(at string) {
	p := c.proc
	select {
	case <-p.done:
	case <-time.After(crashJobTimeout):
		c.t.Fatalf("orgkms with ORGKMS_TEST_CRASH_AT=%s still runs after %v: the job did not reach the step", at, crashJobTimeout)
	}
	c.proc = nil
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		c.t.Fatalf("orgkms with ORGKMS_TEST_CRASH_AT=%s ended with %v, want killed by SIGKILL; its output:\n%s", at, p.cmd.ProcessState, p.out)
	}
}

// checkAfterCrash checks the database left by the crash and returns the
// job's ID. Before the switch, the job is unfinished and the active wrapping
// is untouched, next to the pending copy; after it, the new wrapping is the
// only one (the job may be done already, if the switch also finished it).
func (c *crashCase) checkAfterCrash(kind, at string, from, to wrapping) int64 {
	t := c.t
	var id int64
	var jobKind, state string
	err := c.query(func(db *sql.DB) error {
		return db.QueryRowContext(t.Context(), `SELECT id, kind, state FROM cmk_jobs WHERE org_id = $1 ORDER BY id DESC LIMIT 1`, c.org).Scan(&id, &jobKind, &state)
	})
	if err != nil {
		t.Fatalf("the org's latest job after the crash: %v", err)
	}
	if jobKind != kind || state != "running" && (at != "switched" || state != "done") {
		t.Errorf("after a crash at %s, the org's latest job is %s, %s; want %s, running", at, jobKind, state, kind)
	}
	ws := c.wrappings()
	pending := to
	pending.State = "pending"
	var want []wrapping
	if at == "switched" {
		want = []wrapping{to}
	} else {
		want = []wrapping{from, pending}
	}
	match := len(ws) == len(want)
	for i := 0; match && i < len(ws); i++ {
		match = ws[i].matches(want[i])
	}
	if !match {
		t.Errorf("after a crash at %s, root key wrappings of %s:\n%s\nwant:\n%s", at, c.org, wrappingList(ws), wrappingList(want))
	}
	return id
}

// checkOutcome checks the status once the job is done: the crashed job
// itself finished, and the org is on the job's target key.
func (c *crashCase) checkOutcome(kind string, st client.CMKStatus, jobID int64, to wrapping) {
	t := c.t
	if st.Job.ID != jobID {
		t.Errorf("the org's latest job is %+v, want job %d, resumed after the crash", *st.Job, jobID)
	}
	if kind == "deactivate" {
		if st.State != "authorized" || st.Provider != "local" || st.CurrentVersion != "" {
			t.Errorf("after deactivate, status %+v; want authorized, on the local platform key", st)
		}
	} else if st.State != "active" || st.MasterKey != to.ref().Unversioned().String() || !strings.EqualFold(st.CurrentVersion, to.Version) {
		t.Errorf("after %s, status: state %s, master key %s, version %s; want active, %s, %s", kind, st.State, st.MasterKey, st.CurrentVersion, to.ref().Unversioned(), to.Version)
	}
	if ws := c.wrappings(); len(ws) != 1 || !ws[0].matches(to) {
		t.Errorf("after %s, root key wrappings of %s:\n%s\nwant exactly one, active, by %s", kind, c.org, wrappingList(ws), to)
	}
}

// wrappings reads the org's root key wrappings from the database.
func (c *crashCase) wrappings() []wrapping {
	var ws []wrapping
	err := c.query(func(db *sql.DB) error {
		rows, err := db.QueryContext(c.t.Context(), `SELECT provider, key_id, key_version, state FROM root_keys WHERE org_id = $1 ORDER BY state = 'active' DESC, id`, c.org)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var w wrapping
			if err := rows.Scan(&w.Provider, &w.KeyID, &w.Version, &w.State); err != nil {
				return err
			}
			ws = append(ws, w)
		}
		return rows.Err()
	})
	if err != nil {
		c.t.Fatalf("read root key wrappings of %s: %v", c.org, err)
	}
	return ws
}

// query opens orgkms's database for f: the SQLite file read-only, or the
// case's PostgreSQL database. Queries write parameters $1, $2, ..., which
// both dialects read.
func (c *crashCase) query(f func(db *sql.DB) error) error {
	if c.pg != nil {
		db, err := sql.Open("pgx", c.database)
		if err != nil {
			return err
		}
		defer db.Close()
		return f(db)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(c.dir, "data", "orgkms.db")+"?mode=ro&_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return err
	}
	defer db.Close()
	return f(db)
}

func wrappingList(ws []wrapping) string {
	if len(ws) == 0 {
		return "\t(none)"
	}
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("\t" + w.String())
	}
	return b.String()
}

// orgkmsProc is an orgkms server process.
type orgkmsProc struct {
	started time.Time
	cmd     *exec.Cmd
	out     *syncBuffer // stdout and stderr
	done    chan struct{}
}

// start starts "orgkms serve" on the case's config and waits until it is
// ready. With crashAt set, the server kills itself after that job step,
// and may do so before it is ready.
func (c *crashCase) start(crashAt string) {
	t := c.t
	if c.proc != nil {
		t.Fatal("start: a server is already running")
	}
	c.n++
	cmd := exec.Command(c.bin, "serve", "--config", c.cfg, "--migrate")
	cmd.Env = append(crashEnv(), c.env...)
	if crashAt != "" {
		cmd.Env = append(cmd.Env, "ORGKMS_TEST_CRASH_AT="+crashAt)
	}
	p := &orgkmsProc{started: time.Now(), cmd: cmd, out: new(syncBuffer), done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start orgkms: %v", err)
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	n := c.n
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of orgkms #%d (ORGKMS_TEST_CRASH_AT=%q):\n%s", n, crashAt, p.out)
		}
	})
	c.proc = p
	deadline := time.Now().Add(crashReadyTimeout)
	for {
		resp, err := c.http.Get(c.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			if crashAt != "" {
				return // waitCrash checks how it died
			}
			t.Fatalf("orgkms exited before it was ready (%v); its output:\n%s", cmd.ProcessState, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("orgkms was not ready within %v (last: %v); its output:\n%s", crashReadyTimeout, err, p.out)
		}
		time.Sleep(crashPollInterval)
	}
}

// stop stops the server with SIGINT and checks that it exited cleanly (a
// race-enabled server exits 66 when it found a data race).
func (c *crashCase) stop() {
	p := c.proc
	c.proc = nil
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("interrupt orgkms: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(crashStopTimeout):
		c.t.Fatalf("orgkms did not stop within %v of SIGINT", crashStopTimeout)
	}
	if !p.cmd.ProcessState.Success() {
		c.t.Fatalf("orgkms stopped with %v, want exit status 0; its output:\n%s", p.cmd.ProcessState, p.out)
	}
}

// crashEnv is the environment of an orgkms server: the test's, without
// ORGKMS_* variables (they override the config file), and without the race
// detector's 1 s sleep at exit.
func crashEnv() []string {
	var env []string
	gorace := ""
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "ORGKMS_"):
		case strings.HasPrefix(kv, "GORACE="):
			gorace = strings.TrimPrefix(kv, "GORACE=")
		default:
			env = append(env, kv)
		}
	}
	if !strings.Contains(gorace, "atexit_sleep_ms") {
		gorace = strings.TrimSpace(gorace + " atexit_sleep_ms=0")
	}
	return append(env, "GORACE="+gorace)
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
