package platformkey

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Config configures a [Service]. Store, Keys, Keepers and NodeID are
// required.
type Config struct {
	Store   Store
	Keys    *keys.Service
	Keepers *masterkey.Registry
	NodeID  string

	// Check is how often the service looks for orgs to re-wrap; default 1m.
	Check time.Duration
	// Workers bounds the concurrent master-key calls of a re-wrap; default 32.
	Workers int
	// Batch is how many orgs one store write copies or switches; default 256.
	Batch int
	// Lease, Poll, Shared and Observer are the job runner's ([jobs.Config]);
	// Poll defaults to 10s here: the node that starts a job wakes its own
	// runner, and other nodes only take a job over whose holder died.
	Lease    time.Duration
	Poll     time.Duration
	Shared   bool
	Observer func(jobs.Event)
	// Changed, when set, is told of every org the job switched (the
	// cluster's purge broadcast; the generation raised in the switch's
	// transaction is the fallback).
	Changed func(orgID string)
	// Stale, when set, is told after each check how many orgs are on an
	// older platform key version (a metric).
	Stale  func(n int)
	Now    func() time.Time
	Logger *slog.Logger
}

// Service detects platform master key rotations and runs the re-wrap job.
// Safe for concurrent use.
type Service struct {
	cfg    Config
	st     Store
	keys   *keys.Service
	log    *slog.Logger
	runner *jobs.Runner

	// The back-off after jobs that failed for good (see Check).
	failMu     sync.Mutex
	checked    bool  // a check has run since this Service started
	lastFailed int64 // the failed job last seen
	streak     int   // failed jobs seen in a row
}

// Back-off after a job failed for good: the next job starts
// retryAfterFailure after it, doubling with each failed job in a row up to
// maxRetryAfterFailure. A restart starts one at once (the operator's fix,
// e.g. a key added to previous_master_keys, takes effect then).
const (
	retryAfterFailure    = 5 * time.Minute
	maxRetryAfterFailure = 6 * time.Hour
)

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Keepers == nil || cfg.NodeID == "" {
		return nil, errors.New("platformkey: Store, Keys, Keepers and NodeID are required")
	}
	if cfg.Check <= 0 {
		cfg.Check = time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, st: cfg.Store, keys: cfg.Keys, log: cfg.Logger}
	var err error
	s.runner, err = jobs.New(jobs.Config{Store: cfg.Store.PlatformJobs(), Handler: handler{s}, NodeID: cfg.NodeID,
		Lease: cfg.Lease, Poll: cfg.Poll, Shared: cfg.Shared, Observer: cfg.Observer, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Run reclaims the job this node held before a restart, then checks every
// Config.Check (at once first) and runs the job, until ctx is cancelled.
func (s *Service) Run(ctx context.Context) {
	if j, err := s.st.LatestPlatformJob(ctx); err == nil {
		if _, err := s.runner.Reclaim(ctx, []jobs.Job{j}); err != nil && ctx.Err() == nil {
			s.log.Warn("reclaim platform job failed", slog.String("error", err.Error()))
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.runner.Run(ctx, 1) })
	wg.Go(func() {
		t := time.NewTicker(s.cfg.Check)
		defer t.Stop()
		for {
			if _, err := s.Check(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("platform key check failed", slog.String("kind", fault.KindOf(err).Code()), slog.String("error", err.Error()))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	wg.Wait()
}

// RunPending runs claimable platform jobs on the calling goroutine until
// none is left (tests and benchmarks).
func (s *Service) RunPending(ctx context.Context) error { return s.runner.RunPending(ctx) }

// Current returns the platform master key at its current version, as its
// provider describes it.
func (s *Service) Current(ctx context.Context) (masterkey.Ref, error) {
	platform := s.keys.PlatformKey()
	k, err := s.cfg.Keepers.Keeper(platform)
	if err != nil {
		return masterkey.Ref{}, err
	}
	d, err := k.Describe(ctx, platform)
	if err != nil {
		return masterkey.Ref{}, err
	}
	if d.Key.Version == "" {
		return masterkey.Ref{}, &fault.Error{Kind: fault.Internal, Op: "describe platform key", Reason: "the platform master key's provider reported no current version"}
	}
	return platform.WithVersion(d.Key.Version), nil
}

// Check starts a re-wrap job when orgs are wrapped by a platform key
// version that is not the current one, unless one is pending or running
// (on any node). It reports whether it started one.
func (s *Service) Check(ctx context.Context) (bool, error) {
	cur, err := s.Current(ctx)
	if err != nil {
		return false, err
	}
	counts, err := s.st.WrappingCounts(ctx)
	if err != nil {
		return false, err
	}
	stale := 0
	for _, c := range counts {
		if c.State == keys.WrappingActive && s.keys.IsPlatformKey(c.Key) && c.Key != cur {
			stale += c.Orgs
		}
	}
	if s.cfg.Stale != nil {
		s.cfg.Stale(stale)
	}
	if stale == 0 {
		return false, nil
	}
	if until, err := s.backOff(ctx); err != nil || !until.IsZero() {
		return false, err
	}
	return s.Start(ctx, cur, stale)
}

// backOff returns the time before which no job may start because the
// latest one failed for good (zero when one may start now).
func (s *Service) backOff(ctx context.Context) (time.Time, error) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	first := !s.checked
	s.checked = true
	j, err := s.st.LatestPlatformJob(ctx)
	if fault.KindOf(err) == fault.NotFound || (err == nil && j.State != jobs.Failed) {
		s.streak, s.lastFailed = 0, 0
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	if first {
		s.lastFailed = j.ID // a restart: try once at once
		return time.Time{}, nil
	}
	if j.ID != s.lastFailed {
		s.lastFailed = j.ID
		s.streak++
		wait := retryAfterFailure << min(max(s.streak-1, 0), 10)
		s.log.Warn("platform key re-wrap failed; backing off before the next try", slog.Duration("wait", min(wait, maxRetryAfterFailure)), slog.String("error", j.Error))
	}
	wait := min(retryAfterFailure<<min(max(s.streak-1, 0), 10), maxRetryAfterFailure)
	if until := j.UpdatedAt.Add(wait); s.cfg.Now().Before(until) {
		return until, nil
	}
	return time.Time{}, nil
}

// Start starts the re-wrap of every platform org to cur; false when a
// job is already pending or running.
func (s *Service) Start(ctx context.Context, cur masterkey.Ref, stale int) (bool, error) {
	now := s.cfg.Now().UTC()
	ev := audit.Event{OrgID: audit.Platform, Time: now, Actor: "orgkms", Action: "platform.rewrap.start", Target: "platform",
		Details: map[string]string{"master_key": "platform", "to_version": cur.Version, "orgs": strconv.Itoa(stale)}}
	_, err := s.st.StartPlatformJob(ctx, jobs.Job{Kind: JobKind, Target: cur.String(), CreatedAt: now}, ev)
	if fault.KindOf(err) == fault.Conflict {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.log.Info("platform key re-wrap started", slog.String("key_version", cur.Version), slog.Int("orgs", stale))
	s.runner.Kick()
	return true, nil
}

// handler is the [jobs.Handler] of the platform re-wrap job.
type handler struct{ s *Service }

func (h handler) Run(ctx context.Context, j *jobs.Job) error { return h.s.rewrap(ctx, j) }

func (h handler) Fail(ctx context.Context, j jobs.Job, cause error) error {
	s := h.s
	j.State, j.Error, j.UpdatedAt = jobs.Failed, s.keys.RedactPlatformKey(fault.Message(cause)), s.cfg.Now().UTC()
	ev := audit.Event{OrgID: audit.Platform, Time: j.UpdatedAt, Actor: "orgkms", Action: "platform.rewrap.failed", Target: "platform",
		Details: map[string]string{"master_key": "platform", "error": j.Error}}
	return s.st.FinishPlatformJob(ctx, j, ev)
}

// candidate is one org the job moves.
type candidate struct {
	orgID   string
	active  keys.RootKeyWrapping
	pending *keys.RootKeyWrapping // a copy to the target: from an interrupted run, or stored by commit
	wrapped *masterkey.Wrapped    // a new copy, verified, not yet stored
	root    []byte
	err     error
}

// inTransit reports whether a CMK job is moving the org (it owns the
// org's wrappings until it ends).
func inTransit(st cmk.State) bool {
	switch st {
	case cmk.StateActivating, cmk.StateRotating, cmk.StateReplacing, cmk.StateDeactivating:
		return true
	}
	return false
}

// rewrap moves every platform org to j.Target, page by page: copy (one
// unwrap with the old version, one wrap with the new, bounded
// concurrency) and verify (unwrap the copy: what is stored always
// unwraps), then one store write per page stores the copies, and another
// switches and drops. Every step is durable and safe to repeat: a resumed
// run starts over, skips orgs already on the target and verifies the
// copies an interrupted run left.
func (s *Service) rewrap(ctx context.Context, j *jobs.Job) error {
	target, err := s.cfg.Keepers.ParseRef(j.Target)
	if err != nil {
		return err
	}
	tk, err := s.cfg.Keepers.Keeper(target)
	if err != nil {
		return err
	}
	recs, err := s.st.ListCMK(ctx)
	if err != nil {
		return err
	}
	transit := map[string]bool{}
	for _, r := range recs {
		if inTransit(r.State) {
			transit[r.OrgID] = true
		}
	}
	// Two stages overlap: while this goroutine stores page k (copy, then
	// switch), another reads page k+1 and makes its master-key calls.
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	pages := make(chan []*candidate, 1)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(pages)
		after := ""
		for pctx.Err() == nil {
			page, err := s.st.RootKeyPage(pctx, after, s.cfg.Batch)
			if err != nil {
				readErr = err
				return
			}
			if len(page) == 0 {
				return
			}
			after = page[len(page)-1].OrgID
			cands := s.candidates(page, target, transit)
			if len(cands) == 0 {
				continue
			}
			s.prepare(pctx, tk, target, cands)
			select {
			case pages <- cands:
			case <-pctx.Done():
				clearRoots(cands)
				return
			}
		}
	})
	var moved, failed int
	var firstErr, stopErr error
	for cands := range pages {
		if stopErr != nil {
			clearRoots(cands)
			continue
		}
		n, errs, err := s.commit(ctx, j, cands)
		clearRoots(cands)
		if err != nil {
			stopErr = err
			stop()
			continue
		}
		moved += n
		for _, e := range errs {
			failed++
			if firstErr == nil {
				firstErr = e
			}
		}
	}
	wg.Wait()
	if stopErr != nil {
		return stopErr
	}
	if readErr != nil {
		return readErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if firstErr != nil {
		// Transient failures retry the job; others fail it after the
		// runner's attempts, naming the first org's error.
		kind := fault.KindOf(firstErr)
		return &fault.Error{Kind: kind, Op: "platform re-wrap", Reason: fmt.Sprintf("%d orgs could not be re-wrapped (%d moved); first: %s", failed, moved, fault.Message(firstErr)), Err: firstErr}
	}
	now := s.cfg.Now().UTC()
	done := *j
	done.State, done.Step, done.Error, done.UpdatedAt = jobs.Done, "done", "", now
	ev := audit.Event{OrgID: audit.Platform, Time: now, Actor: "orgkms", Action: "platform.rewrap.done", Target: "platform",
		Details: map[string]string{"master_key": "platform", "to_version": target.Version, "orgs": strconv.Itoa(moved)}}
	if err := s.st.FinishPlatformJob(ctx, done, ev); err != nil {
		return err
	}
	*j = done
	s.runner.Step(j, "done")
	s.log.Info("platform key re-wrap done", slog.String("key_version", target.Version), slog.Int("orgs", moved))
	return nil
}

// candidates picks the orgs of page to move: active wrapping by a
// platform key (current or previous) at another version than target,
// and no CMK job moving them.
func (s *Service) candidates(page []keys.RootKeyWrapping, target masterkey.Ref, transit map[string]bool) []*candidate {
	var out []*candidate
	var c *candidate
	for _, w := range page {
		if w.State == keys.WrappingActive {
			c = nil
			if transit[w.OrgID] || !s.keys.IsPlatformKey(w.Wrapped.Key) || w.Wrapped.Key == target {
				continue
			}
			c = &candidate{orgID: w.OrgID, active: w}
			out = append(out, c)
			continue
		}
		if c != nil && c.orgID == w.OrgID && w.State == keys.WrappingPending && w.Wrapped.Key == target {
			p := w
			c.pending = &p
		}
	}
	return out
}

func clearRoots(cs []*candidate) {
	for _, c := range cs {
		clear(c.root)
	}
}

// prepare makes the master-key calls of cands, at most Config.Workers at
// once: unwrap the root key with its old version; wrap it with the target
// unless an interrupted run left a copy; unwrap the copy (new or left) to
// check that it gives the same root key. A failure is the candidate's err.
func (s *Service) prepare(ctx context.Context, tk *masterkey.Keeper, target masterkey.Ref, cands []*candidate) {
	s.each(cands, func(c *candidate) {
		k, err := s.cfg.Keepers.Keeper(c.active.Wrapped.Key)
		if err != nil {
			c.err = err
			return
		}
		aad := keys.RootAAD(c.orgID)
		// The root key: from this node's cache when the org is in use (the
		// root key never changes, only what wraps it), else by unwrapping
		// the active wrapping with its old version.
		root, ok := s.keys.CachedRootKey(c.orgID)
		if !ok {
			if root, err = k.Unwrap(ctx, c.active.Wrapped, aad); err != nil {
				c.err = keys.PlatformKeyFault("unwrap root key of org "+c.orgID, err)
				return
			}
		}
		c.root = root
		copyOf := c.pending
		if copyOf == nil {
			w, err := tk.Wrap(ctx, target, root, aad)
			if err != nil {
				c.err = keys.PlatformKeyFault("wrap root key of org "+c.orgID, err)
				return
			}
			c.wrapped = &w
		}
		check := c.wrapped
		if copyOf != nil {
			check = &copyOf.Wrapped
		}
		got, err := tk.Unwrap(ctx, *check, aad)
		if err != nil {
			c.err = keys.PlatformKeyFault("verify root key of org "+c.orgID, err)
			return
		}
		same := subtle.ConstantTimeCompare(got, root) == 1
		clear(got)
		if !same {
			c.err = &fault.Error{Kind: fault.Internal, Op: "verify", Resource: "org " + c.orgID, Reason: "the new wrapping does not unwrap to the org's root key"}
		}
	})
}

// commit stores the prepared cands: their new copies in one write (copy),
// then the switch of every verified org in another (switch and drop). It
// returns how many orgs it switched and the per-org errors; an error
// return stops the job.
func (s *Service) commit(ctx context.Context, j *jobs.Job, cands []*candidate) (int, []error, error) {
	now := s.cfg.Now().UTC()
	var copies []keys.RootKeyWrapping
	var copied []*candidate
	for _, c := range cands {
		if c.err == nil && c.wrapped != nil {
			copies = append(copies, keys.RootKeyWrapping{OrgID: c.orgID, Wrapped: *c.wrapped, State: keys.WrappingPending, CreatedAt: now})
			copied = append(copied, c)
		}
	}
	if len(copies) > 0 {
		j.Step = "copied to " + copied[len(copied)-1].orgID
		ids, err := s.st.AddPlatformCopies(ctx, *j, copies)
		if err != nil {
			return 0, nil, err
		}
		for i, c := range copied {
			if ids[i] == 0 {
				c.err = errSkip // a CMK job is moving it
				continue
			}
			w := copies[i]
			w.ID = ids[i]
			c.pending = &w
		}
		s.runner.Step(j, "copied")
	}
	var sws []Switch
	var switched []*candidate
	for _, c := range cands {
		if c.err != nil || c.pending == nil {
			continue
		}
		to := c.pending.Wrapped.Key
		ev := audit.Event{OrgID: c.orgID, Time: now, Actor: "orgkms", Action: "platform.rewrap", Target: "org/" + c.orgID,
			Details: map[string]string{"master_key": "platform", "from_version": c.active.Wrapped.Key.Version, "to_version": to.Version}}
		sws = append(sws, Switch{OrgID: c.orgID, From: c.active.ID, To: c.pending.ID, Master: to.Unversioned(), Event: ev})
		switched = append(switched, c)
	}
	n := 0
	if len(sws) > 0 {
		j.Step = "switched to " + sws[len(sws)-1].OrgID
		errs, err := s.st.SwitchPlatformWrappings(ctx, *j, sws)
		if err != nil {
			return 0, nil, err
		}
		for i, c := range switched {
			switch {
			case errs[i] == nil:
				n++
				if s.cfg.Changed != nil {
					s.cfg.Changed(c.orgID)
				}
			case fault.KindOf(errs[i]) == fault.NotFound:
				c.err = errSkip // the org is gone
			default:
				c.err = errs[i]
			}
		}
		s.runner.Step(j, "switched")
	}
	var errs []error
	for _, c := range cands {
		if c.err != nil && c.err != errSkip {
			s.log.Warn("platform re-wrap of an org failed", slog.String("org_id", c.orgID), slog.String("kind", fault.KindOf(c.err).Code()), slog.String("error", c.err.Error()))
			errs = append(errs, c.err)
		}
	}
	return n, errs, nil
}

// errSkip marks an org the job leaves to another owner (a CMK job), or
// that is gone: not a failure.
var errSkip = errors.New("skipped")

func (s *Service) each(cs []*candidate, f func(*candidate)) {
	s.eachIndex(len(cs), func(i int) { f(cs[i]) })
}

// eachIndex calls f(0..n-1) on at most Config.Workers goroutines.
func (s *Service) eachIndex(n int, f func(int)) {
	sem := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
