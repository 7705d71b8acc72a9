package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

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

// wantTestWhileRevoked checks, on a harness whose org acme is revoked
// because its key was deleted, that the key cannot be changed but Test
// Managed Key is offered on its own and runs every check on the key in use,
// naming the cause; once the key is recovered it passes, and Test changes
// nothing. (Called by TestBannersAndStates, which reaches that state: one
// harness fewer, as each costs seconds of password hashing.)
func wantTestWhileRevoked(t *testing.T, h *harness, b *client) {
	t.Helper()
	ctx := t.Context()
	const sec = "/console/orgs/acme/security"
	p := b.get(sec).want(http.StatusOK)
	p.wantText("cmk-state", "revoked")
	if p.has("configure") || !p.has("test-key") || !p.has("test") {
		t.Fatalf("revoked: want no Step 2 form but a Test Managed Key button:\n%s", p.body)
	}
	p = b.post(sec+"/test", url.Values{"csrf_token": {p.csrf()}}).want(http.StatusOK)
	if st := checkStatus(t, p, "token"); st != "pass" {
		t.Errorf("revoked: check token = %s, want pass", st)
	}
	if st := checkStatus(t, p, "key"); st != "fail" {
		t.Errorf("revoked, key deleted: check key = %s, want fail", st)
	}
	p.wantText("test-summary", "checks failed")
	p.wantText("error", "Test Managed Key found problems")

	if _, err := h.emu.RecoverKey(azureemu.DemoVault, h.demo.KeyName); err != nil {
		t.Fatal(err)
	}
	p = b.post(sec+"/test", url.Values{"csrf_token": {p.csrf()}}).want(http.StatusOK)
	wantSummary(t, p)
	p.wantText("flash", "probe interval")
	if st, _ := h.cmk.Status(ctx, "acme"); st.State != cmk.StateRevoked {
		t.Fatalf("state %s after Test, want revoked: Test changes nothing", st.State)
	}
}

// TestSecurityReceipts: after a key state change (here an operator's
// purge), Settings → Security shows which live nodes honoured it: 1 of 1
// on SQLite, at the receipt's time.
func TestSecurityReceipts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.server.Start(t.Context()) // the node's heartbeat and generation checks
	const sec = "/console/orgs/acme/security"
	b := h.signedIn(secAdmin)
	if b.get(sec).want(http.StatusOK).has("security-receipts") {
		t.Fatal("Security page shows a key state change before any")
	}
	if err := h.cmk.Purge(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := b.get(sec).want(http.StatusOK)
		if p.has("security-receipts") && strings.Contains(p.text("security-receipts"), "honoured by 1 of 1 nodes at ") {
			if txt := p.text("security-receipts"); !strings.HasPrefix(txt, "Keys purged by an operator at ") || strings.Contains(txt, "not confirmed") {
				t.Errorf("receipt line = %q", txt)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Security page never shows the receipt; it shows %q", p.text("security-receipts"))
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
