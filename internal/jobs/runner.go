package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// Config configures a [Runner].
type Config struct {
	Store   Store
	Handler Handler
	// NodeID is this node's stable identity: owners are NODE/TOKEN, so a
	// restarted node finds the jobs it held ([Runner.Reclaim]). Required.
	NodeID string
	// Lease is how long a claim holds a job; the runner renews it every
	// Lease/3 while the job runs. Default 2m.
	Lease time.Duration
	// Poll is how often an idle worker looks for work. Default 1s.
	Poll time.Duration
	// Shared says that several live nodes share the store. By default (one
	// node) a running job held by another node ID is stalled: its holder
	// is gone.
	Shared bool
	// MaxAttempts is how many times a job is tried before a permanent
	// error fails it for good. Default 5.
	MaxAttempts int
	// Observer, when set, sees every durable step and every outcome, on the
	// worker's goroutine: for metrics, logs and crash tests. It must not
	// block.
	Observer func(Event)
	Now      func() time.Time
	Logger   *slog.Logger
}

// Outcome is how one run of a job ended.
type Outcome string

const (
	OutcomeDone        Outcome = "done"        // the job finished
	OutcomeRetry       Outcome = "retry"       // released with a backoff, to run again
	OutcomeFailed      Outcome = "failed"      // failed for good
	OutcomeLost        Outcome = "lost"        // the lease was lost: another runner holds the job
	OutcomeInterrupted Outcome = "interrupted" // the runner stopped; the lease expires or Reclaim frees it
)

// Event is what an observer sees: a durable step of a job (Step set), or
// the outcome of a run (Outcome set).
type Event struct {
	Kind    Kind
	Step    string
	Outcome Outcome
}

// Runner claims jobs from the store and runs them with a [Handler]. Safe
// for concurrent use.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}
}

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Handler == nil || cfg.NodeID == "" {
		return nil, errors.New("jobs: Store, Handler and NodeID are required")
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Runner{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1)}, nil
}

// Kick wakes an idle worker: a job was started.
func (r *Runner) Kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run runs workers workers (default 4) until ctx is cancelled and every
// one has stopped. With a [BatchStore], one dispatcher claims jobs for all
// free workers at once (see runBatched).
func (r *Runner) Run(ctx context.Context, workers int) {
	if workers < 1 {
		workers = 4
	}
	if bs, ok := r.cfg.Store.(BatchStore); ok {
		r.runBatched(ctx, bs, workers)
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { r.worker(ctx) })
	}
	wg.Wait()
}

// gatherWait bounds how long the dispatcher waits for more workers to free
// up before claiming for fewer than it wants: a few milliseconds, against
// jobs that each take at least two remote calls.
const gatherWait = 5 * time.Millisecond

// runBatched runs at most workers jobs at a time. The dispatcher reserves
// free workers, then claims as many jobs as it reserved in one store write
// (each job still under its own lease and fence) and starts each on its
// own goroutine. While there is a backlog (the last claim was full) it
// gathers a quarter of the workers, or waits gatherWait, before claiming,
// so a claim write serves many jobs instead of one.
func (r *Runner) runBatched(ctx context.Context, bs BatchStore, workers int) {
	slots := make(chan struct{}, workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	backlog := false
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n, want := 1, 1
		if backlog {
			want = max(1, workers/4)
		}
		if n < want {
			t := time.NewTimer(gatherWait)
		gather:
			for n < want {
				select {
				case slots <- struct{}{}:
					n++
				case <-t.C:
					break gather
				case <-ctx.Done():
					break gather
				}
			}
			t.Stop()
		}
	more:
		for n < workers {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		var js []Job
		var err error
		if ctx.Err() == nil {
			js, err = bs.ClaimJobs(ctx, r.cfg.NodeID+"/"+token(), r.cfg.Now(), r.cfg.Lease, n)
		}
		for range n - len(js) {
			<-slots
		}
		for _, j := range js {
			wg.Go(func() {
				defer func() { <-slots }()
				r.execute(ctx, j)
			})
		}
		backlog = err == nil && len(js) == n
		if len(js) > 0 {
			continue
		}
		if err != nil && ctx.Err() == nil {
			r.log.Warn("claim jobs failed", slog.String("error", err.Error()))
		}
		t := time.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (r *Runner) worker(ctx context.Context) {
	for ctx.Err() == nil {
		j, err := r.claim(ctx)
		if err != nil {
			if fault.KindOf(err) != fault.NotFound && ctx.Err() == nil {
				r.log.Warn("claim job failed", slog.String("error", err.Error()))
			}
			t := time.NewTimer(r.cfg.Poll)
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		// There may be more: let another idle worker look. Only a worker
		// that found a job passes the wake on, so idle workers never wake
		// each other in a loop.
		r.Kick()
		r.execute(ctx, j)
	}
}

// claim leases one job with a new owner token: two workers of one node
// never share a lease.
func (r *Runner) claim(ctx context.Context) (Job, error) {
	return r.cfg.Store.ClaimJob(ctx, r.cfg.NodeID+"/"+token(), r.cfg.Now(), r.cfg.Lease)
}

func token() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RunPending runs claimable jobs on the calling goroutine until none is
// left (tests and benchmarks).
func (r *Runner) RunPending(ctx context.Context) error {
	for {
		j, err := r.claim(ctx)
		if fault.KindOf(err) == fault.NotFound {
			return nil
		}
		if err != nil {
			return err
		}
		r.execute(ctx, j)
	}
}

// Owns reports whether this node (by NodeID) holds j's lease.
func (r *Runner) Owns(j Job) bool { return strings.HasPrefix(j.Owner, r.cfg.NodeID+"/") }

// Stalled reports whether running job j's holder is gone: its lease
// expired, or (one node) it is not this live node.
func (r *Runner) Stalled(j Job) bool {
	if j.State != Running {
		return false
	}
	if !j.LeaseUntil.IsZero() && !r.cfg.Now().Before(j.LeaseUntil) {
		return true
	}
	return !r.cfg.Shared && !r.Owns(j)
}

// Reclaim makes the jobs among held that this node held before it
// restarted claimable at once: they were interrupted, and their lease
// would keep them untouched until it expires. It reports how many it
// released.
func (r *Runner) Reclaim(ctx context.Context, held []Job) (int, error) {
	n := 0
	for _, j := range held {
		if j.State != Running || !r.Owns(j) {
			continue
		}
		now := r.cfg.Now()
		j.State, j.LeaseUntil, j.NotBefore, j.UpdatedAt = Pending, time.Time{}, now, now.UTC()
		if err := r.cfg.Store.UpdateJob(ctx, j); err != nil {
			if fault.KindOf(err) == fault.Conflict {
				continue // taken over meanwhile
			}
			return n, err
		}
		n++
		r.log.Info("reclaimed an interrupted job", slog.String("org_id", j.OrgID), slog.String("job", string(j.Kind)), slog.Int64("job_id", j.ID))
	}
	if n > 0 {
		r.Kick()
	}
	return n, nil
}

// Step reports durable step of job j to the observer; the handler calls
// it after each step it committed.
func (r *Runner) Step(j *Job, step string) {
	if r.cfg.Observer != nil {
		r.cfg.Observer(Event{Kind: j.Kind, Step: step})
	}
}

func (r *Runner) outcome(j Job, o Outcome) {
	if r.cfg.Observer != nil {
		r.cfg.Observer(Event{Kind: j.Kind, Outcome: o})
	}
}

// errLeaseLost is the cause of a job context cancelled by the renewal.
var errLeaseLost = errors.New("job lease lost")

// execute runs claimed job j under its lease: a renewal goroutine extends
// the lease every Lease/3 and cancels the run at once when the store
// refuses the renewal (another runner took the job over) or the lease ran
// out without a renewal (the store unreachable).
func (r *Runner) execute(ctx context.Context, j Job) {
	log := r.log.With(slog.String("org_id", j.OrgID), slog.String("job", string(j.Kind)), slog.Int64("job_id", j.ID))
	jctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	held := j // the lease as claimed; the handler changes j
	wg.Go(func() { r.renew(jctx, cancel, held, log) })
	err := r.cfg.Handler.Run(jctx, &j)
	lost := errors.Is(context.Cause(jctx), errLeaseLost)
	cancel(nil)
	wg.Wait()
	switch {
	case err == nil:
		r.outcome(j, OutcomeDone)
		return
	case lost:
		log.Warn("job lease lost; another runner resumes the job", slog.String("error", err.Error()))
		r.outcome(j, OutcomeLost)
		return
	case ctx.Err() != nil:
		r.outcome(j, OutcomeInterrupted)
		return // shutting down: the lease expires or Reclaim frees it
	}
	kind := fault.KindOf(err)
	j.Error = fault.Message(err)
	// Transient (provider unreachable, or the record changed meanwhile):
	// retry with backoff. A permanent error (key disabled, permission
	// missing) gets a few attempts, so a quickly fixed mistake does not fail
	// the job; an internal error fails it at once.
	transient := kind == fault.Unavailable || kind == fault.Conflict
	if transient || (kind != fault.Internal && j.Attempts < r.cfg.MaxAttempts) {
		backoff := time.Duration(1<<min(j.Attempts, 6)) * time.Second
		if kind == fault.Conflict {
			backoff = 100 * time.Millisecond
		}
		j.State, j.NotBefore, j.LeaseUntil = Pending, r.cfg.Now().Add(backoff), time.Time{}
		if uerr := r.cfg.Store.UpdateJob(ctx, j); uerr != nil {
			if fault.KindOf(uerr) == fault.Conflict {
				log.Warn("job lease lost; another runner resumes the job", slog.String("error", err.Error()))
				r.outcome(j, OutcomeLost)
				return
			}
			log.Warn("job update failed", slog.String("error", uerr.Error()))
		}
		log.Warn("job step failed; will retry", slog.String("kind", kind.Code()), slog.Duration("duration", backoff), slog.String("error", err.Error()))
		r.outcome(j, OutcomeRetry)
		return
	}
	log.Error("job failed", slog.String("kind", kind.Code()), slog.String("error", err.Error()))
	j.State = Failed
	if ferr := r.cfg.Handler.Fail(ctx, j, err); ferr != nil {
		log.Warn("job finish failed", slog.String("error", ferr.Error()))
		if fault.KindOf(ferr) == fault.Conflict {
			r.outcome(j, OutcomeLost)
		}
		return
	}
	r.outcome(j, OutcomeFailed)
}

// renew extends j's lease every Lease/3 until ctx is done; see execute.
func (r *Runner) renew(ctx context.Context, cancel context.CancelCauseFunc, j Job, log *slog.Logger) {
	every := r.cfg.Lease / 3
	t := time.NewTicker(every)
	defer t.Stop()
	held := j.LeaseUntil
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		until := r.cfg.Now().Add(r.cfg.Lease)
		err := r.cfg.Store.RenewJob(ctx, j, until)
		switch {
		case err == nil:
			held = until
		case ctx.Err() != nil:
			return
		case fault.KindOf(err) == fault.Conflict || fault.KindOf(err) == fault.NotFound:
			log.Warn("job lease renewal refused", slog.String("error", err.Error()))
			cancel(errLeaseLost)
			return
		default:
			log.Warn("job lease renewal failed", slog.String("error", err.Error()))
			if !held.IsZero() && !r.cfg.Now().Before(held) {
				// Unrenewed past its end: another runner may hold it now.
				cancel(errLeaseLost)
				return
			}
		}
	}
}
