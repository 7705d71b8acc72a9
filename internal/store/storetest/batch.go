package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// rotationStart is a StartJobs start of org's rotation, its record at the
// org's current revision.
func rotationStart(t *testing.T, s CMKStore, org string) cmk.JobStart {
	t.Helper()
	return cmk.JobStart{Job: newJob(org, cmk.JobRotate), Record: atRevision(newRecord(org, cmk.StateRotating), revision(t, s, org)),
		Event: event(org, "cmk.rotate.start", "cmk")}
}

// testStartJobs starts many jobs in one call: the good starts are stored
// as StartJob stores them (job pending, record, audit event), and each bad
// one (a job already running, a stale record, no such org, invalid, the
// same org twice) gets its own error, changing nothing of its org.
func testStartJobs(t *testing.T, s CMKStore) {
	ctx := t.Context()
	for _, org := range []string{"a", "b", "c", "d"} {
		createOrg(t, s, org)
	}
	startJob(t, s, newJob("c", cmk.JobActivate), cmk.StateActivating) // c has an open job
	if err := s.PutCMK(ctx, newRecord("d", cmk.StateActive), nil); err != nil {
		t.Fatalf("PutCMK(ctx, d) = %v", err)
	}
	cBefore, dBefore := getCMK(t, s, "c"), getCMK(t, s, "d")
	cAudit, dAudit := len(auditLog(t, s, "c")), len(auditLog(t, s, "d"))

	staleD := rotationStart(t, s, "d")
	staleD.Record.Revision = 0 // the record was read before d had one
	invalid := rotationStart(t, s, "b")
	invalid.Job.Kind = ""
	otherOrg := rotationStart(t, s, "b")
	otherOrg.Event.OrgID = "a"
	starts := []cmk.JobStart{
		rotationStart(t, s, "b"), // out of org order on purpose
		rotationStart(t, s, "a"),
		rotationStart(t, s, "c"),
		rotationStart(t, s, "ghost"),
		invalid,
		staleD,
		rotationStart(t, s, "a"), // a second start of a
		otherOrg,
	}
	want := []fault.Kind{0, 0, fault.Conflict, fault.NotFound, fault.Invalid, fault.Conflict, fault.Conflict, fault.Invalid}
	res, err := s.StartJobs(ctx, starts)
	if err != nil {
		t.Fatalf("StartJobs(ctx, %d starts) = %v", len(starts), err)
	}
	if len(res) != len(starts) {
		t.Fatalf("StartJobs(ctx, %d starts) returned %d results", len(starts), len(res))
	}
	for i, r := range res {
		if got := fault.KindOf(r.Err); got != want[i] {
			t.Errorf("StartJobs result %d (org %q) kind = %v (%v), want %v", i, starts[i].Job.OrgID, got, r.Err, want[i])
		}
	}
	for i, org := range []string{"b", "a"} {
		j := res[i].Job
		if j.ID == 0 || j.OrgID != org || j.State != cmk.JobPending || j.Kind != cmk.JobRotate || j.Fence != 0 {
			t.Errorf("StartJobs result for %s = %+v, want a new pending rotate job", org, j)
		}
		if got, err := s.OrgJob(ctx, org); err != nil || got.ID != j.ID {
			t.Errorf("OrgJob(ctx, %s) = %+v, %v; want job %d", org, got, err, j.ID)
		}
		checkRecord(t, "GetCMK(ctx, "+org+") after StartJobs", getCMK(t, s, org), atRevision(newRecord(org, cmk.StateRotating), 1))
		evs := auditLog(t, s, org)
		if len(evs) == 0 || evs[len(evs)-1].Action != "cmk.rotate.start" {
			t.Errorf("audit log of %s after StartJobs = %+v, want the start last", org, evs)
		}
	}
	checkRecord(t, "GetCMK(ctx, c) after a refused start", getCMK(t, s, "c"), cBefore)
	checkRecord(t, "GetCMK(ctx, d) after a stale start", getCMK(t, s, "d"), dBefore)
	if n := len(auditLog(t, s, "c")); n != cAudit {
		t.Errorf("audit log of c has %d events after a refused start, want %d", n, cAudit)
	}
	if n := len(auditLog(t, s, "d")); n != dAudit {
		t.Errorf("audit log of d has %d events after a stale start, want %d", n, dAudit)
	}
	if _, err := s.OrgJob(ctx, "d"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("OrgJob(ctx, d) after a stale start kind = %v, want NotFound: the job must roll back", fault.KindOf(err))
	}
	if res, err := s.StartJobs(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("StartJobs(ctx, nil) = %v, %v; want nothing", res, err)
	}
}

// testStartJobsConcurrent: two stores (two nodes, on PostgreSQL) start the
// same orgs' rotations at once, in opposite orders: each org gets exactly
// one job, neither call fails as a whole, and every chain verifies.
func testStartJobsConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	const n = 20
	orgs := make([]string, n)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org-%02d", i)
		createOrg(t, s, orgs[i])
		if err := s.PutCMK(ctx, newRecord(orgs[i], cmk.StateActive), nil); err != nil {
			t.Fatalf("PutCMK(ctx, %s) = %v", orgs[i], err)
		}
	}
	before := map[string]int{}
	for _, org := range orgs {
		before[org] = len(auditLog(t, s, org))
	}
	stores := []CMKStore{s, peer(t, s)}
	results := make([][]cmk.JobStarted, 2)
	var wg sync.WaitGroup
	for w, st := range stores {
		starts := make([]cmk.JobStart, n)
		for i := range orgs {
			org := orgs[i]
			if w == 1 {
				org = orgs[n-1-i]
			}
			starts[i] = rotationStart(t, s, org)
		}
		wg.Go(func() {
			res, err := st.StartJobs(ctx, starts)
			if err != nil {
				t.Errorf("StartJobs(ctx) on store %d = %v", w, err)
			}
			for i, r := range res {
				r.Job.OrgID = starts[i].Job.OrgID
				res[i] = r
			}
			results[w] = res
		})
	}
	wg.Wait()
	won := map[string]int{}
	for _, res := range results {
		for _, r := range res {
			switch fault.KindOf(r.Err) {
			case 0:
				won[r.Job.OrgID]++
			case fault.Conflict:
			default:
				t.Errorf("StartJobs result for %s = %v, want success or Conflict", r.Job.OrgID, r.Err)
			}
		}
	}
	for _, org := range orgs {
		if won[org] != 1 {
			t.Errorf("%s: %d starts succeeded, want exactly 1", org, won[org])
		}
		evs := auditLog(t, s, org)
		if len(evs) != before[org]+1 || evs[len(evs)-1].Action != "cmk.rotate.start" {
			t.Errorf("audit log of %s has %d events, want %d: the one start added", org, len(evs), before[org]+1)
		}
	}
}

// testClaimJobs claims jobs in batches: oldest first, each under its own
// raised fence, none twice; an expired lease is claimed again under a new
// fence, and the old holder's writes are refused.
func testClaimJobs(t *testing.T, s CMKStore) {
	ctx := t.Context()
	var ids []int64
	for i := range 5 {
		org := fmt.Sprintf("org-%d", i)
		createOrg(t, s, org)
		ids = append(ids, startJob(t, s, newJob(org, cmk.JobActivate), cmk.StateActivating).ID)
	}
	first, err := s.ClaimJobs(ctx, "node-1/a", base, time.Minute, 3)
	if err != nil || len(first) != 3 {
		t.Fatalf("ClaimJobs(ctx, 3) = %d jobs, %v; want 3", len(first), err)
	}
	for i, j := range first {
		if j.ID != ids[i] || j.State != cmk.JobRunning || j.Owner != "node-1/a" || j.Fence != 1 || j.Attempts != 1 ||
			!storedTime(j.LeaseUntil).Equal(storedTime(base.Add(time.Minute))) {
			t.Errorf("ClaimJobs job %d = %+v, want job %d running under node-1/a, fence 1, 1 attempt, lease +1m", i, j, ids[i])
		}
	}
	rest, err := s.ClaimJobs(ctx, "node-1/b", base, time.Minute, 10)
	if err != nil || len(rest) != 2 || rest[0].ID != ids[3] || rest[1].ID != ids[4] {
		t.Fatalf("ClaimJobs(ctx, 10) = %+v, %v; want jobs %v", rest, err, ids[3:])
	}
	if none, err := s.ClaimJobs(ctx, "node-1/c", base, time.Minute, 10); err != nil || len(none) != 0 {
		t.Errorf("ClaimJobs(ctx) with every job leased = %+v, %v; want none", none, err)
	}
	// Renew one; the others' leases run out and another node claims them.
	if err := s.RenewJob(ctx, first[0], base.Add(5*time.Minute)); err != nil {
		t.Fatalf("RenewJob(ctx, first) = %v", err)
	}
	later := base.Add(2 * time.Minute)
	again, err := peer(t, s).ClaimJobs(ctx, "node-2/a", later, time.Minute, 10)
	if err != nil || len(again) != 4 {
		t.Fatalf("ClaimJobs(ctx) after the leases ran out = %d jobs, %v; want 4", len(again), err)
	}
	for _, j := range again {
		if j.ID == first[0].ID || j.Owner != "node-2/a" || j.Fence != 2 || j.Attempts != 2 {
			t.Errorf("ClaimJobs after expiry = %+v, want a job other than %d under node-2/a, fence 2, attempt 2", j, first[0].ID)
		}
	}
	checkKind(t, "UpdateJob(ctx, expired holder)", s.UpdateJob(ctx, first[1]), fault.Conflict)
	checkKind(t, "RenewJob(ctx, expired holder)", s.RenewJob(ctx, rest[0], later.Add(time.Hour)), fault.Conflict)
	if err := s.UpdateJob(ctx, again[0]); err != nil {
		t.Errorf("UpdateJob(ctx, new holder) = %v", err)
	}
	_, err = s.ClaimJobs(ctx, "", base, time.Minute, 1)
	checkKind(t, "ClaimJobs(ctx, no owner)", err, fault.Invalid)
	_, err = s.ClaimJobs(ctx, "node", base, 0, 1)
	checkKind(t, "ClaimJobs(ctx, no lease)", err, fault.Invalid)
	_, err = s.ClaimJobs(ctx, "node", base, time.Minute, 0)
	checkKind(t, "ClaimJobs(ctx, no batch)", err, fault.Invalid)
}

// testClaimJobsConcurrent: batch claims from several goroutines (and a
// peer store) never lease one job twice.
func testClaimJobsConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	var ids []int64
	for i := range 12 {
		org := fmt.Sprintf("org-%02d", i)
		createOrg(t, s, org)
		ids = append(ids, startJob(t, s, newJob(org, cmk.JobActivate), cmk.StateActivating).ID)
	}
	var (
		mu     sync.Mutex
		claims = map[int64]int{}
		wg     sync.WaitGroup
	)
	for g := range 4 {
		st := s
		if g%2 == 1 {
			st = peer(t, s)
		}
		wg.Go(func() {
			for {
				js, err := st.ClaimJobs(ctx, fmt.Sprintf("node-%d/x", g), base, time.Hour, 2)
				if err != nil {
					t.Errorf("ClaimJobs(ctx) = %v", err)
					return
				}
				if len(js) == 0 {
					return
				}
				mu.Lock()
				for _, j := range js {
					claims[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range ids {
		if claims[id] != 1 {
			t.Errorf("job %d claimed %d times, want once", id, claims[id])
		}
	}
}

// copiedJobs starts and claims an activation of each org (claimed by owner
// at now), stores its copy (a pending wrapping) under that claim, and
// returns the claimed jobs and the pending wrappings' IDs by org.
func copiedJobs(t *testing.T, s CMKStore, owner string, now time.Time, orgs ...string) (map[string]cmk.Job, map[string]int64) {
	t.Helper()
	ctx := t.Context()
	for _, org := range orgs {
		startJob(t, s, newJob(org, cmk.JobActivate), cmk.StateActivating)
	}
	js, err := s.ClaimJobs(ctx, owner, now, time.Minute, len(orgs))
	if err != nil || len(js) != len(orgs) {
		t.Fatalf("ClaimJobs(ctx, %d) = %d jobs, %v", len(orgs), len(js), err)
	}
	jobs, ids := map[string]cmk.Job{}, map[string]int64{}
	for _, j := range js {
		j.Step = "copied"
		id, err := s.AddJobWrapping(ctx, j, pendingWrapping(j.OrgID, "v1"))
		if err != nil {
			t.Fatalf("AddJobWrapping(ctx, %s) = %v", j.OrgID, err)
		}
		jobs[j.OrgID], ids[j.OrgID] = j, id
	}
	return jobs, ids
}

// switchStep is the switch of org's claimed job j to pending wrapping id,
// its record at the org's current revision.
func switchStep(t *testing.T, s CMKStore, j cmk.Job, id int64) cmk.SwitchStep {
	t.Helper()
	done := j
	done.State, done.Step = cmk.JobDone, "switched"
	return cmk.SwitchStep{OrgID: j.OrgID, ID: id, Master: cmkKey(j.OrgID), Record: atRevision(newRecord(j.OrgID, cmk.StateActive), revision(t, s, j.OrgID)),
		Event: event(j.OrgID, "cmk.activate.done", "cmk"), Done: &done}
}

// checkSwitched checks that org's pending wrapping id is its only, active
// one, its job done and the switch's event last in its chain.
func checkSwitched(t *testing.T, s CMKStore, org string, id int64, jobID int64) {
	t.Helper()
	ctx := t.Context()
	if ws, err := s.RootKeys(ctx, org); err != nil || len(ws) != 1 || ws[0].ID != id || ws[0].State != keys.WrappingActive {
		t.Errorf("RootKeys(ctx, %s) after the switch = %+v, %v; want only wrapping %d, active", org, ws, err, id)
	}
	if o, err := s.GetOrg(ctx, org); err != nil || o.MasterKey != cmkKey(org) {
		t.Errorf("GetOrg(ctx, %s) after the switch = %+v, %v; want master key %v", org, o, err, cmkKey(org))
	}
	if j, err := s.GetJob(ctx, jobID); err != nil || j.State != cmk.JobDone || j.Step != "switched" {
		t.Errorf("GetJob(ctx, %d) of %s after the switch = %+v, %v; want done, switched", jobID, org, j, err)
	}
	if r := getCMK(t, s, org); r.State != cmk.StateActive {
		t.Errorf("GetCMK(ctx, %s) after the switch = %+v, want active", org, r)
	}
	evs := auditLog(t, s, org)
	if len(evs) == 0 || evs[len(evs)-1].Action != "cmk.activate.done" {
		t.Errorf("audit log of %s after the switch = %+v, want the switch's event last", org, evs)
	}
}

// checkNotSwitched checks that org still has its active and its pending
// wrapping, its job running and its chain n events long.
func checkNotSwitched(t *testing.T, s CMKStore, org string, jobID int64, n int) {
	t.Helper()
	ctx := t.Context()
	if ws, err := s.RootKeys(ctx, org); err != nil || len(ws) != 2 || ws[0].State != keys.WrappingActive || ws[1].State != keys.WrappingPending {
		t.Errorf("RootKeys(ctx, %s) after a refused switch = %+v, %v; want its active and pending wrappings", org, ws, err)
	}
	if j, err := s.GetJob(ctx, jobID); err != nil || j.State != cmk.JobRunning {
		t.Errorf("GetJob(ctx, %d) of %s after a refused switch = %+v, %v; want running", jobID, org, j, err)
	}
	if r := getCMK(t, s, org); r.State != cmk.StateActivating {
		t.Errorf("GetCMK(ctx, %s) after a refused switch = %+v, want activating", org, r)
	}
	if got := len(auditLog(t, s, org)); got != n {
		t.Errorf("audit log of %s has %d events after a refused switch, want %d", org, got, n)
	}
}

// testSwitchWrappings switches many jobs in one call: the good switches
// are stored as SwitchWrapping stores them, and each bad one (a lost
// lease, a stale record, no such wrapping, invalid) gets its own error,
// changing nothing of its org.
func testSwitchWrappings(t *testing.T, s CMKStore) {
	ctx := t.Context()
	orgs := []string{"a", "b", "c", "d", "e"}
	for _, org := range orgs {
		createOrg(t, s, org)
	}
	jobs, ids := copiedJobs(t, s, "node-1/x", base, orgs...)
	before := map[string]int{}
	for _, org := range orgs {
		before[org] = len(auditLog(t, s, org))
	}
	fenced := switchStep(t, s, jobs["c"], ids["c"])
	fenced.Done.Fence++ // a claim this holder does not hold
	stale := switchStep(t, s, jobs["d"], ids["d"])
	stale.Record.Revision += 5
	invalid := switchStep(t, s, jobs["e"], ids["e"])
	invalid.Master = invalid.Master.WithVersion("v1")
	steps := []cmk.SwitchStep{
		switchStep(t, s, jobs["b"], ids["b"]), // out of org order on purpose
		switchStep(t, s, jobs["a"], ids["a"]),
		fenced,
		stale,
		{OrgID: "ghost", ID: ids["a"] + 1000, Master: cmkKey("ghost"), Record: newRecord("ghost", cmk.StateActive), Event: event("ghost", "cmk.activate.done", "cmk")},
		invalid,
	}
	want := []fault.Kind{0, 0, fault.Conflict, fault.Conflict, fault.NotFound, fault.Invalid}
	res, err := s.SwitchWrappings(ctx, steps)
	if err != nil {
		t.Fatalf("SwitchWrappings(ctx, %d steps) = %v", len(steps), err)
	}
	if len(res) != len(steps) {
		t.Fatalf("SwitchWrappings(ctx, %d steps) returned %d results", len(steps), len(res))
	}
	for i, e := range res {
		if got := fault.KindOf(e); got != want[i] {
			t.Errorf("SwitchWrappings result %d (org %q) kind = %v (%v), want %v", i, steps[i].OrgID, got, e, want[i])
		}
	}
	checkSwitched(t, s, "a", ids["a"], jobs["a"].ID)
	checkSwitched(t, s, "b", ids["b"], jobs["b"].ID)
	for _, org := range []string{"c", "d", "e"} {
		checkNotSwitched(t, s, org, jobs[org].ID, before[org])
	}
	if res, err := s.SwitchWrappings(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("SwitchWrappings(ctx, nil) = %v, %v; want nothing", res, err)
	}
}

// testSwitchWrappingsConcurrent: the jobs of many orgs changed hands (their
// first holder's leases expired and a peer, another node on PostgreSQL,
// claimed them again); both holders switch all of them at once, in
// opposite orders. The fence decides in each switch's own transaction:
// every org is switched once, by the current holder; every switch of the
// old holder is Conflict; neither call fails as a whole; every chain
// verifies.
func testSwitchWrappingsConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	const n = 20
	orgs := make([]string, n)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org-%02d", i)
		createOrg(t, s, orgs[i])
	}
	old, ids := copiedJobs(t, s, "node-1/x", base, orgs...)
	p := peer(t, s)
	js, err := p.ClaimJobs(ctx, "node-2/y", base.Add(2*time.Minute), time.Minute, n)
	if err != nil || len(js) != n {
		t.Fatalf("ClaimJobs(ctx) on the peer after the leases expired = %d jobs, %v; want %d", len(js), err, n)
	}
	current := map[string]cmk.Job{}
	for _, j := range js {
		current[j.OrgID] = j
	}
	before := map[string]int{}
	for _, org := range orgs {
		before[org] = len(auditLog(t, s, org))
	}
	holders := []struct {
		st   CMKStore
		jobs map[string]cmk.Job
	}{{s, old}, {p, current}}
	results := make([][]error, 2)
	stepsOf := make([][]cmk.SwitchStep, 2)
	for w, h := range holders {
		for i := range orgs {
			org := orgs[i]
			if w == 1 {
				org = orgs[n-1-i]
			}
			stepsOf[w] = append(stepsOf[w], switchStep(t, s, h.jobs[org], ids[org]))
		}
	}
	var wg sync.WaitGroup
	for w, h := range holders {
		wg.Go(func() {
			res, err := h.st.SwitchWrappings(ctx, stepsOf[w])
			if err != nil {
				t.Errorf("SwitchWrappings(ctx) of holder %d = %v", w, err)
			}
			results[w] = res
		})
	}
	wg.Wait()
	for i, e := range results[0] {
		if fault.KindOf(e) != fault.Conflict {
			t.Errorf("the old holder's switch of %s = %v, want Conflict (its lease is gone)", stepsOf[0][i].OrgID, e)
		}
	}
	for i, e := range results[1] {
		if e != nil {
			t.Errorf("the current holder's switch of %s = %v, want success", stepsOf[1][i].OrgID, e)
		}
	}
	for _, org := range orgs {
		checkSwitched(t, s, org, ids[org], current[org].ID)
		if got := len(auditLog(t, s, org)); got != before[org]+1 {
			t.Errorf("audit log of %s has %d events, want %d (one switch)", org, got, before[org]+1)
		}
	}
}

// claimedJobs starts and claims an activation of each org (claimed by
// owner at now) and returns the claimed jobs by org, Step "copied".
func claimedJobs(t *testing.T, s CMKStore, owner string, now time.Time, orgs ...string) map[string]cmk.Job {
	t.Helper()
	for _, org := range orgs {
		startJob(t, s, newJob(org, cmk.JobActivate), cmk.StateActivating)
	}
	js, err := s.ClaimJobs(t.Context(), owner, now, time.Minute, len(orgs))
	if err != nil || len(js) != len(orgs) {
		t.Fatalf("ClaimJobs(ctx, %d) = %d jobs, %v", len(orgs), len(js), err)
	}
	jobs := map[string]cmk.Job{}
	for _, j := range js {
		j.Step = "copied"
		jobs[j.OrgID] = j
	}
	return jobs
}

// checkCopied checks that org has its active wrapping and the pending
// one id (with w's contents), and its job running with step copied.
func checkCopied(t *testing.T, s CMKStore, org string, id int64, w keys.RootKeyWrapping, j cmk.Job) {
	t.Helper()
	ctx := t.Context()
	ws, err := s.RootKeys(ctx, org)
	if err != nil || len(ws) != 2 || ws[0].State != keys.WrappingActive || ws[1].ID != id {
		t.Errorf("RootKeys(ctx, %s) after its copy = %+v, %v; want the active wrapping and pending copy %d", org, ws, err, id)
	} else {
		checkWrapping(t, "pending wrapping of "+org, ws[1], w)
	}
	if g, err := s.GetJob(ctx, j.ID); err != nil || g.State != cmk.JobRunning || g.Step != "copied" || g.Owner != j.Owner || g.Fence != j.Fence {
		t.Errorf("GetJob(ctx, %d) of %s after its copy = %+v, %v; want running, copied, under %s fence %d", j.ID, org, g, err, j.Owner, j.Fence)
	}
}

// testAddJobWrappings stores many jobs' copies in one call: the good ones
// are stored as AddJobWrapping stores them (an older pending copy
// replaced), and each bad one (a lost lease, another org's job, invalid,
// no such org) gets its own error, changing nothing of its org.
func testAddJobWrappings(t *testing.T, s CMKStore) {
	ctx := t.Context()
	orgs := []string{"a", "b", "c", "d", "e", "f"}
	for _, org := range orgs {
		createOrg(t, s, org)
	}
	jobs := claimedJobs(t, s, "node-1/x", base, orgs...)
	// b already has a pending copy (an interrupted run): it is replaced.
	if _, err := s.AddJobWrapping(ctx, jobs["b"], pendingWrapping("b", "v0")); err != nil {
		t.Fatalf("AddJobWrapping(ctx, b) = %v", err)
	}
	fenced := jobs["c"]
	fenced.Fence++ // a claim this holder does not hold
	other := jobs["d"]
	other.OrgID = "e" // d's job given for org e
	invalid := pendingWrapping("f", "")
	invalid.Wrapped.Key.Version = ""
	steps := []cmk.CopyStep{
		{Job: jobs["b"], Wrapping: pendingWrapping("b", "v1")}, // out of org order on purpose
		{Job: jobs["a"], Wrapping: pendingWrapping("a", "v1")},
		{Job: fenced, Wrapping: pendingWrapping("c", "v1")},
		{Job: other, Wrapping: pendingWrapping("e", "v1")},
		{Job: jobs["f"], Wrapping: invalid},
		{Job: jobs["e"], Wrapping: pendingWrapping("e", "v1")},
	}
	want := []fault.Kind{0, 0, fault.Conflict, fault.Invalid, fault.Invalid, 0}
	res, err := s.AddJobWrappings(ctx, steps)
	if err != nil {
		t.Fatalf("AddJobWrappings(ctx, %d steps) = %v", len(steps), err)
	}
	if len(res) != len(steps) {
		t.Fatalf("AddJobWrappings(ctx, %d steps) returned %d results", len(steps), len(res))
	}
	for i, r := range res {
		if got := fault.KindOf(r.Err); got != want[i] {
			t.Errorf("AddJobWrappings result %d (org %q) kind = %v (%v), want %v", i, steps[i].Job.OrgID, got, r.Err, want[i])
		}
		if (r.Err == nil) != (r.ID != 0) {
			t.Errorf("AddJobWrappings result %d = %+v; want an ID exactly when it succeeded", i, r)
		}
	}
	checkCopied(t, s, "a", res[1].ID, steps[1].Wrapping, jobs["a"])
	checkCopied(t, s, "b", res[0].ID, steps[0].Wrapping, jobs["b"])
	checkCopied(t, s, "e", res[5].ID, steps[5].Wrapping, jobs["e"])
	for _, org := range []string{"c", "d", "f"} {
		if ws, err := s.RootKeys(ctx, org); err != nil || len(ws) != 1 {
			t.Errorf("RootKeys(ctx, %s) after a refused copy = %+v, %v; want only its active wrapping", org, ws, err)
		}
		if g, err := s.GetJob(ctx, jobs[org].ID); err != nil || g.Step != "" {
			t.Errorf("GetJob(ctx) of %s after a refused copy = %+v, %v; want its step unchanged", org, g, err)
		}
	}
	// The copies switch as any other (set-based on PostgreSQL), each
	// raising its org's generation.
	var sw []cmk.SwitchStep
	for k, org := range []string{"a", "b", "e"} {
		st := switchStep(t, s, jobs[org], res[[]int{1, 0, 5}[k]].ID)
		st.Record.Bump = cmk.BumpActivated
		sw = append(sw, st)
	}
	before := map[string]int64{}
	for _, st := range sw {
		g, err := s.OrgGeneration(ctx, st.OrgID)
		if err != nil && fault.KindOf(err) != fault.NotFound {
			t.Fatal(err)
		}
		before[st.OrgID] = g.Generation
	}
	if out, err := s.SwitchWrappings(ctx, sw); err != nil || len(out) != len(sw) || out[0] != nil || out[1] != nil || out[2] != nil {
		t.Fatalf("SwitchWrappings(ctx) of the copies = %v, %v", out, err)
	}
	for _, st := range sw {
		checkSwitched(t, s, st.OrgID, st.ID, st.Done.ID)
		if g, err := s.OrgGeneration(ctx, st.OrgID); err != nil || g.Generation != before[st.OrgID]+1 || g.Reason != cmk.BumpActivated {
			t.Errorf("OrgGeneration(ctx, %s) after the switch = %+v, %v; want generation %d, %s", st.OrgID, g, err, before[st.OrgID]+1, cmk.BumpActivated)
		}
		if err := audit.Verify(auditLog(t, s, st.OrgID)); err != nil {
			t.Errorf("audit chain of %s: %v", st.OrgID, err)
		}
	}
	if res, err := s.AddJobWrappings(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("AddJobWrappings(ctx, nil) = %v, %v; want nothing", res, err)
	}
}

// testAddJobWrappingsConcurrent: the jobs of many orgs changed hands
// (their first holder's leases expired and a peer claimed them again);
// both holders store copies of all of them at once, in opposite orders.
// The fence decides in each copy's own transaction: every org gets the
// current holder's copy; every copy of the old holder is Conflict and
// stores nothing; neither call fails as a whole.
func testAddJobWrappingsConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	const n = 20
	orgs := make([]string, n)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org-%02d", i)
		createOrg(t, s, orgs[i])
	}
	old := claimedJobs(t, s, "node-1/x", base, orgs...)
	p := peer(t, s)
	js, err := p.ClaimJobs(ctx, "node-2/y", base.Add(2*time.Minute), time.Minute, n)
	if err != nil || len(js) != n {
		t.Fatalf("ClaimJobs(ctx) on the peer after the leases expired = %d jobs, %v; want %d", len(js), err, n)
	}
	current := map[string]cmk.Job{}
	for _, j := range js {
		j.Step = "copied"
		current[j.OrgID] = j
	}
	holders := []struct {
		st      CMKStore
		jobs    map[string]cmk.Job
		version string
	}{{s, old, "v-old"}, {p, current, "v-new"}}
	stepsOf := make([][]cmk.CopyStep, 2)
	for w, h := range holders {
		for i := range orgs {
			org := orgs[i]
			if w == 1 {
				org = orgs[n-1-i]
			}
			stepsOf[w] = append(stepsOf[w], cmk.CopyStep{Job: h.jobs[org], Wrapping: pendingWrapping(org, h.version)})
		}
	}
	results := make([][]cmk.Copied, 2)
	var wg sync.WaitGroup
	for w, h := range holders {
		wg.Go(func() {
			res, err := h.st.AddJobWrappings(ctx, stepsOf[w])
			if err != nil {
				t.Errorf("AddJobWrappings(ctx) of holder %d = %v", w, err)
			}
			results[w] = res
		})
	}
	wg.Wait()
	for i, r := range results[0] {
		if fault.KindOf(r.Err) != fault.Conflict {
			t.Errorf("the old holder's copy of %s = %+v, want Conflict (its lease is gone)", stepsOf[0][i].Job.OrgID, r)
		}
	}
	for i, r := range results[1] {
		if r.Err != nil {
			t.Errorf("the current holder's copy of %s = %v, want success", stepsOf[1][i].Job.OrgID, r.Err)
			continue
		}
		checkCopied(t, s, stepsOf[1][i].Job.OrgID, r.ID, stepsOf[1][i].Wrapping, current[stepsOf[1][i].Job.OrgID])
	}
}

// testGetCMKs reads many records at once: those of the orgs that have one,
// in org ID order, each as GetCMK returns it; orgs without a record (or
// that do not exist) are left out; a record another writer changed is
// read as changed.
func testGetCMKs(t *testing.T, s CMKStore) {
	ctx := t.Context()
	states := map[string]cmk.State{"d": cmk.StateRevoked, "a": cmk.StateActive, "c": cmk.StateRotating}
	for _, org := range []string{"d", "c", "b", "a"} {
		createOrg(t, s, org)
		if st, ok := states[org]; ok {
			if err := s.PutCMK(ctx, newRecord(org, st), nil); err != nil {
				t.Fatalf("PutCMK(ctx, %s) = %v", org, err)
			}
		}
	}
	// A peer (another node on PostgreSQL) changes d's record.
	d := atRevision(newRecord("d", cmk.StateActive), 1)
	if err := peer(t, s).PutCMK(ctx, d, nil); err != nil {
		t.Fatalf("PutCMK(ctx, d) on the peer = %v", err)
	}
	rs, err := s.GetCMKs(ctx, []string{"d", "ghost", "b", "a", "c", "a"})
	if err != nil {
		t.Fatalf("GetCMKs(ctx) = %v", err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.OrgID)
		checkRecord(t, "GetCMKs(ctx) record of "+r.OrgID, r, getCMK(t, s, r.OrgID))
	}
	if want := []string{"a", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("GetCMKs(ctx) = records of %v, want %v", got, want)
	}
	if len(rs) == 3 && (rs[2].State != cmk.StateActive || rs[2].Revision != 2) {
		t.Errorf("GetCMKs(ctx) record of d = %+v, want the peer's change (active, revision 2)", rs[2])
	}
	if rs, err := s.GetCMKs(ctx, nil); err != nil || len(rs) != 0 {
		t.Errorf("GetCMKs(ctx, nil) = %v, %v; want nothing", rs, err)
	}
}

// testRootKeysOf reads many orgs' root key wrappings at once: by org ID,
// each org's as RootKeys returns them (active first, then by ID), with
// the org ID set; orgs that do not exist are left out.
func testRootKeysOf(t *testing.T, s CMKStore) {
	ctx := t.Context()
	fs := map[string]fixture{}
	for _, org := range []string{"c", "a", "b"} {
		fs[org] = createOrg(t, s, org)
	}
	pending := map[string][]keys.RootKeyWrapping{}
	for _, org := range []string{"a", "c"} {
		w := pendingWrapping(org, "v2")
		id, err := s.AddPendingWrapping(ctx, org, w)
		if err != nil {
			t.Fatalf("AddPendingWrapping(ctx, %s) = %v", org, err)
		}
		w.ID = id
		pending[org] = append(pending[org], w)
	}
	ws, err := s.RootKeysOf(ctx, []string{"c", "ghost", "a", "b", "a"})
	if err != nil {
		t.Fatalf("RootKeysOf(ctx) = %v", err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.OrgID)
	}
	if want := []string{"a", "a", "b", "c", "c"}; !slices.Equal(got, want) {
		t.Fatalf("RootKeysOf(ctx) = wrappings of %v, want %v", got, want)
	}
	i := 0
	for _, org := range []string{"a", "b", "c"} {
		one, err := s.RootKeys(ctx, org)
		if err != nil {
			t.Fatalf("RootKeys(ctx, %s) = %v", org, err)
		}
		if len(one) != 1+len(pending[org]) {
			t.Fatalf("RootKeys(ctx, %s) = %d wrappings, want %d", org, len(one), 1+len(pending[org]))
		}
		checkWrapping(t, "RootKeysOf(ctx) active wrapping of "+org, ws[i], fs[org].root)
		for k, w := range one {
			if ws[i+k].ID != w.ID {
				t.Errorf("RootKeysOf(ctx) wrapping %d of %s has ID %d, want %d (as RootKeys orders them)", k, org, ws[i+k].ID, w.ID)
			}
			checkWrapping(t, fmt.Sprintf("RootKeysOf(ctx) wrapping %d of %s", k, org), ws[i+k], w)
		}
		for k, w := range pending[org] {
			checkWrapping(t, fmt.Sprintf("RootKeysOf(ctx) pending wrapping %d of %s", k, org), ws[i+1+k], w)
		}
		i += len(one)
	}
	if ws, err := s.RootKeysOf(ctx, nil); err != nil || len(ws) != 0 {
		t.Errorf("RootKeysOf(ctx, nil) = %v, %v; want nothing", ws, err)
	}
}
