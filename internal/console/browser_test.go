package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/azurecloud"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/console"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// The browser test drives Debian's chromium headless through the whole
// console against a real orgkms browserStack and the Azure emulator, in-process.
// Set ORGKMS_SCREENSHOTS=1 to refresh the screenshots in docs/screenshots.

const (
	chromiumPath = "/usr/bin/chromium"

	demoOrg     = "demo"
	adminEmail  = "admin@demo.example"
	adminPass   = "admin-password-for-the-browser-test"
	memberEmail = "member@demo.example"
	memberPass  = "member-password-for-the-browser-test"

	// Bounds that only fail a stuck test with a message (every wait polls
	// its condition), generous for a loaded machine.
	actionTimeout = 2 * time.Minute // one browser action
	stateTimeout  = 2 * time.Minute // a CMK state change seen in the page
)

// browserStack is orgkms (SQLite, local platform key, the azurekv driver, the CMK
// service running its probe and jobs, the API and the console) on one
// plain-HTTP test server, against the Azure emulator over TLS.
type browserStack struct {
	url  string
	emu  *azureemu.Emulator
	demo azureemu.Demo
	st   *sqlite.Store
	keys *keys.Service
	cmk  *cmk.Service
	logs *logBuffer
}

func newBrowserStack(t *testing.T) *browserStack {
	t.Helper()
	ctx := context.Background()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("orgkms log (tail):\n%s", logs.tail(60))
		}
	})

	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	t.Cleanup(srv.Close)
	base := "http://" + srv.Listener.Addr().String()
	callback := base + "/v1/cmk/callback"

	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	demo, err := azureemu.SeedDemo(emu, []string{callback})
	if err != nil {
		t.Fatal(err)
	}

	// The platform key comes from a (simulated) environment variable, so no
	// machine path shows in the pages and their screenshots.
	platformKey := base64.StdEncoding.EncodeToString(randomKey(t, 32))
	getenv := func(name string) string {
		if name == "ORGKMS_MASTER_KEY" {
			return platformKey
		}
		return ""
	}
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: base, MasterKey: "local:env:ORGKMS_MASTER_KEY"}
	cfg.CMK.Cloud, cfg.CMK.ProbeInterval, cfg.CMK.JobWorkers = "azure", config.Duration(time.Second), 2
	cfg.CMK.Azure = config.Azure{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/"}
	s, err := server.Open(ctx, cfg, server.Options{Logger: log, Migrate: true, Getenv: getenv, JobPoll: 100 * time.Millisecond,
		AzureHTTPClient: emu.HTTPClient(), AzureMaxRetries: 1, AzureRetryDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("server Close: %v", err)
		}
	})
	s.Start(context.Background()) // the probe and the jobs; Close stops them
	st, ks, cs, users := s.Store.(*sqlite.Store), s.Keys, s.CMK, s.Users

	if _, err := ks.CreateOrg(ctx, "orgkms:dev", demoOrg, "Demo Org"); err != nil { // with its data key "default"
		t.Fatal(err)
	}
	if _, err := ks.Encrypt(ctx, "orgkms:dev", demoOrg, "default", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	for _, u := range []auth.NewUserRequest{
		{OrgID: demoOrg, Email: adminEmail, Name: "Demo Security Admin", Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}, Password: adminPass},
		{OrgID: demoOrg, Email: memberEmail, Name: "Demo Member", Roles: []auth.Role{auth.RoleMember}, Password: memberPass},
	} {
		if _, err := users.Create(ctx, "orgkms:dev", u); err != nil {
			t.Fatalf("creating %s: %v", u.Email, err)
		}
	}

	mux.Handle("/", s.Handler)
	srv.Start()
	return &browserStack{url: base, emu: emu, demo: demo, st: st, keys: ks, cmk: cs, logs: logs}
}

func (s *browserStack) status(t *testing.T) cmk.Status {
	t.Helper()
	st, err := s.cmk.Status(context.Background(), demoOrg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (s *browserStack) orgURL(page string) string {
	return s.url + "/console/orgs/" + demoOrg + "/" + page
}

// browser is one headless chromium for the whole test.
type browser struct{ ctx context.Context }

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the browser tests drive Debian's chromium headless and need %s; install it with `apt-get install -y chromium` (.ci/run does this in CI): %v",
			chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true), // the emulator's consent page has a self-signed CA
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	stop := func() { cancel(); cancelAlloc() }
	t.Cleanup(stop)
	if err := startWithin(30*time.Second, stop, func() error { return chromedp.Do(ctx) }); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return &browser{ctx: ctx}
}

// startWithin runs the first action of a chromedp context, which binds the life
// of the browser or tab to that context, so it cannot carry a timeout: it
// waits at most d, then calls cancel and gives up.
func startWithin(d time.Duration, cancel func(), first func() error) error {
	done := make(chan error, 1)
	go func() { done <- first() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cancel()
		return fmt.Errorf("no answer within %s", d)
	}
}

// tab is a tab in a fresh browser context: its own cookies, like a private
// window.
type tab struct {
	ctx  context.Context
	name string
}

func (b *browser) newTab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := startWithin(actionTimeout, cancel, func() error { return chromedp.Do(ctx) }); err != nil {
		t.Fatalf("opening a tab for %s: %v", name, err)
	}
	return &tab{ctx: ctx, name: name}
}

// do runs steps with a bounded wait.
func (tb *tab) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s (%s): %v\n%s", what, tb.name, err, tb.describe())
	}
}

// load runs steps that navigate (a link, a form) and returns the response of
// the page that loads, failing unless its status is want (0: any).
func (tb *tab) load(t *testing.T, what string, want int, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		t.Fatalf("%s (%s): %v\n%s", what, tb.name, err, tb.describe())
	}
	if resp == nil || want != 0 && int(resp.Status) != want {
		var got any = "no response"
		if resp != nil {
			got = resp.Status
		}
		t.Fatalf("%s (%s): status %v, want %d\n%s", what, tb.name, got, want, tb.describe())
	}
	return resp
}

// open navigates to u and expects 200.
func (tb *tab) open(t *testing.T, u string) {
	t.Helper()
	tb.load(t, "opening "+u, http.StatusOK, chromedp.Navigate(u))
}

// click clicks sel and waits for the page it leads to, expecting 200.
func (tb *tab) click(t *testing.T, sel string) {
	t.Helper()
	tb.load(t, "clicking "+sel, http.StatusOK, chromedp.Click(chromedp.CSS(sel)))
}

// fill replaces the value of the input sel by typing v.
func (tb *tab) fill(t *testing.T, sel, v string) {
	t.Helper()
	steps := []chromedp.Action[chromedp.Void]{chromedp.Clear(chromedp.CSS(sel))}
	if v != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(sel), v))
	}
	tb.do(t, "filling "+sel, steps...)
}

type elem struct {
	Found bool   `json:"found"`
	Text  string `json:"text"`
}

// elem reads sel now, without waiting: whether it is there and its visible
// text with whitespace collapsed.
func (tb *tab) elem(sel string) (elem, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	q, _ := json.Marshal(sel)
	return chromedp.Run(ctx, chromedp.Evaluate[elem](fmt.Sprintf(
		`(() => { const e = document.querySelector(%s); return e ? {found: true, text: (e.innerText || e.value || "").replace(/\s+/g, " ").trim()} : {found: false, text: ""}; })()`, q)))
}

// text returns the text of sel, failing when it is missing.
func (tb *tab) text(t *testing.T, sel string) string {
	t.Helper()
	e, err := tb.elem(sel)
	if err != nil || !e.Found {
		t.Fatalf("%s: no element %s (err %v)\n%s", tb.name, sel, err, tb.describe())
	}
	return e.Text
}

func (tb *tab) present(t *testing.T, sel string) bool {
	t.Helper()
	e, err := tb.elem(sel)
	if err != nil {
		t.Fatalf("%s: looking for %s: %v\n%s", tb.name, sel, err, tb.describe())
	}
	return e.Found
}

// waitFor polls until ok holds for sel. With reload it reopens u before each
// look; otherwise the page must get there itself (meta refresh). The wait is
// bounded; no duration is asserted.
func (tb *tab) waitFor(t *testing.T, what, sel string, ok func(elem) bool, reload string) elem {
	t.Helper()
	deadline := time.Now().Add(stateTimeout)
	for {
		if reload != "" {
			ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
			_, err := chromedp.RunResponse(ctx, chromedp.Navigate(reload))
			cancel()
			if err != nil {
				t.Fatalf("%s: reloading %s: %v", tb.name, reload, err)
			}
		}
		e, err := tb.elem(sel) // errors while the page reloads itself are retried
		if err == nil && ok(e) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s: not within %s: %s is %+v (err %v)\n%s", tb.name, what, stateTimeout, sel, e, err, tb.describe())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// describe is the page's address and text, for failure messages.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "(page unavailable: " + err.Error() + ")"
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if len(body) > 3000 {
		body = body[:3000] + "…"
	}
	return "page " + loc + ":\n" + body
}

func (tb *tab) location(t *testing.T) *url.URL {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// signIn signs in on a fresh sign-in page and waits for the org pages.
func (tb *tab) signIn(t *testing.T, s *browserStack, email, password string) {
	t.Helper()
	tb.open(t, s.url+"/console/signin")
	tb.fill(t, "input#email", email)
	tb.fill(t, "input#password", password)
	tb.click(t, "button#signin-submit")
	if who := tb.text(t, "#whoami"); !strings.Contains(who, email) {
		t.Fatalf("%s: #whoami says %q, want %s", tb.name, who, email)
	}
}

// shots saves PNG screenshots: to docs/screenshots with ORGKMS_SCREENSHOTS=1,
// to a temporary directory otherwise.
type shots struct {
	dir  string
	mu   sync.Mutex
	done []string
}

func newShots(t *testing.T) *shots {
	if os.Getenv("ORGKMS_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return &shots{dir: dir}
	}
	return &shots{dir: t.TempDir()}
}

func (sh *shots) take(t *testing.T, tb *tab, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 is PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil || img.Bounds().Dx() < 800 || img.Bounds().Dy() < 300 {
		t.Fatalf("screenshot %s is not a full page PNG (err %v)", name, err)
	}
	if err := os.WriteFile(filepath.Join(sh.dir, name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	sh.mu.Lock()
	sh.done = append(sh.done, name)
	sh.mu.Unlock()
}

func TestBrowserConsole(t *testing.T) {
	b := startBrowser(t)
	s := newBrowserStack(t)
	sh := newShots(t)
	admin := b.newTab(t, "admin")

	// The configure form as the browser had it, for the CSRF check.
	var configure struct {
		Action string            `json:"action"`
		Fields map[string]string `json:"fields"`
	}

	securityOK := t.Run("SecurityFlow", func(t *testing.T) {
		admin.open(t, s.url+"/console/signin")
		if !admin.present(t, "form#signin") {
			t.Fatalf("no form#signin\n%s", admin.describe())
		}
		sh.take(t, admin, "signin.png")
		admin.signIn(t, s, adminEmail, adminPass)

		// Settings → Security.
		admin.click(t, "a#nav-security")
		if p := admin.location(t).Path; p != "/console/orgs/"+demoOrg+"/security" {
			t.Fatalf("a#nav-security led to %s", p)
		}
		if st := admin.text(t, "#cmk-state"); !strings.Contains(strings.ToLower(st), "platform") {
			t.Errorf("#cmk-state before enabling is %q, want platform", st)
		}

		// Enable Customer Managed Keys.
		if !evalJS[bool](t, admin, `document.querySelector("input#cmk-enable").checked`) {
			admin.do(t, "turning the switch on", chromedp.Click(chromedp.CSS("input#cmk-enable")))
		}
		if !admin.present(t, "form#authorize-form") {
			// Without JavaScript the switch is applied with its form's button.
			admin.click(t, "form:has(input#cmk-enable) [type=submit]")
		}
		if !admin.present(t, "form#authorize-form") {
			t.Fatalf("turning the switch on shows no Step 1 (form#authorize-form)\n%s", admin.describe())
		}

		// Step 1. Authorize Application: the consent page and back.
		admin.fill(t, "input#tenant-id", s.demo.TenantID)
		admin.click(t, "button#authorize")
		if u := admin.location(t); u.Scheme != "https" || u.Host != s.emu.Addr() {
			t.Fatalf("Authorize led to %s, want the emulator's consent page", u)
		}
		admin.click(t, "button[value=accept]")
		if u := admin.location(t); u.Path != "/v1/cmk/callback" {
			t.Fatalf("Accept led to %s, want the orgkms callback", u)
		}
		admin.click(t, "a#continue")
		if u := admin.location(t); u.Path != "/console/orgs/"+demoOrg+"/security" || u.Query().Get("consent") != "ok" {
			t.Fatalf("Continue led to %s, want the Security page with consent=ok", u)
		}
		if f := admin.text(t, "#flash"); f == "" {
			t.Errorf("no #flash message after the consent round trip")
		}
		if c := admin.text(t, "#consent"); !strings.Contains(c, s.demo.TenantID) {
			t.Errorf("#consent is %q, want it to name the tenant %s", c, s.demo.TenantID)
		}
		if st := s.status(t); st.State != cmk.StateAuthorized || st.TenantID != s.demo.TenantID {
			t.Fatalf("after consent: state %s tenant %s, want authorized for %s", st.State, st.TenantID, s.demo.TenantID)
		}

		// Step 2. Configure Managed Key, then Test Managed Key.
		admin.fill(t, "input#vault-uri", "https://contoso-kv.vault.azure.net/")
		admin.fill(t, "input#key-name", "orgkms-cmk")
		admin.fill(t, "input#key-version", "")
		err := json.Unmarshal(evalJS[[]byte](t, admin,
			`(() => { const f = document.querySelector("form#configure"); return {action: new URL(f.getAttribute("action"), location.href).href, fields: Object.fromEntries(new FormData(f))}; })()`), &configure)
		if err != nil || configure.Action == "" {
			t.Fatalf("reading form#configure: %v", err)
		}
		admin.click(t, "button#test")
		if f := admin.text(t, "#flash"); f == "" {
			t.Errorf("no #flash message after a passing Test Managed Key")
		}
		rows := admin.checks(t)
		if len(rows) == 0 {
			t.Fatalf("table#test-results has no tr[data-check] rows\n%s", admin.describe())
		}
		for _, r := range rows {
			if r.Status != "pass" && r.Status != "warn" {
				t.Errorf("check %s: status %q, want pass or warn (row: %s)", r.ID, r.Status, r.Text)
			}
		}
		if v := admin.text(t, "input#vault-uri"); v != "https://contoso-kv.vault.azure.net/" {
			t.Errorf("after Test, input#vault-uri holds %q: the form must keep what was typed", v)
		}
		if v := admin.text(t, "input#key-name"); v != "orgkms-cmk" {
			t.Errorf("after Test, input#key-name holds %q: the form must keep what was typed", v)
		}
		sh.take(t, admin, "security-test.png")

		// Save starts the activation; the page follows it by itself.
		admin.click(t, "button#save")
		if st := admin.text(t, "#cmk-state"); hasWord(st, "activating") && !admin.present(t, "#job-progress") {
			t.Errorf("the Security page shows no #job-progress while activating")
		}
		admin.waitFor(t, "activation", "#cmk-state", func(e elem) bool { return hasWord(e.Text, "active") }, "")
		st := s.status(t)
		if st.State != cmk.StateActive || st.ActiveVersion != s.demo.KeyVersion || st.KeyName != "orgkms-cmk" {
			t.Fatalf("after Save: state %s key %s version %s, want active on orgkms-cmk %s", st.State, st.KeyName, st.ActiveVersion, s.demo.KeyVersion)
		}
		admin.waitFor(t, "the active key version", "#cmk-version", func(e elem) bool { return strings.Contains(e.Text, s.demo.KeyVersion) },
			s.orgURL("security"))
		sh.take(t, admin, "security-active.png")
	})

	// The steps are the org's cloud's: Step 1 its authorization and what to
	// grant, Step 2 one labelled input per field of its key, in order, as
	// a browser shows them.
	t.Run("CloudFields", func(t *testing.T) {
		if !securityOK {
			t.Fatal("needs the active CMK of SecurityFlow")
		}
		cloud := azurecloud.Cloud{}
		admin.open(t, s.orgURL("security"))
		if !admin.present(t, "form#configure") {
			t.Fatalf("active: no Step 2 (form#configure)\n%s", admin.describe())
		}
		auth := cloud.Authorization(demoOrg)
		if got := oneLine(admin.text(t, "#authorize-instructions")); got != auth.Instructions {
			t.Errorf("#authorize-instructions = %q, want the cloud's %q", got, auth.Instructions)
		}
		if got := oneLine(admin.text(t, "#authorize-access")); got != auth.Access {
			t.Errorf("#authorize-access = %q, want the cloud's %q", got, auth.Access)
		}
		type input struct {
			Name  string `json:"name"`
			Label string `json:"label"`
			Help  string `json:"help"`
		}
		got := evalJS[[]input](t, admin, `[...document.querySelectorAll("form#configure input[type=text]")].map(i => ({
			name: i.name,
			label: (document.querySelector("label[for='" + i.id + "']") || {}).innerText || "",
			help: (document.getElementById(i.id + "-help") || {}).innerText || ""}))`)
		fields := cloud.Fields()
		if len(got) != len(fields) {
			t.Fatalf("form#configure has inputs %+v, want one per field of the cloud (%d)", got, len(fields))
		}
		for i, f := range fields {
			want := f.Label
			if !f.Required {
				want += " (optional)"
			}
			if got[i].Name != f.Name || oneLine(got[i].Label) != want || got[i].Help == "" {
				t.Errorf("input %d = %+v, want field %s labelled %q with help", i, got[i], f.Name, want)
			}
		}
		if h := oneLine(got[1].Help); !strings.Contains(h, "orgkms-org = "+demoOrg) {
			t.Errorf("key name help %q does not name the org's tag", h)
		}
	})

	t.Run("Rotate", func(t *testing.T) {
		if !securityOK {
			t.Fatal("needs the active CMK of SecurityFlow")
		}
		rot, err := s.emu.RotateKey(azureemu.DemoVault, s.demo.KeyName)
		if err != nil {
			t.Fatal(err)
		}
		// orgkms follows only versions tagged for the org.
		if _, err := s.emu.SetKeyTags(azureemu.DemoVault, s.demo.KeyName, rot.Version, map[string]string{"orgkms-org": "acme,globex,demo"}); err != nil {
			t.Fatal(err)
		}
		admin.waitFor(t, "the rotated version on the Security page", "#cmk-version",
			func(e elem) bool { return strings.Contains(e.Text, rot.Version) }, s.orgURL("security"))
		admin.waitFor(t, "active after rotation", "#cmk-state", func(e elem) bool { return hasWord(e.Text, "active") }, s.orgURL("security"))
		admin.open(t, s.orgURL(""))
		if v := admin.text(t, "#cmk-version"); !strings.Contains(v, rot.Version) {
			t.Errorf("overview #cmk-version is %q, want %s", v, rot.Version)
		}
	})

	t.Run("Revoked", func(t *testing.T) {
		if !securityOK {
			t.Fatal("needs the active CMK of SecurityFlow")
		}
		if _, err := s.emu.UpdateKey(azureemu.DemoVault, s.demo.KeyName, "", keyEnabled(false), nil, nil); err != nil {
			t.Fatal(err)
		}
		e := admin.waitFor(t, "the revoked banner", "#banner.banner-revoked", func(e elem) bool { return e.Found }, s.orgURL(""))
		st := s.status(t)
		if st.State != cmk.StateRevoked || st.Reason == "" {
			t.Fatalf("state %s reason %q, want revoked with a reason", st.State, st.Reason)
		}
		if !strings.Contains(e.Text, oneLine(st.Reason)) {
			t.Errorf("#banner is %q, want the reason %q", e.Text, st.Reason)
		}
		if state := admin.text(t, "#cmk-state"); !hasWord(state, "revoked") {
			t.Errorf("overview #cmk-state is %q while revoked", state)
		}
		sh.take(t, admin, "banner-revoked.png")
		admin.open(t, s.orgURL("security"))
		if !admin.present(t, "#banner.banner-revoked") {
			t.Errorf("the Security page has no #banner.banner-revoked while revoked\n%s", admin.describe())
		}

		if _, err := s.emu.UpdateKey(azureemu.DemoVault, s.demo.KeyName, "", keyEnabled(true), nil, nil); err != nil {
			t.Fatal(err)
		}
		admin.waitFor(t, "the banner to go", "#banner.banner-revoked", func(e elem) bool { return !e.Found }, s.orgURL(""))
		if st := s.status(t); st.State != cmk.StateActive {
			t.Errorf("after enabling the key again: state %s, want active", st.State)
		}
	})

	t.Run("Member", func(t *testing.T) {
		member := b.newTab(t, "member")
		// A wrong password: an error in words, the email kept.
		member.open(t, s.url+"/console/signin")
		member.fill(t, "input#email", memberEmail)
		member.fill(t, "input#password", "not-the-password-at-all")
		member.load(t, "signing in with a wrong password", 0, chromedp.Click(chromedp.CSS("button#signin-submit")))
		if msg := member.text(t, "#error"); msg == "" {
			t.Errorf("a wrong password shows an empty #error")
		}
		if v := member.text(t, "input#email"); v != memberEmail {
			t.Errorf("after a failed sign-in, input#email holds %q, want %s", v, memberEmail)
		}

		member.signIn(t, s, memberEmail, memberPass)
		if !member.present(t, "a#nav-overview") {
			t.Errorf("the member sees no a#nav-overview\n%s", member.describe())
		}
		if member.present(t, "a#nav-security") {
			t.Errorf("a member sees a#nav-security")
		}
		member.load(t, "a member opening Security", http.StatusForbidden, chromedp.Navigate(s.orgURL("security")))
		for _, sel := range []string{"input#cmk-enable", "form#authorize-form", "form#configure"} {
			if member.present(t, sel) {
				t.Errorf("the refusal page shows %s to a member", sel)
			}
		}
	})

	t.Run("CSRF", func(t *testing.T) {
		if configure.Action == "" {
			t.Fatal("needs the configure form seen in SecurityFlow")
		}
		ctx, cancel := context.WithTimeout(admin.ctx, actionTimeout)
		cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.url + "/console/"}})
		cancel()
		if err != nil || len(cookies.Cookies) == 0 {
			t.Fatalf("the admin's cookies: %v (%d cookies)", err, len(cookies.Cookies))
		}
		var header []string
		session := false
		for _, c := range cookies.Cookies {
			header = append(header, c.Name+"="+c.Value)
			if c.Name == console.SessionCookie {
				session = true
				if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
					t.Errorf("session cookie %s: HttpOnly %v SameSite %q, want HttpOnly and Strict", c.Name, c.HTTPOnly, c.SameSite)
				}
			}
		}
		if !session {
			t.Fatalf("no %s cookie in the admin's browser", console.SessionCookie)
		}
		hc := &http.Client{Timeout: actionTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		send := func(method, u string, form url.Values) (int, string) {
			t.Helper()
			var body io.Reader
			if form != nil {
				body = strings.NewReader(form.Encode())
			}
			req, _ := http.NewRequest(method, u, body)
			if form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			req.Header.Set("Cookie", strings.Join(header, "; "))
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		// The copied session works...
		if code, _ := send("GET", s.orgURL("security"), nil); code != http.StatusOK {
			t.Fatalf("GET Security with the admin's cookies: %d, want 200", code)
		}
		before := s.status(t)
		form := url.Values{}
		for k, v := range configure.Fields {
			form.Set(k, v)
		}
		for _, name := range []string{"key_name", "key-name", "keyName"} {
			if _, ok := form[name]; ok {
				form.Set(name, "attacker-key")
			}
		}
		// ...but a POST without the anti-forgery token, or with a wrong one, is refused.
		form.Del("csrf_token")
		if code, body := send("POST", configure.Action, form); code != http.StatusForbidden {
			t.Errorf("POST %s without csrf_token: %d, want 403\n%.500s", configure.Action, code, body)
		}
		form.Set("csrf_token", "forged")
		if code, body := send("POST", configure.Action, form); code != http.StatusForbidden {
			t.Errorf("POST %s with a wrong csrf_token: %d, want 403\n%.500s", configure.Action, code, body)
		}
		after := s.status(t)
		if after.State != before.State || after.KeyName != before.KeyName || after.VaultURI != before.VaultURI || after.KeyVersion != before.KeyVersion {
			t.Errorf("a refused POST changed the CMK: %+v → %+v", before.Record, after.Record)
		}
	})

	t.Run("Pages", func(t *testing.T) {
		admin.open(t, s.orgURL(""))
		if p := admin.text(t, "#protection"); securityOK && !strings.Contains(strings.ToLower(p), "customer") {
			t.Errorf("overview #protection is %q, want the customer managed key", p)
		}
		if p := admin.text(t, "dd:has(#protection)"); securityOK && !strings.Contains(p, "contoso-kv") {
			t.Errorf("the overview's master key is %q, want it to name the customer's vault contoso-kv", p)
		}
		if state := admin.text(t, "#cmk-state"); securityOK && !hasWord(state, "active") {
			t.Errorf("overview #cmk-state is %q, want active", state)
		}
		if lp := admin.text(t, "#last-probe"); securityOK && lp == "" {
			t.Errorf("overview #last-probe is empty with an active CMK")
		}
		admin.text(t, "#job")
		sh.take(t, admin, "overview.png")

		admin.click(t, "a#nav-users")
		users := admin.text(t, "table#users")
		for _, e := range []string{adminEmail, memberEmail} {
			if !strings.Contains(users, e) {
				t.Errorf("table#users does not list %s: %q", e, users)
			}
		}
		sh.take(t, admin, "users.png")

		admin.click(t, "a#nav-keys")
		if k := admin.text(t, "table#keys"); !strings.Contains(k, "default") {
			t.Errorf("table#keys does not list the data key default: %q", k)
		}
		sh.take(t, admin, "keys.png")

		admin.click(t, "a#nav-audit")
		if a := admin.text(t, "table#audit"); a == "" {
			t.Errorf("table#audit is empty")
		}
		sh.take(t, admin, "audit.png")
		admin.click(t, "a#verify")
		v := admin.text(t, "#verify-result")
		if lv := strings.ToLower(v); v == "" || strings.Contains(lv, "fail") || strings.Contains(lv, "broken") || strings.Contains(lv, "tamper") {
			t.Errorf("#verify-result is %q, want an intact chain", v)
		}
	})

	t.Run("DisableConfirmation", func(t *testing.T) {
		if !securityOK {
			t.Fatal("needs the active CMK of SecurityFlow")
		}
		admin.open(t, s.orgURL("security"))
		admin.click(t, "a#disable")
		if !admin.present(t, "form#confirm-disable-form") || !admin.present(t, "button#confirm-disable") {
			t.Fatalf("a#disable shows no form#confirm-disable-form with button#confirm-disable\n%s", admin.describe())
		}
		if x := admin.text(t, "body"); !strings.Contains(x, "platform key") {
			t.Errorf("the confirmation does not say that the org goes back to the platform key:\n%s", x)
		}
		if st := s.status(t); st.State != cmk.StateActive {
			t.Fatalf("opening the confirmation changed the state to %s", st.State)
		}
		admin.click(t, "a#cancel-disable")
		if st := admin.text(t, "#cmk-state"); !hasWord(st, "active") || s.status(t).State != cmk.StateActive {
			t.Errorf("after Cancel: #cmk-state %q, state %s, want active", st, s.status(t).State)
		}
		// Confirm: the org moves back to the platform key (state authorized:
		// consent and key settings are kept for a later enable).
		admin.click(t, "a#disable")
		admin.click(t, "button#confirm-disable")
		admin.waitFor(t, "deactivation", "#cmk-state", func(e elem) bool { return hasWord(e.Text, "authorized") }, s.orgURL("security"))
		if st := s.status(t); st.State != cmk.StateAuthorized || st.ActiveKeyURI != "" {
			t.Errorf("after disabling: state %s, active key %q; want authorized on the platform key", st.State, st.ActiveKeyURI)
		}
	})

	t.Run("SignOut", func(t *testing.T) {
		admin.open(t, s.orgURL(""))
		admin.click(t, "button#signout")
		if p := admin.location(t).Path; p != "/console/signin" {
			t.Errorf("sign-out led to %s, want /console/signin", p)
		}
		admin.open(t, s.url+"/console/signin")
		ctx, cancel := context.WithTimeout(admin.ctx, actionTimeout)
		resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.orgURL("")))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if u := admin.location(t); resp.Status == http.StatusOK && u.Path != "/console/signin" {
			t.Errorf("after sign-out the overview still opens (%d at %s)", resp.Status, u)
		}
	})

	slices.Sort(sh.done)
	t.Logf("screenshots in %s: %s", sh.dir, strings.Join(sh.done, ", "))
}

type checkRow struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Text   string `json:"text"`
}

// checks reads the rows of the Test Managed Key results.
func (tb *tab) checks(t *testing.T) []checkRow {
	t.Helper()
	tb.do(t, "waiting for table#test-results", chromedp.WaitVisible(chromedp.CSS("table#test-results")))
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]checkRow](`[...document.querySelectorAll("table#test-results tr[data-check]")].map(r => ({
		id: r.dataset.check,
		status: ((r.querySelector("td.status") || {}).innerText || "").trim().toLowerCase(),
		text: r.innerText.replace(/\s+/g, " ").trim()}))`))
	if err != nil {
		t.Fatalf("reading table#test-results: %v", err)
	}
	return rows
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: evaluating %s: %v\n%s", tb.name, expr, err, tb.describe())
	}
	return v
}

// hasWord reports whether text holds word (case-insensitive) as a word:
// "Active" but not "Activating" or "Inactive".
func hasWord(text, word string) bool {
	return slices.Contains(strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r == '_' || r == '-')
	}), word)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func keyEnabled(b bool) *bool { return &b }

func randomKey(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// logBuffer collects log output from concurrent goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
