package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
)

// jobTable is one of the tables of leased, fenced jobs that hold one job
// kind each beside cmk_jobs: platform_jobs, cmk_staged_jobs and
// shred_jobs. They have the same columns (jobColumns), and the same claim,
// renewal and fenced write.
type jobTable struct {
	table string // the SQL table
	noun  string // what errors call one job, e.g. "platform job"
}

var (
	platformJobTable = jobTable{table: "platform_jobs", noun: "platform job"}
	stagedJobTable   = jobTable{table: "cmk_staged_jobs", noun: "staged job"}
	shredJobTable    = jobTable{table: "shred_jobs", noun: "shred job"}
)

func (t jobTable) res(id int64) string { return fmt.Sprintf("%s %d", t.noun, id) }

func (t jobTable) get(ctx context.Context, q querier, op string, id int64) (jobs.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM `+t.table+` WHERE id = $1`, id))
	if err != nil {
		return jobs.Job{}, classify(ctx, op, t.res(id), err)
	}
	return j, nil
}

// check refuses j unless it has an owner and is in one of states.
func (t jobTable) check(op string, j jobs.Job, states ...jobs.State) error {
	switch {
	case j.Owner == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.owner", Reason: "lease owner is empty"}
	case !slices.Contains(states, j.State):
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.state", Reason: fmt.Sprintf("%s state must be one of %v, not %q", t.noun, states, j.State)}
	}
	return nil
}

// lost is the Conflict of a fenced write of j that matched no row.
func (t jobTable) lost(ctx context.Context, tx *sql.Tx, op string, j jobs.Job) error {
	cur, err := t.get(ctx, tx, op, j.ID)
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("%s %d is %s, held by %s under fence %d, not %s under fence %d: another node took it over", t.noun, j.ID, cur.State, cur.Owner, cur.Fence, j.Owner, j.Fence)
	if cur.State != jobs.Running {
		reason = fmt.Sprintf("%s %d is %s, not running under %s", t.noun, j.ID, cur.State, j.Owner)
	}
	return &fault.Error{Kind: fault.Conflict, Op: op, Resource: t.res(j.ID), Reason: reason}
}

// affected turns the result of a fenced write of j into nil when it
// matched j's row, the Conflict of a lost lease otherwise.
func (t jobTable) affected(ctx context.Context, tx *sql.Tx, op string, j jobs.Job, res sql.Result, err error) error {
	if err != nil {
		return classify(ctx, op, t.res(j.ID), err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return classify(ctx, op, t.res(j.ID), err)
	} else if n == 1 {
		return nil
	}
	return t.lost(ctx, tx, op, j)
}

// write stores j's Step, State, Error, NotBefore, LeaseUntil and UpdatedAt
// (when not zero) while j.Owner holds it under j.Fence.
func (t jobTable) write(ctx context.Context, tx *sql.Tx, op string, j jobs.Job) error {
	res, err := tx.ExecContext(ctx, `UPDATE `+t.table+` SET step = $1, state = $2, error = $3, not_before = $4, lease_until = $5, updated_at = COALESCE($6, updated_at)
		WHERE id = $7 AND owner = $8 AND fence = $9 AND state = 'running'`,
		j.Step, string(j.State), j.Error, nullTimeArg(j.NotBefore), nullTimeArg(j.LeaseUntil), nullTimeArg(j.UpdatedAt), j.ID, j.Owner, j.Fence)
	return t.affected(ctx, tx, op, j, res, err)
}

// tableJobs is the [jobs.Store] of one job table.
type tableJobs struct {
	s *Store
	t jobTable
}

// ClaimJob leases the oldest claimable job of the table, like
// [Store.ClaimJob].
func (p tableJobs) ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (jobs.Job, error) {
	op := "claim " + p.t.noun
	switch {
	case owner == "":
		return jobs.Job{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "owner", Reason: "lease owner is empty"}
	case lease <= 0:
		return jobs.Job{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "lease", Reason: "lease must be positive"}
	}
	var j jobs.Job
	err := p.s.inTx(ctx, op, func(tx *sql.Tx) error {
		// SKIP LOCKED: of two nodes claiming at once, one gets the job.
		var id int64
		err := tx.QueryRowContext(ctx, `UPDATE `+p.t.table+` SET state = 'running', owner = $2, lease_until = $3, attempts = attempts + 1, fence = fence + 1, updated_at = $1
			WHERE id = (SELECT id FROM `+p.t.table+`
				WHERE (state = 'pending' AND (not_before IS NULL OR not_before <= $1))
				   OR (state = 'running' AND (lease_until IS NULL OR lease_until <= $1))
				ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING id`, timeArg(now), owner, timeArg(now.Add(lease))).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return &fault.Error{Kind: fault.NotFound, Op: op, Resource: "claimable " + p.t.noun, Reason: "no " + p.t.noun + " is ready to run"}
		}
		if err != nil {
			return classify(ctx, op, p.t.noun+"s", err)
		}
		j, err = p.t.get(ctx, tx, op, id)
		return err
	})
	return j, err
}

// UpdateJob stores a running (or released, pending) job while j.Owner
// holds it under j.Fence; Conflict otherwise.
func (p tableJobs) UpdateJob(ctx context.Context, j jobs.Job) error {
	op := "update " + p.t.noun
	if err := p.t.check(op, j, jobs.Running, jobs.Pending); err != nil {
		return err
	}
	return p.s.inTx(ctx, op, func(tx *sql.Tx) error { return p.t.write(ctx, tx, op, j) })
}

// RenewJob moves running job j's lease to until while j.Owner holds it
// under j.Fence; Conflict otherwise.
func (p tableJobs) RenewJob(ctx context.Context, j jobs.Job, until time.Time) error {
	op := "renew " + p.t.noun
	if err := p.t.check(op, j, jobs.Running); err != nil {
		return err
	}
	return p.s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE `+p.t.table+` SET lease_until = $1 WHERE id = $2 AND owner = $3 AND fence = $4 AND state = 'running'`,
			timeArg(until), j.ID, j.Owner, j.Fence)
		return p.t.affected(ctx, tx, op, j, res, err)
	})
}
