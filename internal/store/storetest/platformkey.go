package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/platformkey"
)

// PlatformStore is a storage implementation that also stores platform
// re-wrap jobs.
type PlatformStore interface {
	Store
	platformkey.Store
}

// RunPlatformKey runs the suite of [platformkey.Store]. open is as for [Run].
func RunPlatformKey(t *testing.T, open func(t *testing.T) PlatformStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s PlatformStore)
	}{
		{"PlatformJobLifecycle", testPlatformJobLifecycle},
		{"PlatformJobFence", testPlatformJobFence},
		{"PlatformJobClaimConcurrent", testPlatformJobClaimConcurrent},
		{"PlatformSwitchConflicts", testPlatformSwitchConflicts},
		{"RootKeyPage", testRootKeyPage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

var newPlatformKey = masterkey.Ref{Provider: "local", ID: "new-platform-master"}

func startPlatformJob(t *testing.T, s PlatformStore) jobs.Job {
	t.Helper()
	j, err := s.StartPlatformJob(t.Context(), jobs.Job{Kind: platformkey.JobKind, Target: newPlatformKey.WithVersion("v2").String(), CreatedAt: base},
		audit.Event{Time: base, Actor: "orgkms", Action: "platform.rewrap.start", Target: "platform"})
	if err != nil {
		t.Fatalf("StartPlatformJob = %v", err)
	}
	return j
}

func claimPlatformJob(t *testing.T, s PlatformStore, owner string, now time.Time) jobs.Job {
	t.Helper()
	j, err := s.PlatformJobs().ClaimJob(t.Context(), owner, now, time.Minute)
	if err != nil {
		t.Fatalf("PlatformJobs().ClaimJob(%s) = %v", owner, err)
	}
	return j
}

func pendingCopy(org string) keys.RootKeyWrapping {
	return keys.RootKeyWrapping{OrgID: org, State: keys.WrappingPending, CreatedAt: base.Add(time.Hour),
		Wrapped: masterkey.Wrapped{Ciphertext: material("copy/"+org, 72), Key: newPlatformKey.WithVersion("v2")}}
}

func rewrapEvent(org string) audit.Event {
	return audit.Event{OrgID: org, Time: base.Add(time.Hour), Actor: "orgkms", Action: "platform.rewrap", Target: "org/" + org,
		Details: map[string]string{"from_version": "v1-" + org, "to_version": "v2"}}
}

func testPlatformJobLifecycle(t *testing.T, s PlatformStore) {
	ctx := t.Context()
	a, b := createOrg(t, s, "acme"), createOrg(t, s, "globex")
	if _, err := s.LatestPlatformJob(ctx); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("LatestPlatformJob before any job kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}
	j := startPlatformJob(t, s)
	if j.ID == 0 || j.State != jobs.Pending || j.OrgID != audit.Platform || j.Kind != platformkey.JobKind {
		t.Fatalf("StartPlatformJob = %+v, want a pending %s job of %s", j, platformkey.JobKind, audit.Platform)
	}
	_, err := s.StartPlatformJob(ctx, jobs.Job{Kind: platformkey.JobKind, Target: "x", CreatedAt: base}, audit.Event{Time: base, Action: "platform.rewrap.start"})
	checkKind(t, "StartPlatformJob with one pending", err, fault.Conflict)
	// The CMK runner never sees a platform job.
	if _, err := s.ClaimJob(ctx, "n1/cmk", base, time.Minute); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("ClaimJob (CMK jobs) with a platform job pending kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}
	j = claimPlatformJob(t, s, "n1/a", base)
	if j.State != jobs.Running || j.Fence != 1 || j.Attempts != 1 || j.Owner != "n1/a" {
		t.Fatalf("claimed platform job = %+v, want running, fence 1, attempt 1, owner n1/a", j)
	}
	if _, err := s.PlatformJobs().ClaimJob(ctx, "n2/b", base, time.Minute); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("second ClaimJob within the lease kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}
	j.Step = "copied acme"
	ids, err := s.AddPlatformCopies(ctx, j, []keys.RootKeyWrapping{pendingCopy("acme"), pendingCopy("globex")})
	if err != nil || len(ids) != 2 {
		t.Fatalf("AddPlatformCopies = %v, %v", ids, err)
	}
	roots, err := s.RootKeys(ctx, "acme")
	if err != nil || len(roots) != 2 || roots[0].State != keys.WrappingActive || roots[1].ID != ids[0] || roots[1].State != keys.WrappingPending {
		t.Fatalf("RootKeys(acme) after the copy = %+v, %v; want the active one, then pending %d", roots, err, ids[0])
	}
	genBefore, _ := s.OrgGeneration(ctx, "acme")
	activeA, activeB := roots[0].ID, rootID(t, s, "globex")
	j.Step = "switched"
	errs, err := s.SwitchPlatformWrappings(ctx, j, []platformkey.Switch{
		{OrgID: "acme", From: activeA, To: ids[0], Master: newPlatformKey, Event: rewrapEvent("acme")},
		{OrgID: "globex", From: activeB, To: ids[1], Master: newPlatformKey, Event: rewrapEvent("globex")},
	})
	if err != nil || len(errs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("SwitchPlatformWrappings = %v, %v", errs, err)
	}
	for i, f := range []fixture{a, b} {
		roots, err := s.RootKeys(ctx, f.org.ID)
		if err != nil || len(roots) != 1 || roots[0].ID != ids[i] || roots[0].State != keys.WrappingActive || roots[0].Wrapped.Key != newPlatformKey.WithVersion("v2") {
			t.Fatalf("RootKeys(%s) after the switch = %+v, %v; want only %d, active, at v2", f.org.ID, roots, err, ids[i])
		}
		org, err := s.GetOrg(ctx, f.org.ID)
		if err != nil || org.MasterKey != newPlatformKey {
			t.Fatalf("GetOrg(%s).MasterKey = %v, %v; want %v", f.org.ID, org.MasterKey, err, newPlatformKey)
		}
		evs := auditLog(t, s, f.org.ID)
		if last := evs[len(evs)-1]; last.Action != "platform.rewrap" {
			t.Fatalf("last audit event of %s = %q, want platform.rewrap", f.org.ID, last.Action)
		}
	}
	genAfter, err := s.OrgGeneration(ctx, "acme")
	if err != nil || genAfter.Generation != genBefore.Generation+1 || genAfter.Reason != platformkey.BumpRewrapped {
		t.Fatalf("OrgGeneration(acme) after the switch = %+v, %v; want %d, reason %s", genAfter, err, genBefore.Generation+1, platformkey.BumpRewrapped)
	}
	counts, err := s.WrappingCounts(ctx)
	if err != nil || len(counts) != 1 || counts[0].Orgs != 2 || counts[0].Key != newPlatformKey.WithVersion("v2") || counts[0].State != keys.WrappingActive {
		t.Fatalf("WrappingCounts = %+v, %v; want 2 active orgs at %v", counts, err, newPlatformKey.WithVersion("v2"))
	}
	j.State, j.Step, j.UpdatedAt = jobs.Done, "done", base.Add(2*time.Hour)
	if err := s.FinishPlatformJob(ctx, j, audit.Event{Time: base.Add(2 * time.Hour), Actor: "orgkms", Action: "platform.rewrap.done", Target: "platform"}); err != nil {
		t.Fatalf("FinishPlatformJob = %v", err)
	}
	got, err := s.LatestPlatformJob(ctx)
	if err != nil || got.ID != j.ID || got.State != jobs.Done || got.Step != "done" {
		t.Fatalf("LatestPlatformJob = %+v, %v; want job %d done", got, err, j.ID)
	}
	evs := auditLog(t, s, audit.Platform)
	if len(evs) != 2 || evs[0].Action != "platform.rewrap.start" || evs[1].Action != "platform.rewrap.done" {
		t.Fatalf("platform chain = %d events, want start and done", len(evs))
	}
	// A finished job does not block the next one.
	if next := startPlatformJob(t, s); next.ID == j.ID {
		t.Fatalf("a new platform job reused ID %d", j.ID)
	}
}

func rootID(t *testing.T, s PlatformStore, org string) int64 {
	t.Helper()
	roots, err := s.RootKeys(t.Context(), org)
	if err != nil || len(roots) == 0 {
		t.Fatalf("RootKeys(%s) = %v, %v", org, roots, err)
	}
	return roots[0].ID
}

func testPlatformJobFence(t *testing.T, s PlatformStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	startPlatformJob(t, s)
	old := claimPlatformJob(t, s, "n1/a", base)
	// The lease ran out: another node takes the job over.
	cur := claimPlatformJob(t, s, "n2/b", base.Add(2*time.Minute))
	if cur.Fence != old.Fence+1 || cur.Attempts != 2 {
		t.Fatalf("take-over claim = fence %d attempt %d, want %d and 2", cur.Fence, cur.Attempts, old.Fence+1)
	}
	active := rootID(t, s, "acme")
	old.Step = "stale"
	_, err := s.AddPlatformCopies(ctx, old, []keys.RootKeyWrapping{pendingCopy("acme")})
	checkKind(t, "AddPlatformCopies by the fenced-out runner", err, fault.Conflict)
	if roots, _ := s.RootKeys(ctx, "acme"); len(roots) != 1 {
		t.Fatalf("a fenced-out copy was stored: %d wrappings", len(roots))
	}
	ids, err := s.AddPlatformCopies(ctx, cur, []keys.RootKeyWrapping{pendingCopy("acme")})
	if err != nil {
		t.Fatalf("AddPlatformCopies by the holder = %v", err)
	}
	_, err = s.SwitchPlatformWrappings(ctx, old, []platformkey.Switch{{OrgID: "acme", From: active, To: ids[0], Master: newPlatformKey, Event: rewrapEvent("acme")}})
	checkKind(t, "SwitchPlatformWrappings by the fenced-out runner", err, fault.Conflict)
	if rootID(t, s, "acme") != active {
		t.Fatalf("a fenced-out switch was stored")
	}
	checkKind(t, "RenewJob by the fenced-out runner", s.PlatformJobs().RenewJob(ctx, old, base.Add(time.Hour)), fault.Conflict)
	checkKind(t, "UpdateJob by the fenced-out runner", s.PlatformJobs().UpdateJob(ctx, old), fault.Conflict)
	old.State = jobs.Done
	checkKind(t, "FinishPlatformJob by the fenced-out runner", s.FinishPlatformJob(ctx, old, audit.Event{Time: base, Action: "platform.rewrap.done"}), fault.Conflict)
	if err := s.PlatformJobs().RenewJob(ctx, cur, base.Add(3*time.Minute)); err != nil {
		t.Fatalf("RenewJob by the holder = %v", err)
	}
	// Released for a retry, the job is claimable after NotBefore only.
	cur.State, cur.NotBefore, cur.LeaseUntil = jobs.Pending, base.Add(10*time.Minute), time.Time{}
	if err := s.PlatformJobs().UpdateJob(ctx, cur); err != nil {
		t.Fatalf("UpdateJob (release) = %v", err)
	}
	if _, err := s.PlatformJobs().ClaimJob(ctx, "n3/c", base.Add(5*time.Minute), time.Minute); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("ClaimJob before NotBefore kind = %v, want %v", fault.KindOf(err), fault.NotFound)
	}
	if j := claimPlatformJob(t, s, "n3/c", base.Add(10*time.Minute)); j.Fence != cur.Fence+1 {
		t.Fatalf("claim after NotBefore fence = %d, want %d", j.Fence, cur.Fence+1)
	}
}

func testPlatformJobClaimConcurrent(t *testing.T, s PlatformStore) {
	startPlatformJob(t, s)
	p := s
	if ps, ok := any(s).(interface {
		PlatformPeer(t *testing.T) PlatformStore
	}); ok {
		p = ps.PlatformPeer(t)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		st := s
		if i%2 == 1 {
			st = p
		}
		wg.Go(func() {
			_, err := st.PlatformJobs().ClaimJob(t.Context(), fmt.Sprintf("n%d/x", i), base, time.Minute)
			switch fault.KindOf(err) {
			case 0:
				mu.Lock()
				won++
				mu.Unlock()
			case fault.NotFound:
			default:
				if err != nil {
					t.Errorf("ClaimJob = %v", err)
				}
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d concurrent claims got the one platform job, want 1", won)
	}
}

func testPlatformSwitchConflicts(t *testing.T, s PlatformStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "globex")
	startPlatformJob(t, s)
	j := claimPlatformJob(t, s, "n1/a", base)
	ids, err := s.AddPlatformCopies(ctx, j, []keys.RootKeyWrapping{pendingCopy("acme"), pendingCopy("globex")})
	if err != nil {
		t.Fatal(err)
	}
	activeA, activeB := rootID(t, s, "acme"), rootID(t, s, "globex")
	// A CMK job's pending copy is never replaced by a platform copy.
	cmkOther := pendingCopy("initech")
	cmkOther.Wrapped.Key = masterkey.Ref{Provider: "azurekv", ID: "https://v.vault.azure.net/keys/k", Version: "1"}
	createOrg(t, s, "initech")
	if _, err := s.AddPendingWrapping(ctx, "initech", cmkOther); err != nil {
		t.Fatal(err)
	}
	skipped, err := s.AddPlatformCopies(ctx, j, []keys.RootKeyWrapping{pendingCopy("initech")})
	if err != nil || len(skipped) != 1 || skipped[0] != 0 {
		t.Fatalf("AddPlatformCopies over a CMK job's copy = %v, %v; want [0]", skipped, err)
	}
	if roots, _ := s.RootKeys(ctx, "initech"); len(roots) != 2 || roots[1].Wrapped.Key.Provider != "azurekv" {
		t.Fatalf("the CMK job's pending copy was replaced: %+v", roots)
	}
	// Meanwhile a CMK job replaced acme's pending copy with its own.
	cmkCopy := pendingCopy("acme")
	cmkCopy.Wrapped.Key = masterkey.Ref{Provider: "azurekv", ID: "https://v.vault.azure.net/keys/k", Version: "1"}
	if _, err := s.AddPendingWrapping(ctx, "acme", cmkCopy); err != nil {
		t.Fatal(err)
	}
	errs, err := s.SwitchPlatformWrappings(ctx, j, []platformkey.Switch{
		{OrgID: "acme", From: activeA, To: ids[0], Master: newPlatformKey, Event: rewrapEvent("acme")},
		{OrgID: "globex", From: activeB, To: ids[1], Master: newPlatformKey, Event: rewrapEvent("globex")},
		{OrgID: "missing", From: 1, To: 2, Master: newPlatformKey, Event: rewrapEvent("missing")},
	})
	if err != nil {
		t.Fatalf("SwitchPlatformWrappings = %v", err)
	}
	checkKind(t, "switch of acme, whose copy was replaced", errs[0], fault.Conflict)
	if errs[1] != nil {
		t.Fatalf("switch of globex = %v, want nil", errs[1])
	}
	checkKind(t, "switch of a missing org", errs[2], fault.NotFound)
	if rootID(t, s, "acme") != activeA {
		t.Fatalf("acme switched although its wrappings changed")
	}
	if rootID(t, s, "globex") != ids[1] {
		t.Fatalf("globex not switched beside acme's conflict")
	}
	for _, e := range auditLog(t, s, "acme") {
		if e.Action == "platform.rewrap" {
			t.Fatalf("acme's chain records a re-wrap that did not happen")
		}
	}
}

func testRootKeyPage(t *testing.T, s PlatformStore) {
	ctx := t.Context()
	for i := range 5 {
		createOrg(t, s, fmt.Sprintf("org-%d", i))
	}
	if _, err := s.AddPendingWrapping(ctx, "org-1", pendingCopy("org-1")); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		page, err := s.RootKeyPage(ctx, after, 2)
		if err != nil {
			t.Fatalf("RootKeyPage(%q, 2) = %v", after, err)
		}
		if len(page) == 0 {
			break
		}
		for _, w := range page {
			got = append(got, w.OrgID+"/"+string(w.State))
			if w.ID == 0 || w.Wrapped.Key.Version == "" || len(w.Wrapped.Ciphertext) == 0 {
				t.Fatalf("RootKeyPage wrapping %+v lacks its ID, version or ciphertext", w)
			}
		}
		after = page[len(page)-1].OrgID
	}
	want := "org-0/active org-1/active org-1/pending org-2/active org-3/active org-4/active"
	if fmt.Sprint(got) != "["+want+"]" {
		t.Fatalf("RootKeyPage pages = %v, want [%s]", got, want)
	}
	counts, err := s.WrappingCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var active, pending int
	for _, c := range counts {
		switch c.State {
		case keys.WrappingActive:
			active += c.Orgs
		case keys.WrappingPending:
			pending += c.Orgs
		}
	}
	if active != 5 || pending != 1 {
		t.Fatalf("WrappingCounts: %d active, %d pending; want 5 and 1", active, pending)
	}
	checkKind(t, "RootKeyPage with limit 0", func() error { _, err := s.RootKeyPage(ctx, "", 0); return err }(), fault.Invalid)
}
