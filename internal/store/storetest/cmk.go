package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// CMKStore is a storage implementation that also stores customer managed
// key state.
type CMKStore interface {
	Store
	cmk.Store
}

// Peer is an optional capability of a store under test: a second store on
// the same database, as a second orgkms node opens it (PostgreSQL). Cases
// that race two nodes use the same store twice when it is missing (SQLite
// allows one node).
type Peer interface {
	Peer(t *testing.T) CMKStore
}

// peer returns s's peer store, or s.
func peer(t *testing.T, s CMKStore) CMKStore {
	if p, ok := s.(Peer); ok {
		return p.Peer(t)
	}
	return s
}

// RunCMK runs the suite of [cmk.Store]. open is as for [Run].
func RunCMK(t *testing.T, open func(t *testing.T) CMKStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s CMKStore)
	}{
		{"RecordRoundTrip", testCMKRecordRoundTrip},
		{"ListCMK", testListCMK},
		{"ConsentRequest", testConsentRequest},
		{"ConsentRequestConcurrent", testConsentRequestConcurrent},
		{"PendingWrapping", testPendingWrapping},
		{"SwitchWrapping", testSwitchWrapping},
		{"StartJobConflict", testStartJobConflict},
		{"ClaimJob", testClaimJob},
		{"JobRetryBackoff", testJobRetryBackoff},
		{"ClaimJobConcurrent", testClaimJobConcurrent},
		{"JobFence", testJobFence},
		{"ClaimProbes", testClaimProbes},
		{"ReleaseProbes", testReleaseProbes},
		{"StartJobs", testStartJobs},
		{"StartJobsConcurrent", testStartJobsConcurrent},
		{"ClaimJobs", testClaimJobs},
		{"ClaimJobsConcurrent", testClaimJobsConcurrent},
		{"SwitchWrappings", testSwitchWrappings},
		{"SwitchWrappingsConcurrent", testSwitchWrappingsConcurrent},
		{"AddJobWrappings", testAddJobWrappings},
		{"GetCMKs", testGetCMKs},
		{"RootKeysOf", testRootKeysOf},
		{"AddJobWrappingsConcurrent", testAddJobWrappingsConcurrent},
		{"CMKInvalid", testCMKInvalid},
		{"CMKTenantIsolation", testCMKTenantIsolation},
		{"CMKRevision", testCMKRevision},
		{"Nodes", testNodes},
		{"Generations", testGenerations},
		{"GenerationsConcurrent", testGenerationsConcurrent},
		{"Receipts", testReceipts},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// cmkKey is the customer's key of org as a master key reference.
func cmkKey(org string) masterkey.Ref {
	return masterkey.Ref{Provider: "azurekv", ID: "contoso-kv.vault.azure.net/keys/orgkms-" + org}
}

// newRecord returns a record of org in state with every field set, times
// with nanoseconds and a zone.
func newRecord(org string, state cmk.State) cmk.Record {
	k := cmkKey(org)
	return cmk.Record{
		OrgID: org, State: state, TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", ConsentedAt: base.Add(time.Minute), ConsentedBy: "user:alice@" + org,
		VaultURI: "https://contoso-kv.vault.azure.net/", KeyName: "orgkms-" + org, KeyVersion: "0123456789abcdef0123456789abcdef", KeyURI: k.String(),
		ActiveKeyURI: k.String(), ActiveVersion: "0123456789abcdef0123456789abcdef",
		ReasonCode: "cmk_key_disabled", Reason: "key orgkms-" + org + " is disabled ✗; enable it",
		RecoverableUntil: base.Add(90 * 24 * time.Hour), RevokedSince: base.Add(2 * time.Hour),
		LastProbeAt: base.Add(3 * time.Hour), LastProbeError: "throttled", Degraded: true,
		UpdatedAt: base.Add(4 * time.Hour),
	}
}

// storedRecord returns what a store gives back for r: times in UTC at µs.
func storedRecord(r cmk.Record) cmk.Record {
	for _, t := range []*time.Time{&r.ConsentedAt, &r.RecoverableUntil, &r.RevokedSince, &r.LastProbeAt, &r.UpdatedAt} {
		*t = storedTime(*t)
	}
	return r
}

func storedJob(j cmk.Job) cmk.Job {
	for _, t := range []*time.Time{&j.LeaseUntil, &j.NotBefore, &j.CreatedAt, &j.UpdatedAt} {
		*t = storedTime(*t)
	}
	return j
}

func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return micro(t).UTC()
}

// atRevision returns r with Revision rev: a record read at rev, or what a
// store gives back after its rev-th successful write.
func atRevision(r cmk.Record, rev int64) cmk.Record {
	r.Revision = rev
	return r
}

// checkRecord compares records, Revision included: a want read back after
// n successful writes has Revision n (see [atRevision]).
func checkRecord(t *testing.T, call string, got, want cmk.Record) {
	t.Helper()
	if g, w := storedRecord(got), storedRecord(want); g != w {
		t.Errorf("%s =\n\t%+v\nwant\n\t%+v", call, g, w)
	}
}

// checkJob compares jobs, ignoring UpdatedAt, which the store may set.
func checkJob(t *testing.T, call string, got, want cmk.Job) {
	t.Helper()
	g, w := storedJob(got), storedJob(want)
	g.UpdatedAt, w.UpdatedAt = time.Time{}, time.Time{}
	if g != w {
		t.Errorf("%s =\n\t%+v\nwant\n\t%+v", call, g, w)
	}
}

func getCMK(t *testing.T, s CMKStore, org string) cmk.Record {
	t.Helper()
	r, err := s.GetCMK(t.Context(), org)
	if err != nil {
		t.Fatalf("GetCMK(ctx, %s) = %v", org, err)
	}
	return r
}

// revision returns the stored revision of org's record, 0 if it has none:
// the Revision its next write must carry.
func revision(t *testing.T, s CMKStore, org string) int64 {
	t.Helper()
	r, err := s.GetCMK(t.Context(), org)
	if fault.KindOf(err) == fault.NotFound {
		return 0
	}
	if err != nil {
		t.Fatalf("GetCMK(ctx, %s) = %v", org, err)
	}
	return r.Revision
}

func newJob(org string, kind cmk.JobKind) cmk.Job {
	return cmk.Job{OrgID: org, Kind: kind, Target: cmkKey(org).String(), CreatedAt: base, UpdatedAt: base}
}

// startJob starts j, storing a record in state at the org's current
// revision.
func startJob(t *testing.T, s CMKStore, j cmk.Job, state cmk.State) cmk.Job {
	t.Helper()
	rec := atRevision(newRecord(j.OrgID, state), revision(t, s, j.OrgID))
	got, err := s.StartJob(t.Context(), j, rec, event(j.OrgID, "cmk.job.start", "job/"+string(j.Kind)))
	if err != nil {
		t.Fatalf("StartJob(ctx, %s %s) = %v", j.OrgID, j.Kind, err)
	}
	return got
}

func claim(t *testing.T, s CMKStore, owner string, now time.Time, lease time.Duration) cmk.Job {
	t.Helper()
	j, err := s.ClaimJob(t.Context(), owner, now, lease)
	if err != nil {
		t.Fatalf("ClaimJob(ctx, %s, %v, %v) = %v", owner, now, lease, err)
	}
	return j
}

func pendingWrapping(org, version string) keys.RootKeyWrapping {
	return keys.RootKeyWrapping{OrgID: org, State: keys.WrappingPending, CreatedAt: base.Add(time.Hour),
		Wrapped: masterkey.Wrapped{Ciphertext: material("cmk/"+org+"/"+version, 256), Key: cmkKey(org).WithVersion(version)}}
}

func checkWrapping(t *testing.T, call string, got, want keys.RootKeyWrapping) {
	t.Helper()
	if got.OrgID != want.OrgID || got.State != want.State || got.Wrapped.Key != want.Wrapped.Key ||
		!bytes.Equal(got.Wrapped.Ciphertext, want.Wrapped.Ciphertext) || !got.CreatedAt.Equal(micro(want.CreatedAt)) {
		t.Errorf("%s = {org %s state %s key %v created %v}, want {org %s state %s key %v created %v} and the same ciphertext",
			call, got.OrgID, got.State, got.Wrapped.Key, got.CreatedAt, want.OrgID, want.State, want.Wrapped.Key, micro(want.CreatedAt))
	}
}

func testCMKRecordRoundTrip(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	_, err := s.GetCMK(ctx, "acme")
	checkKind(t, "GetCMK(ctx, acme) before the CMK flow", err, fault.NotFound)

	full := newRecord("acme", cmk.StateRevoked)
	ev := event("acme", "cmk.revoke", "cmk")
	if err := s.PutCMK(ctx, full, &ev); err != nil {
		t.Fatalf("PutCMK(ctx, acme full) = %v", err)
	}
	checkRecord(t, "GetCMK(ctx, acme) after PutCMK", getCMK(t, s, "acme"), atRevision(full, 1))
	evs := auditLog(t, s, "acme")
	if len(evs) != 2 {
		t.Fatalf("audit log of acme has %d events after PutCMK, want 2", len(evs))
	}
	want := ev
	want.Seq, want.PrevHash = 2, evs[0].Hash
	checkEvent(t, evs[1], want)

	// Replacing with zero times and empty strings clears them; no event.
	sparse := cmk.Record{OrgID: "acme", State: cmk.StateAuthorized, Revision: 1}
	if err := s.PutCMK(ctx, sparse, nil); err != nil {
		t.Fatalf("PutCMK(ctx, acme sparse, nil) = %v", err)
	}
	got := getCMK(t, s, "acme")
	checkRecord(t, "GetCMK(ctx, acme) after a sparse PutCMK", got, atRevision(sparse, 2))
	for name, tm := range map[string]time.Time{"ConsentedAt": got.ConsentedAt, "RecoverableUntil": got.RecoverableUntil,
		"RevokedSince": got.RevokedSince, "LastProbeAt": got.LastProbeAt, "UpdatedAt": got.UpdatedAt} {
		if !tm.IsZero() {
			t.Errorf("GetCMK(ctx, acme).%s = %v, want the zero time", name, tm)
		}
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("audit log of acme has %d events after PutCMK(nil event), want 2", len(evs))
	}

	// An event with no org ID gets the record's.
	ev2 := event("", "cmk.authorize", "cmk")
	if err := s.PutCMK(ctx, atRevision(full, 2), &ev2); err != nil {
		t.Fatalf("PutCMK(ctx, acme, event without org) = %v", err)
	}
	checkRecord(t, "GetCMK(ctx, acme) after a third PutCMK", getCMK(t, s, "acme"), atRevision(full, 3))
	if evs := auditLog(t, s, "acme"); len(evs) != 3 || evs[2].OrgID != "acme" || evs[2].Action != "cmk.authorize" {
		t.Errorf("audit log of acme = %+v, want a third event cmk.authorize of acme", evs)
	}

	// A missing org stores nothing.
	ghost := newRecord("ghost", cmk.StateAuthorized)
	gev := event("ghost", "cmk.authorize", "cmk")
	checkKind(t, "PutCMK(ctx, ghost)", s.PutCMK(ctx, ghost, &gev), fault.NotFound)
	if evs := auditLog(t, s, "ghost"); len(evs) != 0 {
		t.Errorf("audit log of ghost has %d events after a failed PutCMK", len(evs))
	}
	_, err = s.GetCMK(ctx, "ghost")
	checkKind(t, "GetCMK(ctx, ghost)", err, fault.NotFound)
}

func testListCMK(t *testing.T, s CMKStore) {
	ctx := t.Context()
	states := map[string]cmk.State{"d": cmk.StatePlatform, "a": cmk.StateActive, "c": cmk.StateActive, "b": cmk.StateRevoked}
	for _, org := range []string{"d", "c", "b", "a", "e"} {
		createOrg(t, s, org)
		if st, ok := states[org]; ok {
			if err := s.PutCMK(ctx, newRecord(org, st), nil); err != nil {
				t.Fatalf("PutCMK(ctx, %s) = %v", org, err)
			}
		}
	}
	for _, tc := range []struct {
		states []cmk.State
		want   []string
	}{
		{nil, []string{"a", "b", "c", "d"}},
		{[]cmk.State{cmk.StateActive}, []string{"a", "c"}},
		{[]cmk.State{cmk.StateRevoked, cmk.StateActive}, []string{"a", "b", "c"}},
		{[]cmk.State{cmk.StateLost}, nil},
		{[]cmk.State{cmk.StateLost, cmk.StatePlatform}, []string{"d"}},
	} {
		rs, err := s.ListCMK(ctx, tc.states...)
		if err != nil {
			t.Fatalf("ListCMK(ctx, %v) = %v", tc.states, err)
		}
		var got []string
		for _, r := range rs {
			got = append(got, r.OrgID)
			checkRecord(t, fmt.Sprintf("ListCMK(ctx, %v) record of %s", tc.states, r.OrgID), r, atRevision(newRecord(r.OrgID, states[r.OrgID]), 1))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListCMK(ctx, %v) = %v, want %v", tc.states, got, tc.want)
		}
	}
}

func testConsentRequest(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	c := cmk.ConsentRequest{State: "c3RhdGUtb25l_-", OrgID: "acme", Actor: "user:alice@acme", TenantID: "tenant-1", ExpiresAt: base.Add(10 * time.Minute)}
	if err := s.PutConsentRequest(ctx, c); err != nil {
		t.Fatalf("PutConsentRequest(ctx, one) = %v", err)
	}
	checkKind(t, "PutConsentRequest(ctx, one) twice", s.PutConsentRequest(ctx, c), fault.Conflict)
	ghost := c
	ghost.State, ghost.OrgID = "ghost-state", "ghost"
	checkKind(t, "PutConsentRequest(ctx, org ghost)", s.PutConsentRequest(ctx, ghost), fault.NotFound)

	got, err := s.TakeConsentRequest(ctx, c.State, base)
	if err != nil {
		t.Fatalf("TakeConsentRequest(ctx, one, before expiry) = %v", err)
	}
	if got.State != c.State || got.OrgID != c.OrgID || got.Actor != c.Actor || got.TenantID != c.TenantID || !got.ExpiresAt.Equal(micro(c.ExpiresAt)) {
		t.Errorf("TakeConsentRequest(ctx, one) = %+v, want %+v", got, c)
	}
	// Single use.
	_, err = s.TakeConsentRequest(ctx, c.State, base)
	checkKind(t, "TakeConsentRequest(ctx, one) twice", err, fault.NotFound)
	_, err = s.TakeConsentRequest(ctx, "never-stored", base)
	checkKind(t, "TakeConsentRequest(ctx, never stored)", err, fault.NotFound)

	// Expired: at and after ExpiresAt.
	for i, now := range []time.Time{micro(c.ExpiresAt), micro(c.ExpiresAt).Add(time.Microsecond), c.ExpiresAt.Add(24 * time.Hour)} {
		e := c
		e.State = fmt.Sprintf("expired-%d", i)
		if err := s.PutConsentRequest(ctx, e); err != nil {
			t.Fatalf("PutConsentRequest(ctx, %s) = %v", e.State, err)
		}
		_, err := s.TakeConsentRequest(ctx, e.State, now)
		checkKind(t, fmt.Sprintf("TakeConsentRequest(ctx, %s, %v after expiry)", e.State, now.Sub(c.ExpiresAt)), err, fault.NotFound)
	}
	// One microsecond before expiry is still valid.
	last := c
	last.State = "last"
	if err := s.PutConsentRequest(ctx, last); err != nil {
		t.Fatalf("PutConsentRequest(ctx, last) = %v", err)
	}
	if _, err := s.TakeConsentRequest(ctx, "last", micro(c.ExpiresAt).Add(-time.Microsecond)); err != nil {
		t.Errorf("TakeConsentRequest(ctx, last, 1µs before expiry) = %v", err)
	}
}

// testConsentRequestConcurrent takes one consent request from several
// goroutines at once: a request is single use, so exactly one gets it.
func testConsentRequestConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	for round := range 5 {
		c := cmk.ConsentRequest{State: fmt.Sprintf("race-%d", round), OrgID: "acme", Actor: "user:alice@acme", TenantID: "tenant-1", ExpiresAt: base.Add(10 * time.Minute)}
		if err := s.PutConsentRequest(ctx, c); err != nil {
			t.Fatalf("PutConsentRequest(ctx, %s) = %v", c.State, err)
		}
		const takers = 8
		var (
			wg   sync.WaitGroup
			errs [takers]error
		)
		for i := range takers {
			wg.Go(func() { _, errs[i] = s.TakeConsentRequest(ctx, c.State, base) })
		}
		wg.Wait()
		took := 0
		for i, err := range errs {
			switch {
			case err == nil:
				took++
			case fault.KindOf(err) != fault.NotFound:
				t.Errorf("round %d: TakeConsentRequest(ctx, %s) by taker %d = %v, want nil or NotFound", round, c.State, i, err)
			}
		}
		if took != 1 {
			t.Errorf("round %d: %d of %d concurrent takes of consent request %s succeeded, want exactly 1", round, took, takers, c.State)
		}
	}
}

func testPendingWrapping(t *testing.T, s CMKStore) {
	ctx := t.Context()
	f := createOrg(t, s, "acme")
	w1 := pendingWrapping("acme", "v1")
	id1, err := s.AddPendingWrapping(ctx, "acme", w1)
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, acme, v1) = %v", err)
	}
	ws, err := s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, acme) = %v", err)
	}
	if len(ws) != 2 {
		t.Fatalf("RootKeys(ctx, acme) = %d wrappings, want 2 (active, pending)", len(ws))
	}
	checkWrapping(t, "RootKeys(ctx, acme)[0]", ws[0], f.root)
	checkWrapping(t, "RootKeys(ctx, acme)[1]", ws[1], w1)
	if ws[1].ID != id1 || id1 == ws[0].ID {
		t.Errorf("pending wrapping ID = %d, AddPendingWrapping returned %d, active is %d", ws[1].ID, id1, ws[0].ID)
	}

	// A second pending wrapping replaces the first; the org ID may be left
	// to the argument.
	w2 := pendingWrapping("acme", "v2")
	w2.OrgID, w2.State = "", ""
	id2, err := s.AddPendingWrapping(ctx, "acme", w2)
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, acme, v2) = %v", err)
	}
	if id2 == id1 {
		t.Errorf("AddPendingWrapping(ctx, acme, v2) reused ID %d", id1)
	}
	ws, err = s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, acme) = %v", err)
	}
	if len(ws) != 2 {
		t.Fatalf("RootKeys(ctx, acme) after a second pending wrapping = %d wrappings, want 2", len(ws))
	}
	checkWrapping(t, "RootKeys(ctx, acme)[0]", ws[0], f.root)
	w2.OrgID, w2.State = "acme", keys.WrappingPending
	checkWrapping(t, "RootKeys(ctx, acme)[1]", ws[1], w2)
	if ws[1].ID != id2 {
		t.Errorf("pending wrapping ID = %d, want %d", ws[1].ID, id2)
	}

	_, err = s.AddPendingWrapping(ctx, "ghost", pendingWrapping("ghost", "v1"))
	checkKind(t, "AddPendingWrapping(ctx, ghost)", err, fault.NotFound)
}

func testSwitchWrapping(t *testing.T, s CMKStore) {
	ctx := t.Context()
	a := createOrg(t, s, "acme")
	b := createOrg(t, s, "other")
	pa := pendingWrapping("acme", "v1")
	idA, err := s.AddPendingWrapping(ctx, "acme", pa)
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, acme) = %v", err)
	}
	idB, err := s.AddPendingWrapping(ctx, "other", pendingWrapping("other", "v1"))
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, other) = %v", err)
	}
	before, err := s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, acme) = %v", err)
	}
	activeA := before[0].ID
	rec := newRecord("acme", cmk.StateActive)
	ev := event("acme", "cmk.switch", "cmk")
	master := cmkKey("acme")

	for _, tc := range []struct {
		name     string
		id       int64
		master   masterkey.Ref
		wantKind fault.Kind
	}{
		{"foreign wrapping", idB, master, fault.NotFound},
		{"unknown wrapping", idB + 1000, master, fault.NotFound},
		{"active wrapping", activeA, master, fault.NotFound},
		{"versioned master", idA, master.WithVersion("v1"), fault.Invalid},
	} {
		err := s.SwitchWrapping(ctx, "acme", tc.id, tc.master, rec, ev, nil)
		checkKind(t, fmt.Sprintf("SwitchWrapping(ctx, acme, %s)", tc.name), err, tc.wantKind)
	}
	checkKind(t, "SwitchWrapping(ctx, ghost)", s.SwitchWrapping(ctx, "ghost", idA, cmkKey("ghost"), newRecord("ghost", cmk.StateActive),
		event("ghost", "cmk.switch", "cmk"), nil), fault.NotFound)

	// The failed switches changed nothing.
	after, err := s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, acme) = %v", err)
	}
	if len(after) != 2 || after[0].ID != activeA || after[0].State != keys.WrappingActive || after[1].ID != idA || after[1].State != keys.WrappingPending {
		t.Errorf("RootKeys(ctx, acme) after failed switches = %+v, want the active and the pending wrapping unchanged", after)
	}
	if org, err := s.GetOrg(ctx, "acme"); err != nil || org.MasterKey != a.org.MasterKey {
		t.Errorf("GetOrg(ctx, acme) after failed switches = %+v, %v; want master key %v", org, err, a.org.MasterKey)
	}
	if _, err := s.GetCMK(ctx, "acme"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetCMK(ctx, acme) after failed switches kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 1 {
		t.Errorf("audit log of acme has %d events after failed switches, want 1", len(evs))
	}

	// The switch.
	if err := s.SwitchWrapping(ctx, "acme", idA, master, rec, ev, nil); err != nil {
		t.Fatalf("SwitchWrapping(ctx, acme, %d) = %v", idA, err)
	}
	ws, err := s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, acme) = %v", err)
	}
	if len(ws) != 1 || ws[0].ID != idA {
		t.Fatalf("RootKeys(ctx, acme) after the switch = %+v, want only wrapping %d", ws, idA)
	}
	pa.State = keys.WrappingActive
	checkWrapping(t, "RootKeys(ctx, acme)[0] after the switch", ws[0], pa)
	org, err := s.GetOrg(ctx, "acme")
	if err != nil {
		t.Fatalf("GetOrg(ctx, acme) = %v", err)
	}
	if org.MasterKey != master {
		t.Errorf("GetOrg(ctx, acme).MasterKey after the switch = %v, want %v", org.MasterKey, master)
	}
	checkRecord(t, "GetCMK(ctx, acme) after the switch", getCMK(t, s, "acme"), atRevision(rec, 1))
	evs := auditLog(t, s, "acme")
	if len(evs) != 2 {
		t.Fatalf("audit log of acme has %d events after the switch, want 2", len(evs))
	}
	want := ev
	want.Seq, want.PrevHash = 2, evs[0].Hash
	checkEvent(t, evs[1], want)

	// Once switched, the wrapping is no longer pending.
	checkKind(t, "SwitchWrapping(ctx, acme) twice", s.SwitchWrapping(ctx, "acme", idA, master, atRevision(rec, 1), ev, nil), fault.NotFound)

	// The other org is untouched.
	wb, err := s.RootKeys(ctx, "other")
	if err != nil {
		t.Fatalf("RootKeys(ctx, other) = %v", err)
	}
	if len(wb) != 2 || wb[0].State != keys.WrappingActive || wb[1].ID != idB || wb[1].State != keys.WrappingPending {
		t.Errorf("RootKeys(ctx, other) = %+v, want its active and pending wrappings", wb)
	}
	checkWrapping(t, "RootKeys(ctx, other)[0]", wb[0], b.root)
	if org, err := s.GetOrg(ctx, "other"); err != nil || org.MasterKey != b.org.MasterKey {
		t.Errorf("GetOrg(ctx, other) = %+v, %v; want master key %v", org, err, b.org.MasterKey)
	}

	// Back to the platform key: the CMK wrapping goes.
	pp := keys.RootKeyWrapping{State: keys.WrappingPending, CreatedAt: base.Add(2 * time.Hour),
		Wrapped: masterkey.Wrapped{Ciphertext: material("back", 72), Key: a.org.MasterKey.WithVersion("v9")}}
	idP, err := s.AddPendingWrapping(ctx, "acme", pp)
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, acme, platform) = %v", err)
	}
	if err := s.SwitchWrapping(ctx, "acme", idP, a.org.MasterKey, cmk.Record{State: cmk.StatePlatform, Revision: 1}, event("", "cmk.deactivate", "cmk"), nil); err != nil {
		t.Fatalf("SwitchWrapping(ctx, acme, platform) = %v", err)
	}
	if ws, err := s.RootKeys(ctx, "acme"); err != nil || len(ws) != 1 || ws[0].ID != idP || ws[0].State != keys.WrappingActive {
		t.Errorf("RootKeys(ctx, acme) after switching back = %+v, %v; want only wrapping %d, active", ws, err, idP)
	}
	if org, err := s.GetOrg(ctx, "acme"); err != nil || org.MasterKey != a.org.MasterKey {
		t.Errorf("GetOrg(ctx, acme) after switching back = %+v, %v; want master key %v", org, err, a.org.MasterKey)
	}
	checkRecord(t, "GetCMK(ctx, acme) after switching back", getCMK(t, s, "acme"), cmk.Record{OrgID: "acme", State: cmk.StatePlatform, Revision: 2})
	auditLog(t, s, "acme")
}

func testStartJobConflict(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	_, err := s.OrgJob(ctx, "acme")
	checkKind(t, "OrgJob(ctx, acme) without jobs", err, fault.NotFound)

	j := newJob("acme", cmk.JobActivate)
	j.Step, j.State, j.Attempts, j.Owner, j.LeaseUntil = "", cmk.JobDone, 7, "someone", base // ignored
	j1 := startJob(t, s, j, cmk.StateActivating)
	if j1.ID == 0 {
		t.Errorf("StartJob(ctx, acme) returned job ID 0")
	}
	want := newJob("acme", cmk.JobActivate)
	want.ID, want.State = j1.ID, cmk.JobPending
	checkJob(t, "StartJob(ctx, acme)", j1, want)
	for name, get := range map[string]func() (cmk.Job, error){
		"GetJob": func() (cmk.Job, error) { return s.GetJob(ctx, j1.ID) },
		"OrgJob": func() (cmk.Job, error) { return s.OrgJob(ctx, "acme") },
	} {
		got, err := get()
		if err != nil {
			t.Fatalf("%s(ctx) = %v", name, err)
		}
		checkJob(t, name+"(ctx)", got, want)
	}
	checkRecord(t, "GetCMK(ctx, acme) after StartJob", getCMK(t, s, "acme"), atRevision(newRecord("acme", cmk.StateActivating), 1))
	if evs := auditLog(t, s, "acme"); len(evs) != 2 || evs[1].Action != "cmk.job.start" {
		t.Errorf("audit log of acme after StartJob = %+v, want org.create, cmk.job.start", evs)
	}

	conflict := func(when string) {
		t.Helper()
		// The record is current: the Conflict is the open job's.
		rec := atRevision(newRecord("acme", cmk.StateDeactivating), 1)
		_, err := s.StartJob(ctx, newJob("acme", cmk.JobDeactivate), rec, event("acme", "cmk.job.start", "job/2"))
		checkKind(t, "StartJob(ctx, acme) while a job is "+when, err, fault.Conflict)
		if fe := fault.As(err); fe != nil && !strings.Contains(fe.Reason, "a CMK job is already running for org acme") {
			t.Errorf("StartJob(ctx, acme) while a job is %s reason = %q, want it to say a job is already running", when, fe.Reason)
		}
		if r, err := s.GetCMK(ctx, "acme"); err != nil || r.State != cmk.StateActivating || r.Revision != 1 {
			t.Errorf("GetCMK(ctx, acme) after a conflicting StartJob = %+v, %v; want state %s at revision 1", r, err, cmk.StateActivating)
		}
		if got, err := s.OrgJob(ctx, "acme"); err != nil || got.ID != j1.ID {
			t.Errorf("OrgJob(ctx, acme) after a conflicting StartJob = %+v, %v; want job %d", got, err, j1.ID)
		}
	}
	conflict("pending")
	running := claim(t, s, "node-1", base, time.Minute)
	if running.ID != j1.ID {
		t.Fatalf("ClaimJob claimed job %d, want %d", running.ID, j1.ID)
	}
	conflict("running")
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("audit log of acme has %d events after conflicting StartJobs, want 2", len(evs))
	}

	// Finishing lets the next job start.
	running.State, running.Step = cmk.JobDone, "switched"
	if err := s.FinishJob(ctx, running, atRevision(newRecord("acme", cmk.StateActive), 1), event("acme", "cmk.job.done", "job/1")); err != nil {
		t.Fatalf("FinishJob(ctx, job %d) = %v", running.ID, err)
	}
	checkRecord(t, "GetCMK(ctx, acme) after FinishJob", getCMK(t, s, "acme"), atRevision(newRecord("acme", cmk.StateActive), 2))
	done, err := s.GetJob(ctx, j1.ID)
	if err != nil {
		t.Fatalf("GetJob(ctx, %d) = %v", j1.ID, err)
	}
	checkJob(t, "GetJob(ctx) after FinishJob", done, running)
	j2 := startJob(t, s, newJob("acme", cmk.JobRotate), cmk.StateRotating)
	checkRecord(t, "GetCMK(ctx, acme) after the second StartJob", getCMK(t, s, "acme"), atRevision(newRecord("acme", cmk.StateRotating), 3))
	if j2.ID <= j1.ID {
		t.Errorf("second job ID = %d, want above %d", j2.ID, j1.ID)
	}
	if got, err := s.OrgJob(ctx, "acme"); err != nil || got.ID != j2.ID || got.Kind != cmk.JobRotate {
		t.Errorf("OrgJob(ctx, acme) = %+v, %v; want the latest job %d", got, err, j2.ID)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 4 {
		t.Errorf("audit log of acme has %d events, want 4 (create, start, done, start)", len(evs))
	}

	_, err = s.StartJob(ctx, newJob("ghost", cmk.JobActivate), newRecord("ghost", cmk.StateActivating), event("ghost", "x", "y"))
	checkKind(t, "StartJob(ctx, ghost)", err, fault.NotFound)
	_, err = s.GetJob(ctx, j2.ID+1000)
	checkKind(t, "GetJob(ctx, unknown)", err, fault.NotFound)
}

func testClaimJob(t *testing.T, s CMKStore) {
	ctx := t.Context()
	for _, org := range []string{"a", "b", "c"} {
		createOrg(t, s, org)
	}
	_, err := s.ClaimJob(ctx, "node-1", base, time.Minute)
	checkKind(t, "ClaimJob(ctx) without jobs", err, fault.NotFound)

	ja := startJob(t, s, newJob("a", cmk.JobActivate), cmk.StateActivating)
	jb := newJob("b", cmk.JobActivate)
	jb.NotBefore = base.Add(time.Hour)
	jb = startJob(t, s, jb, cmk.StateActivating)
	jc := startJob(t, s, newJob("c", cmk.JobActivate), cmk.StateActivating)

	// Oldest first; b waits for its NotBefore.
	got := claim(t, s, "node-1", base, time.Minute)
	want := ja
	want.State, want.Owner, want.Attempts, want.Fence, want.LeaseUntil = cmk.JobRunning, "node-1", 1, 1, base.Add(time.Minute)
	checkJob(t, "ClaimJob(ctx, node-1) first", got, want)
	if got := claim(t, s, "node-2", base, 2*time.Minute); got.ID != jc.ID || got.Owner != "node-2" || got.Attempts != 1 {
		t.Errorf("ClaimJob(ctx, node-2) = job %d owner %s attempts %d, want job %d (c) owner node-2 attempts 1", got.ID, got.Owner, got.Attempts, jc.ID)
	}
	_, err = s.ClaimJob(ctx, "node-3", base, time.Minute)
	checkKind(t, "ClaimJob(ctx, node-3) while leases are held and b waits", err, fault.NotFound)
	_, err = s.ClaimJob(ctx, "node-3", base.Add(30*time.Second), time.Minute)
	checkKind(t, "ClaimJob(ctx, node-3) 30s later", err, fault.NotFound)

	// node-1 renews its lease and records progress.
	got.Step, got.LeaseUntil = "copied", base.Add(90*time.Second)
	if err := s.UpdateJob(ctx, got); err != nil {
		t.Fatalf("UpdateJob(ctx, job a by node-1) = %v", err)
	}
	if g, err := s.GetJob(ctx, ja.ID); err != nil || g.Step != "copied" || !g.LeaseUntil.Equal(micro(got.LeaseUntil)) {
		t.Errorf("GetJob(ctx, a) = %+v, %v; want step copied and the renewed lease", g, err)
	}
	_, err = s.ClaimJob(ctx, "node-3", base.Add(70*time.Second), time.Minute)
	checkKind(t, "ClaimJob(ctx, node-3) while a's renewed lease holds", err, fault.NotFound)

	// node-1 dies: at the lease's end node-3 takes a over (c's lease holds).
	now := base.Add(90 * time.Second)
	taken := claim(t, s, "node-3", now, time.Minute)
	want = got
	want.Owner, want.Attempts, want.Fence, want.LeaseUntil = "node-3", 2, 2, now.Add(time.Minute)
	checkJob(t, "ClaimJob(ctx, node-3) after a's lease expired", taken, want)

	// node-1 comes back: its lease was taken over.
	stale := got
	stale.Step = "verified"
	checkKind(t, "UpdateJob(ctx, job a by node-1) after the takeover", s.UpdateJob(ctx, stale), fault.Conflict)
	stale.State = cmk.JobDone
	// (The record is current: the Conflict is the lost lease's.)
	checkKind(t, "FinishJob(ctx, job a by node-1) after the takeover",
		s.FinishJob(ctx, stale, atRevision(newRecord("a", cmk.StateActive), 1), event("a", "cmk.job.done", "job")), fault.Conflict)
	if g, err := s.GetJob(ctx, ja.ID); err != nil || g.Step != "copied" || g.Owner != "node-3" || g.State != cmk.JobRunning {
		t.Errorf("GetJob(ctx, a) after node-1's stale writes = %+v, %v; want node-3's running job at step copied", g, err)
	}
	if r, err := s.GetCMK(ctx, "a"); err != nil || r.State != cmk.StateActivating || r.Revision != 1 {
		t.Errorf("GetCMK(ctx, a) after a stale FinishJob = %+v, %v; want state %s at revision 1", r, err, cmk.StateActivating)
	}
	if evs := auditLog(t, s, "a"); len(evs) != 2 {
		t.Errorf("audit log of a has %d events after a stale FinishJob, want 2", len(evs))
	}

	// An hour later every lease has expired and b's NotBefore has come:
	// all three are claimable, oldest first.
	now = base.Add(time.Hour)
	if got := claim(t, s, "node-4", now, time.Minute); got.ID != ja.ID || got.Attempts != 3 {
		t.Errorf("ClaimJob(ctx, node-4) at b's NotBefore = job %d attempts %d, want job %d (a) attempts 3", got.ID, got.Attempts, ja.ID)
	}
	if got := claim(t, s, "node-4", now, time.Minute); got.ID != jb.ID || got.Attempts != 1 {
		t.Errorf("ClaimJob(ctx, node-4) next = job %d attempts %d, want job %d (b) attempts 1", got.ID, got.Attempts, jb.ID)
	}
	if got := claim(t, s, "node-4", now, time.Minute); got.ID != jc.ID || got.Attempts != 2 {
		t.Errorf("ClaimJob(ctx, node-4) next = job %d attempts %d, want job %d (c) attempts 2", got.ID, got.Attempts, jc.ID)
	}

	// Finished jobs are never claimed again.
	for _, j := range []cmk.Job{ja, jb, jc} {
		cur, err := s.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatalf("GetJob(ctx, %d) = %v", j.ID, err)
		}
		cur.State, cur.Error = cmk.JobFailed, "key disabled"
		rec := atRevision(newRecord(j.OrgID, cmk.StateRevoked), revision(t, s, j.OrgID))
		if err := s.FinishJob(ctx, cur, rec, event(j.OrgID, "cmk.job.failed", "job")); err != nil {
			t.Fatalf("FinishJob(ctx, %d) = %v", j.ID, err)
		}
		cur.State = cmk.JobRunning
		checkKind(t, "UpdateJob(ctx) of a finished job", s.UpdateJob(ctx, cur), fault.Conflict)
	}
	_, err = s.ClaimJob(ctx, "node-5", base.Add(1000*time.Hour), time.Minute)
	checkKind(t, "ClaimJob(ctx) when every job is finished", err, fault.NotFound)
	checkKind(t, "UpdateJob(ctx, unknown)", s.UpdateJob(ctx, cmk.Job{ID: jc.ID + 1000, Owner: "node-4", State: cmk.JobRunning}), fault.NotFound)
}

// testJobRetryBackoff releases a job with a NotBefore (a retry after a
// transient error) and checks it is claimed again only then.
func testJobRetryBackoff(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	startJob(t, s, newJob("acme", cmk.JobRotate), cmk.StateRotating)
	j := claim(t, s, "node-1", base, time.Minute)
	j.State, j.Error, j.NotBefore, j.LeaseUntil = cmk.JobPending, "key vault throttled", base.Add(5*time.Minute), time.Time{}
	if err := s.UpdateJob(ctx, j); err != nil {
		t.Fatalf("UpdateJob(ctx, release with backoff) = %v", err)
	}
	// Released: node-1 no longer holds it.
	checkKind(t, "UpdateJob(ctx) by node-1 after releasing", s.UpdateJob(ctx, j), fault.Conflict)
	_, err := s.ClaimJob(ctx, "node-2", base.Add(4*time.Minute), time.Minute)
	checkKind(t, "ClaimJob(ctx) before NotBefore", err, fault.NotFound)
	got := claim(t, s, "node-2", base.Add(5*time.Minute), time.Minute)
	want := j
	want.State, want.Owner, want.Attempts, want.Fence, want.LeaseUntil = cmk.JobRunning, "node-2", 2, 2, base.Add(6*time.Minute)
	checkJob(t, "ClaimJob(ctx) at NotBefore", got, want)
}

func testClaimJobConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	var ids []int64
	for _, org := range []string{"a", "b", "c"} {
		createOrg(t, s, org)
		ids = append(ids, startJob(t, s, newJob(org, cmk.JobActivate), cmk.StateActivating).ID)
	}
	const goroutines = 8
	var (
		mu     sync.Mutex
		claims = map[int64][]string{}
		wg     sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			owner := fmt.Sprintf("node-%d", g)
			for {
				j, err := s.ClaimJob(ctx, owner, base, time.Hour)
				if fault.KindOf(err) == fault.NotFound {
					return
				}
				if err != nil {
					t.Errorf("ClaimJob(ctx, %s) = %v", owner, err)
					return
				}
				if j.Owner != owner || j.Attempts != 1 || j.State != cmk.JobRunning {
					t.Errorf("ClaimJob(ctx, %s) = %+v, want running under %s with 1 attempt", owner, j, owner)
				}
				mu.Lock()
				claims[j.ID] = append(claims[j.ID], owner)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if len(claims[id]) != 1 {
			t.Errorf("job %d claimed by %v, want exactly one owner", id, claims[id])
		}
	}
	if len(claims) != len(ids) {
		t.Errorf("claimed jobs %v, want %v", claims, ids)
	}
	for id, owners := range claims {
		if len(owners) == 1 {
			if j, err := s.GetJob(ctx, id); err != nil || j.Owner != owners[0] {
				t.Errorf("GetJob(ctx, %d) = owner %q, %v; want %s", id, j.Owner, err, owners[0])
			}
		}
	}
}

func testCMKInvalid(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "other")
	startJob(t, s, newJob("acme", cmk.JobActivate), cmk.StateActivating)
	running := claim(t, s, "node-1", base, time.Hour)
	pid, err := s.AddPendingWrapping(ctx, "acme", pendingWrapping("acme", "v1"))
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, acme) = %v", err)
	}
	evOther := event("other", "x", "y")
	withState := func(j cmk.Job, st cmk.JobState) cmk.Job { j.State = st; return j }
	// cur is a record of acme at its current revision: these calls fail
	// only for the invalid argument.
	cur := func(st cmk.State) cmk.Record { return atRevision(newRecord("acme", st), 1) }
	for _, tc := range []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"PutCMK/no org", func() error { return s.PutCMK(ctx, cmk.Record{State: cmk.StateAuthorized}, nil) }, fault.Invalid},
		{"PutCMK/no state", func() error { return s.PutCMK(ctx, cmk.Record{OrgID: "acme"}, nil) }, fault.Invalid},
		{"PutCMK/event of other org", func() error { return s.PutCMK(ctx, cur(cmk.StateAuthorized), &evOther) }, fault.Invalid},
		{"PutConsentRequest/no state", func() error {
			return s.PutConsentRequest(ctx, cmk.ConsentRequest{OrgID: "acme", ExpiresAt: base})
		}, fault.Invalid},
		{"PutConsentRequest/no expiry", func() error {
			return s.PutConsentRequest(ctx, cmk.ConsentRequest{State: "s", OrgID: "acme"})
		}, fault.Invalid},
		{"AddPendingWrapping/other org", func() error {
			_, err := s.AddPendingWrapping(ctx, "acme", pendingWrapping("other", "v1"))
			return err
		}, fault.Invalid},
		{"AddPendingWrapping/active", func() error {
			w := pendingWrapping("acme", "v1")
			w.State = keys.WrappingActive
			_, err := s.AddPendingWrapping(ctx, "acme", w)
			return err
		}, fault.Invalid},
		{"AddPendingWrapping/no version", func() error {
			_, err := s.AddPendingWrapping(ctx, "acme", pendingWrapping("acme", ""))
			return err
		}, fault.Invalid},
		{"SwitchWrapping/record of other org", func() error {
			return s.SwitchWrapping(ctx, "acme", pid, cmkKey("acme"), newRecord("other", cmk.StateActive), event("acme", "x", "y"), nil)
		}, fault.Invalid},
		{"SwitchWrapping/event of other org", func() error {
			return s.SwitchWrapping(ctx, "acme", pid, cmkKey("acme"), cur(cmk.StateActive), evOther, nil)
		}, fault.Invalid},
		{"StartJob/no org", func() error {
			_, err := s.StartJob(ctx, newJob("", cmk.JobActivate), newRecord("", cmk.StateActivating), event("", "x", "y"))
			return err
		}, fault.Invalid},
		{"StartJob/record of other org", func() error {
			_, err := s.StartJob(ctx, newJob("other", cmk.JobActivate), newRecord("acme", cmk.StateActivating), evOther)
			return err
		}, fault.Invalid},
		{"ClaimJob/no owner", func() error { _, err := s.ClaimJob(ctx, "", base, time.Minute); return err }, fault.Invalid},
		{"ClaimJob/no lease", func() error { _, err := s.ClaimJob(ctx, "node-2", base, 0); return err }, fault.Invalid},
		{"UpdateJob/done", func() error { return s.UpdateJob(ctx, withState(running, cmk.JobDone)) }, fault.Invalid},
		{"FinishJob/running", func() error {
			return s.FinishJob(ctx, running, cur(cmk.StateActive), event("acme", "x", "y"))
		}, fault.Invalid},
		{"FinishJob/record of other org", func() error {
			return s.FinishJob(ctx, withState(running, cmk.JobDone), newRecord("other", cmk.StateActive), event("acme", "x", "y"))
		}, fault.Invalid},
		{"FinishJob/event of other org", func() error {
			return s.FinishJob(ctx, withState(running, cmk.JobDone), cur(cmk.StateActive), evOther)
		}, fault.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name, tc.call(), tc.wantKind)
		})
	}
	// Nothing changed.
	if j, err := s.GetJob(ctx, running.ID); err != nil || j.State != cmk.JobRunning || j.Owner != "node-1" {
		t.Errorf("GetJob(ctx, %d) after invalid calls = %+v, %v; want running under node-1", running.ID, j, err)
	}
	if ws, err := s.RootKeys(ctx, "acme"); err != nil || len(ws) != 2 {
		t.Errorf("RootKeys(ctx, acme) after invalid calls = %d wrappings, %v; want 2", len(ws), err)
	}
	if _, err := s.GetCMK(ctx, "other"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetCMK(ctx, other) after invalid calls kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}
	checkRecord(t, "GetCMK(ctx, acme) after invalid calls", getCMK(t, s, "acme"), atRevision(newRecord("acme", cmk.StateActivating), 1))
	for org, n := range map[string]int{"acme": 2, "other": 1} {
		if evs := auditLog(t, s, org); len(evs) != n {
			t.Errorf("audit log of %s has %d events after invalid calls, want %d", org, len(evs), n)
		}
	}
}

func testCMKTenantIsolation(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "org-a")
	b := createOrg(t, s, "org-b")
	ja := startJob(t, s, newJob("org-a", cmk.JobActivate), cmk.StateActivating)
	idA, err := s.AddPendingWrapping(ctx, "org-a", pendingWrapping("org-a", "v1"))
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, org-a) = %v", err)
	}

	_, err = s.GetCMK(ctx, "org-b")
	checkKind(t, "GetCMK(ctx, org-b)", err, fault.NotFound)
	_, err = s.OrgJob(ctx, "org-b")
	checkKind(t, "OrgJob(ctx, org-b)", err, fault.NotFound)
	ws, err := s.RootKeys(ctx, "org-b")
	if err != nil {
		t.Fatalf("RootKeys(ctx, org-b) = %v", err)
	}
	if len(ws) != 1 {
		t.Fatalf("RootKeys(ctx, org-b) = %d wrappings, want only its own active one", len(ws))
	}
	checkWrapping(t, "RootKeys(ctx, org-b)[0]", ws[0], b.root)
	checkKind(t, "SwitchWrapping(ctx, org-b, org-a's pending wrapping)",
		s.SwitchWrapping(ctx, "org-b", idA, cmkKey("org-b"), newRecord("org-b", cmk.StateActive), event("org-b", "x", "y"), nil), fault.NotFound)

	// org-b's own job and record do not disturb org-a's.
	jb := startJob(t, s, newJob("org-b", cmk.JobActivate), cmk.StateActivating)
	if got, err := s.OrgJob(ctx, "org-a"); err != nil || got.ID != ja.ID || got.OrgID != "org-a" {
		t.Errorf("OrgJob(ctx, org-a) = %+v, %v; want job %d of org-a", got, err, ja.ID)
	}
	if got, err := s.OrgJob(ctx, "org-b"); err != nil || got.ID != jb.ID || got.OrgID != "org-b" {
		t.Errorf("OrgJob(ctx, org-b) = %+v, %v; want job %d of org-b", got, err, jb.ID)
	}
	rs, err := s.ListCMK(ctx)
	if err != nil {
		t.Fatalf("ListCMK(ctx) = %v", err)
	}
	if len(rs) != 2 || rs[0].OrgID != "org-a" || rs[1].OrgID != "org-b" {
		t.Errorf("ListCMK(ctx) = %+v, want the records of org-a and org-b", rs)
	}
	if ws, err := s.RootKeys(ctx, "org-b"); err != nil || len(ws) != 1 {
		t.Errorf("RootKeys(ctx, org-b) = %d wrappings, %v; want 1", len(ws), err)
	}
	if ws, err := s.RootKeys(ctx, "org-a"); err != nil || len(ws) != 2 || ws[1].ID != idA {
		t.Errorf("RootKeys(ctx, org-a) = %+v, %v; want its active and pending wrappings", ws, err)
	}
	for _, org := range []string{"org-a", "org-b"} {
		for _, e := range auditLog(t, s, org) {
			if e.OrgID != org {
				t.Errorf("AuditEvents(ctx, %s) returned an event of %s", org, e.OrgID)
			}
		}
	}
}

// testCMKRevision checks the optimistic concurrency of CMK records: an
// insert carries Revision 0, a replace the revision it read, every
// successful write increments the stored revision by one, and a write at
// any other revision is a Conflict that changes nothing — not the record,
// not the audit chain, and, for StartJob, SwitchWrapping and FinishJob,
// none of the rest of their transaction.
func testCMKRevision(t *testing.T, s CMKStore) {
	ctx := t.Context()
	f := createOrg(t, s, "acme")
	createOrg(t, s, "other")
	events := 1 // org.create

	// unchanged checks that a rejected write left acme's record at want
	// and appended no event.
	unchanged := func(when string, want cmk.Record) {
		t.Helper()
		checkRecord(t, "GetCMK(ctx, acme) after "+when, getCMK(t, s, "acme"), want)
		if evs := auditLog(t, s, "acme"); len(evs) != events {
			t.Errorf("audit log of acme has %d events after %s, want %d", len(evs), when, events)
		}
	}
	put := func(r cmk.Record, action string) error {
		ev := event("acme", action, "cmk")
		return s.PutCMK(ctx, r, &ev)
	}

	// Insert: Revision 0 gives revision 1.
	first := newRecord("acme", cmk.StateAuthorized)
	if err := put(first, "cmk.authorize"); err != nil {
		t.Fatalf("PutCMK(ctx, acme at revision 0) = %v", err)
	}
	events++
	stored := atRevision(first, 1)
	unchanged("the insert", stored)

	// A second insert is a Conflict: the record exists.
	second := newRecord("acme", cmk.StateRevoked)
	second.TenantID = "another-tenant"
	checkKind(t, "PutCMK(ctx, acme at revision 0) when a record exists", put(second, "cmk.authorize"), fault.Conflict)
	unchanged("a second insert", stored)

	// Replace at the revision read: revision 2. The record GetCMK returns
	// is the one to write back.
	next := getCMK(t, s, "acme")
	next.State, next.KeyVersion = cmk.StateActive, "fedcba9876543210fedcba9876543210"
	if err := put(next, "cmk.configure"); err != nil {
		t.Fatalf("PutCMK(ctx, acme at revision 1) = %v", err)
	}
	events++
	stored = atRevision(next, 2)
	unchanged("a replace", stored)

	// A stale copy (read at revision 1), or a revision never stored, is a
	// Conflict and overwrites nothing.
	for _, rev := range []int64{1, 3, -1} {
		stale := atRevision(newRecord("acme", cmk.StateRevoked), rev)
		stale.Reason = fmt.Sprintf("written at revision %d", rev)
		when := fmt.Sprintf("PutCMK(ctx, acme at revision %d) when stored is 2", rev)
		checkKind(t, when, put(stale, "cmk.revoke"), fault.Conflict)
		if err := s.PutCMK(ctx, stale, nil); fault.KindOf(err) != fault.Conflict {
			t.Errorf("%s without an event kind = %v (%v), want %v", when, fault.KindOf(err), err, fault.Conflict)
		}
		unchanged(when, stored)
	}

	// Replacing a record that was never stored is a Conflict too.
	checkKind(t, "PutCMK(ctx, other at revision 1) without a record",
		s.PutCMK(ctx, atRevision(newRecord("other", cmk.StateActive), 1), nil), fault.Conflict)
	if _, err := s.GetCMK(ctx, "other"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetCMK(ctx, other) after a rejected replace kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}

	// StartJob with a stale record: no job, no record change, no event.
	staleRec := atRevision(newRecord("acme", cmk.StateActivating), 1)
	_, err := s.StartJob(ctx, newJob("acme", cmk.JobActivate), staleRec, event("acme", "cmk.job.start", "job"))
	checkKind(t, "StartJob(ctx, acme, record at revision 1) when stored is 2", err, fault.Conflict)
	if _, err := s.OrgJob(ctx, "acme"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("OrgJob(ctx, acme) after a stale StartJob kind = %v (%v), want %v: the job must roll back", fault.KindOf(err), err, fault.NotFound)
	}
	unchanged("a stale StartJob", stored)

	// At the current revision it starts: revision 3.
	activating := atRevision(newRecord("acme", cmk.StateActivating), 2)
	j, err := s.StartJob(ctx, newJob("acme", cmk.JobActivate), activating, event("acme", "cmk.job.start", "job"))
	if err != nil {
		t.Fatalf("StartJob(ctx, acme, record at revision 2) = %v", err)
	}
	events++
	stored = atRevision(activating, 3)
	unchanged("StartJob", stored)

	running := claim(t, s, "node-1", base, time.Hour)
	if running.ID != j.ID {
		t.Fatalf("ClaimJob claimed job %d, want %d", running.ID, j.ID)
	}
	pid, err := s.AddPendingWrapping(ctx, "acme", pendingWrapping("acme", "v1"))
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, acme) = %v", err)
	}
	before, err := s.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatalf("RootKeys(ctx, acme) = %v", err)
	}
	jobUnchanged := func(when string) {
		t.Helper()
		if g, err := s.GetJob(ctx, j.ID); err != nil || g.State != cmk.JobRunning || g.Owner != "node-1" || g.Step != "" {
			t.Errorf("GetJob(ctx, %d) after %s = %+v, %v; want it running under node-1 at step \"\"", j.ID, when, g, err)
		}
	}
	wrappingsUnchanged := func(when string) {
		t.Helper()
		ws, err := s.RootKeys(ctx, "acme")
		if err != nil {
			t.Fatalf("RootKeys(ctx, acme) = %v", err)
		}
		if len(ws) != 2 || ws[0].ID != before[0].ID || ws[0].State != keys.WrappingActive || ws[1].ID != pid || ws[1].State != keys.WrappingPending {
			t.Errorf("RootKeys(ctx, acme) after %s = %+v, want the active and the pending wrapping unchanged", when, ws)
		}
		if org, err := s.GetOrg(ctx, "acme"); err != nil || org.MasterKey != f.org.MasterKey {
			t.Errorf("GetOrg(ctx, acme) after %s = %+v, %v; want master key %v", when, org, err, f.org.MasterKey)
		}
	}

	// SwitchWrapping with a stale record, alone and completing the job:
	// no switch, no job change.
	active := newRecord("acme", cmk.StateActive)
	done := running
	done.State, done.Step = cmk.JobDone, "switched"
	for _, tc := range []struct {
		name string
		done *cmk.Job
	}{{"alone", nil}, {"with the job", &done}} {
		when := "a stale SwitchWrapping " + tc.name
		checkKind(t, when, s.SwitchWrapping(ctx, "acme", pid, cmkKey("acme"), atRevision(active, 2), event("acme", "cmk.switch", "cmk"), tc.done), fault.Conflict)
		wrappingsUnchanged(when)
		jobUnchanged(when)
		unchanged(when, stored)
	}

	// FinishJob with a stale record: the job stays running.
	failed := running
	failed.State, failed.Error = cmk.JobFailed, "key disabled"
	checkKind(t, "FinishJob(ctx, record at revision 2) when stored is 3",
		s.FinishJob(ctx, failed, atRevision(newRecord("acme", cmk.StateRevoked), 2), event("acme", "cmk.job.failed", "job")), fault.Conflict)
	jobUnchanged("a stale FinishJob")
	unchanged("a stale FinishJob", stored)

	// At the current revision the switch and the job's end go through:
	// revision 4.
	if err := s.SwitchWrapping(ctx, "acme", pid, cmkKey("acme"), atRevision(active, 3), event("acme", "cmk.switch", "cmk"), &done); err != nil {
		t.Fatalf("SwitchWrapping(ctx, acme, record at revision 3) = %v", err)
	}
	events++
	stored = atRevision(active, 4)
	unchanged("SwitchWrapping", stored)
	if g, err := s.GetJob(ctx, j.ID); err != nil || g.State != cmk.JobDone || g.Step != "switched" {
		t.Errorf("GetJob(ctx, %d) after SwitchWrapping = %+v, %v; want done at step switched", j.ID, g, err)
	}
	if ws, err := s.RootKeys(ctx, "acme"); err != nil || len(ws) != 1 || ws[0].ID != pid {
		t.Errorf("RootKeys(ctx, acme) after SwitchWrapping = %+v, %v; want only wrapping %d", ws, err, pid)
	}

	// Racing writers read the same revision: exactly one wins each round,
	// its record is stored at the next revision with its one event.
	const rounds, writers = 10, 8
	for round := range rounds {
		rev := stored.Revision
		var (
			wg   sync.WaitGroup
			errs [writers]error
			recs [writers]cmk.Record
		)
		for w := range writers {
			recs[w] = atRevision(newRecord("acme", cmk.StateActive), rev)
			recs[w].LastProbeError = fmt.Sprintf("round %d writer %d", round, w)
			wg.Go(func() {
				ev := event("acme", "cmk.probe", fmt.Sprintf("writer/%d", w))
				errs[w] = s.PutCMK(ctx, recs[w], &ev)
			})
		}
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: writers %d and %d both stored a record read at revision %d", round, winner, w, rev)
			case err == nil:
				winner = w
			default:
				checkKind(t, fmt.Sprintf("round %d: PutCMK by losing writer %d", round, w), err, fault.Conflict)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no writer stored its record at revision %d", round, rev)
		}
		events++
		stored = atRevision(recs[winner], rev+1)
		unchanged(fmt.Sprintf("round %d", round), stored)
		if evs := auditLog(t, s, "acme"); evs[len(evs)-1].Target != fmt.Sprintf("writer/%d", winner) {
			t.Errorf("round %d: last audit event is %s, want the winner's writer/%d", round, evs[len(evs)-1].Target, winner)
		}
	}

	// A StartJob and a PutCMK racing from the same revision: one wins, and
	// a losing StartJob leaves no job behind.
	rev := stored.Revision
	var (
		wg               sync.WaitGroup
		startErr, putErr error
	)
	wg.Go(func() {
		_, startErr = s.StartJob(ctx, newJob("acme", cmk.JobRotate), atRevision(newRecord("acme", cmk.StateRotating), rev), event("acme", "cmk.job.start", "job"))
	})
	wg.Go(func() {
		putErr = s.PutCMK(ctx, atRevision(newRecord("acme", cmk.StateRevoked), rev), nil)
	})
	wg.Wait()
	latest, err := s.OrgJob(ctx, "acme")
	if err != nil {
		t.Fatalf("OrgJob(ctx, acme) = %v", err)
	}
	switch {
	case startErr == nil && putErr == nil:
		t.Fatalf("StartJob and PutCMK both stored a record read at revision %d", rev)
	case startErr == nil:
		checkKind(t, "PutCMK racing a StartJob", putErr, fault.Conflict)
		events++
		unchanged("StartJob winning the race", atRevision(newRecord("acme", cmk.StateRotating), rev+1))
		if latest.ID == j.ID || latest.Kind != cmk.JobRotate {
			t.Errorf("OrgJob(ctx, acme) after StartJob won the race = %+v, want the new rotate job", latest)
		}
	case putErr == nil:
		checkKind(t, "StartJob racing a PutCMK", startErr, fault.Conflict)
		unchanged("PutCMK winning the race", atRevision(newRecord("acme", cmk.StateRevoked), rev+1))
		if latest.ID != j.ID {
			t.Errorf("OrgJob(ctx, acme) after StartJob lost the race = job %d, want %d: the losing job must roll back", latest.ID, j.ID)
		}
	default:
		t.Fatalf("StartJob and PutCMK racing from revision %d both failed: %v; %v", rev, startErr, putErr)
	}
}

// testJobFence claims a job on one node, lets its lease expire and claims
// it again on another: the claim raises the fence, and every write of the
// first holder (renewal, step, switch, finish) is refused with Conflict,
// even under the same owner name, while the second holder's succeed.
func testJobFence(t *testing.T, s CMKStore) {
	ctx := t.Context()
	s2 := peer(t, s)
	createOrg(t, s, "acme")
	startJob(t, s, newJob("acme", cmk.JobActivate), cmk.StateActivating)
	first := claim(t, s, "node-1/a", base, time.Minute)
	if first.Fence != 1 {
		t.Errorf("ClaimJob(ctx) fence = %d, want 1", first.Fence)
	}
	if err := s.RenewJob(ctx, first, base.Add(90*time.Second)); err != nil {
		t.Fatalf("RenewJob(ctx, first holder) = %v", err)
	}
	if g, err := s.GetJob(ctx, first.ID); err != nil || !g.LeaseUntil.Equal(micro(base.Add(90*time.Second))) || g.Step != "" {
		t.Errorf("GetJob(ctx) after RenewJob = %+v, %v; want the lease at +90s, nothing else changed", g, err)
	}
	_, err := s2.ClaimJob(ctx, "node-2/b", base.Add(80*time.Second), time.Minute)
	checkKind(t, "ClaimJob(ctx) on the peer while the renewed lease holds", err, fault.NotFound)

	// The lease expires unrenewed; the peer claims the job.
	second := claim(t, s2, "node-2/b", base.Add(2*time.Minute), time.Minute)
	if second.ID != first.ID || second.Fence != first.Fence+1 {
		t.Fatalf("ClaimJob(ctx) on the peer = job %d fence %d, want job %d fence %d", second.ID, second.Fence, first.ID, first.Fence+1)
	}
	stale := first
	stale.Step = "copied"
	checkKind(t, "RenewJob(ctx, first holder)", s.RenewJob(ctx, stale, base.Add(time.Hour)), fault.Conflict)
	checkKind(t, "UpdateJob(ctx, first holder)", s.UpdateJob(ctx, stale), fault.Conflict)
	_, err = s.AddJobWrapping(ctx, stale, pendingWrapping("acme", "v1"))
	checkKind(t, "AddJobWrapping(ctx, first holder)", err, fault.Conflict)
	// The same owner name under the old fence is refused too.
	sameName := second
	sameName.Fence = first.Fence
	checkKind(t, "UpdateJob(ctx, second owner under the old fence)", s.UpdateJob(ctx, sameName), fault.Conflict)

	// The second holder copies; the first cannot switch to it or finish.
	step := second
	step.Step = "copied"
	id, err := s2.AddJobWrapping(ctx, step, pendingWrapping("acme", "v1"))
	if err != nil {
		t.Fatalf("AddJobWrapping(ctx, second holder) = %v", err)
	}
	if g, err := s.GetJob(ctx, first.ID); err != nil || g.Step != "copied" || g.Owner != "node-2/b" || g.Fence != second.Fence {
		t.Errorf("GetJob(ctx) after the second holder's copy = %+v, %v; want step copied under node-2/b", g, err)
	}
	rec := atRevision(newRecord("acme", cmk.StateActive), revision(t, s, "acme"))
	done := stale
	done.State, done.Step = cmk.JobDone, "switched"
	checkKind(t, "SwitchWrapping(ctx, first holder)", s.SwitchWrapping(ctx, "acme", id, cmkKey("acme"), rec, event("acme", "cmk.activate.done", "cmk"), &done), fault.Conflict)
	checkKind(t, "FinishJob(ctx, first holder)", s.FinishJob(ctx, done, rec, event("acme", "cmk.activate.done", "cmk")), fault.Conflict)
	if roots, err := s.RootKeys(ctx, "acme"); err != nil || len(roots) != 2 || roots[0].State != keys.WrappingActive {
		t.Errorf("RootKeys(ctx) after the first holder's refused switch = %d wrappings, %v; want the active one and the pending copy", len(roots), err)
	}
	if err := s2.RenewJob(ctx, second, base.Add(150*time.Second)); err != nil {
		t.Errorf("RenewJob(ctx, second holder) = %v", err)
	}
	done = step
	done.State, done.Step = cmk.JobDone, "switched"
	if err := s2.SwitchWrapping(ctx, "acme", id, cmkKey("acme"), rec, event("acme", "cmk.activate.done", "cmk"), &done); err != nil {
		t.Fatalf("SwitchWrapping(ctx, second holder) = %v", err)
	}
	if g, err := s.GetJob(ctx, first.ID); err != nil || g.State != cmk.JobDone {
		t.Errorf("GetJob(ctx) after the switch = %+v, %v; want done", g, err)
	}
	checkKind(t, "RenewJob(ctx) of a finished job", s2.RenewJob(ctx, second, base.Add(time.Hour)), fault.Conflict)
	if evs := auditLog(t, s, "acme"); len(evs) != 3 {
		t.Errorf("audit log of acme has %d events, want 3 (create, start, done)", len(evs))
	}
}

// testClaimProbes claims due probes from two nodes at once: each due org
// goes to one claim per interval; the org is due again after the interval,
// record writes do not move its lease, and a switch makes it due at once.
func testClaimProbes(t *testing.T, s CMKStore) {
	ctx := t.Context()
	s2 := peer(t, s)
	states := map[string]cmk.State{"a": cmk.StateActive, "b": cmk.StateRevoked, "c": cmk.StateLost, "d": cmk.StateAuthorized, "e": cmk.StateRotating}
	var probed []string
	for _, org := range []string{"a", "b", "c", "d", "e", "f"} {
		createOrg(t, s, org)
		if st, ok := states[org]; ok {
			if err := s.PutCMK(ctx, newRecord(org, st), nil); err != nil {
				t.Fatalf("PutCMK(ctx, %s) = %v", org, err)
			}
			if st == cmk.StateActive || st == cmk.StateRevoked || st == cmk.StateLost {
				probed = append(probed, org)
			}
		}
	}
	const interval = 30 * time.Second
	claimAll := func(now time.Time) map[string][]string {
		t.Helper()
		var (
			mu  sync.Mutex
			got = map[string][]string{}
			wg  sync.WaitGroup
		)
		for n, st := range []CMKStore{s, s2, s, s2} {
			owner := fmt.Sprintf("node-%d", n)
			wg.Go(func() {
				for {
					ids, err := st.ClaimProbes(ctx, owner, now, interval, 1)
					if err != nil {
						t.Errorf("ClaimProbes(ctx, %s) = %v", owner, err)
						return
					}
					if len(ids) == 0 {
						return
					}
					mu.Lock()
					for _, id := range ids {
						got[id] = append(got[id], owner)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return got
	}
	check := func(when string, got map[string][]string, want []string) {
		t.Helper()
		var orgs []string
		for org, owners := range got {
			orgs = append(orgs, org)
			if len(owners) != 1 {
				t.Errorf("%s: org %s claimed by %v, want one claim", when, org, owners)
			}
		}
		slices.Sort(orgs)
		if !slices.Equal(orgs, want) {
			t.Errorf("%s: claimed %v, want %v", when, orgs, want)
		}
	}
	check("first claims", claimAll(base), probed)
	check("within the interval", claimAll(base.Add(interval-time.Second)), nil)
	// A record write does not move the lease.
	if err := s.PutCMK(ctx, atRevision(newRecord("a", cmk.StateActive), revision(t, s, "a")), nil); err != nil {
		t.Fatalf("PutCMK(ctx, a) = %v", err)
	}
	check("after a record write", claimAll(base.Add(interval-time.Second)), nil)
	check("after the interval", claimAll(base.Add(interval)), probed)

	// A switch to another key makes the org due at once.
	id, err := s.AddPendingWrapping(ctx, "a", pendingWrapping("a", "v2"))
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, a) = %v", err)
	}
	if err := s.SwitchWrapping(ctx, "a", id, cmkKey("a"), atRevision(newRecord("a", cmk.StateActive), revision(t, s, "a")), event("a", "cmk.rotate.done", "cmk"), nil); err != nil {
		t.Fatalf("SwitchWrapping(ctx, a) = %v", err)
	}
	check("after a switch", claimAll(base.Add(interval+time.Second)), []string{"a"})
	// A switch to a new version of the same key (a rotation the job has
	// verified) leaves the lease alone.
	id, err = s.AddPendingWrapping(ctx, "a", pendingWrapping("a", "v3"))
	if err != nil {
		t.Fatalf("AddPendingWrapping(ctx, a, v3) = %v", err)
	}
	if err := s.SwitchWrapping(ctx, "a", id, cmkKey("a"), atRevision(newRecord("a", cmk.StateActive), revision(t, s, "a")), event("a", "cmk.rotate.done", "cmk"), nil); err != nil {
		t.Fatalf("SwitchWrapping(ctx, a, v3) = %v", err)
	}
	check("after a switch to a new version", claimAll(base.Add(interval+2*time.Second)), nil)

	_, err = s.ClaimProbes(ctx, "", base, interval, 1)
	checkKind(t, "ClaimProbes(ctx, no owner)", err, fault.Invalid)
	_, err = s.ClaimProbes(ctx, "node", base, 0, 1)
	checkKind(t, "ClaimProbes(ctx, no interval)", err, fault.Invalid)
	_, err = s.ClaimProbes(ctx, "node", base, interval, 0)
	checkKind(t, "ClaimProbes(ctx, no batch)", err, fault.Invalid)
}

// testReleaseProbes: the probes an owner abandons (or all it holds) are due again at once, for
// any node's next claim; a release by another owner, or of an org not
// claimed, changes nothing.
func testReleaseProbes(t *testing.T, s CMKStore) {
	ctx := t.Context()
	for _, org := range []string{"a", "b"} {
		createOrg(t, s, org)
		if err := s.PutCMK(ctx, newRecord(org, cmk.StateActive), nil); err != nil {
			t.Fatalf("PutCMK(ctx, %s) = %v", org, err)
		}
	}
	const interval = 30 * time.Second
	claim := func(owner string, now time.Time) []string {
		t.Helper()
		ids, err := s.ClaimProbes(ctx, owner, now, interval, 10)
		if err != nil {
			t.Fatalf("ClaimProbes(ctx, %s) = %v", owner, err)
		}
		slices.Sort(ids)
		return ids
	}
	if got := claim("node-1", base); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("first claim = %v, want [a b]", got)
	}
	later := base.Add(time.Second)
	if err := s.ReleaseProbes(ctx, "node-2", []string{"a"}, later); err != nil {
		t.Fatalf("ReleaseProbes(ctx, node-2) = %v", err)
	}
	if got := claim("node-2", later); len(got) != 0 {
		t.Errorf("after a release by another owner: claimed %v, want none", got)
	}
	if err := s.ReleaseProbes(ctx, "node-1", []string{"a", "nosuch"}, later); err != nil {
		t.Fatalf("ReleaseProbes(ctx, node-1) = %v", err)
	}
	if got := claim("node-2", later); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after node-1 released a: claimed %v, want [a]", got)
	}
	// Released and claimed again: a second release by the first owner
	// leaves the new lease alone.
	if err := s.ReleaseProbes(ctx, "node-1", []string{"a"}, later); err != nil {
		t.Fatalf("ReleaseProbes(ctx, node-1, again) = %v", err)
	}
	if got := claim("node-3", later); len(got) != 0 {
		t.Errorf("after a stale release: claimed %v, want none", got)
	}
	// No orgs: every org the owner holds (a node restarted under its ID).
	if got := claim("node-1", later.Add(interval)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("claim after the interval = %v, want [a b]", got)
	}
	if err := s.ReleaseProbes(ctx, "node-1", nil, later.Add(interval)); err != nil {
		t.Fatalf("ReleaseProbes(ctx, node-1, all) = %v", err)
	}
	if got := claim("node-2", later.Add(interval)); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("after node-1 released all its probes: claimed %v, want [a b]", got)
	}
	checkKind(t, "ReleaseProbes(ctx, no owner)", s.ReleaseProbes(ctx, "", []string{"a"}, later), fault.Invalid)
}
