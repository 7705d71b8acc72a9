package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
)

var warnRowRe = regexp.MustCompile(`<td class="status status-warn">`)

// wantSummary checks that the results' summary is true to the rows: "All
// checks passed" only when no check warned, else the number of warnings.
func wantSummary(t *testing.T, p *page) {
	t.Helper()
	got := p.text("test-summary")
	switch n := len(warnRowRe.FindAllString(p.body, -1)); n {
	case 0:
		p.wantText("test-summary", "All checks passed")
	case 1:
		p.wantText("test-summary", "Passed with 1 warning")
	default:
		p.wantText("test-summary", fmt.Sprintf("Passed with %d warnings", n))
	}
	if strings.Contains(got, "All checks passed") && strings.Contains(p.body, "status-warn") {
		t.Fatalf("test-summary %q while a check warned", got)
	}
}

// TestSecurityTestWhileRevoked: while the org is revoked the key cannot be
// changed, but Test Managed Key is offered on its own and runs every check
// on the key in use, naming the cause; once fixed it passes.
func TestSecurityTestWhileRevoked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(secAdmin)
	const sec = "/console/orgs/acme/security"
	u, err := h.cmk.Authorize(ctx, "user:"+secAdmin, "acme", h.demo.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	b.get(h.consent(u, "accept")).want(http.StatusOK)
	if _, err := h.cmk.Configure(ctx, "user:"+secAdmin, "acme", h.demo.VaultURI, h.demo.KeyName, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := h.cmk.Enable(ctx, "user:"+secAdmin, "acme"); err != nil {
		t.Fatal(err)
	}
	h.runJobs()
	if b.get(sec).want(http.StatusOK).has("test-key") {
		t.Error("active: the stand-alone Test Managed Key form is shown next to Step 2")
	}

	disabled := false
	if _, err := h.emu.UpdateKey(azureemu.DemoVault, h.demo.KeyName, "", &disabled, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	p := b.get(sec).want(http.StatusOK)
	p.wantText("cmk-state", "revoked")
	if p.has("configure") || !p.has("test-key") || !p.has("test") {
		t.Fatalf("revoked: want no Step 2 form but a Test Managed Key button:\n%s", p.body)
	}
	p = b.post(sec+"/test", url.Values{"csrf_token": {p.csrf()}}).want(http.StatusOK)
	if st := checkStatus(t, p, "token"); st != "pass" {
		t.Errorf("revoked: check token = %s, want pass", st)
	}
	if st := checkStatus(t, p, "enabled"); st != "fail" {
		t.Errorf("revoked: check enabled = %s, want fail", st)
	}
	p.wantText("test-summary", "checks failed")
	p.wantText("error", "Test Managed Key found problems")

	enabled := true
	if _, err := h.emu.UpdateKey(azureemu.DemoVault, h.demo.KeyName, "", &enabled, nil, nil); err != nil {
		t.Fatal(err)
	}
	p = b.post(sec+"/test", url.Values{"csrf_token": {p.csrf()}}).want(http.StatusOK)
	wantSummary(t, p)
	p.wantText("flash", "probe interval")
	if st, _ := h.cmk.Status(ctx, "acme"); st.State != cmk.StateRevoked {
		t.Fatalf("state %s after Test, want revoked: Test changes nothing", st.State)
	}
}
