package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// testNodes: register, heartbeat, stop and list nodes; a heartbeat of a
// node whose row is gone is NotFound; a re-registration clears the stop.
func testNodes(t *testing.T, s CMKStore) {
	ctx := t.Context()
	a := cmk.Node{ID: "node-a", Address: "10.0.0.1:8443", Version: "v1", StartedAt: base, HeartbeatAt: base}
	b := cmk.Node{ID: "node-b", Address: "10.0.0.2:8443", Version: "v1", StartedAt: base, HeartbeatAt: base}
	for _, n := range []cmk.Node{b, a} {
		if err := s.RegisterNode(ctx, n); err != nil {
			t.Fatalf("RegisterNode(%s) = %v", n.ID, err)
		}
	}
	checkKind(t, "RegisterNode(no ID)", s.RegisterNode(ctx, cmk.Node{}), fault.Invalid)
	if err := s.HeartbeatNode(ctx, "node-a", base.Add(time.Second)); err != nil {
		t.Fatalf("HeartbeatNode(node-a) = %v", err)
	}
	checkKind(t, "HeartbeatNode(nosuch)", s.HeartbeatNode(ctx, "nosuch", base), fault.NotFound)
	if err := s.StopNode(ctx, "node-b", base.Add(2*time.Second)); err != nil {
		t.Fatalf("StopNode(node-b) = %v", err)
	}
	checkKind(t, "StopNode(nosuch)", s.StopNode(ctx, "nosuch", base), fault.NotFound)
	ns, err := s.ListNodes(ctx)
	if err != nil {
		t.Fatalf("ListNodes = %v", err)
	}
	if len(ns) != 2 || ns[0].ID != "node-a" || ns[1].ID != "node-b" {
		t.Fatalf("ListNodes = %+v, want node-a, node-b", ns)
	}
	if got := ns[0]; got.Address != a.Address || got.Version != "v1" || !got.StartedAt.Equal(micro(base)) ||
		!got.HeartbeatAt.Equal(micro(base.Add(time.Second))) || !got.StoppedAt.IsZero() {
		t.Errorf("node-a = %+v", got)
	}
	if got := ns[1]; !got.StoppedAt.Equal(micro(base.Add(2 * time.Second))) {
		t.Errorf("node-b stopped at %v, want %v", got.StoppedAt, micro(base.Add(2*time.Second)))
	}
	now := base.Add(5 * time.Second)
	if st := ns[0].State(now, 10*time.Second); st != cmk.NodeLive {
		t.Errorf("node-a state = %s, want live", st)
	}
	if st := ns[0].State(now.Add(time.Minute), 10*time.Second); st != cmk.NodeGone {
		t.Errorf("node-a state a minute later = %s, want gone", st)
	}
	if st := ns[1].State(now, 10*time.Second); st != cmk.NodeStopped {
		t.Errorf("node-b state = %s, want stopped", st)
	}
	// A restart registers again: the stop is cleared.
	b.StartedAt, b.HeartbeatAt, b.Version = base.Add(time.Hour), base.Add(time.Hour), "v2"
	if err := s.RegisterNode(ctx, b); err != nil {
		t.Fatalf("RegisterNode(node-b again) = %v", err)
	}
	ns, err = s.ListNodes(ctx)
	if err != nil {
		t.Fatalf("ListNodes = %v", err)
	}
	if got := ns[1]; !got.StoppedAt.IsZero() || got.Version != "v2" || !got.StartedAt.Equal(micro(base.Add(time.Hour))) {
		t.Errorf("node-b after re-registering = %+v", got)
	}
}

// testGenerations: BumpGeneration and Record.Bump raise an org's
// generation by one each, with the reason; a record write without Bump
// leaves it alone; BumpAllGenerations raises every org; other orgs are
// untouched; the audit event of a bump is in the org's chain.
func testGenerations(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "other")
	checkKind(t, "OrgGeneration(acme) before any change", errOnly(s.OrgGeneration(ctx, "acme")), fault.NotFound)
	ev := event("acme", "cache.purge", "org/acme")
	g, err := s.BumpGeneration(ctx, "acme", cmk.BumpPurged, base, &ev)
	if err != nil {
		t.Fatalf("BumpGeneration(acme) = %v", err)
	}
	if g.Generation != 1 || g.Reason != cmk.BumpPurged || !g.ChangedAt.Equal(micro(base)) || g.OrgID != "acme" {
		t.Errorf("BumpGeneration(acme) = %+v, want generation 1 purged", g)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 || evs[1].Action != "cache.purge" {
		t.Errorf("audit log of acme = %d events, want org.create and cache.purge", len(evs))
	}
	checkKind(t, "BumpGeneration(nosuch)", errOnly(s.BumpGeneration(ctx, "nosuch", cmk.BumpPurged, base, nil)), fault.NotFound)
	checkKind(t, "BumpGeneration(no reason)", errOnly(s.BumpGeneration(ctx, "acme", "", base, nil)), fault.Invalid)

	// A record write with Bump raises it; one without does not.
	r := newRecord("acme", cmk.StateRevoked)
	r.Bump = cmk.BumpRevoked
	if err := s.PutCMK(ctx, r, nil); err != nil {
		t.Fatalf("PutCMK(acme, bump) = %v", err)
	}
	r = getCMK(t, s, "acme")
	if r.Bump != "" {
		t.Errorf("GetCMK(acme).Bump = %q, want empty", r.Bump)
	}
	r.LastProbeError = "probe"
	if err := s.PutCMK(ctx, r, nil); err != nil {
		t.Fatalf("PutCMK(acme) = %v", err)
	}
	g, err = s.OrgGeneration(ctx, "acme")
	if err != nil || g.Generation != 2 || g.Reason != cmk.BumpRevoked || !g.ChangedAt.Equal(micro(r.UpdatedAt)) {
		t.Errorf("OrgGeneration(acme) = %+v, %v; want generation 2 revoked at %v", g, err, micro(r.UpdatedAt))
	}
	// A rejected write (stale revision) raises nothing.
	stale := r
	stale.Bump = cmk.BumpRestored
	checkKind(t, "PutCMK(stale, bump)", s.PutCMK(ctx, stale, nil), fault.Conflict)
	if g, _ := s.OrgGeneration(ctx, "acme"); g.Generation != 2 {
		t.Errorf("generation after a rejected write = %d, want 2", g.Generation)
	}

	n, err := s.BumpAllGenerations(ctx, cmk.BumpPurged, base.Add(time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("BumpAllGenerations = %d, %v; want 2 orgs", n, err)
	}
	gs, err := s.Generations(ctx)
	if err != nil {
		t.Fatalf("Generations = %v", err)
	}
	if len(gs) != 2 || gs[0].OrgID != "acme" || gs[0].Generation != 3 || gs[1].OrgID != "other" || gs[1].Generation != 1 || gs[1].Reason != cmk.BumpPurged {
		t.Errorf("Generations = %+v, want acme 3 and other 1", gs)
	}
}

// testGenerationsConcurrent raises one org's generation from many writers
// at once: every raise counts, none is lost.
func testGenerationsConcurrent(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := s.BumpGeneration(ctx, "acme", cmk.BumpPurged, base, nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if g, err := s.OrgGeneration(ctx, "acme"); err != nil || g.Generation != n {
		t.Errorf("OrgGeneration(acme) = %+v, %v; want %d", g, err, n)
	}
}

// testReceipts: one receipt per node and org, replaced by a newer
// generation, never by an older one; its audit event is appended.
func testReceipts(t *testing.T, s CMKStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "other")
	for _, r := range []cmk.Receipt{
		{OrgID: "acme", NodeID: "node-b", Generation: 1, PurgedAt: base},
		{OrgID: "acme", NodeID: "node-a", Generation: 2, PurgedAt: base.Add(time.Second)},
		{OrgID: "acme", NodeID: "node-a", Generation: 1, PurgedAt: base.Add(2 * time.Second)}, // older: ignored
		{OrgID: "other", NodeID: "node-a", Generation: 7, PurgedAt: base},
	} {
		ev := event(r.OrgID, "cmk.purge_receipt", "cmk")
		if err := s.PutReceipt(ctx, r, &ev); err != nil {
			t.Fatalf("PutReceipt(%+v) = %v", r, err)
		}
	}
	checkKind(t, "PutReceipt(nosuch org)", s.PutReceipt(ctx, cmk.Receipt{OrgID: "nosuch", NodeID: "node-a", Generation: 1, PurgedAt: base}, nil), fault.NotFound)
	checkKind(t, "PutReceipt(no node)", s.PutReceipt(ctx, cmk.Receipt{OrgID: "acme", Generation: 1, PurgedAt: base}, nil), fault.Invalid)
	rs, err := s.Receipts(ctx, "acme")
	if err != nil {
		t.Fatalf("Receipts(acme) = %v", err)
	}
	want := []cmk.Receipt{
		{OrgID: "acme", NodeID: "node-a", Generation: 2, PurgedAt: micro(base.Add(time.Second)).UTC()},
		{OrgID: "acme", NodeID: "node-b", Generation: 1, PurgedAt: micro(base).UTC()},
	}
	if len(rs) != len(want) {
		t.Fatalf("Receipts(acme) = %+v, want %+v", rs, want)
	}
	for i := range rs {
		if rs[i].OrgID != want[i].OrgID || rs[i].NodeID != want[i].NodeID || rs[i].Generation != want[i].Generation || !rs[i].PurgedAt.Equal(want[i].PurgedAt) {
			t.Errorf("Receipts(acme)[%d] = %+v, want %+v", i, rs[i], want[i])
		}
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 1+3 {
		t.Errorf("audit log of acme has %d events, want org.create and 3 receipts", len(evs))
	}
	if rs, err := s.Receipts(ctx, "other"); err != nil || len(rs) != 1 || rs[0].Generation != 7 {
		t.Errorf("Receipts(other) = %+v, %v; want one of generation 7", rs, err)
	}
}

func errOnly[T any](_ T, err error) error { return err }
