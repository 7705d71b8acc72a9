package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/events"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/notify"
)

// WebhookStore is a storage implementation that also stores webhooks and
// their outbox.
type WebhookStore interface {
	Store
	notify.Store
}

// WebhookPeer is the [Peer] capability of a [WebhookStore]: a second store
// on the same database.
type WebhookPeer interface {
	WebhookPeer(t *testing.T) WebhookStore
}

func webhookPeer(t *testing.T, s WebhookStore) WebhookStore {
	if p, ok := s.(WebhookPeer); ok {
		return p.WebhookPeer(t)
	}
	return s
}

// RunWebhooks runs the suite of [notify.Store]. open is as for [Run].
func RunWebhooks(t *testing.T, open func(t *testing.T) WebhookStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s WebhookStore)
	}{
		{"RoundTrip", testWebhookRoundTrip},
		{"Errors", testWebhookErrors},
		{"TenantIsolation", testWebhookTenantIsolation},
		{"OutboxWithAudit", testOutboxWithAudit},
		{"OutboxAtomic", testOutboxAtomic},
		{"ClaimLease", testDeliveryClaimLease},
		{"Fence", testDeliveryFence},
		{"History", testDeliveryHistory},
		{"ClaimConcurrent", testDeliveryClaimConcurrent},
		{"RotateSecret", testWebhookRotateSecret},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

func webhook(org, id string, types ...events.Type) notify.Webhook {
	return notify.Webhook{OrgID: org, ID: id, URL: "https://hooks.example.com/" + org + "/" + id, Description: "hook " + id, Events: types,
		Secret:    masterkey.Wrapped{Ciphertext: material(org+id, 60), Key: masterkey.Ref{Provider: "local", ID: "/k/master.key", Version: "v1"}},
		CreatedAt: base, CreatedBy: "user:alice@" + org}
}

func hookEvent(action, org string) audit.Event {
	return audit.Event{OrgID: org, Time: base, Actor: "user:alice", Action: action, Target: "webhook"}
}

func mustCreateWebhook(t *testing.T, s WebhookStore, w notify.Webhook) {
	t.Helper()
	if err := s.CreateWebhook(t.Context(), w, hookEvent("webhook.create", w.OrgID)); err != nil {
		t.Fatalf("CreateWebhook(%s/%s) = %v", w.OrgID, w.ID, err)
	}
}

// revoke appends the audit event of a revocation, which notifies.
func revoke(t *testing.T, s WebhookStore, org string, at time.Time) audit.Event {
	t.Helper()
	ev, err := s.AppendAudit(t.Context(), audit.Event{OrgID: org, Time: at, Actor: "orgkms", Action: "cmk.revoked", Target: "cmk", Details: map[string]string{"reason": "cmk_key_disabled"}})
	if err != nil {
		t.Fatalf("AppendAudit(cmk.revoked) = %v", err)
	}
	return ev
}

func claimAll(t *testing.T, s WebhookStore, owner string, now time.Time) []notify.Delivery {
	t.Helper()
	ds, err := s.ClaimDeliveries(t.Context(), owner, now, time.Minute, 100)
	if err != nil {
		t.Fatalf("ClaimDeliveries(%s) = %v", owner, err)
	}
	return ds
}

func testWebhookRoundTrip(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	a := webhook("acme", "wh_1", events.StateChanged, events.JobFailed)
	b := webhook("acme", "wh_2")
	b.CreatedAt = base.Add(time.Second)
	mustCreateWebhook(t, s, a)
	mustCreateWebhook(t, s, b)
	got, err := s.GetWebhook(ctx, "acme", "wh_1")
	if err != nil {
		t.Fatalf("GetWebhook = %v", err)
	}
	if got.URL != a.URL || got.Description != a.Description || !slices.Equal(got.Events, a.Events) || got.CreatedBy != a.CreatedBy ||
		!got.CreatedAt.Equal(micro(base)) || got.Secret.Key != a.Secret.Key || !bytes.Equal(got.Secret.Ciphertext, a.Secret.Ciphertext) {
		t.Errorf("GetWebhook = %+v, want %+v", got, a)
	}
	if got.Previous.Ciphertext != nil || !got.PreviousUntil.IsZero() {
		t.Errorf("GetWebhook previous secret = %+v until %v, want none", got.Previous, got.PreviousUntil)
	}
	list, err := s.ListWebhooks(ctx, "acme")
	if err != nil || len(list) != 2 || list[0].ID != "wh_1" || list[1].ID != "wh_2" || list[1].Events != nil {
		t.Fatalf("ListWebhooks = %+v, %v; want wh_1, wh_2 (every event)", list, err)
	}
	if err := s.DeleteWebhook(ctx, "acme", "wh_1", hookEvent("webhook.delete", "acme")); err != nil {
		t.Fatalf("DeleteWebhook = %v", err)
	}
	checkKind(t, "GetWebhook(deleted)", func() error { _, err := s.GetWebhook(ctx, "acme", "wh_1"); return err }(), fault.NotFound)
	evs, err := s.AuditEvents(ctx, "acme", 0, 0)
	if err != nil || len(evs) != 3 || evs[2].Action != "webhook.delete" {
		t.Errorf("AuditEvents = %+v, %v; want create, create, delete", evs, err)
	}
}

func testWebhookErrors(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	cases := []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"CreateWebhook(duplicate)", func() error {
			return s.CreateWebhook(ctx, webhook("acme", "wh_1"), hookEvent("webhook.create", "acme"))
		}, fault.Conflict},
		{"CreateWebhook(no URL)", func() error {
			w := webhook("acme", "wh_2")
			w.URL = ""
			return s.CreateWebhook(ctx, w, hookEvent("webhook.create", "acme"))
		}, fault.Invalid},
		{"CreateWebhook(event of another org)", func() error {
			return s.CreateWebhook(ctx, webhook("acme", "wh_3"), hookEvent("webhook.create", "globex"))
		}, fault.Invalid},
		{"GetWebhook(missing)", func() error { _, err := s.GetWebhook(ctx, "acme", "wh_9"); return err }, fault.NotFound},
		{"DeleteWebhook(missing)", func() error { return s.DeleteWebhook(ctx, "acme", "wh_9", hookEvent("webhook.delete", "acme")) }, fault.NotFound},
		{"RotateWebhookSecret(missing)", func() error {
			return s.RotateWebhookSecret(ctx, "acme", "wh_9", masterkey.Wrapped{Ciphertext: []byte{1}}, base, hookEvent("webhook.rotate_secret", "acme"))
		}, fault.NotFound},
		{"ClaimDeliveries(no owner)", func() error { _, err := s.ClaimDeliveries(ctx, "", base, time.Minute, 1); return err }, fault.Invalid},
		{"Deliveries(negative limit)", func() error { _, err := s.Deliveries(ctx, "acme", "wh_1", -1); return err }, fault.Invalid},
		{"AddDelivery(pending)", func() error {
			_, err := s.AddDelivery(ctx, notify.Delivery{OrgID: "acme", WebhookID: "wh_1", EventID: "evt_x", State: notify.Pending}, nil)
			return err
		}, fault.Invalid},
	}
	for _, tc := range cases {
		checkKind(t, tc.name, tc.call(), tc.wantKind)
	}
	// A failed create appended nothing.
	evs, err := s.AuditEvents(ctx, "acme", 0, 0)
	if err != nil || len(evs) != 1 {
		t.Errorf("AuditEvents = %d events, %v; want the one create", len(evs), err)
	}
}

func testWebhookTenantIsolation(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	mustCreateWebhook(t, s, webhook("globex", "wh_2"))
	checkKind(t, "GetWebhook(globex, acme's hook)", func() error { _, err := s.GetWebhook(ctx, "globex", "wh_1"); return err }(), fault.NotFound)
	checkKind(t, "DeleteWebhook(globex, acme's hook)", s.DeleteWebhook(ctx, "globex", "wh_1", hookEvent("webhook.delete", "globex")), fault.NotFound)
	list, err := s.ListWebhooks(ctx, "globex")
	if err != nil || len(list) != 1 || list[0].ID != "wh_2" {
		t.Errorf("ListWebhooks(globex) = %+v, %v; want wh_2 only", list, err)
	}
	revoke(t, s, "acme", base)
	ds, err := s.Deliveries(ctx, "globex", "wh_2", 0)
	if err != nil || len(ds) != 0 {
		t.Errorf("Deliveries(globex) after acme's event = %+v, %v; want none", ds, err)
	}
	if ds, err := s.Deliveries(ctx, "globex", "wh_1", 0); err != nil || len(ds) != 0 {
		t.Errorf("Deliveries(globex, acme's hook) = %+v, %v; want none", ds, err)
	}
	ds, err = s.Deliveries(ctx, "acme", "wh_1", 0)
	if err != nil || len(ds) != 1 || ds[0].OrgID != "acme" {
		t.Errorf("Deliveries(acme) = %+v, %v; want the revocation", ds, err)
	}
}

func testOutboxWithAudit(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	mustCreateWebhook(t, s, webhook("acme", "wh_all"))
	mustCreateWebhook(t, s, webhook("acme", "wh_state", events.StateChanged))
	mustCreateWebhook(t, s, webhook("acme", "wh_jobs", events.JobFailed))
	if _, err := s.AppendAudit(ctx, audit.Event{OrgID: "acme", Time: base, Actor: "token:ops", Action: "key.rotate", Target: "key/default"}); err != nil {
		t.Fatalf("AppendAudit(key.rotate) = %v", err)
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 0 {
		t.Fatalf("PendingDeliveries after an event that notifies nothing = %d, %v; want 0", n, err)
	}
	ev := revoke(t, s, "acme", base.Add(time.Second))
	want, _ := events.FromAudit(ev)
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 2 {
		t.Fatalf("PendingDeliveries after cmk.revoked = %d, %v; want 2 (wh_all, wh_state)", n, err)
	}
	for _, id := range []string{"wh_all", "wh_state"} {
		ds, err := s.Deliveries(ctx, "acme", id, 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("Deliveries(%s) = %+v, %v; want one", id, ds, err)
		}
		d := ds[0]
		if d.EventID != want.ID || d.EventType != events.StateChanged || d.State != notify.Pending || d.Attempts != 0 ||
			!bytes.Equal(d.Body, want.Body()) || !d.NextAttemptAt.Equal(micro(base.Add(time.Second))) {
			t.Errorf("Deliveries(%s) = %+v (body %s), want event %s pending now (body %s)", id, d, d.Body, want.ID, want.Body())
		}
	}
	if ds, err := s.Deliveries(ctx, "acme", "wh_jobs", 0); err != nil || len(ds) != 0 {
		t.Errorf("Deliveries(wh_jobs) = %+v, %v; want none (not subscribed)", ds, err)
	}
	// A platform event notifies nobody.
	if _, err := s.AppendAudit(ctx, audit.Event{OrgID: audit.Platform, Time: base, Actor: "orgkms", Action: "cmk.revoked", Target: "org/acme"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 2 {
		t.Errorf("PendingDeliveries after a platform event = %d, %v; want 2", n, err)
	}
}

// testOutboxAtomic: a change that fails writes no outbox row.
func testOutboxAtomic(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	// Deleting a missing webhook fails inside its transaction; its event
	// would not notify anyway, so use an event that does: the failed
	// delete must leave no delivery behind.
	ev := audit.Event{OrgID: "acme", Time: base, Actor: "orgkms", Action: "cmk.revoked", Target: "cmk"}
	checkKind(t, "DeleteWebhook(missing)", s.DeleteWebhook(ctx, "acme", "wh_9", ev), fault.NotFound)
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 0 {
		t.Errorf("PendingDeliveries after a failed change = %d, %v; want 0", n, err)
	}
	// Deleting a webhook deletes its deliveries.
	revoke(t, s, "acme", base)
	if err := s.DeleteWebhook(ctx, "acme", "wh_1", hookEvent("webhook.delete", "acme")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 0 {
		t.Errorf("PendingDeliveries after the webhook's deletion = %d, %v; want 0", n, err)
	}
}

func testDeliveryClaimLease(t *testing.T, s WebhookStore) {
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	revoke(t, s, "acme", base)
	revoke(t, s, "acme", base.Add(time.Second))
	if ds := claimAll(t, s, "n1/a", base.Add(-time.Second)); len(ds) != 0 {
		t.Errorf("ClaimDeliveries before they are due = %d, want 0", len(ds))
	}
	ds := claimAll(t, s, "n1/a", base.Add(2*time.Second))
	if len(ds) != 2 || ds[0].Owner != "n1/a" || ds[0].Fence != 1 || !ds[0].LeaseUntil.Equal(micro(base.Add(2*time.Second+time.Minute))) ||
		!ds[0].NextAttemptAt.Before(ds[1].NextAttemptAt) {
		t.Fatalf("ClaimDeliveries = %+v, want both, oldest first, leased to n1/a under fence 1", ds)
	}
	if again := claimAll(t, s, "n2/b", base.Add(30*time.Second)); len(again) != 0 {
		t.Errorf("ClaimDeliveries while leased = %d, want 0", len(again))
	}
	again := claimAll(t, s, "n2/b", base.Add(2*time.Second+time.Minute))
	if len(again) != 2 || again[0].Owner != "n2/b" || again[0].Fence != 2 {
		t.Errorf("ClaimDeliveries after the lease expired = %+v, want both under fence 2", again)
	}
}

func testDeliveryFence(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	revoke(t, s, "acme", base)
	old := claimAll(t, s, "n1/a", base)[0]
	cur := claimAll(t, s, "n2/b", base.Add(2*time.Minute))[0]
	a := notify.Attempt{N: 1, Time: base.Add(2 * time.Minute), StatusCode: 200, Latency: 3 * time.Millisecond}
	checkKind(t, "RecordAttempt(lost lease)", s.RecordAttempt(ctx, old, a, notify.Delivered), fault.Conflict)
	if err := s.RecordAttempt(ctx, cur, a, notify.Delivered); err != nil {
		t.Fatalf("RecordAttempt(holder) = %v", err)
	}
	checkKind(t, "RecordAttempt(finished)", s.RecordAttempt(ctx, cur, a, notify.Delivered), fault.Conflict)
	if ds := claimAll(t, s, "n3/c", base.Add(time.Hour)); len(ds) != 0 {
		t.Errorf("ClaimDeliveries after delivery = %+v, want none", ds)
	}
	ds, err := s.Deliveries(ctx, "acme", "wh_1", 0)
	if err != nil || len(ds) != 1 || ds[0].State != notify.Delivered || len(ds[0].History) != 1 {
		t.Errorf("Deliveries = %+v, %v; want one delivered with one attempt", ds, err)
	}
}

func testDeliveryHistory(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	revoke(t, s, "acme", base)
	d := claimAll(t, s, "n1/a", base)[0]
	a1 := notify.Attempt{N: 1, Time: base, StatusCode: 500, Latency: 1500 * time.Microsecond, Error: "receiver answered 500", Excerpt: "oops", NextRetryAt: base.Add(30 * time.Second)}
	if err := s.RecordAttempt(ctx, d, a1, notify.Pending); err != nil {
		t.Fatal(err)
	}
	if ds := claimAll(t, s, "n1/a", base.Add(29*time.Second)); len(ds) != 0 {
		t.Errorf("ClaimDeliveries before the retry is due = %d, want 0", len(ds))
	}
	d = claimAll(t, s, "n1/a", base.Add(30*time.Second))[0]
	if d.Attempts != 1 || d.LastStatus != 500 || d.LastError != a1.Error {
		t.Errorf("claimed retry = %+v, want attempts 1, last status 500", d)
	}
	a2 := notify.Attempt{N: 2, Time: base.Add(30 * time.Second), Error: "connection refused"}
	if err := s.RecordAttempt(ctx, d, a2, notify.Failed); err != nil {
		t.Fatal(err)
	}
	pingAt := base.Add(time.Minute)
	id, err := s.AddDelivery(ctx, notify.Delivery{OrgID: "acme", WebhookID: "wh_1", EventID: "evt_ping", EventType: events.Ping, Body: []byte(`{}`),
		CreatedAt: pingAt, State: notify.Delivered, NextAttemptAt: pingAt, LastStatus: 204, UpdatedAt: pingAt},
		[]notify.Attempt{{N: 1, Time: pingAt, StatusCode: 204, Latency: time.Millisecond}})
	if err != nil || id == 0 {
		t.Fatalf("AddDelivery = %d, %v", id, err)
	}
	ds, err := s.Deliveries(ctx, "acme", "wh_1", 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("Deliveries = %+v, %v; want 2", ds, err)
	}
	if ds[0].ID != id || ds[0].EventType != events.Ping || len(ds[0].History) != 1 || ds[0].History[0].StatusCode != 204 {
		t.Errorf("Deliveries[0] = %+v, want the ping, newest first", ds[0])
	}
	h := ds[1].History
	if ds[1].State != notify.Failed || ds[1].Attempts != 2 || len(h) != 2 {
		t.Fatalf("Deliveries[1] = %+v, want failed after 2 attempts", ds[1])
	}
	if h[0].N != 1 || h[0].StatusCode != 500 || h[0].Latency != a1.Latency || h[0].Excerpt != "oops" || !h[0].NextRetryAt.Equal(micro(a1.NextRetryAt)) ||
		h[1].N != 2 || h[1].StatusCode != 0 || h[1].Error != "connection refused" || !h[1].NextRetryAt.IsZero() {
		t.Errorf("History = %+v, want the 500 then the refused connection", h)
	}
	if ds, err := s.Deliveries(ctx, "acme", "wh_1", 1); err != nil || len(ds) != 1 || ds[0].ID != id {
		t.Errorf("Deliveries(limit 1) = %+v, %v; want the ping", ds, err)
	}
}

// testDeliveryClaimConcurrent: of concurrent claims on two nodes, each
// delivery goes to one.
func testDeliveryClaimConcurrent(t *testing.T, s WebhookStore) {
	p := webhookPeer(t, s)
	mustCreateWebhook(t, s, webhook("acme", "wh_1"))
	const n = 40
	for i := range n {
		revoke(t, s, "acme", base.Add(time.Duration(i)*time.Millisecond))
	}
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 8 {
		st := s
		if w%2 == 1 {
			st = p
		}
		wg.Go(func() {
			owner := fmt.Sprintf("n%d/x", w)
			for range 10 {
				ds, err := st.ClaimDeliveries(t.Context(), owner, base.Add(time.Second), time.Minute, 3)
				if err != nil {
					if fault.KindOf(err) == fault.Unavailable || fault.KindOf(err) == fault.Conflict {
						continue // a busy database: retry
					}
					t.Errorf("ClaimDeliveries(%s) = %v", owner, err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, ok := seen[d.ID]; ok {
						t.Errorf("delivery %d claimed by %s and %s", d.ID, prev, owner)
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("claimed %d deliveries, want %d", len(seen), n)
	}
}

func testWebhookRotateSecret(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	w := webhook("acme", "wh_1")
	mustCreateWebhook(t, s, w)
	next := masterkey.Wrapped{Ciphertext: material("next", 60), Key: masterkey.Ref{Provider: "local", ID: "/k/master.key", Version: "v2"}}
	until := base.Add(24 * time.Hour)
	if err := s.RotateWebhookSecret(ctx, "acme", "wh_1", next, until, hookEvent("webhook.rotate_secret", "acme")); err != nil {
		t.Fatalf("RotateWebhookSecret = %v", err)
	}
	got, err := s.GetWebhook(ctx, "acme", "wh_1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Secret.Ciphertext, next.Ciphertext) || got.Secret.Key != next.Key ||
		!bytes.Equal(got.Previous.Ciphertext, w.Secret.Ciphertext) || got.Previous.Key != w.Secret.Key || !got.PreviousUntil.Equal(micro(until)) {
		t.Errorf("GetWebhook after rotation = %+v, want the new secret and the old one until %v", got, until)
	}
}
