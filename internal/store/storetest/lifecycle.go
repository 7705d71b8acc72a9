package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/shred"
)

// ShredStore is a storage implementation that also stores the deletion
// lifecycle of orgs and keys and their shred jobs.
type ShredStore interface {
	Store
	shred.Store
	OrgGeneration(ctx context.Context, orgID string) (cmk.Generation, error)
}

// RunShred runs the suite of [shred.Store]. open is as for [Run].
func RunShred(t *testing.T, open func(t *testing.T) ShredStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s ShredStore)
	}{
		{"LifecycleOrg", testLifecycleOrg},
		{"LifecycleKey", testLifecycleKey},
		{"ShredOrg", testShredOrg},
		{"ShredKey", testShredKey},
		{"ShredFenced", testShredFenced},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

var (
	enabledOnly = []keys.LifecycleState{keys.LifecycleEnabled}
	pendingOnly = []keys.LifecycleState{keys.LifecyclePendingDeletion}
	deletionAt  = base.Add(7 * 24 * time.Hour)
)

func generation(t *testing.T, s ShredStore, org string) int64 {
	t.Helper()
	g, err := s.OrgGeneration(t.Context(), org)
	if fault.KindOf(err) == fault.NotFound {
		return 0
	}
	if err != nil {
		t.Fatalf("OrgGeneration(%s) = %v", org, err)
	}
	return g.Generation
}

func pendingDeletion(by string) keys.Lifecycle {
	return keys.Lifecycle{State: keys.LifecyclePendingDeletion, DeletionDate: deletionAt, ChangedBy: by, ChangedAt: base}
}

// scheduleShred schedules the deletion of org (key "") or of its key.
func scheduleShred(t *testing.T, s ShredStore, org, key string) {
	t.Helper()
	kind := shred.JobOrg
	if key != "" {
		kind = shred.JobKey
	}
	j := &jobs.Job{OrgID: org, Kind: kind, Target: key, NotBefore: deletionAt, CreatedAt: base}
	from := enabledOnly
	if key != "" {
		from = append(from, keys.LifecycleDisabled)
	}
	if err := s.SetLifecycle(t.Context(), org, key, from, pendingDeletion("user:alice"), j, event(org, "deletion.schedule", "org/"+org)); err != nil {
		t.Fatalf("SetLifecycle(%s, %q, pending) = %v", org, key, err)
	}
}

func testLifecycleOrg(t *testing.T, s ShredStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	if l, err := s.OrgLifecycle(ctx, "acme"); err != nil || l.State != keys.LifecycleEnabled {
		t.Fatalf("OrgLifecycle(acme) = %+v, %v; want the zero lifecycle", l, err)
	}
	_, err := s.OrgLifecycle(ctx, "nope")
	checkKind(t, "OrgLifecycle(nope)", err, fault.NotFound)
	err = s.SetLifecycle(ctx, "nope", "", enabledOnly, pendingDeletion("x"), nil, event("nope", "x", "org/nope"))
	checkKind(t, "SetLifecycle(nope)", err, fault.NotFound)

	g0 := generation(t, s, "acme")
	scheduleShred(t, s, "acme", "")
	l, err := s.OrgLifecycle(ctx, "acme")
	if err != nil || l.State != keys.LifecyclePendingDeletion || !l.DeletionDate.Equal(micro(deletionAt)) || l.ChangedBy != "user:alice" || !l.ChangedAt.Equal(micro(base)) {
		t.Errorf("OrgLifecycle(acme) after schedule = %+v, %v; want pending deletion at %v by user:alice", l, err, deletionAt)
	}
	if g := generation(t, s, "acme"); g <= g0 {
		t.Errorf("generation after schedule = %d, want > %d", g, g0)
	}
	js, err := s.ShredJobsOf(ctx, "acme")
	if err != nil || len(js) != 1 || js[0].State != jobs.Pending || js[0].Kind != shred.JobOrg || !js[0].NotBefore.Equal(micro(deletionAt)) {
		t.Fatalf("ShredJobsOf(acme) = %+v, %v; want one pending org shred from %v", js, err, deletionAt)
	}
	// A second schedule is refused: the org is pending deletion already.
	err = s.SetLifecycle(ctx, "acme", "", enabledOnly, pendingDeletion("x"), &jobs.Job{OrgID: "acme", Kind: shred.JobOrg, NotBefore: deletionAt}, event("acme", "x", "org/acme"))
	checkKind(t, "SetLifecycle(acme, pending) twice", err, fault.Conflict)

	// Cancel: the lifecycle is gone and the job closed.
	g1 := generation(t, s, "acme")
	if err := s.SetLifecycle(ctx, "acme", "", pendingOnly, keys.Lifecycle{ChangedBy: "user:bob", ChangedAt: base.Add(time.Hour)}, nil, event("acme", "deletion.cancel", "org/acme")); err != nil {
		t.Fatalf("SetLifecycle(acme, cancel) = %v", err)
	}
	if l, err := s.OrgLifecycle(ctx, "acme"); err != nil || l.State != keys.LifecycleEnabled {
		t.Errorf("OrgLifecycle(acme) after cancel = %+v, %v; want enabled", l, err)
	}
	if g := generation(t, s, "acme"); g <= g1 {
		t.Errorf("generation after cancel = %d, want > %d", g, g1)
	}
	js, _ = s.ShredJobsOf(ctx, "acme")
	if len(js) != 1 || js[0].State != jobs.Failed || js[0].Error != "cancelled" {
		t.Errorf("ShredJobsOf(acme) after cancel = %+v; want the job failed as cancelled", js)
	}
	if _, err := s.ShredJobs().ClaimJob(ctx, "node/1", deletionAt.Add(time.Hour), time.Minute); fault.KindOf(err) != fault.NotFound {
		t.Errorf("ClaimJob after cancel = %v, want NotFound (nothing to shred)", err)
	}
	err = s.SetLifecycle(ctx, "acme", "", pendingOnly, keys.Lifecycle{ChangedAt: base}, nil, event("acme", "x", "org/acme"))
	checkKind(t, "SetLifecycle(acme, cancel) twice", err, fault.Conflict)
	evs := auditLog(t, s, "acme")
	if n := len(evs); n != 3 || evs[1].Action != "deletion.schedule" || evs[2].Action != "deletion.cancel" {
		t.Errorf("audit of acme = %d events, want create, schedule, cancel", n)
	}
	// Scheduled again after a cancel: a new job.
	scheduleShred(t, s, "acme", "")
	if js, _ := s.ShredJobsOf(ctx, "acme"); len(js) != 2 || js[0].State != jobs.Pending {
		t.Errorf("ShredJobsOf(acme) after a second schedule = %+v; want a new pending job first", js)
	}
}

func testLifecycleKey(t *testing.T, s ShredStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	disabled := keys.Lifecycle{State: keys.LifecycleDisabled, ChangedBy: "user:alice", ChangedAt: base}
	err := s.SetLifecycle(ctx, "acme", "nope", enabledOnly, disabled, nil, event("acme", "key.disable", "key/nope"))
	checkKind(t, "SetLifecycle(acme, nope, disabled)", err, fault.NotFound)
	if err := s.SetLifecycle(ctx, "acme", "default", enabledOnly, disabled, nil, event("acme", "key.disable", "key/default")); err != nil {
		t.Fatalf("SetLifecycle(acme, default, disabled) = %v", err)
	}
	ls, err := s.KeyLifecycles(ctx, "acme")
	if err != nil || len(ls) != 1 || ls["default"].State != keys.LifecycleDisabled || ls["default"].ChangedBy != "user:alice" {
		t.Errorf("KeyLifecycles(acme) = %+v, %v; want default disabled", ls, err)
	}
	err = s.SetLifecycle(ctx, "acme", "default", enabledOnly, disabled, nil, event("acme", "key.disable", "key/default"))
	checkKind(t, "SetLifecycle(acme, default, disabled) twice", err, fault.Conflict)
	// Disabled → pending deletion → cancelled (enabled).
	scheduleShred(t, s, "acme", "default")
	if ls, _ := s.KeyLifecycles(ctx, "acme"); ls["default"].State != keys.LifecyclePendingDeletion {
		t.Errorf("KeyLifecycles(acme)[default] = %+v, want pending deletion", ls["default"])
	}
	if err := s.SetLifecycle(ctx, "acme", "default", pendingOnly, keys.Lifecycle{ChangedAt: base}, nil, event("acme", "key.deletion.cancel", "key/default")); err != nil {
		t.Fatalf("SetLifecycle(acme, default, cancel) = %v", err)
	}
	if ls, _ := s.KeyLifecycles(ctx, "acme"); len(ls) != 0 {
		t.Errorf("KeyLifecycles(acme) after cancel = %+v, want none", ls)
	}
	// Other orgs see nothing.
	createOrg(t, s, "other")
	if ls, _ := s.KeyLifecycles(ctx, "other"); len(ls) != 0 {
		t.Errorf("KeyLifecycles(other) = %+v, want none", ls)
	}
	auditLog(t, s, "acme")
}

func claimShred(t *testing.T, s ShredStore, owner string) jobs.Job {
	t.Helper()
	if _, err := s.ShredJobs().ClaimJob(t.Context(), owner, deletionAt.Add(-time.Second), time.Minute); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("ClaimJob before the deletion date = %v, want NotFound", err)
	}
	j, err := s.ShredJobs().ClaimJob(t.Context(), owner, deletionAt.Add(time.Second), time.Minute)
	if err != nil {
		t.Fatalf("ClaimJob at the deletion date = %v", err)
	}
	if j.State != jobs.Running || j.Owner != owner || j.Fence < 1 {
		t.Fatalf("claimed job = %+v, want running under %s", j, owner)
	}
	return j
}

func testShredOrg(t *testing.T, s ShredStore) {
	ctx := t.Context()
	f := createOrg(t, s, "acme")
	other := createOrg(t, s, "other")
	extra := newKey("acme", "extra", 2)
	if err := s.CreateDataKey(ctx, "acme", extra, event("acme", "key.create", "key/extra")); err != nil {
		t.Fatalf("CreateDataKey(acme, extra) = %v", err)
	}
	scheduleShred(t, s, "acme", "")
	inv, err := s.ShredInventory(ctx, "acme", "")
	if err != nil || len(inv.RootKeys) != 1 || len(inv.Versions["default"]) != 1 || len(inv.Versions["extra"]) != 2 {
		t.Fatalf("ShredInventory(acme) = %+v, %v; want 1 root key, default:1, extra:1,2", inv, err)
	}
	hooks, _ := s.(WebhookStore) // both stores keep webhooks; the shred erases the org's
	if hooks != nil {
		mustCreateWebhook(t, hooks, webhook("acme", "wh_1"))
		mustCreateWebhook(t, hooks, webhook("other", "wh_2"))
	}
	j := claimShred(t, s, "node-a/1")
	// A cancel while the shred runs is refused.
	err = s.SetLifecycle(ctx, "acme", "", pendingOnly, keys.Lifecycle{ChangedAt: base}, nil, event("acme", "x", "org/acme"))
	checkKind(t, "cancel while shredding", err, fault.Conflict)
	g0 := generation(t, s, "acme")
	j.Step = "erased"
	at := deletionAt.Add(2 * time.Second)
	if err := s.Shred(ctx, j, at, event("acme", "org.shredded", "org/acme")); err != nil {
		t.Fatalf("Shred(acme) = %v", err)
	}
	// Idempotent: a resumed run erases nothing more and fails nothing.
	if err := s.Shred(ctx, j, at, event("acme", "org.shredded", "org/acme")); err != nil {
		t.Fatalf("Shred(acme) again = %v", err)
	}
	if g := generation(t, s, "acme"); g <= g0 {
		t.Errorf("generation after shred = %d, want > %d", g, g0)
	}
	roots, err := s.RootKeys(ctx, "acme")
	if err != nil || len(roots) != 0 {
		t.Errorf("RootKeys(acme) after shred = %d wrappings, %v; want none", len(roots), err)
	}
	for _, name := range []string{"default", "extra"} {
		k, err := s.GetDataKey(ctx, "acme", name)
		if err != nil || len(k.Versions) != 0 {
			t.Errorf("GetDataKey(acme, %s) after shred = %d versions, %v; want the key without versions", name, len(k.Versions), err)
		}
	}
	if inv, _ := s.ShredInventory(ctx, "acme", ""); len(inv.RootKeys) != 0 || len(inv.Versions) != 0 {
		t.Errorf("ShredInventory(acme) after shred = %+v, want empty", inv)
	}
	l, err := s.OrgLifecycle(ctx, "acme")
	if err != nil || l.State != keys.LifecycleDeleted || !l.ShreddedAt.Equal(micro(at)) || !l.DeletionDate.Equal(micro(deletionAt)) {
		t.Errorf("OrgLifecycle(acme) after shred = %+v, %v; want deleted at %v", l, err, at)
	}
	if _, err := s.GetOrg(ctx, "acme"); err != nil {
		t.Errorf("GetOrg(acme) after shred = %v, want the tombstone", err)
	}
	// The org's ID stays taken.
	err = s.CreateOrg(ctx, f.org, f.root, f.first, f.ev)
	checkKind(t, "CreateOrg(acme) after shred", err, fault.Conflict)
	// Other orgs are untouched.
	roots, err = s.RootKeys(ctx, "other")
	if err != nil || len(roots) != 1 || !bytes.Equal(roots[0].Wrapped.Ciphertext, other.root.Wrapped.Ciphertext) {
		t.Errorf("RootKeys(other) after shred of acme = %+v, %v; want its wrapping intact", roots, err)
	}
	k, err := s.GetDataKey(ctx, "other", "default")
	if err != nil {
		t.Fatalf("GetDataKey(other, default) = %v", err)
	}
	checkDataKey(t, k, other.first, true)
	if hooks != nil {
		if ws, err := hooks.ListWebhooks(ctx, "acme"); err != nil || len(ws) != 0 {
			t.Errorf("ListWebhooks(acme) after shred = %d webhooks, %v; want none (their secrets erased)", len(ws), err)
		}
		if ws, err := hooks.ListWebhooks(ctx, "other"); err != nil || len(ws) != 1 || !bytes.Equal(ws[0].Secret.Ciphertext, webhook("other", "wh_2").Secret.Ciphertext) {
			t.Errorf("ListWebhooks(other) after shred of acme = %+v, %v; want its webhook intact", ws, err)
		}
	}

	j.State, j.Step = jobs.Done, "scrubbed"
	if err := s.FinishShredJob(ctx, j, nil); err != nil {
		t.Fatalf("FinishShredJob(acme) = %v", err)
	}
	if err := s.ScrubShredded(ctx); err != nil {
		t.Errorf("ScrubShredded() = %v", err)
	}
	js, _ := s.ShredJobsOf(ctx, "acme")
	if len(js) != 1 || js[0].State != jobs.Done || js[0].Step != "scrubbed" {
		t.Errorf("ShredJobsOf(acme) = %+v, want one done job", js)
	}
	// Deleted is final: neither a cancel nor a new schedule applies.
	err = s.SetLifecycle(ctx, "acme", "", pendingOnly, keys.Lifecycle{ChangedAt: base}, nil, event("acme", "x", "org/acme"))
	checkKind(t, "cancel after shred", err, fault.Conflict)
	err = s.SetLifecycle(ctx, "acme", "", enabledOnly, pendingDeletion("x"), &jobs.Job{OrgID: "acme", Kind: shred.JobOrg, NotBefore: deletionAt}, event("acme", "x", "org/acme"))
	checkKind(t, "schedule after shred", err, fault.Conflict)
	evs := auditLog(t, s, "acme")
	if evs[len(evs)-1].Action != "org.shredded" {
		t.Errorf("last audit event of acme = %s, want org.shredded", evs[len(evs)-1].Action)
	}
}

func testShredKey(t *testing.T, s ShredStore) {
	ctx := t.Context()
	f := createOrg(t, s, "acme")
	extra := newKey("acme", "extra", 2)
	if err := s.CreateDataKey(ctx, "acme", extra, event("acme", "key.create", "key/extra")); err != nil {
		t.Fatalf("CreateDataKey(acme, extra) = %v", err)
	}
	scheduleShred(t, s, "acme", "extra")
	inv, err := s.ShredInventory(ctx, "acme", "extra")
	if err != nil || len(inv.RootKeys) != 0 || len(inv.Versions) != 1 || len(inv.Versions["extra"]) != 2 {
		t.Fatalf("ShredInventory(acme, extra) = %+v, %v; want extra:1,2 only", inv, err)
	}
	j := claimShred(t, s, "node-a/1")
	if j.Kind != shred.JobKey || j.Target != "extra" {
		t.Fatalf("claimed job = %+v, want the key shred of extra", j)
	}
	j.Step = "erased"
	if err := s.Shred(ctx, j, deletionAt, event("acme", "key.shredded", "key/extra")); err != nil {
		t.Fatalf("Shred(acme, extra) = %v", err)
	}
	if k, err := s.GetDataKey(ctx, "acme", "extra"); err != nil || len(k.Versions) != 0 {
		t.Errorf("GetDataKey(acme, extra) after shred = %d versions, %v; want none", len(k.Versions), err)
	}
	k, err := s.GetDataKey(ctx, "acme", "default")
	if err != nil {
		t.Fatalf("GetDataKey(acme, default) = %v", err)
	}
	checkDataKey(t, k, f.first, true)
	if roots, err := s.RootKeys(ctx, "acme"); err != nil || len(roots) != 1 {
		t.Errorf("RootKeys(acme) after a key shred = %d, %v; want the root key intact", len(roots), err)
	}
	if ls, _ := s.KeyLifecycles(ctx, "acme"); ls["extra"].State != keys.LifecycleDeleted || ls["extra"].ShreddedAt.IsZero() {
		t.Errorf("KeyLifecycles(acme)[extra] = %+v, want deleted", ls["extra"])
	}
	if l, _ := s.OrgLifecycle(ctx, "acme"); l.State != keys.LifecycleEnabled {
		t.Errorf("OrgLifecycle(acme) after a key shred = %+v, want enabled", l)
	}
	auditLog(t, s, "acme")
}

func testShredFenced(t *testing.T, s ShredStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	scheduleShred(t, s, "acme", "")
	j1 := claimShred(t, s, "node-a/1")
	// The lease expires; another node takes the job over.
	j2, err := s.ShredJobs().ClaimJob(ctx, "node-b/2", deletionAt.Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatalf("ClaimJob after the lease expired = %v", err)
	}
	if j2.Fence <= j1.Fence {
		t.Fatalf("fence after takeover = %d, want > %d", j2.Fence, j1.Fence)
	}
	j1.Step = "erased"
	err = s.Shred(ctx, j1, deletionAt, event("acme", "org.shredded", "org/acme"))
	checkKind(t, "Shred by the old holder", err, fault.Conflict)
	if roots, _ := s.RootKeys(ctx, "acme"); len(roots) != 1 {
		t.Errorf("RootKeys(acme) after a refused shred = %d, want 1 (nothing erased)", len(roots))
	}
	err = s.ShredJobs().RenewJob(ctx, j1, deletionAt.Add(2*time.Hour))
	checkKind(t, "RenewJob by the old holder", err, fault.Conflict)
	if err := s.ShredJobs().RenewJob(ctx, j2, deletionAt.Add(2*time.Hour)); err != nil {
		t.Errorf("RenewJob by the holder = %v", err)
	}
	j1.State = jobs.Done
	err = s.FinishShredJob(ctx, j1, &audit.Event{OrgID: "acme", Time: base, Actor: "orgkms", Action: "x", Target: "org/acme"})
	checkKind(t, "FinishShredJob by the old holder", err, fault.Conflict)
	j2.Step = "erased"
	if err := s.Shred(ctx, j2, deletionAt, event("acme", "org.shredded", "org/acme")); err != nil {
		t.Fatalf("Shred by the holder = %v", err)
	}
}
