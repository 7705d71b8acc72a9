package jobs_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), postgres.Config{URL: url})
	if err != nil {
		t.Fatalf("postgres.Open = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	platform = masterkey.Ref{Provider: "local", ID: "platform"}
	customer = masterkey.Ref{Provider: "azurekv", ID: "kv.vault.azure.net/keys/acme"}
)

// setup creates org acme on s with a pending activation job.
func setup(t *testing.T, s *postgres.Store) cmk.Job {
	t.Helper()
	ctx := t.Context()
	root := keys.RootKeyWrapping{State: keys.WrappingActive, CreatedAt: t0,
		Wrapped: masterkey.Wrapped{Ciphertext: []byte("root by platform"), Key: platform.WithVersion("1")}}
	first := keys.DataKey{Name: "default", CreatedAt: t0, LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: t0, Wrapped: []byte("wrapped key")}}}
	if err := s.CreateOrg(ctx, keys.Org{ID: "acme", Name: "acme", CreatedAt: t0, MasterKey: platform}, root, first,
		audit.Event{Time: t0, Actor: "user:test", Action: "org.create", Target: "org/acme"}); err != nil {
		t.Fatal(err)
	}
	j, err := s.StartJob(ctx, cmk.Job{OrgID: "acme", Kind: cmk.JobActivate, Target: customer.String(), CreatedAt: t0},
		cmk.Record{OrgID: "acme", State: cmk.StateActivating}, audit.Event{Time: t0, Actor: "user:test", Action: "cmk.activate.start", Target: "cmk"})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// handler is a two-step job: copy (a fenced pending wrapping), then
// switch. stall makes a run stop after its copy until its context ends,
// then try its switch anyway: a node that lost its lease and commits late.
type handler struct {
	st     *postgres.Store
	stall  bool
	copied chan struct{}
	late   chan error
}

func (h *handler) Run(ctx context.Context, j *jobs.Job) error {
	if j.Step == "" {
		step := *j
		step.Step = "copied"
		w := keys.RootKeyWrapping{OrgID: j.OrgID, State: keys.WrappingPending, CreatedAt: t0,
			Wrapped: masterkey.Wrapped{Ciphertext: []byte("root by customer"), Key: customer.WithVersion("v1")}}
		if _, err := h.st.AddJobWrapping(ctx, step, w); err != nil {
			return err
		}
		j.Step = "copied"
	}
	if h.stall {
		close(h.copied)
		<-ctx.Done()
	}
	roots, err := h.st.RootKeys(context.WithoutCancel(ctx), j.OrgID)
	if err != nil {
		return err
	}
	done := *j
	done.State, done.Step = jobs.Done, "switched"
	rec, err := h.st.GetCMK(context.WithoutCancel(ctx), j.OrgID)
	if err != nil {
		return err
	}
	rec.State, rec.ActiveKeyURI, rec.ActiveVersion = cmk.StateActive, customer.String(), "v1"
	err = h.st.SwitchWrapping(context.WithoutCancel(ctx), j.OrgID, roots[len(roots)-1].ID, customer, rec,
		audit.Event{Time: t0, Actor: "orgkms", Action: "cmk.activate.done", Target: "cmk"}, &done)
	if h.stall {
		h.late <- err
	}
	return err
}

func (h *handler) Fail(ctx context.Context, j jobs.Job, err error) error { return err }

// Two runners on one PostgreSQL: runner A copies, then stalls; runner B,
// whose clock is past A's lease, claims the job (raising the fence) and
// resumes from A's durable copy. A's next renewal is refused, which cancels
// A's run at once, and A's late switch is refused: one switch, B's.
func TestTwoRunnersFence(t *testing.T) {
	url := pgtest.URL(t)
	sa, sb := openStore(t, url), openStore(t, url)
	job := setup(t, sa)
	ctx := t.Context()

	var mu sync.Mutex
	var seenA []jobs.Outcome
	ha := &handler{st: sa, stall: true, copied: make(chan struct{}), late: make(chan error, 1)}
	const lease = 300 * time.Millisecond
	ra, err := jobs.New(jobs.Config{Store: sa, Handler: ha, NodeID: "node-a", Lease: lease, Poll: 10 * time.Millisecond,
		Shared: true, Observer: func(ev jobs.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ev.Outcome != "" {
				seenA = append(seenA, ev.Outcome)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopA := context.WithCancel(ctx)
	stoppedA := make(chan struct{})
	go func() { defer close(stoppedA); ra.Run(actx, 1) }()
	defer func() { stopA(); <-stoppedA }()

	select {
	case <-ha.copied:
	case <-time.After(time.Minute):
		t.Fatal("runner A did not copy")
	}
	// B sees A's lease as expired (its clock is an hour ahead).
	hb := &handler{st: sb}
	rb, err := jobs.New(jobs.Config{Store: sb, Handler: hb, NodeID: "node-b", Lease: lease, Shared: true,
		Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rb.RunPending(ctx); err != nil {
		t.Fatalf("runner B RunPending = %v", err)
	}
	select {
	case err := <-ha.late:
		if fault.KindOf(err) != fault.Conflict {
			t.Errorf("runner A's late switch = %v, want kind Conflict", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("runner A's run was not cancelled after B took its job over")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		got := slices.Clone(seenA)
		mu.Unlock()
		if len(got) > 0 {
			if !slices.Equal(got, []jobs.Outcome{jobs.OutcomeLost}) {
				t.Errorf("runner A's outcomes = %v, want [lost]", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("runner A reported no outcome")
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}

	j, err := sa.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != jobs.Done || j.Step != "switched" || j.Fence != 2 || j.Owner[:len("node-b/")] != "node-b/" {
		t.Errorf("job = %+v, want done at step switched under node-b with fence 2", j)
	}
	roots, err := sa.RootKeys(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].State != keys.WrappingActive || roots[0].Wrapped.Key.Unversioned() != customer {
		t.Errorf("root keys = %+v, want only the customer's, active", roots)
	}
	evs, err := sa.AuditEvents(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(evs); err != nil || len(evs) != 3 {
		t.Errorf("audit log: %d events, Verify = %v; want 3 (create, start, one done)", len(evs), err)
	}
}
