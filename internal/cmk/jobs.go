package cmk

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
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
	if jobWorkers < 1 {
		jobWorkers = 4
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.probeLoop(ctx) })
	for range jobWorkers {
		wg.Go(func() { s.worker(ctx) })
	}
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
	for _, r := range recs {
		j, err := s.st.OrgJob(ctx, r.OrgID)
		if fault.KindOf(err) == fault.NotFound {
			continue
		}
		if err != nil {
			return err
		}
		if j.State != JobRunning || !s.ownLease(j) {
			continue
		}
		j.State, j.LeaseUntil, j.NotBefore, j.UpdatedAt = JobPending, time.Time{}, s.now(), s.now().UTC()
		if err := s.st.UpdateJob(ctx, j); err != nil && fault.KindOf(err) != fault.Conflict {
			return err
		}
		s.log.Info("reclaimed an interrupted job", slog.String("org_id", j.OrgID), slog.String("job", string(j.Kind)), slog.Int64("job_id", j.ID))
	}
	s.kick()
	return nil
}

// ownLease reports whether this node (by NodeID) holds j's lease.
func (s *Service) ownLease(j Job) bool { return strings.HasPrefix(j.Owner, s.cfg.NodeID+"/") }

// holderGone reports whether the holder of running job j is gone: its lease
// expired, or (one node) it is not this live node.
func (s *Service) holderGone(j Job) bool {
	if !j.LeaseUntil.IsZero() && !s.now().Before(j.LeaseUntil) {
		return true
	}
	return !s.cfg.SharedStore && !s.ownLease(j)
}

func (s *Service) worker(ctx context.Context) {
	for ctx.Err() == nil {
		// A lease token per claim: two workers of one node never share one.
		j, err := s.st.ClaimJob(ctx, s.cfg.NodeID+"/"+randomState()[:12], s.now(), s.cfg.JobLease)
		if err != nil {
			if fault.KindOf(err) != fault.NotFound && ctx.Err() == nil {
				s.log.Warn("claim job failed", slog.String("error", err.Error()))
			}
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				s.kick() // let another idle worker look too
			case <-time.After(s.cfg.JobPoll):
			}
			continue
		}
		s.execute(ctx, j)
	}
}

// RunPendingJobs runs claimable jobs on the calling goroutine until none is
// left (tests and benchmarks).
func (s *Service) RunPendingJobs(ctx context.Context) error {
	for {
		j, err := s.st.ClaimJob(ctx, s.cfg.NodeID+"/"+randomState()[:12], s.now(), s.cfg.JobLease)
		if fault.KindOf(err) == fault.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		s.execute(ctx, j)
	}
}

// maxAttempts is how many times a job is tried before it fails for good on
// a permanent error; transient errors (Unavailable) retry with backoff.
const maxAttempts = 5

func (s *Service) execute(ctx context.Context, j Job) {
	log := s.log.With(slog.String("org_id", j.OrgID), slog.String("job", string(j.Kind)), slog.Int64("job_id", j.ID))
	err := s.rewrap(ctx, &j)
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		return // shutting down: the lease expires and another run resumes
	}
	kind := fault.KindOf(err)
	j.Error = fault.Message(err)
	// Transient (provider unreachable, or the record changed meanwhile):
	// retry with backoff. A permanent error (key disabled, permission
	// missing) gets a few attempts, so a quickly fixed mistake does not fail
	// the job; an internal error fails it at once.
	transient := kind == fault.Unavailable || kind == fault.Conflict
	if transient || (kind != fault.Internal && j.Attempts < maxAttempts) {
		backoff := time.Duration(1<<min(j.Attempts, 6)) * time.Second
		if kind == fault.Conflict {
			backoff = 100 * time.Millisecond
		}
		j.State, j.NotBefore, j.LeaseUntil = JobPending, s.now().Add(backoff), time.Time{}
		log.Warn("job step failed; will retry", slog.String("kind", kind.Code()), slog.Duration("duration", backoff), slog.String("error", err.Error()))
		if uerr := s.st.UpdateJob(ctx, j); uerr != nil {
			log.Warn("job update failed", slog.String("error", uerr.Error()))
		}
		return
	}
	log.Error("job failed", slog.String("kind", kind.Code()), slog.String("error", err.Error()))
	rec, rerr := s.record(ctx, j.OrgID)
	if rerr != nil {
		return
	}
	// Roll the state back: the active wrapping was never touched.
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
	if ferr := s.st.FinishJob(ctx, j, rec, ev); ferr != nil {
		log.Warn("job finish failed", slog.String("error", ferr.Error()))
		return
	}
	if revoke {
		s.block(j.OrgID, blockError(rec))
		s.changed(j.OrgID)
	}
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

// stepDone reports a durable step of job j to Config.OnJobStep.
func (s *Service) stepDone(j *Job, step string) {
	if s.cfg.OnJobStep != nil {
		s.cfg.OnJobStep(string(j.Kind), step)
	}
}

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
	roots, err := s.st.RootKeys(ctx, j.OrgID)
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
		id, err := s.st.AddPendingWrapping(ctx, j.OrgID, keys.RootKeyWrapping{OrgID: j.OrgID, Wrapped: w, State: keys.WrappingPending, CreatedAt: s.now().UTC()})
		if err != nil {
			return err
		}
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
	rec, err := s.record(ctx, j.OrgID)
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
	if err := s.st.SwitchWrapping(ctx, j.OrgID, pending.ID, pending.Wrapped.Key.Unversioned(), rec, ev, &done); err != nil {
		return err
	}
	// The cached root key stays valid: the root key itself did not change,
	// only the key wrapping it at rest.
	*j = done
	if active.Wrapped.Key.Provider != pending.Wrapped.Key.Provider {
		// Moving between the platform key and a customer key: make sure no
		// copy of the old wrapping lingers in the database files.
		if sc, ok := s.st.(interface{ ScrubDeleted(context.Context) error }); ok {
			if err := sc.ScrubDeleted(ctx); err != nil {
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
