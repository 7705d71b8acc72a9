package console_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/testwait"
)

// activateCMK puts the demo org on the customer's key through the CMK
// service (consent, configure, enable) and waits until it is active.
func activateCMK(t *testing.T, s *browserStack) {
	t.Helper()
	ctx := context.Background()
	u, err := s.cmk.Authorize(ctx, "user:"+adminEmail, demoOrg, s.demo.TenantID)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.emu.GrantConsent(s.demo.TenantID, s.demo.ClientID); err != nil {
		t.Fatalf("GrantConsent: %v", err)
	}
	if _, err := s.cmk.Callback(ctx, cmk.ConsentResult{State: pu.Query().Get("state"), AdminConsent: "True", Tenant: s.demo.TenantID}); err != nil {
		t.Fatalf("Callback: %v", err)
	}
	if _, err := s.cmk.Configure(ctx, "user:"+adminEmail, demoOrg, s.demo.VaultURI, s.demo.KeyName, ""); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if _, err := s.cmk.Enable(ctx, "user:"+adminEmail, demoOrg); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	testwait.For(t, "the org to be active", stateTimeout, func() (bool, string) {
		st := s.status(t).State
		return st == cmk.StateActive, "the org is " + string(st)
	})
}

// TestBrowserImpact: the disable confirmation, the staged revocation page
// and the key deletion confirmation show what the step would break now: calls of the last 24 hours by
// key and caller, the last use, the re-wrap estimate and whether falling
// back is possible; opening them changes nothing.
func TestBrowserImpact(t *testing.T) {
	b := startBrowser(t)
	s := newBrowserStack(t)
	sh := newShots(t)
	ctx := context.Background()
	activateCMK(t, s)

	// Calls: the stack's own encrypt (orgkms:dev), 3 encrypts and a
	// decrypt by billing-svc, and a call refused for another org's token.
	var ct []byte
	for range 3 {
		c, err := s.keys.Encrypt(ctx, "billing-svc", demoOrg, "default", []byte("invoice"), nil)
		if err != nil {
			t.Fatal(err)
		}
		ct = c.Bytes
	}
	if _, _, err := s.keys.Decrypt(ctx, "billing-svc", demoOrg, "default", ct, nil); err != nil {
		t.Fatal(err)
	}
	s.keys.RecordRefused(ctx, demoOrg, "default", "decrypt", "(token of another org)", &fault.Error{Kind: fault.Forbidden})
	if err := s.keys.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}

	admin := b.newTab(t, "admin")
	admin.signIn(t, s, adminEmail, adminPass)
	// The org overview and Settings → Security summarize it.
	admin.open(t, s.orgURL(""))
	if got := oneLine(admin.text(t, "#overview-impact")); !strings.Contains(got, "In the last 24 h: 6 calls from 3 callers to 1 data key") || !strings.Contains(got, "Fall back to the platform key: possible") {
		t.Errorf("#overview-impact = %q", got)
	}
	admin.open(t, s.orgURL("security"))
	if got := oneLine(admin.text(t, "#impact-disable-summary")); !strings.Contains(got, "6 calls from 3 callers") || !strings.Contains(got, "Re-wrap: 1 wrap, about") {
		t.Errorf("#impact-disable-summary = %q", got)
	}
	if got := oneLine(admin.text(t, "#impact-replace-summary")); !strings.Contains(got, "re-wraps the org's root key with the new key") || !strings.Contains(got, "Re-wrap: 1 wrap, about") {
		t.Errorf("#impact-replace-summary = %q", got)
	}
	admin.click(t, "a#disable")
	if !admin.present(t, "section#impact-disable") {
		t.Fatalf("the disable confirmation has no section#impact-disable\n%s", admin.describe())
	}
	for sel, want := range map[string]string{
		"#impact-disable .impact-calls":     "6 from 3 callers to 1 data key",
		"#impact-disable .impact-refused":   "0",
		"#impact-disable .impact-last-use":  "s ago",
		"#impact-disable .impact-rewrap":    "1 wrap, about",
		"#impact-disable .impact-fallback":  "possible: the customer managed key still unwraps the root key",
		"#impact-disable-what":              "Nothing is refused",
		"#impact-disable table.impact-keys": "default",
	} {
		if got := oneLine(admin.text(t, sel)); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	row := oneLine(admin.text(t, "#impact-disable table.impact-keys tbody"))
	for _, want := range []string{"default 1 6 4 2 0", "billing-svc (4)", "(token of another org) (1)", "orgkms:dev (1)"} {
		if !strings.Contains(row, want) {
			t.Errorf("the key row = %q, want %q", row, want)
		}
	}
	sh.take(t, admin, "impact-disable.png")
	if st := s.status(t); st.State != cmk.StateActive {
		t.Fatalf("opening the confirmation changed the state to %s", st.State)
	}

	// The staged revocation page previews decrypt-only mode and a
	// revocation.
	admin.open(t, s.orgURL("security/staged"))
	if got := oneLine(admin.text(t, "#impact-decrypt-only .impact-refused")); !strings.HasPrefix(got, "4 ") {
		t.Errorf("decrypt-only refuses %q, want the 4 encrypts", got)
	}
	if got := oneLine(admin.text(t, "#impact-revoke .impact-refused")); !strings.HasPrefix(got, "6 ") {
		t.Errorf("revocation refuses %q, want all 6 calls", got)
	}
	if got := admin.text(t, "#impact-revoke-what"); !strings.Contains(got, "org_revoked") {
		t.Errorf("#impact-revoke-what = %q", got)
	}
	if st := s.status(t); st.Staged.Active() {
		t.Fatalf("opening the staged page changed the staged state: %+v", st.Staged)
	}

	// The key deletion confirmation previews the key's deletion.
	admin.open(t, s.orgURL("keys/default/delete"))
	if got := oneLine(admin.text(t, "#impact-delete-key .impact-refused")); !strings.HasPrefix(got, "6 ") {
		t.Errorf("key deletion refuses %q, want all 6 calls", got)
	}
	if got := admin.text(t, "#impact-delete-key-what"); !strings.Contains(got, "key_pending_deletion") {
		t.Errorf("#impact-delete-key-what = %q", got)
	}
	if got := admin.text(t, "#impact-delete-key .help"); !strings.Contains(got, "orgkms cmk impact delete-key --org "+demoOrg+" --key default") {
		t.Errorf("the key deletion preview's CLI line = %q", got)
	}

	// A member sees the overview without the preview.
	member := b.newTab(t, "member")
	member.signIn(t, s, memberEmail, memberPass)
	member.open(t, s.orgURL(""))
	if member.present(t, "#overview-impact") {
		t.Errorf("a member's overview shows the impact preview")
	}
}
