package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

func testOrgRoundTrip(t *testing.T, s Store) {
	ctx := t.Context()
	f := createOrg(t, s, "acme")

	got, err := s.GetOrg(ctx, "acme")
	if err != nil {
		t.Fatalf("GetOrg(ctx, %q) = %v", "acme", err)
	}
	checkOrg(t, got, f.org)

	ws, err := s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, %q) = %v", "acme", err)
	}
	if len(ws) != 1 {
		t.Fatalf("RootKeys(ctx, %q) = %d wrappings, want 1", "acme", len(ws))
	}
	w := ws[0]
	if w.ID == 0 || w.OrgID != "acme" || w.State != keys.WrappingActive || w.Wrapped.Key != f.root.Wrapped.Key ||
		!bytes.Equal(w.Wrapped.Ciphertext, f.root.Wrapped.Ciphertext) || !w.CreatedAt.Equal(micro(f.root.CreatedAt)) {
		t.Errorf("RootKeys(ctx, %q)[0] = %+v, want %+v with an ID", "acme", w, f.root)
	}

	dk, err := s.GetDataKey(ctx, "acme", "default")
	if err != nil {
		t.Fatalf("GetDataKey(ctx, %q, %q) = %v", "acme", "default", err)
	}
	checkDataKey(t, dk, f.first, true)

	evs := auditLog(t, s, "acme")
	if len(evs) != 1 {
		t.Fatalf("audit log of acme has %d events, want 1", len(evs))
	}
	want := f.ev
	want.Seq = 1
	checkEvent(t, evs[0], want)

	// An org whose event leaves OrgID empty gets its own ID.
	g := newOrg("beta")
	g.ev.OrgID = ""
	g.create(t, s)
	if evs := auditLog(t, s, "beta"); len(evs) != 1 || evs[0].OrgID != "beta" {
		t.Errorf("audit log of beta = %+v, want one event of beta", evs)
	}
}

func testListOrgsPaging(t *testing.T, s Store) {
	ctx := t.Context()
	ids := []string{"g", "a", "e", "c", "b", "f", "d"}
	for _, id := range ids {
		createOrg(t, s, id)
	}
	slices.Sort(ids)

	var got []string
	after := ""
	for page := 0; ; page++ {
		if page > len(ids) {
			t.Fatalf("ListOrgs does not terminate: pages so far %v", got)
		}
		orgs, err := s.ListOrgs(ctx, keys.ListOptions{After: after, Limit: 3})
		if err != nil {
			t.Fatalf("ListOrgs(ctx, after %q, limit 3) = %v", after, err)
		}
		if len(orgs) > 3 {
			t.Fatalf("ListOrgs(ctx, after %q, limit 3) = %d orgs", after, len(orgs))
		}
		if len(orgs) == 0 {
			break
		}
		for _, o := range orgs {
			checkOrg(t, o, newOrg(o.ID).org)
			got = append(got, o.ID)
		}
		after = orgs[len(orgs)-1].ID
	}
	if !slices.Equal(got, ids) {
		t.Errorf("ListOrgs pages = %v, want %v", got, ids)
	}

	orgs, err := s.ListOrgs(ctx, keys.ListOptions{After: "c"})
	if err != nil {
		t.Fatalf("ListOrgs(ctx, after c) = %v", err)
	}
	if len(orgs) != 4 || orgs[0].ID != "d" {
		t.Errorf("ListOrgs(ctx, after c) = %v, want d..g", orgs)
	}
}

func testListOrgsLimits(t *testing.T, s Store) {
	ctx := t.Context()
	const n = 105
	for i := range n {
		createOrg(t, s, fmt.Sprintf("org-%03d", i))
	}
	for _, tc := range []struct {
		limit, want int
	}{
		{0, 100}, // default
		{1, 1},
		{1000, n},
		{5000, n}, // capped at 1000
	} {
		orgs, err := s.ListOrgs(ctx, keys.ListOptions{Limit: tc.limit})
		if err != nil {
			t.Fatalf("ListOrgs(ctx, limit %d) = %v", tc.limit, err)
		}
		if len(orgs) != tc.want {
			t.Errorf("ListOrgs(ctx, limit %d) = %d orgs, want %d", tc.limit, len(orgs), tc.want)
		}
	}
}

func testNotFound(t *testing.T, s Store) {
	createOrg(t, s, "acme")
	ev := func(org string) audit.Event { return event(org, "test", "x") }
	for _, tc := range []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"GetOrg", func() error { _, err := s.GetOrg(t.Context(), "nope"); return err }, fault.NotFound},
		{"RootKeys", func() error { _, err := s.RootKeys(t.Context(), "nope"); return err }, fault.NotFound},
		{"GetDataKey/org", func() error { _, err := s.GetDataKey(t.Context(), "nope", "default"); return err }, fault.NotFound},
		{"GetDataKey/key", func() error { _, err := s.GetDataKey(t.Context(), "acme", "nope"); return err }, fault.NotFound},
		{"ListDataKeys", func() error { _, err := s.ListDataKeys(t.Context(), "nope"); return err }, fault.NotFound},
		{"CreateDataKey/org", func() error { return s.CreateDataKey(t.Context(), "nope", newKey("nope", "k", 1), ev("nope")) }, fault.NotFound},
		{"AddDataKeyVersion/org", func() error {
			return s.AddDataKeyVersion(t.Context(), "nope", "default", newVersion("nope", "default", 2), ev("nope"))
		}, fault.NotFound},
		{"AddDataKeyVersion/key", func() error {
			return s.AddDataKeyVersion(t.Context(), "acme", "nope", newVersion("acme", "nope", 2), ev("acme"))
		}, fault.NotFound},
		{"SetMinDecryptionVersion/org", func() error { return s.SetMinDecryptionVersion(t.Context(), "nope", "default", 1, ev("nope")) }, fault.NotFound},
		{"SetMinDecryptionVersion/key", func() error { return s.SetMinDecryptionVersion(t.Context(), "acme", "nope", 1, ev("acme")) }, fault.NotFound},
		{"TokenByHash", func() error { _, err := s.TokenByHash(t.Context(), material("nope", 32)); return err }, fault.NotFound},
		{"RevokeToken", func() error { return s.RevokeToken(t.Context(), "tok_nope", base) }, fault.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name+"(ctx, nope)", tc.call(), tc.wantKind)
		})
	}
	if fe := fault.As(mustErr(s.GetOrg(t.Context(), "nope"))); fe != nil && fe.Resource != "org nope" {
		t.Errorf("GetOrg(ctx, nope) resource = %q, want %q", fe.Resource, "org nope")
	}
	if fe := fault.As(mustErr(s.GetDataKey(t.Context(), "acme", "nope"))); fe != nil && fe.Resource != "key nope in org acme" {
		t.Errorf("GetDataKey(ctx, acme, nope) resource = %q, want %q", fe.Resource, "key nope in org acme")
	}
	if fe := fault.As(mustErr(s.GetDataKey(t.Context(), "nope", "default"))); fe != nil && fe.Resource != "org nope" {
		t.Errorf("GetDataKey(ctx, nope, default) resource = %q, want %q", fe.Resource, "org nope")
	}
	// Failed changes leave no audit chain behind.
	if evs := auditLog(t, s, "nope"); len(evs) != 0 {
		t.Errorf("audit log of a missing org has %d events", len(evs))
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 1 {
		t.Errorf("audit log of acme has %d events after failed changes, want 1", len(evs))
	}
}

func mustErr[T any](_ T, err error) error { return err }

func testConflict(t *testing.T, s Store) {
	f := createOrg(t, s, "acme")
	if err := s.CreateDataKey(t.Context(), "acme", newKey("acme", "payments", 2), event("acme", "key.create", "key/payments")); err != nil {
		t.Fatalf("CreateDataKey(ctx, acme, payments) = %v", err)
	}
	tok := newToken("tok_1", "one")
	if err := s.CreateToken(t.Context(), tok); err != nil {
		t.Fatalf("CreateToken(ctx, tok_1) = %v", err)
	}
	dupHash := newToken("tok_2", "one") // same secret, other ID
	dupID := newToken("tok_1", "two")   // same ID, other secret
	renamed := newOrg("acme")
	renamed.org.Name = "Evil Corp"
	for _, tc := range []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"CreateOrg", func() error { return s.CreateOrg(t.Context(), renamed.org, renamed.root, renamed.first, renamed.ev) }, fault.Conflict},
		{"CreateDataKey", func() error {
			return s.CreateDataKey(t.Context(), "acme", newKey("acme", "default", 1), event("acme", "key.create", "key/default"))
		}, fault.Conflict},
		{"AddDataKeyVersion/current", func() error {
			return s.AddDataKeyVersion(t.Context(), "acme", "payments", newVersion("acme", "payments", 2), event("acme", "key.rotate", "key/payments"))
		}, fault.Conflict},
		{"AddDataKeyVersion/skip", func() error {
			return s.AddDataKeyVersion(t.Context(), "acme", "payments", newVersion("acme", "payments", 4), event("acme", "key.rotate", "key/payments"))
		}, fault.Conflict},
		{"CreateToken/id", func() error { return s.CreateToken(t.Context(), dupID) }, fault.Conflict},
		{"CreateToken/hash", func() error { return s.CreateToken(t.Context(), dupHash) }, fault.Conflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name, tc.call(), tc.wantKind)
		})
	}
	err := s.CreateOrg(t.Context(), renamed.org, renamed.root, renamed.first, renamed.ev)
	if fe := fault.As(err); fe == nil || fe.Resource != "org acme" || fault.Message(err) != "org acme already exists" {
		t.Errorf("CreateOrg(ctx, acme) twice = %v, want resource %q and message %q", err, "org acme", "org acme already exists")
	}

	// Nothing of the failed changes was stored.
	got, err := s.GetOrg(t.Context(), "acme")
	if err != nil {
		t.Fatalf("GetOrg(ctx, acme) = %v", err)
	}
	checkOrg(t, got, f.org)
	if ws, err := s.RootKeys(t.Context(), "acme"); err != nil || len(ws) != 1 {
		t.Errorf("RootKeys(ctx, acme) = %d wrappings, %v; want 1", len(ws), err)
	}
	dk, err := s.GetDataKey(t.Context(), "acme", "payments")
	if err != nil {
		t.Fatalf("GetDataKey(ctx, acme, payments) = %v", err)
	}
	checkDataKey(t, dk, newKey("acme", "payments", 2), true)
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("audit log of acme has %d events, want 2 (org.create, key.create): a failed change left an event", len(evs))
	}
	if n, err := s.CountTokens(t.Context()); err != nil || n != 1 {
		t.Errorf("CountTokens(ctx) = %d, %v; want 1", n, err)
	}
	if got, err := s.TokenByHash(t.Context(), tok.Hash); err != nil || got.ID != "tok_1" || got.Principal != tok.Principal {
		t.Errorf("TokenByHash(ctx, tok_1's hash) = %+v, %v; want the first tok_1", got, err)
	}
}

func testInvalid(t *testing.T, s Store) {
	createOrg(t, s, "acme")
	createOrg(t, s, "other")
	gap := newKey("acme", "gappy", 2)
	gap.Versions = gap.Versions[1:]
	gap.LatestVersion = 2
	for _, tc := range []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"ListOrgs/negative limit", func() error { _, err := s.ListOrgs(t.Context(), keys.ListOptions{Limit: -1}); return err }, fault.Invalid},
		{"AuditEvents/negative limit", func() error { _, err := s.AuditEvents(t.Context(), "acme", 0, -1); return err }, fault.Invalid},
		{"AppendAudit/no org", func() error { _, err := s.AppendAudit(t.Context(), event("", "x", "y")); return err }, fault.Invalid},
		{"SetMinDecryptionVersion/zero", func() error {
			return s.SetMinDecryptionVersion(t.Context(), "acme", "default", 0, event("acme", "x", "y"))
		}, fault.Invalid},
		{"SetMinDecryptionVersion/above latest", func() error {
			return s.SetMinDecryptionVersion(t.Context(), "acme", "default", 2, event("acme", "x", "y"))
		}, fault.Invalid},
		{"CreateDataKey/version gap", func() error { return s.CreateDataKey(t.Context(), "acme", gap, event("acme", "x", "y")) }, fault.Invalid},
		{"CreateDataKey/key of other org", func() error {
			return s.CreateDataKey(t.Context(), "acme", newKey("other", "k", 1), event("acme", "x", "y"))
		}, fault.Invalid},
		{"CreateDataKey/event of other org", func() error {
			return s.CreateDataKey(t.Context(), "acme", newKey("acme", "k", 1), event("other", "x", "y"))
		}, fault.Invalid},
		{"AddDataKeyVersion/event of other org", func() error {
			return s.AddDataKeyVersion(t.Context(), "acme", "default", newVersion("acme", "default", 2), event("other", "x", "y"))
		}, fault.Invalid},
		{"RevokeToken/zero time", func() error { return s.RevokeToken(t.Context(), "tok_x", time.Time{}) }, fault.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name, tc.call(), tc.wantKind)
		})
	}
	for _, org := range []string{"acme", "other"} {
		if evs := auditLog(t, s, org); len(evs) != 1 {
			t.Errorf("audit log of %s has %d events after invalid changes, want 1", org, len(evs))
		}
	}
}

func testDataKeyLifecycle(t *testing.T, s Store) {
	ctx := t.Context()
	f := createOrg(t, s, "acme")
	pay := newKey("acme", "payments", 1)
	pay.OrgID = "" // the orgID argument names the org
	if err := s.CreateDataKey(ctx, "acme", pay, event("acme", "key.create", "key/payments")); err != nil {
		t.Fatalf("CreateDataKey(ctx, acme, payments) = %v", err)
	}
	pay.OrgID = "acme"
	for v := uint32(2); v <= 3; v++ {
		dv := newVersion("acme", "payments", v)
		if err := s.AddDataKeyVersion(ctx, "acme", "payments", dv, event("acme", "key.rotate", "key/payments")); err != nil {
			t.Fatalf("AddDataKeyVersion(ctx, acme, payments, %d) = %v", v, err)
		}
		pay.Versions = append(pay.Versions, dv)
		pay.LatestVersion = v
	}
	if err := s.SetMinDecryptionVersion(ctx, "acme", "payments", 2, event("acme", "key.set_min_decryption_version", "key/payments")); err != nil {
		t.Fatalf("SetMinDecryptionVersion(ctx, acme, payments, 2) = %v", err)
	}
	pay.MinDecryptionVersion = 2

	got, err := s.GetDataKey(ctx, "acme", "payments")
	if err != nil {
		t.Fatalf("GetDataKey(ctx, acme, payments) = %v", err)
	}
	checkDataKey(t, got, pay, true)

	list, err := s.ListDataKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("ListDataKeys(ctx, acme) = %v", err)
	}
	if len(list) != 2 || list[0].Name != "default" || list[1].Name != "payments" {
		t.Fatalf("ListDataKeys(ctx, acme) = %v, want default and payments", list)
	}
	checkDataKey(t, list[0], f.first, false)
	checkDataKey(t, list[1], pay, false)

	var actions []string
	for _, e := range auditLog(t, s, "acme") {
		actions = append(actions, e.Action)
	}
	want := []string{"org.create", "key.create", "key.rotate", "key.rotate", "key.set_min_decryption_version"}
	if !slices.Equal(actions, want) {
		t.Errorf("audit actions = %v, want %v", actions, want)
	}
}

func testVersionRace(t *testing.T, s Store) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	const rounds, racers = 10, 4
	for round := range rounds {
		v := uint32(round + 2)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				dv := newVersion("acme", "default", v)
				dv.Wrapped = material(fmt.Sprintf("racer %d", i), 60)
				errs[i] = s.AddDataKeyVersion(ctx, "acme", "default", dv, event("acme", "key.rotate", fmt.Sprintf("racer/%d", i)))
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: racers %d and %d both added version %d", round, winner, i, v)
			case err == nil:
				winner = i
			default:
				checkKind(t, fmt.Sprintf("round %d: AddDataKeyVersion(ctx, acme, default, %d) by a loser", round, v), err, fault.Conflict)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no racer added version %d: %v", round, v, errs)
		}
		dk, err := s.GetDataKey(ctx, "acme", "default")
		if err != nil {
			t.Fatalf("GetDataKey(ctx, acme, default) = %v", err)
		}
		if dk.LatestVersion != v || len(dk.Versions) != int(v) || !bytes.Equal(dk.Versions[v-1].Wrapped, material(fmt.Sprintf("racer %d", winner), 60)) {
			t.Fatalf("round %d: key = latest %d, %d versions; want %d with the winner's material", round, dk.LatestVersion, len(dk.Versions), v)
		}
		evs := auditLog(t, s, "acme")
		if len(evs) != round+2 || evs[len(evs)-1].Target != fmt.Sprintf("racer/%d", winner) {
			t.Fatalf("round %d: audit log has %d events (last %+v), want %d ending with the winner's", round, len(evs), evs[len(evs)-1], round+2)
		}
	}
}
