package notify_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/events"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/notify"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

func withRoots(r *receiver) option { return func(c *notify.Config) { c.RootCAs = r.roots() } }

// TestDeliverSigned: a revocation's audit event reaches a real HTTPS
// receiver once, signed as documented, with the documented body and
// headers, and the history shows the delivery.
func TestDeliverSigned(t *testing.T) {
	r := newReceiver(t)
	w := newWorld(t, sqliteStore(t), withRoots(r))
	ctx := t.Context()
	hook, secret, err := w.svc.Create(ctx, "acme", "user:alice", notify.CreateRequest{URL: r.url(), Events: []string{"cmk.state_changed"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") || len(secret) != len("whsec_")+43 {
		t.Fatalf("secret = %q, want whsec_ and 43 base64url characters", secret)
	}
	r.setSecret(secret)
	ev := w.appendEvent("acme", "cmk.revoked", map[string]string{"reason": "cmk_key_disabled"})
	w.appendEvent("acme", "cmk.rotate.done", nil) // not subscribed
	w.runUntil(0, 3, func() bool { return len(r.requests()) == 1 })
	got := r.requests()[0]
	if !got.Verified {
		t.Errorf("signature %q over timestamp %q does not verify with the secret", got.Header.Get("X-Orgkms-Signature"), got.Header.Get("X-Orgkms-Timestamp"))
	}
	want, _ := events.FromAudit(ev)
	if got.Event.ID != want.ID || got.Event.Type != "cmk.state_changed" || got.Event.Org != "acme" || got.Event.Data["state"] != "revoked" ||
		got.Event.Data["reason"] != "cmk_key_disabled" || got.Event.Time.IsZero() {
		t.Errorf("body = %s, want the revocation of acme", got.Body)
	}
	if got.Header.Get("Content-Type") != "application/json" || got.Header.Get("X-Orgkms-Event-Id") != want.ID ||
		got.Header.Get("X-Orgkms-Event-Type") != "cmk.state_changed" || got.Header.Get("X-Orgkms-Attempt") != "1" {
		t.Errorf("headers = %v", got.Header)
	}
	// notify.Verify (the Go receiver's helper) agrees, and refuses a
	// replay outside the window and a modified body.
	ts := got.Header.Get("X-Orgkms-Timestamp")
	sig := got.Header.Get("X-Orgkms-Signature")
	sent := w.clock.now()
	if err := notify.Verify(secret, ts, sig, got.Body, sent); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if err := notify.Verify(secret, ts, sig, got.Body, sent.Add(notify.ReplayWindow+time.Second)); err == nil {
		t.Errorf("Verify(after the replay window) = nil, want an error")
	}
	if err := notify.Verify(secret, ts, sig, append(got.Body, ' '), sent); err == nil {
		t.Errorf("Verify(modified body) = nil, want an error")
	}
	if err := notify.Verify("whsec_other", ts, sig, got.Body, sent); err == nil {
		t.Errorf("Verify(other secret) = nil, want an error")
	}
	ds, err := w.svc.Deliveries(ctx, "acme", hook.ID, 0)
	if err != nil || len(ds) != 1 || ds[0].State != notify.Delivered || len(ds[0].History) != 1 || ds[0].History[0].StatusCode != 204 {
		t.Fatalf("Deliveries = %+v, %v; want one delivered with a 204", ds, err)
	}
	// Nothing more is sent.
	w.clock.advance(time.Hour)
	if n, _ := w.svc.RunOnce(ctx, "n1/test"); n != 0 || len(r.requests()) != 1 {
		t.Errorf("after delivery: %d claimed, %d requests; want 0 and 1", n, len(r.requests()))
	}
}

// TestRetryBackoff: 500s are retried with exponential back-off and
// jitter until a 2xx; the history records each attempt and its next retry.
func TestRetryBackoff(t *testing.T) {
	r := newReceiver(t)
	r.fail = []int{500, 503, 500}
	r.body = strings.Repeat("x", 5000)
	w := newWorld(t, sqliteStore(t), withRoots(r))
	hook, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	w.appendEvent("acme", "cmk.lost", map[string]string{"reason": "cmk_key_destroyed"})
	delivered := func() bool {
		ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
		return len(ds) == 1 && ds[0].State == notify.Delivered
	}
	// Half a second per round: a retry is never due before half its delay.
	w.runUntil(500*time.Millisecond, 60, delivered)
	ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
	h := ds[0].History
	if len(h) != 4 || ds[0].Attempts != 4 {
		t.Fatalf("history = %+v, want 3 failures and a success", h)
	}
	for i, a := range h[:3] {
		base := time.Second << i // Backoff 1s, doubled after each failure
		delay := a.NextRetryAt.Sub(a.Time)
		if a.StatusCode < 500 || a.Error == "" || delay < base/2 || delay >= base {
			t.Errorf("attempt %d = status %d error %q retry after %v; want a 5xx retried within [%v, %v)", a.N, a.StatusCode, a.Error, delay, base/2, base)
		}
		if len(a.Excerpt) > notify.MaxExcerpt {
			t.Errorf("attempt %d excerpt is %d bytes, want at most %d", a.N, len(a.Excerpt), notify.MaxExcerpt)
		}
		if next := h[i+1].Time; next.Before(a.NextRetryAt) {
			t.Errorf("attempt %d sent at %v, before its retry time %v", i+2, next, a.NextRetryAt)
		}
	}
	if last := h[3]; last.StatusCode != 204 || last.Error != "" || !last.NextRetryAt.IsZero() {
		t.Errorf("last attempt = %+v, want a 204 and no retry", last)
	}
	if got := r.requests(); len(got) != 4 || got[3].Header.Get("X-Orgkms-Attempt") != "4" || got[0].Event.ID != got[3].Event.ID {
		t.Errorf("receiver got %d requests, want 4 of the same event", len(got))
	}
}

// TestDeadReceiver: a receiver that is gone is retried up to max
// attempts, then the delivery fails; nothing is retried after that.
func TestDeadReceiver(t *testing.T) {
	r := newReceiver(t)
	url := r.url()
	r.srv.Close()
	w := newWorld(t, sqliteStore(t), withRoots(r), func(c *notify.Config) { c.MaxAttempts = 3 })
	hook, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	w.appendEvent("acme", "cmk.activate.failed", map[string]string{"error": "boom"})
	failed := func() bool {
		ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
		return len(ds) == 1 && ds[0].State == notify.Failed
	}
	w.runUntil(10*time.Second, 20, failed)
	ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
	h := ds[0].History
	if len(h) != 3 || ds[0].EventType != events.JobFailed {
		t.Fatalf("history = %+v, want 3 attempts of job.failed", h)
	}
	for _, a := range h {
		if a.StatusCode != 0 || a.Error == "" || strings.Contains(a.Error, "tenant=acme") {
			t.Errorf("attempt %d = %+v, want no response, an error without the URL", a.N, a)
		}
	}
	if !h[2].NextRetryAt.IsZero() || ds[0].NextAttemptAt.IsZero() && ds[0].State == notify.Pending {
		t.Errorf("last attempt has a retry at %v, want none", h[2].NextRetryAt)
	}
	w.clock.advance(24 * time.Hour)
	if n, _ := w.svc.RunOnce(t.Context(), "n1/test"); n != 0 {
		t.Errorf("RunOnce after failure claimed %d, want 0", n)
	}
}

// TestMaxAge: retries stop once the next one would fall after MaxAge.
func TestMaxAge(t *testing.T) {
	r := newReceiver(t)
	r.fail = []int{500, 500, 500, 500, 500, 500}
	w := newWorld(t, sqliteStore(t), withRoots(r), func(c *notify.Config) { c.MaxAttempts = 100; c.MaxAge = 3 * time.Second })
	hook, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	w.appendEvent("acme", "cmk.revoked", nil)
	w.runUntil(time.Second, 30, func() bool {
		ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
		return len(ds) == 1 && ds[0].State == notify.Failed
	})
	ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
	if n := len(ds[0].History); n < 2 || n > 4 {
		t.Errorf("attempts within a 3s max age with 1s, 2s back-off = %d, want 2 to 4", n)
	}
}

// TestCreateRefuses: bad input gets stable kinds; nothing is stored.
func TestCreateRefuses(t *testing.T) {
	w := newWorld(t, sqliteStore(t), func(c *notify.Config) { c.AllowPrivate = false })
	cases := []struct {
		name     string
		org, url string
		events   []string
		desc     string
		wantKind fault.Kind
	}{
		{"empty", "acme", "", nil, "", fault.Invalid},
		{"not a URL", "acme", "hooks.example.com/x", nil, "", fault.Invalid},
		{"ftp", "acme", "ftp://hooks.example.com/x", nil, "", fault.Invalid},
		{"credentials", "acme", "https://user:pw@8.8.8.8/x", nil, "", fault.Invalid},
		{"fragment", "acme", "https://8.8.8.8/x#frag", nil, "", fault.Invalid},
		{"http", "acme", "http://8.8.8.8/x", nil, "", fault.WebhookURLInsecure},
		{"loopback", "acme", "https://127.0.0.1:8443/x", nil, "", fault.WebhookAddressForbidden},
		{"localhost", "acme", "https://localhost/x", nil, "", fault.WebhookAddressForbidden},
		{"ipv6 loopback", "acme", "https://[::1]/x", nil, "", fault.WebhookAddressForbidden},
		{"private", "acme", "https://10.1.2.3/x", nil, "", fault.WebhookAddressForbidden},
		{"metadata", "acme", "https://169.254.169.254/latest", nil, "", fault.WebhookAddressForbidden},
		{"mapped private", "acme", "https://[::ffff:192.168.1.1]/x", nil, "", fault.WebhookAddressForbidden},
		{"unknown event", "acme", "https://8.8.8.8/x", []string{"cmk.bogus"}, "", fault.Invalid},
		{"long description", "acme", "https://8.8.8.8/x", nil, strings.Repeat("d", 201), fault.Invalid},
		{"unknown org", "nobody", "https://8.8.8.8/x", nil, "", fault.NotFound},
	}
	for _, tc := range cases {
		_, _, err := w.svc.Create(t.Context(), tc.org, "user:alice", notify.CreateRequest{URL: tc.url, Events: tc.events, Description: tc.desc})
		if got := fault.KindOf(err); err == nil || got != tc.wantKind {
			t.Errorf("Create(%s) kind = %v (%v), want %v", tc.name, got, err, tc.wantKind)
		}
	}
	if ws, err := w.svc.List(t.Context(), "acme"); err != nil || len(ws) != 0 {
		t.Errorf("List = %+v, %v; want none", ws, err)
	}
	// A public address literal is accepted (no DNS needed); the limit holds.
	for i := range notify.MaxWebhooks {
		if _, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: fmt.Sprintf("https://8.8.8.8/hook/%d", i)}); err != nil {
			t.Fatalf("Create(public address %d) = %v", i, err)
		}
	}
	if _, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: "https://8.8.8.8/one-more"}); fault.KindOf(err) != fault.Conflict {
		t.Errorf("Create(over the limit) = %v, want Conflict", err)
	}
}

// TestGuardAtConnect: an address that became private after creation (DNS
// rebinding) is refused when connecting: the receiver gets nothing.
func TestGuardAtConnect(t *testing.T) {
	r := newReceiver(t)
	w := newWorld(t, sqliteStore(t), withRoots(r))
	// Registered while the name had a public address; it resolves to
	// loopback now, as a rebound name would. A node without
	// allow_private_addresses refuses to connect.
	hook, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := w.cfg
	cfg.AllowPrivate = false
	guarded, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := guarded.Test(t.Context(), "acme", hook.ID, "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != notify.Failed || !strings.Contains(d.History[0].Error, "loopback: refused") || len(r.requests()) != 0 {
		t.Errorf("ping to a loopback receiver = %+v, receiver got %d; want refused before connecting", d.History, len(r.requests()))
	}
	w.appendEvent("acme", "cmk.revoked", nil)
	if _, err := guarded.RunOnce(t.Context(), "n2/test"); err != nil {
		t.Fatal(err)
	}
	ds, _ := guarded.Deliveries(t.Context(), "acme", hook.ID, 0)
	if len(ds) != 2 || ds[0].State != notify.Pending || !strings.Contains(ds[0].LastError, "refused") || len(r.requests()) != 0 {
		t.Errorf("delivery to a loopback receiver = %+v, want refused and retried later", ds[0])
	}
}

// TestWrappingBoundToWebhook: a secret's wrapping copied to another
// webhook does not unwrap: it is bound to its org and webhook.
func TestWrappingBoundToWebhook(t *testing.T) {
	r := newReceiver(t)
	w := newWorld(t, sqliteStore(t), withRoots(r))
	hook, _, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := w.st.GetWebhook(t.Context(), "acme", hook.ID)
	stored.OrgID, stored.ID = "globex", "wh_00000000000000aa"
	if err := w.st.CreateWebhook(t.Context(), stored, auditEvent("globex")); err != nil {
		t.Fatal(err)
	}
	d, err := w.svc.Test(t.Context(), "globex", stored.ID, "user:mallory")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != notify.Failed || !strings.Contains(d.LastError, "signing secret unavailable") || len(r.requests()) != 0 {
		t.Errorf("ping with a copied wrapping = %+v, want no request: the secret does not unwrap", d.History)
	}
}

// TestNoRedirects: a 3xx is a failed attempt; the redirect is not followed.
func TestNoRedirects(t *testing.T) {
	r := newReceiver(t)
	r.fail = []int{302}
	w := newWorld(t, sqliteStore(t), withRoots(r))
	hook, secret, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	r.setSecret(secret)
	d, err := w.svc.Test(t.Context(), "acme", hook.ID, "user:alice")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != notify.Failed || d.History[0].StatusCode != 302 || !strings.Contains(d.History[0].Error, "redirect") || len(r.requests()) != 1 {
		t.Errorf("ping answered by a redirect = %+v, want a failed attempt with 302, one request", d)
	}
	d, err = w.svc.Test(t.Context(), "acme", hook.ID, "user:alice")
	if err != nil || d.State != notify.Delivered || d.EventType != events.Ping || !r.requests()[1].Verified {
		t.Errorf("second ping = %+v, %v; want delivered and verified", d, err)
	}
	ds, _ := w.svc.Deliveries(t.Context(), "acme", hook.ID, 0)
	if len(ds) != 2 {
		t.Errorf("history has %d deliveries, want both pings", len(ds))
	}
}

// TestSecretRotation: for the replay window both secrets sign; then the
// new one alone.
func TestSecretRotation(t *testing.T) {
	r := newReceiver(t)
	w := newWorld(t, sqliteStore(t), withRoots(r))
	hook, old, err := w.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	next, err := w.svc.RotateSecret(t.Context(), "acme", hook.ID, "user:alice")
	if err != nil || next == old {
		t.Fatalf("RotateSecret = %q, %v", next, err)
	}
	for _, s := range []string{old, next} {
		r.setSecret(s)
		if d, err := w.svc.Test(t.Context(), "acme", hook.ID, "user:alice"); err != nil || !r.requests()[len(r.requests())-1].Verified {
			t.Errorf("ping after rotation = %+v, %v: does not verify with %s secret", d, err, map[bool]string{true: "the old", false: "the new"}[s == old])
		}
	}
	if sig := r.requests()[1].Header.Get("X-Orgkms-Signature"); strings.Count(sig, "v1=") != 2 {
		t.Errorf("signature during the overlap = %q, want two", sig)
	}
	w.clock.advance(notify.ReplayWindow + time.Second)
	r.setSecret(old)
	w.svc.Test(t.Context(), "acme", hook.ID, "user:alice")
	last := r.requests()[len(r.requests())-1]
	if last.Verified || strings.Count(last.Header.Get("X-Orgkms-Signature"), "v1=") != 1 {
		t.Errorf("after the overlap the old secret still verifies (signature %q)", last.Header.Get("X-Orgkms-Signature"))
	}
}

// TestTenantIsolation: one org's webhooks are invisible to another and
// receive only their own org's events.
func TestTenantIsolation(t *testing.T) {
	r := newReceiver(t)
	w := newWorld(t, sqliteStore(t), withRoots(r))
	ctx := t.Context()
	hook, _, err := w.svc.Create(ctx, "globex", "user:bob", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Get":        func() error { _, err := w.svc.Get(ctx, "acme", hook.ID); return err }(),
		"Deliveries": func() error { _, err := w.svc.Deliveries(ctx, "acme", hook.ID, 0); return err }(),
		"Test":       func() error { _, err := w.svc.Test(ctx, "acme", hook.ID, "user:alice"); return err }(),
		"Rotate":     func() error { _, err := w.svc.RotateSecret(ctx, "acme", hook.ID, "user:alice"); return err }(),
		"Delete":     w.svc.Delete(ctx, "acme", hook.ID, "user:alice"),
	} {
		if fault.KindOf(err) != fault.NotFound {
			t.Errorf("%s(acme, globex's webhook) = %v, want NotFound", name, err)
		}
	}
	if ws, _ := w.svc.List(ctx, "acme"); len(ws) != 0 {
		t.Errorf("List(acme) = %+v, want none", ws)
	}
	w.appendEvent("acme", "cmk.revoked", nil)
	w.runUntil(time.Second, 3, func() bool { return false || len(r.requests()) > 0 || true })
	if _, err := w.svc.RunOnce(ctx, "n1/test"); err != nil {
		t.Fatal(err)
	}
	if n := len(r.requests()); n != 0 {
		t.Errorf("globex's receiver got %d requests for acme's event, want 0", n)
	}
}

// TestSecretNeverShown: after creation the secret appears in no list,
// history, log line or error, including logs of failing deliveries.
func TestSecretNeverShown(t *testing.T) {
	r := newReceiver(t)
	r.fail = []int{500, 500}
	w := newWorld(t, sqliteStore(t), withRoots(r))
	ctx := t.Context()
	hook, secret, err := w.svc.Create(ctx, "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	next, _ := w.svc.RotateSecret(ctx, "acme", hook.ID, "user:alice")
	w.svc.Test(ctx, "acme", hook.ID, "user:alice")
	w.appendEvent("acme", "cmk.revoked", nil)
	w.runUntil(10*time.Second, 10, func() bool {
		ds, _ := w.svc.Deliveries(ctx, "acme", hook.ID, 0)
		return len(ds) == 2 && ds[0].State == notify.Delivered
	})
	ws, _ := w.svc.List(ctx, "acme")
	ds, _ := w.svc.Deliveries(ctx, "acme", hook.ID, 0)
	evs, _ := w.st.AuditEvents(ctx, "acme", 0, 0)
	stored, _ := w.st.GetWebhook(ctx, "acme", hook.ID)
	all, _ := json.Marshal([]any{ws, ds, evs})
	for _, s := range []string{secret, next, strings.TrimPrefix(secret, "whsec_"), strings.TrimPrefix(next, "whsec_")} {
		if strings.Contains(string(all), s) || strings.Contains(w.logs.String(), s) || strings.Contains(string(stored.Secret.Ciphertext), s) {
			t.Errorf("a secret appears in a list, the history, the audit log, the logs or the stored wrapping")
		}
	}
	if !strings.Contains(w.logs.String(), "webhook attempt failed") {
		t.Errorf("logs have no failed attempt: the test did not exercise the failure logs")
	}
}

// TestTwoNodesDeliverOnce: two nodes on one PostgreSQL database deliver
// every event exactly once.
func TestTwoNodesDeliverOnce(t *testing.T) {
	r := newReceiver(t)
	url := pgtest.URL(t)
	open := func() *postgres.Store {
		st, err := postgres.Open(t.Context(), postgres.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	fast := func(c *notify.Config) { c.RootCAs = r.roots(); c.Now = time.Now; c.Workers = 4 }
	a := newWorld(t, open(), fast)
	b := newWorld(t, open(), fast, func(c *notify.Config) { c.NodeID = "n2" })
	b.svc, _ = notify.New(func() notify.Config { c := b.cfg; c.Keepers = a.reg; c.PlatformKey = a.pk; return c }())
	hook, secret, err := a.svc.Create(t.Context(), "acme", "user:alice", notify.CreateRequest{URL: r.url()})
	if err != nil {
		t.Fatal(err)
	}
	r.setSecret(secret)
	const n = 40
	ctx, cancel := contextWithCancel(t)
	var wg sync.WaitGroup
	wg.Go(func() { a.svc.Run(ctx) })
	wg.Go(func() { b.svc.Run(ctx) })
	for i := range n {
		st := a.st
		if i%2 == 1 {
			st = b.st
		}
		if _, err := st.AppendAudit(t.Context(), auditRevoked("acme", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every delivery done", func() bool {
		pending, err := a.st.PendingDeliveries(t.Context())
		return err == nil && pending == 0 && len(r.requests()) >= n
	})
	cancel()
	wg.Wait()
	seen := map[string]int{}
	for _, rq := range r.requests() {
		seen[rq.Event.ID]++
		if !rq.Verified {
			t.Errorf("event %s: signature does not verify", rq.Event.ID)
		}
	}
	if len(seen) != n {
		t.Errorf("receiver saw %d distinct events, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s delivered %d times, want once", id, c)
		}
	}
	ds, _ := a.svc.Deliveries(t.Context(), "acme", hook.ID, 100)
	if len(ds) != n {
		t.Errorf("history has %d deliveries, want %d", len(ds), n)
	}
}
