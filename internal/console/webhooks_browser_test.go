package console_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
)

// TestBrowserNotifications drives chromium through the Notifications page:
// an admin adds a webhook (the secret shows once and not again after a
// reload), sends a test ping a real receiver gets, reads the delivery
// history, sees a revocation's notification in it, and deletes the
// webhook. A member has no Notifications tab and is refused the page.
func TestBrowserNotifications(t *testing.T) {
	b := startBrowser(t)
	ctx := context.Background()

	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)

	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	t.Cleanup(srv.Close)
	base := "http://" + srv.Listener.Addr().String()
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: base}
	cfg.Webhooks = config.Webhooks{AllowHTTP: true, AllowPrivateAddresses: true, Poll: config.Duration(50 * time.Millisecond)}
	s, err := server.Open(ctx, cfg, server.Options{Logger: log, Migrate: true})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	s.Start(context.Background())
	if _, err := s.Keys.CreateOrg(ctx, "test", demoOrg, "Demo Org"); err != nil {
		t.Fatal(err)
	}
	for _, u := range []auth.NewUserRequest{
		{OrgID: demoOrg, Email: adminEmail, Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}, Password: adminPass},
		{OrgID: demoOrg, Email: memberEmail, Roles: []auth.Role{auth.RoleMember}, Password: memberPass},
	} {
		if _, err := s.Users.Create(ctx, "test", u); err != nil {
			t.Fatal(err)
		}
	}
	mux.Handle("/", s.Handler)
	srv.Start()
	stack := &browserStack{url: base, logs: logs}
	page := base + "/console/orgs/" + demoOrg + "/webhooks"

	admin := b.newTab(t, "admin")
	admin.signIn(t, stack, adminEmail, adminPass)
	admin.click(t, "a#nav-webhooks")
	if p := admin.location(t).Path; p != "/console/orgs/"+demoOrg+"/webhooks" {
		t.Fatalf("a#nav-webhooks led to %s", p)
	}
	if !strings.Contains(admin.text(t, "table#webhooks"), "No webhooks yet") {
		t.Errorf("table#webhooks = %q, want none yet", admin.text(t, "table#webhooks"))
	}

	// Bad input is shown on the field.
	admin.fill(t, "input#webhook-url", "ftp://hooks.example.com/x")
	admin.load(t, "adding a bad webhook", http.StatusBadRequest, chromedp.Click(chromedp.CSS("button#add-webhook")))
	if e := admin.text(t, "#webhook-url-error"); !strings.Contains(e, "https://") {
		t.Errorf("#webhook-url-error = %q, want it to ask for https://", e)
	}

	// Add one: the secret shows once.
	admin.fill(t, "input#webhook-url", recv.URL+"/orgkms")
	admin.fill(t, "input#webhook-description", "security team")
	admin.do(t, "checking the state event", chromedp.Click(chromedp.CSS("input#event-cmk\\.state_changed")))
	admin.click(t, "button#add-webhook")
	secret := admin.text(t, "#webhook-secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("#webhook-secret = %q, want whsec_…", secret)
	}
	row := admin.text(t, "table#webhooks tbody tr")
	if !strings.Contains(row, recv.URL) || !strings.Contains(row, "cmk.state_changed") || !strings.Contains(row, "security team") {
		t.Errorf("webhook row = %q", row)
	}
	admin.open(t, page)
	if admin.present(t, "#webhook-secret") || strings.Contains(admin.text(t, "main"), secret) {
		t.Errorf("the secret is shown again after a reload")
	}

	// Test: the receiver gets a ping, the page says so.
	admin.click(t, "button.test-webhook")
	if r := admin.text(t, "#test-result"); !strings.Contains(r, "Ping delivered") || !strings.Contains(r, "204") {
		t.Errorf("#test-result = %q, want delivered with 204", r)
	}
	mu.Lock()
	pinged := len(got) == 1 && strings.Contains(got[0], `"type":"ping"`)
	mu.Unlock()
	if !pinged {
		t.Errorf("receiver got %v, want one ping", got)
	}

	// A revocation (its audit event, as the probe appends it) is
	// delivered and shows in the history.
	if _, err := s.Store.AppendAudit(ctx, auditRevoked(demoOrg)); err != nil {
		t.Fatal(err)
	}
	admin.click(t, "a.history")
	admin.waitFor(t, "the revocation delivered", "table#deliveries", func(e elem) bool {
		return strings.Contains(e.Text, "cmk.state_changed") && strings.Contains(e.Text, "delivered")
	}, admin.location(t).String())
	h := admin.text(t, "table#deliveries")
	if !strings.Contains(h, "ping") || !strings.Contains(h, "204") {
		t.Errorf("table#deliveries = %q, want the ping with 204", h)
	}

	// Delete.
	admin.open(t, page)
	admin.click(t, "button.delete-webhook")
	if f := admin.text(t, "#flash"); !strings.Contains(f, "deleted") {
		t.Errorf("#flash after delete = %q", f)
	}
	if !strings.Contains(admin.text(t, "table#webhooks"), "No webhooks yet") {
		t.Errorf("the webhook is still listed")
	}

	// A member sees no tab and is refused the page.
	member := b.newTab(t, "member")
	member.signIn(t, stack, memberEmail, memberPass)
	if member.present(t, "a#nav-webhooks") {
		t.Errorf("a member sees the Notifications tab")
	}
	member.load(t, "a member opening Notifications", http.StatusForbidden, chromedp.Navigate(page))
	if strings.Contains(logs.tail(1<<20), strings.TrimPrefix(secret, "whsec_")) {
		t.Errorf("the logs contain the webhook secret")
	}
}

func auditRevoked(org string) audit.Event {
	return audit.Event{OrgID: org, Time: time.Now(), Actor: "orgkms", Action: "cmk.revoked", Target: "cmk", Details: map[string]string{"reason": "cmk_key_disabled"}}
}
