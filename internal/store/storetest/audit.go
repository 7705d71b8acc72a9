package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

func testAuditRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	in := []audit.Event{
		event(audit.Platform, "token.create", "token/tok_1"),
		{OrgID: audit.Platform, Time: base.Add(time.Nanosecond), Actor: "token:ops", Action: "token.revoke", Target: "token/tok_1"}, // no details
		{OrgID: audit.Platform, Time: base.Add(time.Hour), Details: map[string]string{"": "", "empty": ""}},                         // empty strings
	}
	var stored []audit.Event
	for i, e := range in {
		got, err := s.AppendAudit(ctx, e)
		if err != nil {
			t.Fatalf("AppendAudit(ctx, event %d) = %v", i, err)
		}
		want := e
		want.Seq = int64(i + 1)
		if i > 0 {
			want.PrevHash = stored[i-1].Hash
		}
		if got.PrevHash != want.PrevHash {
			t.Errorf("AppendAudit(ctx, event %d).PrevHash = %q, want %q", i, got.PrevHash, want.PrevHash)
		}
		checkEvent(t, got, want)
		stored = append(stored, got)
	}
	evs := auditLog(t, s, audit.Platform)
	if len(evs) != len(stored) {
		t.Fatalf("AuditEvents(ctx, %s) = %d events, want %d", audit.Platform, len(evs), len(stored))
	}
	for i := range evs {
		checkEvent(t, evs[i], stored[i])
	}
}

func testAuditChainConcurrent(t *testing.T, s Store) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	const sequential, goroutines, each = 40, 16, 8
	for i := range sequential {
		if _, err := s.AppendAudit(ctx, event("acme", "test.sequential", fmt.Sprint(i))); err != nil {
			t.Fatalf("AppendAudit(ctx, acme #%d) = %v", i, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				// Another org's chain grows at the same time.
				org := "acme"
				if i%4 == 3 {
					org = audit.Platform
				}
				e, err := s.AppendAudit(ctx, event(org, "test.concurrent", fmt.Sprintf("%d/%d", g, i)))
				if err == nil && audit.Hash(e) != e.Hash {
					err = fmt.Errorf("returned event %d has a wrong hash", e.Seq)
				}
				if err != nil {
					errs <- fmt.Errorf("AppendAudit(ctx, %s %d/%d) = %w", org, g, i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	platform := goroutines * each / 4
	acme := 1 + sequential + goroutines*each - platform
	if evs := auditLog(t, s, "acme"); len(evs) != acme {
		t.Errorf("audit log of acme has %d events, want %d", len(evs), acme)
	}
	if evs := auditLog(t, s, audit.Platform); len(evs) != platform {
		t.Errorf("audit log of %s has %d events, want %d", audit.Platform, len(evs), platform)
	}

	// Paging by sequence number.
	page, err := s.AuditEvents(ctx, "acme", 10, 5)
	if err != nil {
		t.Fatalf("AuditEvents(ctx, acme, 10, 5) = %v", err)
	}
	var seqs []int64
	for _, e := range page {
		seqs = append(seqs, e.Seq)
	}
	if want := []int64{11, 12, 13, 14, 15}; !slices.Equal(seqs, want) {
		t.Errorf("AuditEvents(ctx, acme, 10, 5) seqs = %v, want %v", seqs, want)
	}
	if page, err := s.AuditEvents(ctx, "acme", int64(acme), 0); err != nil || len(page) != 0 {
		t.Errorf("AuditEvents(ctx, acme, last, 0) = %d events, %v; want none", len(page), err)
	}
}

// testAuditAtomicWithChange checks both directions of "same transaction":
// a change that fails leaves no event, and every successful change left
// exactly one.
func testAuditAtomicWithChange(t *testing.T, s Store) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	ev := event("acme", "x", "y")
	failures := []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"CreateOrg duplicate", func() error { f := newOrg("acme"); return s.CreateOrg(ctx, f.org, f.root, f.first, f.ev) }, fault.Conflict},
		{"CreateDataKey duplicate", func() error { return s.CreateDataKey(ctx, "acme", newKey("acme", "default", 1), ev) }, fault.Conflict},
		{"AddDataKeyVersion stale", func() error {
			return s.AddDataKeyVersion(ctx, "acme", "default", newVersion("acme", "default", 1+1+1), ev)
		}, fault.Conflict},
		{"AddDataKeyVersion missing key", func() error { return s.AddDataKeyVersion(ctx, "acme", "nope", newVersion("acme", "nope", 2), ev) }, fault.NotFound},
		{"SetMinDecryptionVersion above latest", func() error { return s.SetMinDecryptionVersion(ctx, "acme", "default", 9, ev) }, fault.Invalid},
		{"CreateDataKey missing org", func() error { return s.CreateDataKey(ctx, "ghost", newKey("ghost", "k", 1), event("ghost", "x", "y")) }, fault.NotFound},
		{"CreateOrg cancelled", func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			f := newOrg("late")
			return s.CreateOrg(cctx, f.org, f.root, f.first, f.ev)
		}, fault.Unavailable},
	}
	for _, tc := range failures {
		checkKind(t, tc.name, tc.call(), tc.wantKind)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 1 {
		t.Errorf("audit log of acme has %d events after failed changes, want 1: %+v", len(evs), evs)
	}
	for _, org := range []string{"ghost", "late"} {
		if evs := auditLog(t, s, org); len(evs) != 0 {
			t.Errorf("audit log of %s has %d events, want none", org, len(evs))
		}
	}
	if _, err := s.GetOrg(ctx, "late"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetOrg(ctx, late) after a cancelled CreateOrg kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}

	// Each successful change appends exactly one event, in order.
	changes := []func() error{
		func() error {
			return s.CreateDataKey(ctx, "acme", newKey("acme", "k2", 1), event("acme", "key.create", "key/k2"))
		},
		func() error {
			return s.AddDataKeyVersion(ctx, "acme", "k2", newVersion("acme", "k2", 2), event("acme", "key.rotate", "key/k2"))
		},
		func() error {
			return s.SetMinDecryptionVersion(ctx, "acme", "k2", 2, event("acme", "key.retire", "key/k2"))
		},
	}
	for i, change := range changes {
		if err := change(); err != nil {
			t.Fatalf("change %d = %v", i, err)
		}
		if evs := auditLog(t, s, "acme"); len(evs) != 2+i {
			t.Fatalf("after change %d the audit log has %d events, want %d", i, len(evs), 2+i)
		}
	}
}

func testAuditOrgs(t *testing.T, s Store) {
	ctx := t.Context()
	if ids, err := s.AuditOrgs(ctx); err != nil || len(ids) != 0 {
		t.Errorf("AuditOrgs(ctx) on an empty store = %v, %v; want none", ids, err)
	}
	createOrg(t, s, "zeta")
	createOrg(t, s, "acme")
	for range 3 {
		if _, err := s.AppendAudit(ctx, event(audit.Platform, "x", "y")); err != nil {
			t.Fatalf("AppendAudit(ctx, platform) = %v", err)
		}
	}
	ids, err := s.AuditOrgs(ctx)
	if err != nil {
		t.Fatalf("AuditOrgs(ctx) = %v", err)
	}
	if want := []string{audit.Platform, "acme", "zeta"}; !slices.Equal(ids, want) {
		t.Errorf("AuditOrgs(ctx) = %v, want %v", ids, want)
	}
}

func testTenantIsolation(t *testing.T, s Store) {
	ctx := t.Context()
	a := createOrg(t, s, "org-a")
	b := createOrg(t, s, "org-b")
	if err := s.CreateDataKey(ctx, "org-a", newKey("org-a", "only-a", 1), event("org-a", "key.create", "key/only-a")); err != nil {
		t.Fatalf("CreateDataKey(ctx, org-a, only-a) = %v", err)
	}
	if err := s.AddDataKeyVersion(ctx, "org-a", "default", newVersion("org-a", "default", 2), event("org-a", "key.rotate", "key/default")); err != nil {
		t.Fatalf("AddDataKeyVersion(ctx, org-a, default, 2) = %v", err)
	}
	if err := s.AddUsage(ctx, []keys.UsageCount{
		{OrgID: "org-a", KeyName: "default", Op: "encrypt", Principal: "svc", Minute: base, Count: 5},
		{OrgID: "org-b", KeyName: "default", Op: "encrypt", Principal: "svc", Minute: base, Count: 7},
	}); err != nil {
		t.Fatalf("AddUsage(ctx, a and b) = %v", err)
	}

	if _, err := s.GetDataKey(ctx, "org-b", "only-a"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetDataKey(ctx, org-b, only-a) kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}
	dk, err := s.GetDataKey(ctx, "org-b", "default")
	if err != nil {
		t.Fatalf("GetDataKey(ctx, org-b, default) = %v", err)
	}
	checkDataKey(t, dk, b.first, true)
	if err := s.SetMinDecryptionVersion(ctx, "org-b", "default", 2, event("org-b", "x", "y")); fault.KindOf(err) != fault.Invalid {
		t.Errorf("SetMinDecryptionVersion(ctx, org-b, default, 2) kind = %v, want %v: org-a's version 2 counted for org-b", fault.KindOf(err), fault.Invalid)
	}

	list, err := s.ListDataKeys(ctx, "org-b")
	if err != nil {
		t.Fatalf("ListDataKeys(ctx, org-b) = %v", err)
	}
	if len(list) != 1 || list[0].OrgID != "org-b" || list[0].Name != "default" || list[0].LatestVersion != 1 {
		t.Errorf("ListDataKeys(ctx, org-b) = %+v, want only org-b's default at version 1", list)
	}

	ws, err := s.RootKeys(ctx, "org-b")
	if err != nil {
		t.Fatalf("RootKeys(ctx, org-b) = %v", err)
	}
	if len(ws) != 1 || ws[0].OrgID != "org-b" || string(ws[0].Wrapped.Ciphertext) != string(b.root.Wrapped.Ciphertext) ||
		string(ws[0].Wrapped.Ciphertext) == string(a.root.Wrapped.Ciphertext) {
		t.Errorf("RootKeys(ctx, org-b) = %+v, want only org-b's wrapping", ws)
	}

	evs := auditLog(t, s, "org-b")
	if len(evs) != 1 {
		t.Errorf("audit log of org-b has %d events, want 1", len(evs))
	}
	for _, e := range evs {
		if e.OrgID != "org-b" {
			t.Errorf("AuditEvents(ctx, org-b) returned an event of %s", e.OrgID)
		}
	}

	us, err := s.Usage(ctx, "org-b", time.Time{})
	if err != nil {
		t.Fatalf("Usage(ctx, org-b) = %v", err)
	}
	if len(us) != 1 || us[0].OrgID != "org-b" || us[0].Count != 7 {
		t.Errorf("Usage(ctx, org-b) = %+v, want only org-b's count 7", us)
	}
}
