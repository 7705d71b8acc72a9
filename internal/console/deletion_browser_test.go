package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	okms "github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/keys"
)

const (
	operatorEmail = "ops@platform.example"
	operatorPass  = "operator-password-for-the-browser-test"
)

// TestBrowserDeletion clicks through the data-key lifecycle as the org's
// key admin (disable, enable, schedule and cancel a deletion) and the org's
// deletion as the platform operator (schedule on its confirmation page,
// the banner on the org's pages, cancel), checking after each step that
// the HTTP API refuses or serves the org's encrypt with the right code.
func TestBrowserDeletion(t *testing.T) {
	b := startBrowser(t)
	s := newBrowserStack(t)
	sh := newShots(t)
	ctx := context.Background()
	if _, err := auth.NewUsers(s.st, nil, 0).Create(ctx, "test", auth.NewUserRequest{Email: operatorEmail, Name: "Platform Operator",
		Roles: []auth.Role{auth.RoleOperator}, Password: operatorPass}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := auth.NewService(s.st, s.keys, nil, 0).Create(ctx, "test", auth.CreateTokenRequest{Principal: "svc", OrgID: demoOrg,
		Roles: []auth.Role{auth.RoleService}, Description: "browser test"})
	if err != nil {
		t.Fatal(err)
	}
	api, err := okms.New(okms.Config{Addr: s.url, Token: secret, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	// encrypt returns the API's error code of an encrypt with "default"
	// ("" when it succeeds).
	encrypt := func() string {
		t.Helper()
		_, _, err := api.Encrypt(ctx, demoOrg, "default", []byte("hello"), nil)
		if err != nil && okms.ErrorCode(err) == "" {
			t.Fatalf("encrypt: %v", err)
		}
		return okms.ErrorCode(err)
	}
	keyLife := func() keys.Lifecycle {
		t.Helper()
		ls, err := s.keys.KeyLifecycles(ctx, demoOrg)
		if err != nil {
			t.Fatal(err)
		}
		return ls["default"]
	}
	if code := encrypt(); code != "" {
		t.Fatalf("encrypt before any change: %s", code)
	}

	// The org's key admin: disable, enable.
	admin := b.newTab(t, "admin")
	admin.signIn(t, s, adminEmail, adminPass)
	admin.click(t, "a#nav-keys")
	if got := admin.text(t, "#state-default"); got != "enabled" {
		t.Errorf("#state-default = %q, want enabled", got)
	}
	admin.click(t, "button#disable-default")
	if got := admin.text(t, "#flash"); !strings.Contains(got, "Key disabled") {
		t.Errorf("#flash after disable = %q", got)
	}
	if got := admin.text(t, "#state-default"); got != "disabled" {
		t.Errorf("#state-default after disable = %q", got)
	}
	if code := encrypt(); code != "key_disabled" {
		t.Errorf("encrypt with the key disabled: code %q, want key_disabled", code)
	}
	admin.click(t, "button#enable-default")
	if got := admin.text(t, "#state-default"); got != "enabled" {
		t.Errorf("#state-default after enable = %q", got)
	}
	if code := encrypt(); code != "" {
		t.Errorf("encrypt after enable: code %q", code)
	}

	// Schedule the key's deletion on its confirmation page; a period out of
	// range comes back at its field.
	admin.click(t, "a#delete-default")
	if got := admin.text(t, "#delete-explanation"); !strings.Contains(got, "cannot be undone") {
		t.Errorf("#delete-explanation = %q", got)
	}
	admin.fill(t, "input#waiting-days", "3")
	admin.load(t, "scheduling with 3 days", http.StatusBadRequest, chromedp.Click(chromedp.CSS("button#confirm-delete")))
	if got := admin.text(t, "#waiting-days-error"); !strings.Contains(got, "7 to 30 days") {
		t.Errorf("#waiting-days-error = %q", got)
	}
	if l := keyLife(); l.State != keys.LifecycleEnabled {
		t.Fatalf("a refused form changed the key: %+v", l)
	}
	admin.fill(t, "input#waiting-days", "10")
	admin.click(t, "button#confirm-delete")
	l := keyLife()
	if l.State != keys.LifecyclePendingDeletion {
		t.Fatalf("after scheduling: %+v", l)
	}
	if got, want := admin.text(t, "#state-default"), "pending deletion until "+utc(l.DeletionDate); got != want {
		t.Errorf("#state-default after scheduling = %q, want %q", got, want)
	}
	sh.take(t, admin, "keys-pending-deletion.png")
	if code := encrypt(); code != "key_pending_deletion" {
		t.Errorf("encrypt with the key pending deletion: code %q, want key_pending_deletion", code)
	}
	admin.click(t, "button#cancel-deletion-default")
	if got := admin.text(t, "#state-default"); got != "enabled" {
		t.Errorf("#state-default after cancel = %q", got)
	}
	if code := encrypt(); code != "" {
		t.Errorf("encrypt after cancelling the key's deletion: code %q", code)
	}

	// The platform operator schedules the org's deletion.
	ops := b.newTab(t, "operator")
	ops.signIn(t, s, operatorEmail, operatorPass)
	if got := ops.text(t, "#org-state-"+demoOrg); got != "active" {
		t.Errorf("#org-state-%s = %q, want active", demoOrg, got)
	}
	ops.click(t, "a#delete-org-"+demoOrg)
	if got := ops.text(t, "#delete-explanation"); !strings.Contains(got, "refused") || !strings.Contains(got, "cannot be undone") {
		t.Errorf("#delete-explanation = %q", got)
	}
	// Without the confirmation box: refused, nothing changes.
	ops.load(t, "scheduling unconfirmed", http.StatusBadRequest, chromedp.Click(chromedp.CSS("button#confirm-delete")))
	if got := ops.text(t, "#confirm-error"); !strings.Contains(got, "tick the box") {
		t.Errorf("#confirm-error = %q", got)
	}
	ops.do(t, "ticking the confirmation", chromedp.Click(chromedp.CSS("input#delete-confirm")))
	ops.click(t, "button#confirm-delete")
	ol, err := s.keys.OrgLifecycle(ctx, demoOrg)
	if err != nil || ol.State != keys.LifecyclePendingDeletion {
		t.Fatalf("org after scheduling: %+v, %v", ol, err)
	}
	if got, want := ops.text(t, "#deletion-title"), "Org scheduled for deletion on "+utc(ol.DeletionDate); !strings.Contains(got, want) {
		t.Errorf("#deletion-title = %q, want %q", got, want)
	}
	if got := ops.text(t, "#deletion-by"); !strings.Contains(got, "user:"+operatorEmail) {
		t.Errorf("#deletion-by = %q", got)
	}
	sh.take(t, ops, "org-pending-deletion.png")
	if code := encrypt(); code != "org_pending_deletion" {
		t.Errorf("encrypt in an org pending deletion: code %q, want org_pending_deletion", code)
	}
	// The org's admin sees the banner on the org's pages, without the
	// cancel button (self-delete is off).
	admin.open(t, s.orgURL(""))
	if got := admin.text(t, "#deletion-title"); !strings.Contains(got, utc(ol.DeletionDate)) {
		t.Errorf("admin's #deletion-title = %q", got)
	}
	if admin.present(t, "button#cancel-org-deletion") {
		t.Error("the org's admin is offered to cancel the org's deletion")
	}

	// Cancel: the service is restored.
	ops.click(t, "button#cancel-org-deletion")
	if got := ops.text(t, "#flash"); !strings.Contains(got, "Org deletion cancelled") {
		t.Errorf("#flash after cancel = %q", got)
	}
	if ops.present(t, "#deletion-banner") {
		t.Error("the banner stays after cancel")
	}
	if code := encrypt(); code != "" {
		t.Errorf("encrypt after cancelling the org's deletion: code %q", code)
	}

	// The audit log has every change.
	admin.click(t, "a#nav-audit")
	all := admin.text(t, "table#audit")
	for _, action := range []string{"key.disable", "key.enable", "key.deletion.schedule", "key.deletion.cancel", "org.deletion.schedule", "org.deletion.cancel"} {
		if !strings.Contains(all, action) {
			t.Errorf("the audit page lacks %s", action)
		}
	}
}
