package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// keyLife returns the lifecycle of acme's data key name.
func (h *harness) keyLife(name string) keys.Lifecycle {
	h.t.Helper()
	ls, err := h.keys.KeyLifecycles(h.t.Context(), "acme")
	if err != nil {
		h.t.Fatal(err)
	}
	return ls[name]
}

func (h *harness) orgLife(org string) keys.Lifecycle {
	h.t.Helper()
	l, err := h.keys.OrgLifecycle(h.t.Context(), org)
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

// utc is the console's rendering of a time.
func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// The Keys page disables, enables, schedules (on a confirmation page, with
// a bounded waiting period) and cancels a key's deletion, through the
// shred service: the data plane follows and the audit log has each change.
func TestKeyLifecycleConsole(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	b := h.signedIn(keyAdmin)
	const keysPath = "/console/orgs/acme/keys"

	page := b.get(keysPath).want(http.StatusOK)
	page.wantText("state-default", "enabled")
	if !page.has("disable-default") || !page.has("delete-default") || page.has("enable-default") || page.has("cancel-deletion-default") {
		t.Errorf("enabled key: want Disable and Schedule deletion only:\n%s", page.body)
	}

	// Disable: refused on the data plane with key_disabled.
	page = b.follow(b.postForm(keysPath, keysPath+"/default/disable", nil)).want(http.StatusOK)
	page.wantText("flash", "Key disabled")
	page.wantText("state-default", "disabled")
	page.wantText("state-by-default", "by user:"+keyAdmin)
	if !page.has("enable-default") || page.has("disable-default") || !page.has("delete-default") {
		t.Errorf("disabled key: want Enable and Schedule deletion:\n%s", page.body)
	}
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); fault.KindOf(err) != fault.DataKeyDisabled {
		t.Errorf("Encrypt with a disabled key = %v, want key_disabled", err)
	}
	// Disabling it again is a conflict, shown in the page's error banner.
	p := b.postForm(keysPath, keysPath+"/default/disable", nil).want(http.StatusConflict)
	p.wantText("error", "disabled")

	page = b.follow(b.postForm(keysPath, keysPath+"/default/enable", nil)).want(http.StatusOK)
	page.wantText("flash", "Key enabled")
	page.wantText("state-default", "enabled")
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
		t.Errorf("Encrypt after enable: %v", err)
	}

	// Schedule deletion: the confirmation page, its bounds.
	conf := b.get(keysPath + "/default/delete").want(http.StatusOK)
	conf.wantText("delete-explanation", "cannot be undone")
	if got := conf.attrOf("waiting-days", "value"); got != "7" {
		t.Errorf("waiting days default = %q, want 7", got)
	}
	for _, bad := range []string{"3", "31", "0", "soon", ""} {
		p := b.postForm(keysPath+"/default/delete", keysPath+"/default/delete", url.Values{"waiting_days": {bad}}).want(http.StatusBadRequest)
		p.wantText("waiting-days-error", "enter a waiting period of 7 to 30 days")
		p.wantText("error", "7 to 30 days")
		if got := p.attrOf("waiting-days", "value"); bad != "" && got != bad {
			t.Errorf("waiting days %q not kept: %q", bad, got)
		}
	}
	if l := h.keyLife("default"); l.State != keys.LifecycleEnabled {
		t.Fatalf("refused forms changed the key: %+v", l)
	}
	p = b.postForm(keysPath+"/default/delete", keysPath+"/default/delete", url.Values{"waiting_days": {"10"}})
	if loc := p.want(http.StatusSeeOther).location(); !strings.HasSuffix(loc, "/keys?done=key-deletion-scheduled") {
		t.Errorf("scheduled deletion redirects to %s", loc)
	}
	l := h.keyLife("default")
	if l.State != keys.LifecyclePendingDeletion || l.DeletionDate.Sub(l.ChangedAt) != 10*24*time.Hour {
		t.Fatalf("after scheduling: %+v, want pending deletion in 10 days", l)
	}
	page = b.follow(p).want(http.StatusOK)
	page.wantText("flash", "Key deletion scheduled")
	page.wantText("state-default", "pending deletion until "+utc(l.DeletionDate))
	page.wantText("state-by-default", "by user:"+keyAdmin)
	if !page.has("cancel-deletion-default") || page.has("disable-default") || page.has("delete-default") {
		t.Errorf("pending key: want Cancel deletion only:\n%s", page.body)
	}
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); fault.KindOf(err) != fault.DataKeyPendingDeletion {
		t.Errorf("Encrypt with a key pending deletion = %v, want key_pending_deletion", err)
	}
	b.get(keysPath+"/default/delete").want(http.StatusOK).wantText("delete-why", "already pending deletion")

	page = b.follow(b.postForm(keysPath, keysPath+"/default/cancel-deletion", nil)).want(http.StatusOK)
	page.wantText("flash", "Key deletion cancelled")
	page.wantText("state-default", "enabled")
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
		t.Errorf("Encrypt after cancel: %v", err)
	}
	b.get(keysPath + "/nosuch/delete").want(http.StatusNotFound)

	// A deleted key: shown with its date, without actions; refused.
	b.follow(b.postForm(keysPath, keysPath, url.Values{"name": {"invoices"}})).want(http.StatusOK)
	b.postForm(keysPath+"/invoices/delete", keysPath+"/invoices/delete", url.Values{"waiting_days": {"7"}}).want(http.StatusSeeOther)
	h.advance(8 * 24 * time.Hour)
	if err := h.server.Shred.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	l = h.keyLife("invoices")
	if l.State != keys.LifecycleDeleted {
		t.Fatalf("after the shred: %+v, want deleted", l)
	}
	b = h.signedIn(keyAdmin) // the session expired meanwhile
	page = b.get(keysPath).want(http.StatusOK)
	page.wantText("state-invoices", "deleted on "+utc(l.ShreddedAt))
	page.wantText("state-default", "enabled")
	for _, id := range []string{"disable-invoices", "enable-invoices", "delete-invoices", "cancel-deletion-invoices"} {
		if page.has(id) {
			t.Errorf("a deleted key has #%s", id)
		}
	}
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "invoices", []byte("x"), nil); fault.KindOf(err) != fault.DataKeyDeleted {
		t.Errorf("Encrypt with a deleted key = %v, want key_deleted", err)
	}
	b.get(keysPath+"/invoices/delete").want(http.StatusOK).wantText("delete-why", "already deleted on")

	// The audit page shows every change, by the console user.
	audit := h.signedIn(secAdmin).get("/console/orgs/acme/audit?action=key.").want(http.StatusOK)
	for _, action := range []string{"key.disable", "key.enable", "key.deletion.schedule", "key.deletion.cancel", "key.shredded"} {
		if !strings.Contains(audit.body, action) {
			t.Errorf("audit page lacks %s", action)
		}
	}
	if !strings.Contains(audit.body, "user:"+keyAdmin) {
		t.Error("audit page does not name the console user")
	}
}

// The lifecycle posts and pages are authorized as the API routes are:
// keys with key_admin (or the operator), the org's deletion by the
// operator only, unless orgs.self_delete lets the org's admin+key_admin.
func TestLifecyclePermissions(t *testing.T) {
	t.Parallel()
	for _, selfDelete := range []bool{false, true} {
		h := newHarness(t, options{selfDelete: selfDelete})
		tests := []struct {
			email              string
			manageKeys, delete bool
		}{
			{member, false, false},
			{orgAdmin, false, false},
			{keyAdmin, true, false},
			{secAdmin, true, selfDelete},
			{globex, false, false}, // another org's admin+key_admin
		}
		for _, tt := range tests {
			b := h.signedIn(tt.email)
			tok := b.get(landing(tt.email)).want(http.StatusOK).csrf()
			check := func(method, path string, allowed bool) {
				t.Helper()
				var p *page
				if method == http.MethodGet {
					p = b.get(path)
				} else {
					p = b.post(path, url.Values{"csrf_token": {tok}, "waiting_days": {"x"}})
				}
				if allowed {
					if p.status == http.StatusForbidden {
						t.Errorf("self_delete %v, %s: %s %s: 403, want allowed", selfDelete, tt.email, method, path)
					}
					return
				}
				if p.status != http.StatusForbidden || !strings.Contains(p.text("error"), "your roles do not allow") {
					t.Errorf("self_delete %v, %s: %s %s: status %d, want the console's permission error:\n%s", selfDelete, tt.email, method, path, p.status, p.body)
				}
			}
			// Refused posts change nothing, so the allowed ones run last
			// (cancel-deletion of a key that is not pending is a conflict).
			check(http.MethodGet, "/console/orgs/acme/keys/default/delete", tt.manageKeys)
			check(http.MethodPost, "/console/orgs/acme/keys/default/delete", tt.manageKeys)
			check(http.MethodPost, "/console/orgs/acme/keys/default/cancel-deletion", tt.manageKeys)
			check(http.MethodPost, "/console/orgs/acme/keys/default/enable", tt.manageKeys)
			check(http.MethodGet, "/console/orgs/acme/delete", tt.delete)
			check(http.MethodPost, "/console/orgs/acme/delete", tt.delete)
			check(http.MethodPost, "/console/orgs/acme/cancel-deletion", tt.delete)
			if tt.email != globex {
				keysPage := b.get("/console/orgs/acme/keys").want(http.StatusOK)
				if keysPage.has("disable-default") != tt.manageKeys || keysPage.has("delete-default") != tt.manageKeys {
					t.Errorf("self_delete %v, %s: key buttons shown = %v, want %v", selfDelete, tt.email, keysPage.has("disable-default"), tt.manageKeys)
				}
				if ov := b.get("/console/orgs/acme/").want(http.StatusOK); ov.has("delete-org") != tt.delete {
					t.Errorf("self_delete %v, %s: overview a#delete-org shown = %v, want %v", selfDelete, tt.email, ov.has("delete-org"), tt.delete)
				}
			}
		}
		// The operator may always; disabling is refused to nobody allowed.
		op := h.signedIn(operator)
		op.get("/console/orgs/acme/delete").want(http.StatusOK)
		op.get("/console/orgs/acme/keys/default/delete").want(http.StatusOK)
		if l := h.orgLife("acme"); l.State != keys.LifecycleEnabled {
			t.Errorf("self_delete %v: the refused and invalid posts changed the org: %+v", selfDelete, l)
		}
		if l := h.keyLife("default"); l.State != keys.LifecycleEnabled {
			t.Errorf("self_delete %v: the refused and invalid posts changed the key: %+v", selfDelete, l)
		}
	}
}

func landing(email string) string {
	if email == operator {
		return "/console/orgs"
	}
	if email == globex {
		return "/console/orgs/globex/"
	}
	return "/console/orgs/acme/"
}

// The operator schedules an org's deletion on its confirmation page; every
// page of the org shows the banner with the date and who, the cancel button
// only to those allowed; cancel restores the service. After the shred the
// org's pages say it was deleted.
func TestOrgDeletionConsole(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	ctx := t.Context()
	op := h.signedIn(operator)

	orgs := op.get("/console/orgs").want(http.StatusOK)
	orgs.wantText("org-state-acme", "active")
	conf := op.get(orgs.attrOf("delete-org-acme", "href")).want(http.StatusOK)
	conf.wantText("delete-explanation", "org_pending_deletion")
	conf.wantText("delete-explanation", "cannot be undone")
	if !conf.has("default-date") || conf.attrOf("waiting-days", "value") != "7" {
		t.Errorf("confirmation page lacks the default period and its date:\n%s", conf.body)
	}

	// Unconfirmed, or a period out of range: refused with the reason.
	p := op.postForm("/console/orgs/acme/delete", "/console/orgs/acme/delete", url.Values{"waiting_days": {"7"}}).want(http.StatusBadRequest)
	p.wantText("confirm-error", "tick the box")
	p = op.postForm("/console/orgs/acme/delete", "/console/orgs/acme/delete", url.Values{"waiting_days": {"45"}, "confirm": {"yes"}}).want(http.StatusBadRequest)
	p.wantText("waiting-days-error", "7 to 30 days")
	if l := h.orgLife("acme"); l.State != keys.LifecycleEnabled {
		t.Fatalf("refused forms changed the org: %+v", l)
	}

	p = op.postForm("/console/orgs/acme/delete", "/console/orgs/acme/delete", url.Values{"waiting_days": {"7"}, "confirm": {"yes"}})
	ov := op.follow(p).want(http.StatusOK)
	l := h.orgLife("acme")
	if l.State != keys.LifecyclePendingDeletion || l.DeletionDate.Sub(l.ChangedAt) != 7*24*time.Hour {
		t.Fatalf("after scheduling: %+v", l)
	}
	ov.wantText("flash", "Org deletion scheduled")
	ov.wantText("deletion-title", "Org scheduled for deletion on "+utc(l.DeletionDate))
	ov.wantText("deletion-by", "Scheduled by user:"+operator+" on "+utc(l.ChangedAt))
	ov.wantText("org-state", "pending deletion until "+utc(l.DeletionDate))
	if !ov.has("cancel-org-deletion") {
		t.Error("the operator's banner has no cancel button")
	}
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); fault.KindOf(err) != fault.OrgPendingDeletion {
		t.Errorf("Encrypt in an org pending deletion = %v, want org_pending_deletion", err)
	}
	op.get("/console/orgs").want(http.StatusOK).wantText("org-state-acme", "pending deletion until "+utc(l.DeletionDate))
	op.get("/console/orgs/acme/delete").want(http.StatusOK).wantText("delete-why", "already scheduled for deletion")

	// Every page of the org has the banner; org users cannot cancel, and
	// the keys cannot change meanwhile.
	kb := h.signedIn(keyAdmin)
	for _, page := range []string{"", "keys", "audit", "usage"} {
		pg := kb.get("/console/orgs/acme/" + page).want(http.StatusOK)
		pg.wantText("deletion-title", utc(l.DeletionDate))
		pg.wantText("deletion-by", "ask the platform operator")
		if pg.has("cancel-org-deletion") {
			t.Errorf("%s: a key admin sees the cancel button", page)
		}
	}
	keysPage := kb.get("/console/orgs/acme/keys")
	if keysPage.has("disable-default") || keysPage.has("new-key") {
		t.Error("the keys of an org pending deletion can be changed on the Keys page")
	}
	kb.postForm("/console/orgs/acme/keys", "/console/orgs/acme/keys/default/disable", nil).want(http.StatusConflict).wantText("error", "scheduled for deletion")
	h.signedIn(secAdmin).postForm("/console/orgs/acme/", "/console/orgs/acme/cancel-deletion", nil).want(http.StatusForbidden)

	ov = op.follow(op.postForm("/console/orgs/acme/", "/console/orgs/acme/cancel-deletion", nil)).want(http.StatusOK)
	ov.wantText("flash", "Org deletion cancelled")
	if ov.has("deletion-banner") {
		t.Error("banner still shown after cancel")
	}
	if _, err := h.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
		t.Errorf("Encrypt after cancel: %v", err)
	}
	// Cancelling again: the error in the overview's banner.
	op.postForm("/console/orgs/acme/", "/console/orgs/acme/cancel-deletion", nil).want(http.StatusConflict).wantText("error", "not allowed in that state")

	audit := op.get("/console/orgs/acme/audit?action=org.").want(http.StatusOK)
	for _, action := range []string{"org.deletion.schedule", "org.deletion.cancel"} {
		if !strings.Contains(audit.body, action) {
			t.Errorf("audit page lacks %s", action)
		}
	}

	// Deleted: schedule again, let the waiting period pass, shred.
	op.postForm("/console/orgs/acme/delete", "/console/orgs/acme/delete", url.Values{"waiting_days": {"7"}, "confirm": {"yes"}}).want(http.StatusSeeOther)
	h.advance(8 * 24 * time.Hour)
	if err := h.server.Shred.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	l = h.orgLife("acme")
	if l.State != keys.LifecycleDeleted {
		t.Fatalf("after the shred: %+v, want deleted", l)
	}
	op = h.signedIn(operator) // the sessions expired meanwhile
	for _, page := range []string{"", "keys", "audit", "usage", "users", "delete", "keys/default/delete"} {
		pg := op.get("/console/orgs/acme/" + page).want(http.StatusOK)
		pg.wantText("deletion-title", "Org deleted on "+utc(l.ShreddedAt))
		if pg.has("cancel-org-deletion") {
			t.Errorf("%s: a deleted org's page offers to cancel", page)
		}
	}
	op.get("/console/orgs").want(http.StatusOK).wantText("org-state-acme", "deleted on "+utc(l.ShreddedAt))
	if audit := op.get("/console/orgs/acme/audit").want(http.StatusOK); !strings.Contains(audit.body, "org.shredded") || !strings.Contains(audit.body, "org.deletion.schedule") {
		t.Error("a deleted org's audit page lacks its deletion events")
	}
	h.signedIn(secAdmin).get("/console/orgs/acme/security").want(http.StatusOK).wantText("deletion-title", "Org deleted")
}

// With orgs.self_delete the org's admin+key_admin deletes and restores
// their own org from Settings → Security.
func TestOrgSelfDeleteConsole(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{selfDelete: true})
	b := h.signedIn(secAdmin)
	sec := b.get("/console/orgs/acme/security").want(http.StatusOK)
	conf := b.get(sec.attrOf("security-delete-org", "href")).want(http.StatusOK)
	conf.wantText("delete-explanation", "cannot be undone")
	ov := b.follow(b.postForm("/console/orgs/acme/delete", "/console/orgs/acme/delete", url.Values{"waiting_days": {"30"}, "confirm": {"yes"}})).want(http.StatusOK)
	l := h.orgLife("acme")
	if l.State != keys.LifecyclePendingDeletion || l.DeletionDate.Sub(l.ChangedAt) != 30*24*time.Hour {
		t.Fatalf("after scheduling: %+v", l)
	}
	ov.wantText("deletion-by", "Scheduled by user:"+secAdmin)
	if !ov.has("cancel-org-deletion") {
		t.Error("the org's admin+key_admin has no cancel button with orgs.self_delete")
	}
	if h.signedIn(keyAdmin).get("/console/orgs/acme/").want(http.StatusOK).has("cancel-org-deletion") {
		t.Error("a key admin alone has the cancel button")
	}
	b.get("/console/orgs/acme/security").want(http.StatusOK).wantText("security-org-deletion", "pending deletion until "+utc(l.DeletionDate))
	b.follow(b.postForm("/console/orgs/acme/", "/console/orgs/acme/cancel-deletion", nil)).want(http.StatusOK).wantText("flash", "Org deletion cancelled")
	if l := h.orgLife("acme"); l.State != keys.LifecycleEnabled {
		t.Errorf("after cancel: %+v", l)
	}
}
