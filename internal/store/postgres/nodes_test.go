package postgres

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// The tests of this file run two stores on one database, as two orgkms
// nodes do: each has its own pool, so their transactions really run at
// the same time, and only the database's locks keep them apart.

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// twoNodes opens two stores on one new schema.
func twoNodes(t *testing.T) (a, b *Store) {
	t.Helper()
	url := pgtest.URL(t)
	return openURL(t, url), openURL(t, url)
}

func createTestOrg(t *testing.T, s *Store, id string) {
	t.Helper()
	mk := masterkey.Ref{Provider: "local", ID: "platform"}
	root := keys.RootKeyWrapping{State: keys.WrappingActive, CreatedAt: t0,
		Wrapped: masterkey.Wrapped{Ciphertext: []byte("wrapped root of " + id), Key: mk.WithVersion("1")}}
	first := keys.DataKey{Name: "default", CreatedAt: t0, LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: t0, Wrapped: []byte("wrapped key")}}}
	if err := s.CreateOrg(t.Context(), keys.Org{ID: id, Name: id, CreatedAt: t0, MasterKey: mk}, root, first,
		audit.Event{Time: t0, Actor: "user:test", Action: "org.create", Target: "org/" + id}); err != nil {
		t.Fatalf("CreateOrg(%s) = %v", id, err)
	}
}

func verifiedChain(t *testing.T, s *Store, org string) []audit.Event {
	t.Helper()
	evs, err := s.AuditEvents(t.Context(), org, 0, 0)
	if err != nil {
		t.Fatalf("AuditEvents(%s) = %v", org, err)
	}
	if err := audit.Verify(evs); err != nil {
		t.Errorf("audit.Verify(%s) = %v", org, err)
	}
	return evs
}

// TestTwoNodesAuditChain appends to one org's chain from both nodes at once,
// by plain appends and by changes that append their event: every write
// succeeds and the chain is one gap-free, verifiable chain.
func TestTwoNodesAuditChain(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	createTestOrg(t, a, "acme")
	const writers, each = 4, 12
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*each)
	for n, s := range []*Store{a, b} {
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					var err error
					switch i % 4 {
					case 3: // a change with its event, in one transaction
						name := fmt.Sprintf("key-%d-%d-%d", n, w, i)
						k := keys.DataKey{Name: name, CreatedAt: t0, LatestVersion: 1, MinDecryptionVersion: 1,
							Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: t0, Wrapped: []byte(name)}}}
						err = s.CreateDataKey(ctx, "acme", k, audit.Event{Time: t0, Actor: "user:test", Action: "key.create", Target: name})
					case 2:
						_, err = s.AppendAudit(ctx, auditEvent(audit.Platform))
					default:
						_, err = s.AppendAudit(ctx, auditEvent("acme"))
					}
					if err != nil {
						errs <- fmt.Errorf("node %d writer %d write %d = %w", n, w, i, err)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 2 * writers * each
	platform := total / 4
	if evs := verifiedChain(t, a, "acme"); len(evs) != 1+total-platform {
		t.Errorf("chain of acme has %d events, want %d", len(evs), 1+total-platform)
	}
	if evs := verifiedChain(t, b, audit.Platform); len(evs) != platform {
		t.Errorf("chain of %s has %d events, want %d", audit.Platform, len(evs), platform)
	}
}

func startTestJob(t *testing.T, s *Store, org string) cmk.Job {
	t.Helper()
	rev := int64(0)
	if r, err := s.GetCMK(t.Context(), org); err == nil {
		rev = r.Revision
	} else if fault.KindOf(err) != fault.NotFound {
		t.Fatal(err)
	}
	j, err := s.StartJob(t.Context(), cmk.Job{OrgID: org, Kind: cmk.JobActivate, Target: "azurekv://kv/" + org, CreatedAt: t0},
		cmk.Record{OrgID: org, State: cmk.StateActivating, Revision: rev}, audit.Event{Time: t0, Actor: "user:test", Action: "cmk.job.start", Target: org})
	if err != nil {
		t.Fatalf("StartJob(%s) = %v", org, err)
	}
	return j
}

// TestTwoNodesClaimJobs lets both nodes claim at once: each job is leased
// to exactly one claim.
func TestTwoNodesClaimJobs(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	const jobs = 8
	for i := range jobs {
		org := fmt.Sprintf("org-%d", i)
		createTestOrg(t, a, org)
		startTestJob(t, a, org)
	}
	var (
		mu     sync.Mutex
		owners = map[int64][]string{}
		wg     sync.WaitGroup
	)
	for n, s := range []*Store{a, b} {
		for c := range 3 {
			wg.Go(func() {
				owner := fmt.Sprintf("node-%d/%d", n, c)
				for {
					j, err := s.ClaimJob(ctx, owner, t0, time.Hour)
					if fault.KindOf(err) == fault.NotFound {
						return
					}
					if err != nil {
						t.Errorf("ClaimJob(%s) = %v", owner, err)
						return
					}
					mu.Lock()
					owners[j.ID] = append(owners[j.ID], owner)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(owners) != jobs {
		t.Errorf("%d jobs claimed, want %d", len(owners), jobs)
	}
	for id, o := range owners {
		if len(o) != 1 {
			t.Errorf("job %d leased to %v, want one claim", id, o)
		}
	}
}

// TestTwoNodesLostLeaseCannotCommit races, round after round, node a
// finishing the job it leased against node b taking it over after the
// lease expired: exactly one of them wins, and a finish that lost the
// lease stored nothing (the owner, its fencing token, is checked in the
// finish's transaction).
func TestTwoNodesLostLeaseCannotCommit(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	wins := map[string]int{}
	for round := range 12 {
		org := fmt.Sprintf("org-%d", round)
		createTestOrg(t, a, org)
		startTestJob(t, a, org)
		owner := fmt.Sprintf("node-a/%d", round)
		j, err := a.ClaimJob(ctx, owner, t0, time.Minute)
		if err != nil || j.OrgID != org {
			t.Fatalf("round %d: ClaimJob(node a) = %+v, %v; want the job of %s", round, j, err, org)
		}
		done := j
		done.State, done.Step = cmk.JobDone, "switched"
		var (
			wg        sync.WaitGroup
			finishErr error
			taken     cmk.Job
			claimErr  error
		)
		wg.Go(func() {
			finishErr = a.FinishJob(ctx, done, cmk.Record{OrgID: org, State: cmk.StateActive, Revision: 1},
				audit.Event{Time: t0, Actor: "node-a", Action: "cmk.job.done", Target: org})
		})
		wg.Go(func() {
			taken, claimErr = b.ClaimJob(ctx, fmt.Sprintf("node-b/%d", round), t0.Add(2*time.Minute), time.Minute)
		})
		wg.Wait()
		cur, err := b.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := b.GetCMK(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		evs := verifiedChain(t, b, org)
		switch {
		case finishErr == nil && claimErr == nil:
			t.Fatalf("round %d: node a finished job %d and node b took it over (job %d): both won", round, j.ID, taken.ID)
		case finishErr == nil:
			wins["finish"]++
			if fault.KindOf(claimErr) != fault.NotFound {
				t.Errorf("round %d: ClaimJob(node b) after the finish = %v, want NotFound", round, claimErr)
			}
			if cur.State != cmk.JobDone || rec.State != cmk.StateActive || len(evs) != 3 {
				t.Errorf("round %d: after node a's finish job is %s, record %s, %d events; want done, active, 3", round, cur.State, rec.State, len(evs))
			}
		case claimErr == nil:
			wins["takeover"]++
			if fault.KindOf(finishErr) != fault.Conflict {
				t.Errorf("round %d: FinishJob(node a) after losing the lease = %v, want Conflict", round, finishErr)
			}
			if taken.ID != j.ID || cur.State != cmk.JobRunning || cur.Owner != taken.Owner || cur.Step != "" ||
				rec.State != cmk.StateActivating || rec.Revision != 1 || len(evs) != 2 {
				t.Errorf("round %d: after node b's takeover job is %+v, record %s at %d, %d events; want node b's running job at no step, activating at 1, 2 events",
					round, cur, rec.State, rec.Revision, len(evs))
			}
			// Node b's claim wins: it finishes the job.
			taken.State = cmk.JobFailed
			if err := b.FinishJob(ctx, taken, cmk.Record{OrgID: org, State: cmk.StatePlatform, Revision: 1},
				audit.Event{Time: t0, Actor: "node-b", Action: "cmk.job.failed", Target: org}); err != nil {
				t.Fatalf("round %d: FinishJob(node b) = %v", round, err)
			}
		default:
			t.Fatalf("round %d: both lost: FinishJob(node a) = %v, ClaimJob(node b) = %v", round, finishErr, claimErr)
		}
	}
	t.Logf("outcomes: %v", wins)
}

// TestTwoNodesCMKRevision writes one org's CMK record from both nodes at
// once, all from the revision they read: each round exactly one write wins.
func TestTwoNodesCMKRevision(t *testing.T) {
	a, b := twoNodes(t)
	ctx := t.Context()
	createTestOrg(t, a, "acme")
	if err := a.PutCMK(ctx, cmk.Record{OrgID: "acme", State: cmk.StateAuthorized}, nil); err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		rev := int64(round + 1)
		const perNode = 3
		var wg sync.WaitGroup
		errs := make([]error, 2*perNode)
		for n, s := range []*Store{a, b} {
			for w := range perNode {
				wg.Go(func() {
					r := cmk.Record{OrgID: "acme", State: cmk.StateAuthorized, Revision: rev, LastProbeError: fmt.Sprintf("node %d writer %d", n, w)}
					ev := audit.Event{Time: t0, Actor: "test", Action: "cmk.probe", Target: r.LastProbeError}
					errs[n*perNode+w] = s.PutCMK(ctx, r, &ev)
				})
			}
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case fault.KindOf(err) != fault.Conflict:
				t.Errorf("round %d: PutCMK(writer %d) = %v, want nil or Conflict", round, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers stored a record read at revision %d, want exactly 1", round, won, rev)
		}
		if r, err := b.GetCMK(ctx, "acme"); err != nil || r.Revision != rev+1 {
			t.Fatalf("round %d: GetCMK = revision %d, %v; want %d", round, r.Revision, err, rev+1)
		}
	}
	if evs := verifiedChain(t, a, "acme"); len(evs) != 1+10 {
		t.Errorf("chain of acme has %d events, want 11 (create and one per round)", len(evs))
	}
}

// TestScrubDeletedRewritesRootKeys switches an org to a new wrapping (the
// old one is deleted) and scrubs: the table's file is a new one, holding
// only the live wrapping, and the wrapping still reads back.
func TestScrubDeletedRewritesRootKeys(t *testing.T) {
	s := openFresh(t)
	ctx := t.Context()
	createTestOrg(t, s, "acme")
	cmkRef := masterkey.Ref{Provider: "azurekv", ID: "kv.vault.azure.net/keys/k"}
	id, err := s.AddPendingWrapping(ctx, "acme", keys.RootKeyWrapping{State: keys.WrappingPending, CreatedAt: t0,
		Wrapped: masterkey.Wrapped{Ciphertext: []byte("wrapped by the CMK"), Key: cmkRef.WithVersion("v1")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SwitchWrapping(ctx, "acme", id, cmkRef, cmk.Record{OrgID: "acme", State: cmk.StateActive},
		audit.Event{Time: t0, Actor: "test", Action: "cmk.switch", Target: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	file := func() (f string) {
		t.Helper()
		if err := s.DB().QueryRowContext(ctx, `SELECT pg_relation_filenode('root_keys')::text`).Scan(&f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	before := file()
	if err := s.ScrubDeleted(ctx); err != nil {
		t.Fatalf("ScrubDeleted = %v", err)
	}
	if after := file(); after == before {
		t.Errorf("root_keys is still in file %s after ScrubDeleted, want a rewritten table", before)
	}
	ws, err := s.RootKeys(ctx, "acme")
	if err != nil || len(ws) != 1 || ws[0].ID != id || string(ws[0].Wrapped.Ciphertext) != "wrapped by the CMK" {
		t.Errorf("RootKeys after ScrubDeleted = %+v, %v; want only the CMK wrapping %d", ws, err, id)
	}
}
