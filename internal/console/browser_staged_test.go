package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/orgkms/orgkms/internal/fault"
)

// TestBrowserStagedRevocation drives Settings → Security → Staged
// revocation in chromium: decrypt-only mode with its confirmation (the
// data plane refuses encrypt and still decrypts), the schedule form with
// a refused time, the countdown and who scheduled it, and the cancel
// button.
func TestBrowserStagedRevocation(t *testing.T) {
	b := startBrowser(t)
	s := newBrowserStack(t)
	sh := newShots(t)
	ctx := context.Background()
	ct, err := s.keys.Encrypt(ctx, "svc", demoOrg, "default", []byte("kept"), nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := b.newTab(t, "admin")
	admin.signIn(t, s, adminEmail, adminPass)

	// The Security page has the summary and the link.
	admin.open(t, s.orgURL("security"))
	if got := admin.text(t, "#staged-summary"); !strings.Contains(got, "Decrypt-only mode: off") || !strings.Contains(got, "No revocation is scheduled") {
		t.Errorf("#staged-summary = %q", got)
	}
	admin.click(t, "a#staged-link")
	if p := admin.location(t).Path; p != "/console/orgs/"+demoOrg+"/security/staged" {
		t.Fatalf("a#staged-link led to %s", p)
	}
	if got := admin.text(t, "#decrypt-only-state"); got != "off" {
		t.Errorf("#decrypt-only-state = %q, want off", got)
	}

	// Decrypt-only without the confirmation is refused, and changes nothing.
	admin.fill(t, "input#decrypt-only-reason-input", "key ceremony")
	admin.load(t, "turning decrypt-only on unconfirmed", http.StatusBadRequest, chromedp.Click(chromedp.CSS("button#decrypt-only-on")))
	if got := admin.text(t, "#confirm-error"); !strings.Contains(got, "tick the box") {
		t.Errorf("#confirm-error = %q", got)
	}
	if s.status(t).Staged.DecryptOnly {
		t.Fatal("an unconfirmed form turned decrypt-only mode on")
	}
	admin.do(t, "ticking the confirmation", chromedp.Click(chromedp.CSS("input#decrypt-only-confirm")))
	admin.click(t, "button#decrypt-only-on")
	if got := admin.text(t, "#decrypt-only-state"); got != "on" {
		t.Errorf("#decrypt-only-state after on = %q", got)
	}
	if got := admin.text(t, "#decrypt-only-since"); !strings.Contains(got, "by user:") {
		t.Errorf("#decrypt-only-since = %q, want who set it", got)
	}
	if got := admin.text(t, "#decrypt-only-reason"); got != "(key ceremony)" {
		t.Errorf("#decrypt-only-reason = %q", got)
	}
	sh.take(t, admin, "staged-decrypt-only.png")
	if _, err := s.keys.Encrypt(ctx, "svc", demoOrg, "default", []byte("new"), nil); fault.KindOf(err) != fault.OrgDecryptOnly {
		t.Errorf("Encrypt in decrypt-only = %v, want org_decrypt_only", err)
	}
	if pt, _, err := s.keys.Decrypt(ctx, "svc", demoOrg, "default", ct.Bytes, nil); err != nil || string(pt) != "kept" {
		t.Errorf("Decrypt in decrypt-only = %q, %v", pt, err)
	}
	admin.click(t, "button#decrypt-only-off")
	if got := admin.text(t, "#decrypt-only-state"); got != "off" {
		t.Errorf("#decrypt-only-state after off = %q", got)
	}
	if _, err := s.keys.Encrypt(ctx, "svc", demoOrg, "default", []byte("new"), nil); err != nil {
		t.Errorf("Encrypt after decrypt-only off = %v", err)
	}

	// A time too soon is refused with the field's message (by the server:
	// the input's min, which the browser enforces, is taken off first).
	evalJS[bool](t, admin, `(() => { document.querySelector("#revocation-at").removeAttribute("min"); return true })()`)
	setAt := func(v string) {
		evalJS[bool](t, admin, `(() => { document.querySelector("#revocation-at").value = "`+v+`"; return true })()`)
	}
	setAt(time.Now().UTC().Add(time.Minute).Format("2006-01-02T15:04"))
	admin.load(t, "scheduling too soon", http.StatusBadRequest, chromedp.Click(chromedp.CSS("button#schedule-revocation")))
	if got := admin.text(t, "#at-error"); !strings.Contains(got, "at least 5m0s from now") {
		t.Errorf("#at-error = %q", got)
	}
	// A valid time: the countdown and who scheduled it.
	when := time.Now().UTC().Add(49 * time.Hour).Truncate(time.Minute)
	setAt(when.Format("2006-01-02T15:04"))
	admin.do(t, "choosing decrypt-only", chromedp.Click(chromedp.CSS("input#mode-decrypt-only")))
	admin.fill(t, "input#revocation-reason", "migration")
	admin.click(t, "button#schedule-revocation")
	if got := admin.text(t, "#countdown"); !strings.HasPrefix(got, "in 2d 0h") && !strings.HasPrefix(got, "in 2d 1h") {
		t.Errorf("#countdown = %q, want in 2d 0h…", got)
	}
	if got := admin.text(t, "#scheduled-by"); !strings.Contains(got, "user:") {
		t.Errorf("#scheduled-by = %q", got)
	}
	if got := admin.text(t, "#scheduled-mode"); got != "decrypt-only mode" {
		t.Errorf("#scheduled-mode = %q", got)
	}
	if got := evalJS[string](t, admin, `document.querySelector("#scheduled-at").getAttribute("datetime")`); got != when.Format(time.RFC3339) {
		t.Errorf("#scheduled-at datetime = %q, want %s", got, when.Format(time.RFC3339))
	}
	sh.take(t, admin, "staged-scheduled.png")
	st := s.status(t).Staged
	if st.Mode != "decrypt_only" || !st.At.Equal(when) || st.Reason != "migration" {
		t.Errorf("stored schedule = %+v", st)
	}
	admin.open(t, s.orgURL("security"))
	if got := admin.text(t, "#staged-summary"); !strings.Contains(got, "Scheduled: decrypt_only") {
		t.Errorf("#staged-summary with a schedule = %q", got)
	}

	// Cancel.
	admin.open(t, s.orgURL("security/staged"))
	admin.click(t, "button#cancel-revocation")
	if admin.present(t, "#scheduled-revocation") {
		t.Errorf("the schedule is still shown after cancel\n%s", admin.describe())
	}
	if !strings.Contains(admin.text(t, "body"), "The scheduled revocation was cancelled.") {
		t.Errorf("no cancel message\n%s", admin.describe())
	}
	if st := s.status(t).Staged; st.Mode != "" {
		t.Errorf("stored schedule after cancel = %+v", st)
	}

	// A member cannot open the page.
	m := b.newTab(t, "member")
	m.signIn(t, s, memberEmail, memberPass)
	resp := m.load(t, "member opening the staged page", 0, chromedp.Navigate(s.orgURL("security/staged")))
	if resp.Status != http.StatusForbidden {
		t.Errorf("member: staged page status %d, want 403", resp.Status)
	}
}
