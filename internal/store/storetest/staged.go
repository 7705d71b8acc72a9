package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
)

// RunStaged runs the suite of [cmk.StagedStore] (staged revocation). open
// is as for [Run]; a store with the [Peer] capability races a second node.
func RunStaged(t *testing.T, open func(t *testing.T) CMKStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s CMKStore)
	}{
		{"StagedRoundTrip", testStagedRoundTrip},
		{"StagedSchedule", testStagedSchedule},
		{"StagedCancel", testStagedCancel},
		{"StagedJobFence", testStagedJobFence},
		{"StagedClaimConcurrent", testStagedClaimConcurrent},
		{"StagedInvalid", testStagedInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

func stagedEvent(org, action string) audit.Event {
	return audit.Event{OrgID: org, Time: base, Actor: "user:alice@" + org, Action: action, Target: "cmk", Details: map[string]string{"reason": "test"}}
}

func getStaged(t *testing.T, s CMKStore, org string) cmk.Staged {
	t.Helper()
	st, err := s.GetStaged(t.Context(), org)
	if err != nil {
		t.Fatalf("GetStaged(%s) = %v", org, err)
	}
	return st
}

func testStagedRoundTrip(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "other")
	checkKind(t, "GetStaged(nosuch)", errOnly(s.GetStaged(ctx, "nosuch")), fault.NotFound)
	checkKind(t, "PutStaged(nosuch)", errOnly(s.PutStaged(ctx, cmk.StagedWrite{State: cmk.Staged{OrgID: "nosuch"}, Event: stagedEvent("nosuch", "x")})), fault.NotFound)
	if st := getStaged(t, s, "acme"); st.OrgID != "acme" || st.Active() || st.Revision != 0 {
		t.Fatalf("GetStaged(acme) before any write = %+v, want the zero state", st)
	}
	st := cmk.Staged{OrgID: "acme", DecryptOnly: true, DecryptOnlyReason: "audit ✓", DecryptOnlyBy: "user:alice", DecryptOnlySince: base, UpdatedAt: base}
	got, err := s.PutStaged(ctx, cmk.StagedWrite{State: st, Bump: cmk.BumpDecryptOnly, Event: stagedEvent("acme", "cmk.decrypt_only.on")})
	if err != nil {
		t.Fatalf("PutStaged(decrypt-only) = %v", err)
	}
	if !got.DecryptOnly || got.DecryptOnlyReason != "audit ✓" || got.DecryptOnlyBy != "user:alice" || !got.DecryptOnlySince.Equal(micro(base)) || got.Revision != 1 || got.Revoked || got.Mode != "" {
		t.Errorf("PutStaged(decrypt-only) = %+v", got)
	}
	if again := getStaged(t, s, "acme"); again != got {
		t.Errorf("GetStaged(acme) = %+v, want %+v", again, got)
	}
	if g, err := s.OrgGeneration(ctx, "acme"); err != nil || g.Generation != 1 || g.Reason != cmk.BumpDecryptOnly {
		t.Errorf("OrgGeneration(acme) = %+v, %v; want 1 %s", g, err, cmk.BumpDecryptOnly)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 || evs[1].Action != "cmk.decrypt_only.on" {
		t.Errorf("audit log of acme = %d events, want org.create and cmk.decrypt_only.on", len(evs))
	}
	// A stale revision stores nothing.
	stale := st // Revision 0: an insert, but the row exists
	_, err = s.PutStaged(ctx, cmk.StagedWrite{State: stale, Bump: cmk.BumpDecryptOnly, Event: stagedEvent("acme", "stale")})
	checkKind(t, "PutStaged(stale insert)", err, fault.Conflict)
	if !errors.Is(err, cmk.ErrStale) {
		t.Errorf("PutStaged(stale insert) = %v, want ErrStale", err)
	}
	stale.Revision = 7
	checkKind(t, "PutStaged(stale revision)", errOnly(s.PutStaged(ctx, cmk.StagedWrite{State: stale, Event: stagedEvent("acme", "stale")})), fault.Conflict)
	if g, _ := s.OrgGeneration(ctx, "acme"); g.Generation != 1 {
		t.Errorf("a refused write raised the generation to %d", g.Generation)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("a refused write appended an event: %d events", len(evs))
	}
	// Tenant isolation: the other org is untouched; List has acme only.
	if o := getStaged(t, s, "other"); o.Active() {
		t.Errorf("GetStaged(other) = %+v, want nothing on", o)
	}
	list, err := s.ListStaged(ctx)
	if err != nil || len(list) != 1 || list[0] != got {
		t.Errorf("ListStaged = %+v, %v; want acme's state only", list, err)
	}
	// Off again: the row stays (revision 2), but List leaves it out.
	got.DecryptOnly, got.DecryptOnlyReason, got.DecryptOnlyBy, got.DecryptOnlySince = false, "", "", time.Time{}
	off, err := s.PutStaged(ctx, cmk.StagedWrite{State: got, Bump: cmk.BumpDecryptOnlyOff, Event: stagedEvent("acme", "cmk.decrypt_only.off")})
	if err != nil || off.DecryptOnly || off.Revision != 2 || !off.DecryptOnlySince.IsZero() {
		t.Errorf("PutStaged(off) = %+v, %v", off, err)
	}
	if list, err := s.ListStaged(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListStaged after off = %+v, %v; want none", list, err)
	}
}

// schedule stores a scheduled revocation of org at at and returns the state.
func schedule(t *testing.T, s CMKStore, org string, at time.Time, mode cmk.StagedMode) cmk.Staged {
	t.Helper()
	st := getStaged(t, s, org)
	st.Mode, st.At, st.ScheduledBy, st.ScheduledAt, st.Reason = mode, at, "user:alice", base, "offboarding"
	got, err := s.PutStaged(t.Context(), cmk.StagedWrite{State: st, Schedule: &jobs.Job{OrgID: org, Kind: cmk.JobStaged, CreatedAt: base},
		Event: stagedEvent(org, "cmk.revocation.schedule")})
	if err != nil {
		t.Fatalf("PutStaged(schedule %s) = %v", org, err)
	}
	return got
}

func testStagedSchedule(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	at := base.Add(time.Hour)
	st := schedule(t, s, "acme", at, cmk.StagedRevoke)
	if st.JobID == 0 || st.Mode != cmk.StagedRevoke || !st.At.Equal(micro(at)) || st.ScheduledBy != "user:alice" || !st.ScheduledAt.Equal(micro(base)) || st.Reason != "offboarding" {
		t.Fatalf("scheduled state = %+v", st)
	}
	j, err := s.GetStagedJob(ctx, st.JobID)
	if err != nil || j.State != jobs.Pending || j.Kind != cmk.JobStaged || j.Target != string(cmk.StagedRevoke) || !j.NotBefore.Equal(micro(at)) || j.OrgID != "acme" {
		t.Fatalf("GetStagedJob(%d) = %+v, %v; want pending, due at %v", st.JobID, j, err, at)
	}
	checkKind(t, "GetStagedJob(nosuch)", errOnly(s.GetStagedJob(ctx, 99999)), fault.NotFound)
	// A second schedule while one is open is refused, and stores nothing.
	st2 := st
	st2.At = at.Add(time.Hour)
	_, err = s.PutStaged(ctx, cmk.StagedWrite{State: st2, Schedule: &jobs.Job{OrgID: "acme", Kind: cmk.JobStaged}, Event: stagedEvent("acme", "again")})
	checkKind(t, "PutStaged(second schedule)", err, fault.Conflict)
	if cur := getStaged(t, s, "acme"); cur != st {
		t.Errorf("a refused schedule changed the state to %+v", cur)
	}
	// Not claimable before its time; the CMK job table does not see it.
	js := s.StagedJobs()
	checkKind(t, "ClaimJob(before at)", errOnly(js.ClaimJob(ctx, "node-a/1", at.Add(-time.Second), time.Minute)), fault.NotFound)
	checkKind(t, "cmk ClaimJob", errOnly(s.ClaimJob(ctx, "node-a/1", at.Add(time.Hour), time.Minute)), fault.NotFound)
	c, err := js.ClaimJob(ctx, "node-a/1", at, time.Minute)
	if err != nil || c.ID != st.JobID || c.State != jobs.Running || c.Fence != 1 || c.Attempts != 1 {
		t.Fatalf("ClaimJob(at) = %+v, %v", c, err)
	}
	// Running: a cancel is refused.
	cancel := st
	cancel.Mode, cancel.At, cancel.JobID = "", time.Time{}, 0
	checkKind(t, "PutStaged(cancel running)", errOnly(s.PutStaged(ctx, cmk.StagedWrite{State: cancel, Cancel: st.JobID, Event: stagedEvent("acme", "cancel")})), fault.Conflict)
	// Apply: the job finishes, the state changes, the generation rises.
	applied := st
	applied.Mode, applied.At, applied.JobID, applied.Reason, applied.ScheduledBy, applied.ScheduledAt = "", time.Time{}, 0, "", "", time.Time{}
	applied.Revoked, applied.RevokedBy, applied.RevokedSince, applied.RevokedReason = true, "user:alice", at, "offboarding"
	c.State, c.Step = jobs.Done, "applied"
	if err := s.FinishStagedJob(ctx, c, &cmk.StagedWrite{State: applied, Bump: cmk.BumpStagedRevoked, Event: stagedEvent("acme", "cmk.revocation.apply")}); err != nil {
		t.Fatalf("FinishStagedJob = %v", err)
	}
	cur := getStaged(t, s, "acme")
	if !cur.Revoked || cur.Mode != "" || cur.JobID != 0 || !cur.RevokedSince.Equal(micro(at)) || cur.RevokedBy != "user:alice" {
		t.Errorf("state after apply = %+v", cur)
	}
	if j, _ := s.GetStagedJob(ctx, st.JobID); j.State != jobs.Done || j.Step != "applied" {
		t.Errorf("job after apply = %+v, want done", j)
	}
	if g, err := s.OrgGeneration(ctx, "acme"); err != nil || g.Reason != cmk.BumpStagedRevoked {
		t.Errorf("OrgGeneration(acme) = %+v, %v; want reason %s", g, err, cmk.BumpStagedRevoked)
	}
	// Finished once: a second finish (a replay) is refused.
	checkKind(t, "FinishStagedJob(again)", s.FinishStagedJob(ctx, c, &cmk.StagedWrite{State: cur, Bump: cmk.BumpStagedRevoked, Event: stagedEvent("acme", "again")}), fault.Conflict)
	evs := auditLog(t, s, "acme")
	var applies int
	for _, e := range evs {
		if e.Action == "cmk.revocation.apply" {
			applies++
		}
	}
	if applies != 1 {
		t.Errorf("audit log has %d cmk.revocation.apply events, want 1", applies)
	}
	// A new schedule after the first finished is allowed.
	schedule(t, s, "acme", at.Add(24*time.Hour), cmk.StagedDecryptOnly)
}

func testStagedCancel(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	at := base.Add(time.Hour)
	st := schedule(t, s, "acme", at, cmk.StagedDecryptOnly)
	cancel := st
	cancel.Mode, cancel.At, cancel.JobID, cancel.ScheduledBy, cancel.ScheduledAt, cancel.Reason = "", time.Time{}, 0, "", time.Time{}, ""
	got, err := s.PutStaged(ctx, cmk.StagedWrite{State: cancel, Cancel: st.JobID, Event: stagedEvent("acme", "cmk.revocation.cancel")})
	if err != nil || got.Mode != "" || got.JobID != 0 || got.Active() {
		t.Fatalf("PutStaged(cancel) = %+v, %v", got, err)
	}
	if j, err := s.GetStagedJob(ctx, st.JobID); err != nil || j.State != jobs.Failed || j.Error != "cancelled" {
		t.Errorf("cancelled job = %+v, %v; want failed, cancelled", j, err)
	}
	checkKind(t, "ClaimJob(after cancel)", errOnly(s.StagedJobs().ClaimJob(ctx, "node-a/1", at.Add(time.Hour), time.Minute)), fault.NotFound)
	// Cancelling a job that is not the org's is refused.
	other := schedule(t, s, "acme", at, cmk.StagedRevoke)
	createOrg(t, s, "other")
	o := getStaged(t, s, "other")
	checkKind(t, "PutStaged(cancel another org's job)", errOnly(s.PutStaged(ctx, cmk.StagedWrite{State: o, Cancel: other.JobID, Event: stagedEvent("other", "cancel")})), fault.Conflict)
	if j, _ := s.GetStagedJob(ctx, other.JobID); j.State != jobs.Pending {
		t.Errorf("acme's job after other's cancel = %+v, want pending", j)
	}
}

func testStagedJobFence(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	at := base.Add(time.Hour)
	st := schedule(t, s, "acme", at, cmk.StagedRevoke)
	js := s.StagedJobs()
	a, err := js.ClaimJob(ctx, "node-a/1", at, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJob(a) = %v", err)
	}
	checkKind(t, "ClaimJob(lease held)", errOnly(js.ClaimJob(ctx, "node-b/1", at.Add(30*time.Second), time.Minute)), fault.NotFound)
	if err := js.RenewJob(ctx, a, at.Add(90*time.Second)); err != nil {
		t.Errorf("RenewJob(a) = %v", err)
	}
	// a's lease runs out; b takes the job over under a higher fence.
	b, err := js.ClaimJob(ctx, "node-b/1", at.Add(2*time.Minute), time.Minute)
	if err != nil || b.Fence != a.Fence+1 || b.Attempts != 2 {
		t.Fatalf("ClaimJob(b) = %+v, %v; want fence %d", b, err, a.Fence+1)
	}
	checkKind(t, "RenewJob(a, lost)", js.RenewJob(ctx, a, at.Add(time.Hour)), fault.Conflict)
	a.State = jobs.Pending
	checkKind(t, "UpdateJob(a, lost)", js.UpdateJob(ctx, a), fault.Conflict)
	applied := st
	applied.Mode, applied.At, applied.JobID, applied.Revoked = "", time.Time{}, 0, true
	a.State = jobs.Done
	checkKind(t, "FinishStagedJob(a, lost)", s.FinishStagedJob(ctx, a, &cmk.StagedWrite{State: applied, Bump: cmk.BumpStagedRevoked, Event: stagedEvent("acme", "cmk.revocation.apply")}), fault.Conflict)
	if cur := getStaged(t, s, "acme"); cur != st {
		t.Errorf("a lost lease's finish changed the state to %+v", cur)
	}
	// b releases it for a retry, then finishes.
	b.State, b.NotBefore = jobs.Pending, at.Add(3*time.Minute)
	if err := js.UpdateJob(ctx, b); err != nil {
		t.Fatalf("UpdateJob(b, release) = %v", err)
	}
	b, err = js.ClaimJob(ctx, "node-b/2", at.Add(3*time.Minute), time.Minute)
	if err != nil {
		t.Fatalf("ClaimJob(b again) = %v", err)
	}
	b.State = jobs.Done
	if err := s.FinishStagedJob(ctx, b, &cmk.StagedWrite{State: applied, Bump: cmk.BumpStagedRevoked, Event: stagedEvent("acme", "cmk.revocation.apply")}); err != nil {
		t.Fatalf("FinishStagedJob(b) = %v", err)
	}
	if cur := getStaged(t, s, "acme"); !cur.Revoked {
		t.Errorf("state after b's finish = %+v, want revoked", cur)
	}
}

func testStagedClaimConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	const orgs = 6
	at := base.Add(time.Hour)
	for i := range orgs {
		org := "org" + string(rune('a'+i))
		createOrg(t, s, org)
		schedule(t, s, org, at, cmk.StagedRevoke)
	}
	stores := []CMKStore{s, peer(t, s)}
	var mu sync.Mutex
	got := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			js := stores[w%2].StagedJobs()
			for {
				j, err := js.ClaimJob(ctx, "node-"+string(rune('a'+w))+"/1", at, time.Minute)
				if fault.KindOf(err) == fault.NotFound {
					return
				}
				if err != nil {
					if fault.KindOf(err) == fault.Unavailable {
						continue
					}
					t.Errorf("ClaimJob = %v", err)
					return
				}
				mu.Lock()
				if prev, ok := got[j.ID]; ok {
					t.Errorf("job %d claimed twice: by %s and %s", j.ID, prev, j.Owner)
				}
				got[j.ID] = j.Owner
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != orgs {
		t.Errorf("claimed %d jobs, want %d", len(got), orgs)
	}
}

func testStagedInvalid(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	for _, tc := range []struct {
		name string
		w    cmk.StagedWrite
	}{
		{"no org", cmk.StagedWrite{State: cmk.Staged{}}},
		{"bad mode", cmk.StagedWrite{State: cmk.Staged{OrgID: "acme", Mode: "nuke", At: base}}},
		{"mode without time", cmk.StagedWrite{State: cmk.Staged{OrgID: "acme", Mode: cmk.StagedRevoke}}},
		{"job without mode", cmk.StagedWrite{State: cmk.Staged{OrgID: "acme"}, Schedule: &jobs.Job{Kind: cmk.JobStaged}}},
		{"event of another org", cmk.StagedWrite{State: cmk.Staged{OrgID: "acme"}, Event: stagedEvent("other", "x")}},
	} {
		checkKind(t, "PutStaged("+tc.name+")", errOnly(s.PutStaged(ctx, tc.w)), fault.Invalid)
	}
	checkKind(t, "FinishStagedJob(not done)", s.FinishStagedJob(ctx, jobs.Job{ID: 1, Owner: "n/1", State: jobs.Running}, nil), fault.Invalid)
	checkKind(t, "FinishStagedJob(no owner)", s.FinishStagedJob(ctx, jobs.Job{ID: 1, State: jobs.Done}, nil), fault.Invalid)
	checkKind(t, "ClaimJob(no owner)", errOnly(s.StagedJobs().ClaimJob(ctx, "", base, time.Minute)), fault.Invalid)
	if st := getStaged(t, s, "acme"); st.Revision != 0 {
		t.Errorf("an invalid write stored %+v", st)
	}
}
