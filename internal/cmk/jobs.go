package cmk

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Run starts the probe and jobWorkers job workers; it returns when ctx is
// cancelled and every goroutine has stopped.
func (s *Service) Run(ctx context.Context, jobWorkers int) {
	if err := s.LoadBlocks(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("load revoked orgs failed", slog.String("error", err.Error()))
	}
	if err := s.ReclaimJobs(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("reclaim jobs failed", slog.String("error", err.Error()))
	}
	// The probes this node (by its stable ID) claimed before it restarted
	// are due again at once: the restart may have cut them short, and the
	// node probes what it was watching at start (one extra probe per org
	// at most, never an interval without one).
	if err := s.st.ReleaseProbes(ctx, s.cfg.NodeID, nil, s.now()); err != nil && ctx.Err() == nil {
		s.log.Warn("cannot hand back the probes of the previous run; they are probed one probe interval later", slog.String("error", err.Error()))
	}
	if err := s.reclaimStaged(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("reclaim staged jobs failed", slog.String("error", err.Error()))
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.probeLoop(ctx) })
	wg.Go(func() { s.runner.Run(ctx, jobWorkers) })
	wg.Go(func() { s.stagedRunner.Run(ctx, 1) })
	wg.Wait()
}

// ReclaimJobs makes the jobs this node (Config.NodeID) held before it
// restarted claimable at once: they were interrupted, and their lease would
// keep them running, untouched, until it expires. Run calls it at start.
func (s *Service) ReclaimJobs(ctx context.Context) error {
	recs, err := s.st.ListCMK(ctx, StateActivating, StateRotating, StateReplacing, StateDeactivating)
	if err != nil {
		return err
	}
	var held []Job
	for _, r := range recs {
		j, err := s.st.OrgJob(ctx, r.OrgID)
		if fault.KindOf(err) == fault.NotFound {
			continue
		}
		if err != nil {
			return err
		}
		held = append(held, j)
	}
	_, err = s.runner.Reclaim(ctx, held)
	return err
}

// RunPendingJobs runs claimable jobs on the calling goroutine until none is
// left (tests and benchmarks).
func (s *Service) RunPendingJobs(ctx context.Context) error {
	return s.runner.RunPending(ctx)
}

// rewrapJobs is the [jobs.Handler] of the re-wrap jobs.
type rewrapJobs struct{ s *Service }

func (h rewrapJobs) Run(ctx context.Context, j *Job) error {
	return h.s.rewrap(budget.With(ctx, budget.Job, j.OrgID), j) // the vault budget's lowest class
}

// Fail ends job j for good: the org's state rolls back (the active
// wrapping was never touched), or, for a rotation the customer's key
// refused, the org is revoked.
func (h rewrapJobs) Fail(ctx context.Context, j Job, cause error) error {
	s := h.s
	kind := fault.KindOf(cause)
	rec, err := s.record(ctx, j.OrgID)
	if err != nil {
		return err
	}
	switch j.Kind {
	case JobActivate:
		rec.State = StateAuthorized
	default:
		rec.State = StateActive
	}
	rec.Reason, rec.ReasonCode, rec.UpdatedAt = string(j.Kind)+" failed: "+j.Error, kind.Code(), s.now().UTC()
	revoke := false
	if j.Kind == JobRotate && customerSide(kind) {
		// The customer's key refused the rotation (permission removed,
		// disabled): that is revocation, not a failed chore to retry
		// forever. The probe restores the org when the key works again.
		rec.State, rec.ReasonCode, rec.RevokedSince = StateRevoked, revocationKind(kind).Code(), s.now().UTC()
		rec.Reason = j.Error
		rec.Bump = BumpRevoked
		revoke = true
	}
	j.State = JobFailed
	ev := audit.Event{OrgID: j.OrgID, Time: s.now().UTC(), Actor: "orgkms", Action: "cmk." + string(j.Kind) + ".failed", Target: "cmk", Details: map[string]string{"error": j.Error}}
	if err := s.st.FinishJob(ctx, j, rec, ev); err != nil {
		return err
	}
	if revoke {
		s.block(j.OrgID, blockError(rec))
		s.changed(j.OrgID)
	}
	return nil
}

// customerSide reports whether a master-key error is the customer's key
// refusing orgkms (as opposed to an outage or a fault of orgkms).
func customerSide(k fault.Kind) bool {
	_, ok := k.CustomerKeyKind()
	return ok
}

// revocationKind is the data-plane kind of a customer-side failure.
func revocationKind(k fault.Kind) fault.Kind {
	if ck, ok := k.CustomerKeyKind(); ok {
		return ck
	}
	return fault.CMKDisabled
}

// stepDone reports a durable step of job j to the runner's observer.
func (s *Service) stepDone(j *Job, step string) { s.runner.Step(j, step) }

// parseTarget parses a job target, the text form of a ref
// (masterkey.Ref.String: PROVIDER://ID[#VERSION]).
func (s *Service) parseTarget(target string) (masterkey.Ref, error) {
	return s.cfg.Keepers.ParseRef(target)
}

// rewrap moves the org's root key to j.Target: copy → verify → switch →
// drop. Every step is durable and safe to repeat.
func (s *Service) rewrap(ctx context.Context, j *Job) error {
	target, err := s.parseTarget(j.Target)
	if err != nil {
		return err
	}
	tk, err := s.cfg.Keepers.Keeper(target)
	if err != nil {
		return err
	}
	roots, err := s.jobRootKeys(ctx, j.OrgID)
	if err != nil {
		return err
	}
	if len(roots) == 0 || roots[0].State != keys.WrappingActive {
		return &fault.Error{Kind: fault.Internal, Reason: "org has no active root key wrapping"}
	}
	active := roots[0]
	same := func(w masterkey.Wrapped) bool {
		return w.Key.Provider == target.Provider && w.Key.ID == target.ID && (target.Version == "" || strings.EqualFold(w.Key.Version, target.Version))
	}
	aad := keys.RootAAD(j.OrgID)
	if same(active.Wrapped) {
		// Already switched (a run that crashed before finishing), or
		// nothing to do.
		return s.finish(ctx, j, active.Wrapped)
	}
	// The root key: from the cache when present, else by unwrapping the
	// active wrapping (one remote call).
	root, err := s.cfg.Keys.RootKey(ctx, j.OrgID)
	if err != nil {
		return err
	}
	defer clear(root)

	// Copy: reuse the pending copy of an interrupted run, if it verifies.
	var pending *keys.RootKeyWrapping
	for i := range roots[1:] {
		if w := roots[1+i]; w.State == keys.WrappingPending && same(w.Wrapped) {
			pending = &w
		}
	}
	if pending == nil {
		w, err := tk.Wrap(ctx, target, root, aad)
		if err != nil {
			return err
		}
		copied := *j
		copied.Step = "copied"
		// The copies of the jobs running at once commit together, like
		// their switches: the job goes on only once its copy is durable.
		step := CopyStep{Job: copied, Wrapping: keys.RootKeyWrapping{OrgID: j.OrgID, Wrapped: w, State: keys.WrappingPending, CreatedAt: s.now().UTC()}}
		c, err := s.copies.do(ctx, step, s.st.AddJobWrappings)
		if err == nil {
			err = c.Err
		}
		if err != nil {
			return err
		}
		id := c.ID
		// The pending row is the durable record of this step: a resumed run
		// finds and verifies it instead of wrapping again.
		pending = &keys.RootKeyWrapping{ID: id, OrgID: j.OrgID, Wrapped: w, State: keys.WrappingPending}
		j.Step = "copied"
		s.stepDone(j, "copied")
	}
	// Verify: the new copy must unwrap to the same root key.
	got, err := tk.Unwrap(ctx, pending.Wrapped, aad)
	if err != nil {
		return err
	}
	ok := subtle.ConstantTimeCompare(got, root) == 1
	clear(got)
	if !ok {
		return &fault.Error{Kind: fault.Internal, Op: "verify", Reason: "the new wrapping does not unwrap to the org's root key"}
	}
	j.Step = "verified"
	s.stepDone(j, "verified")

	// Switch, drop and finish, in one transaction.
	rec, err := s.jobRecord(ctx, j.OrgID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	rec = s.afterSwitch(rec, *j, pending.Wrapped, now)
	rec.Bump = switchBump[j.Kind]
	details := map[string]string{"from": s.cfg.Keys.AuditKeyName(active.Wrapped.Key), "to": s.cfg.Keys.AuditKeyName(pending.Wrapped.Key)}
	ev := audit.Event{OrgID: j.OrgID, Time: now, Actor: "orgkms", Action: "cmk." + string(j.Kind) + ".done", Target: "cmk", Details: details}
	done := *j
	done.State, done.Step, done.Error, done.UpdatedAt = JobDone, "switched", "", now
	// The switches of the jobs running at once commit together (one
	// transaction, each judged under its own savepoint and fence): the
	// job goes on only once its switch is durable.
	step := SwitchStep{OrgID: j.OrgID, ID: pending.ID, Master: pending.Wrapped.Key.Unversioned(), Record: rec, Event: ev, Done: &done}
	serr, err := s.switches.do(ctx, step, s.st.SwitchWrappings)
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	// The cached root key stays valid: the root key itself did not change,
	// only the key wrapping it at rest.
	*j = done
	if active.Wrapped.Key.Provider != pending.Wrapped.Key.Provider {
		// Moving between the platform key and a customer key: make sure no
		// copy of the old wrapping lingers in the database files.
		if sc, ok := s.st.(interface{ ScrubDeleted(context.Context) error }); ok {
			if err := s.scrub.do(ctx, sc.ScrubDeleted); err != nil {
				s.log.Warn("scrub after re-wrap failed", slog.String("org_id", j.OrgID), slog.String("error", err.Error()))
			}
		}
	}
	s.stepDone(j, "switched")
	s.block(j.OrgID, nil)
	s.changed(j.OrgID)
	s.log.Info("job done", slog.String("org_id", j.OrgID), slog.String("job", string(j.Kind)), slog.String("key_version", pending.Wrapped.Key.Version))
	return nil
}

// jobRootKeys is [keys.Store.RootKeys] of a job's org, read together with
// those of the jobs reading at the same time (one [Store.RootKeysOf] per
// group, like the group commits of their copies and switches): a mass
// re-wrap reads its root keys in a few hundred queries instead of one per
// org. Each read starts after the call, so it sees the job's own
// committed steps. An org the group read finds nothing for is read alone,
// for RootKeys' own answer (NotFound for an unknown org).
func (s *Service) jobRootKeys(ctx context.Context, orgID string) ([]keys.RootKeyWrapping, error) {
	ws, err := s.rootReads.do(ctx, orgID, func(ctx context.Context, ids []string) ([][]keys.RootKeyWrapping, error) {
		all, err := s.st.RootKeysOf(ctx, ids)
		if err != nil {
			return nil, err
		}
		by := make(map[string][]keys.RootKeyWrapping, len(ids))
		for _, w := range all {
			by[w.OrgID] = append(by[w.OrgID], w)
		}
		out := make([][]keys.RootKeyWrapping, len(ids))
		for i, id := range ids {
			out[i] = by[id]
		}
		return out, nil
	})
	if err == nil && len(ws) == 0 {
		return s.st.RootKeys(ctx, orgID)
	}
	return ws, err
}

// recordRead is one org's record from a group read; found is false when
// the org has none.
type recordRead struct {
	rec   Record
	found bool
}

// jobRecord is [Service.record] of a job's org, read together with those
// of the jobs reading at the same time (one [Store.GetCMKs] per group), as
// jobRootKeys. An org without a record is read alone (record's answer).
func (s *Service) jobRecord(ctx context.Context, orgID string) (Record, error) {
	r, err := s.recReads.do(ctx, orgID, func(ctx context.Context, ids []string) ([]recordRead, error) {
		rs, err := s.st.GetCMKs(ctx, ids)
		if err != nil {
			return nil, err
		}
		by := make(map[string]Record, len(rs))
		for _, r := range rs {
			by[r.OrgID] = r
		}
		out := make([]recordRead, len(ids))
		for i, id := range ids {
			out[i].rec, out[i].found = by[id]
		}
		return out, nil
	})
	if err != nil {
		return Record{}, err
	}
	if !r.found {
		return s.record(ctx, orgID)
	}
	return r.rec, nil
}

// afterSwitch is the org's record once the root key is wrapped by w.
func (s *Service) afterSwitch(rec Record, j Job, w masterkey.Wrapped, now time.Time) Record {
	rec.UpdatedAt = now
	rec.Reason, rec.ReasonCode, rec.RevokedSince, rec.RecoverableUntil, rec.Warning = "", "", time.Time{}, time.Time{}, ""
	if j.Kind == JobDeactivate {
		// Back on the platform key; the consent stays, the key config too,
		// so the customer can enable again.
		rec.State, rec.ActiveKeyURI, rec.ActiveVersion = StateAuthorized, "", ""
		return rec
	}
	rec.State = StateActive
	rec.ActiveKeyURI = w.Key.Unversioned().String()
	rec.ActiveVersion = w.Key.Version
	return rec
}

func (s *Service) finish(ctx context.Context, j *Job, w masterkey.Wrapped) error {
	rec, err := s.record(ctx, j.OrgID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if rec.State != StateActive && rec.State != StateAuthorized {
		rec = s.afterSwitch(rec, *j, w, now)
	}
	j.State, j.Step, j.Error = JobDone, "switched", ""
	ev := audit.Event{OrgID: j.OrgID, Time: now, Actor: "orgkms", Action: "cmk." + string(j.Kind) + ".done", Target: "cmk",
		Details: map[string]string{"key": s.cfg.Keys.AuditKeyName(w.Key.Unversioned()), "key_version": w.Key.Version}}
	if err := s.st.FinishJob(ctx, *j, rec, ev); err != nil {
		return err
	}
	s.block(j.OrgID, nil)
	s.log.Info("job done", slog.String("org_id", j.OrgID), slog.String("job", string(j.Kind)), slog.String("key_version", w.Key.Version))
	return nil
}

// scrubber coalesces scrubs of deleted rows (Store.ScrubDeleted: a WAL
// checkpoint on SQLite, VACUUM FULL of root_keys on PostgreSQL, each a
// cost that grows with the table): every caller returns after a whole pass
// that started after it asked, so its own deletion is scrubbed, while the
// callers that ask during one pass share the next one. A mass activation
// then makes a few passes instead of one per org. The zero value is ready.
type scrubber struct{ b batcher[struct{}, struct{}] }

// do returns once a call of scrub that started after do was called has
// returned, with its error; or ctx's error if ctx ends first.
func (c *scrubber) do(ctx context.Context, scrub func(context.Context) error) error {
	_, err := c.b.do(ctx, struct{}{}, func(ctx context.Context, in []struct{}) ([]struct{}, error) {
		return make([]struct{}, len(in)), scrub(ctx)
	})
	return err
}

// maxBatch bounds the calls one flush of a [batcher] serves.
const maxBatch = 256

// batcher is group commit: concurrent calls of do join a batch, and one
// caller at a time flushes a whole batch (one store transaction for all
// of them), while the calls that arrive meanwhile gather in the next
// batch. No call waits for a timer: under load a batch holds what arrived
// during the previous flush, alone a call is flushed at once. Every call
// returns after a flush that started after it joined. The zero value is
// ready.
type batcher[T, R any] struct {
	mu   sync.Mutex
	next *batch[T, R]  // the batch not flushed yet, that new calls join
	run  chan struct{} // holds a token while a flush runs
}

type batch[T, R any] struct {
	in   []T
	out  []R
	err  error
	done chan struct{}
}

// do adds x to the next batch and returns its result once a flush of that
// batch has returned: out[i] for x at index i, or flush's error for all.
// The flush runs on one caller's goroutine, under a context that does not
// end with that caller's (a job that lost its lease must not fail the
// others' writes; each write is fenced by its own job in the store).
// do returns ctx's error if ctx ends first; x may still be flushed.
func (b *batcher[T, R]) do(ctx context.Context, x T, flush func(context.Context, []T) ([]R, error)) (R, error) {
	var zero R
	b.mu.Lock()
	if b.run == nil {
		b.run = make(chan struct{}, 1)
	}
	if b.next == nil || len(b.next.in) >= maxBatch {
		b.next = &batch[T, R]{done: make(chan struct{})}
	}
	p, run := b.next, b.run
	i := len(p.in)
	p.in = append(p.in, x)
	b.mu.Unlock()
	result := func() (R, error) {
		if p.err != nil {
			return zero, p.err
		}
		return p.out[i], nil
	}
	select {
	case run <- struct{}{}:
	case <-p.done:
		return result()
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	defer func() { <-run }()
	select {
	case <-p.done: // another caller flushed it while this one waited
		return result()
	default:
	}
	b.mu.Lock()
	if b.next == p {
		b.next = nil // calls from now on join a later batch
	}
	b.mu.Unlock()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
	out, err := flush(fctx, p.in)
	cancel()
	if err == nil && len(out) != len(p.in) {
		err = &fault.Error{Kind: fault.Internal, Op: "flush batch", Reason: fmt.Sprintf("%d results for %d calls", len(out), len(p.in))}
	}
	p.out, p.err = out, err
	close(p.done)
	return result()
}

// flushTimeout bounds one flush of a batcher.
const flushTimeout = 30 * time.Second

// SwitchStep is one job's switch, the arguments of
// [Store.SwitchWrapping], for [Store.SwitchWrappings].
type SwitchStep struct {
	OrgID  string
	ID     int64 // the pending wrapping to make active
	Master masterkey.Ref
	Record Record
	Event  audit.Event
	Done   *Job
}

// CopyStep is one job's copy, the arguments of [Store.AddJobWrapping],
// for [Store.AddJobWrappings].
type CopyStep struct {
	Job      Job // running, its Step the step to store ("copied")
	Wrapping keys.RootKeyWrapping
}

// Copied is the outcome of one [CopyStep]: the pending wrapping's ID, or
// why it was not stored.
type Copied struct {
	ID  int64
	Err error
}
