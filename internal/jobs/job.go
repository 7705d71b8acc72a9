package jobs

import (
	"context"
	"time"
)

// Kind names what a job does ("activate", "rotate", ...); the [Handler]
// gives it its meaning.
type Kind string

// State is the state of a job.
type State string

const (
	Pending State = "pending"
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed"
	// Stalled is never stored: [Runner.Stalled] shows a running job as
	// stalled when its lease holder is gone (the lease expired, or, on a
	// single node, another node ID than this live node holds it).
	Stalled State = "stalled"
)

// Job is a durable job of one org. Its work is a sequence of steps, each
// committed durably by the [Handler]; running it again from any point is
// safe.
type Job struct {
	ID       int64
	OrgID    string
	Kind     Kind
	Target   string // what the job moves to, in the handler's terms
	Step     string // last completed step; the handler's names
	State    State
	Attempts int
	Error    string // last error, customer-readable
	// Owner is the lease holder: NODE/TOKEN, a new token per claim.
	Owner string
	// Fence is the fencing token of the current lease: every claim raises
	// it, and every write of the job's holder (a step, a renewal, the
	// finish) is stored only while the stored fence is still this one.
	Fence      int64
	LeaseUntil time.Time
	NotBefore  time.Time // retry backoff: not claimed before this time
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Store is what the runner needs from storage. Errors are *fault.Error:
// NotFound, Conflict (a lost lease), Unavailable.
type Store interface {
	// ClaimJob leases the oldest claimable job to owner until now+lease: a
	// pending job whose NotBefore has passed, or a running job whose lease
	// expired (its owner died). It raises Fence and increments Attempts.
	// NotFound if none.
	ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (Job, error)
	// UpdateJob stores j's Step, State, Error, NotBefore and LeaseUntil if
	// j.Owner still holds the lease under j.Fence (Conflict otherwise).
	UpdateJob(ctx context.Context, j Job) error
	// RenewJob moves the lease of running job j to until, if j.Owner still
	// holds it under j.Fence (Conflict otherwise); nothing else changes.
	RenewJob(ctx context.Context, j Job, until time.Time) error
}

// BatchStore is a [Store] that also claims many jobs in one write. The
// runner's workers claim through it when the store has it: a node running
// thousands of short jobs (a mass re-wrap) then spends one transaction per
// batch of claims instead of one per job.
type BatchStore interface {
	Store
	// ClaimJobs is ClaimJob for up to n jobs at once, oldest first, in one
	// transaction: each is leased to owner until now+lease under its own
	// raised Fence, exactly as ClaimJob would lease it. None claimable is
	// an empty result, not an error.
	ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, n int) ([]Job, error)
}

// Handler does the work of jobs.
type Handler interface {
	// Run does j's work from its last durable step. Every write it makes
	// for j carries j.Owner and j.Fence, so that a run that lost its lease
	// gets Conflict instead of committing. ctx is cancelled at once when
	// the runner finds the lease lost. It updates *j as it goes; on
	// success the job is done (stored by the handler's last step).
	Run(ctx context.Context, j *Job) error
	// Fail ends j for good after the permanent error err: it stores j
	// (State Failed, Error set) with whatever the handler's state needs.
	Fail(ctx context.Context, j Job, err error) error
}
