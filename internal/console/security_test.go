package console_test

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/azurecloud"
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

// TestSecurityRendersTheCloud: Settings → Security renders Step 1 and
// Step 2 from the org's cloud (cmk.Cloud): the authorization instructions
// and what to grant, and one input per field of the cloud's key with its
// label, help (the org named, code spans as <code>) and optional mark.
func TestSecurityRendersTheCloud(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	b := h.signedIn(secAdmin)
	const sec = "/console/orgs/acme/security"
	cloud := azurecloud.Cloud{}
	auth := cloud.Authorization("acme")
	p := b.get(sec + "?switch=1&enable=on").want(http.StatusOK)
	for id, want := range map[string]string{"authorize-instructions": auth.Instructions, "authorize-access": auth.Access, "tenant-id-help": auth.TenantHelp} {
		if !strings.Contains(p.body, `id="`+id+`">`+template.HTMLEscapeString(want)+`</p>`) {
			t.Errorf("Step 1 has no %s %q:\n%s", id, want, p.body)
		}
	}
	if !strings.Contains(p.body, `<label for="tenant-id">`+auth.TenantLabel+`</label>`) {
		t.Errorf("Step 1 does not label the tenant %q", auth.TenantLabel)
	}
	if !strings.Contains(p.body, "in your own "+auth.Service+".") {
		t.Errorf("the switch's help does not name %q", auth.Service)
	}

	p = b.postForm(sec, sec+"/authorize", url.Values{"tenant_id": {h.demo.TenantID}}).want(http.StatusSeeOther)
	b.get(h.consent(p.location(), "accept")).want(http.StatusOK)
	p = b.get(sec).want(http.StatusOK)
	if !p.has("configure") {
		t.Fatalf("authorized: no Step 2:\n%s", p.body)
	}
	fields := cloud.Fields()
	if len(fields) == 0 {
		t.Fatal("the azure cloud has no fields")
	}
	for _, f := range fields {
		id := strings.ReplaceAll(f.Name, "_", "-")
		label := `<label for="` + id + `">` + f.Label
		if !f.Required {
			label += ` <span class="muted">(optional)</span>`
		}
		if !strings.Contains(p.body, label+"</label>") {
			t.Errorf("field %s: no label %q", f.Name, label)
		}
		if p.attrOf(id, "name") != f.Name {
			t.Errorf("field %s: input #%s is named %q", f.Name, id, p.attrOf(id, "name"))
		}
		if !p.has(id + "-help") {
			t.Errorf("field %s: no help", f.Name)
		}
	}
	if !strings.Contains(p.body, "Tag the key version <code>orgkms-org = acme</code>") {
		t.Errorf("the key name's help does not name the org's tag in <code>:\n%s", p.text("key-name-help"))
	}
}
