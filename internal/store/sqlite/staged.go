package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
)

var _ cmk.StagedStore = (*Store)(nil)

const stagedColumns = `org_id, decrypt_only, decrypt_only_reason, decrypt_only_by, decrypt_only_since, revoked, revoked_reason, revoked_by, revoked_since,
	mode, due_at, reason, scheduled_by, scheduled_at, job_id, revision, updated_at`

func stagedRes(orgID string) string { return "staged revocation of org " + orgID }

func scanStaged(row interface{ Scan(...any) error }) (cmk.Staged, error) {
	var st cmk.Staged
	var mode string
	err := row.Scan(&st.OrgID, &st.DecryptOnly, &st.DecryptOnlyReason, &st.DecryptOnlyBy, scanTime(&st.DecryptOnlySince),
		&st.Revoked, &st.RevokedReason, &st.RevokedBy, scanTime(&st.RevokedSince),
		&mode, scanTime(&st.At), &st.Reason, &st.ScheduledBy, scanTime(&st.ScheduledAt), &st.JobID, &st.Revision, scanTime(&st.UpdatedAt))
	st.Mode = cmk.StagedMode(mode)
	return st, err
}

func getStaged(ctx context.Context, q querier, op, orgID string) (cmk.Staged, error) {
	st, err := scanStaged(q.QueryRowContext(ctx, `SELECT `+stagedColumns+` FROM cmk_staged WHERE org_id = ?`, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		if err := orgMissing(ctx, q, op, orgID); err != nil {
			return cmk.Staged{}, err
		}
		return cmk.Staged{OrgID: orgID}, nil
	}
	if err != nil {
		return cmk.Staged{}, classify(ctx, op, stagedRes(orgID), err)
	}
	return st, nil
}

// GetStaged implements [cmk.StagedStore].
func (s *Store) GetStaged(ctx context.Context, orgID string) (cmk.Staged, error) {
	return getStaged(ctx, s.r, "get staged revocation", orgID)
}

// ListStaged implements [cmk.StagedStore].
func (s *Store) ListStaged(ctx context.Context) ([]cmk.Staged, error) {
	const op = "list staged revocations"
	rows, err := s.r.QueryContext(ctx, `SELECT `+stagedColumns+` FROM cmk_staged WHERE decrypt_only <> 0 OR revoked <> 0 OR mode <> '' ORDER BY org_id`)
	if err != nil {
		return nil, classify(ctx, op, "staged revocations", err)
	}
	out, err := collect(rows, func(rows *sql.Rows) (cmk.Staged, error) { return scanStaged(rows) })
	return out, classify(ctx, op, "staged revocations", err)
}

func checkStagedWrite(op string, w cmk.StagedWrite) error {
	st := w.State
	switch {
	case st.OrgID == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "org_id", Reason: "staged state has no org"}
	case st.Mode != "" && st.Mode != cmk.StagedRevoke && st.Mode != cmk.StagedDecryptOnly:
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "mode", Reason: fmt.Sprintf("unknown staged mode %q", st.Mode)}
	case st.Mode != "" && st.At.IsZero():
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "at", Reason: "a scheduled revocation has a time"}
	case w.Schedule != nil && st.Mode == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "mode", Reason: "a staged job needs a scheduled mode"}
	case w.Schedule != nil && w.Schedule.OrgID != "" && w.Schedule.OrgID != st.OrgID:
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id", Reason: "the staged job belongs to another org"}
	}
	return nil
}

// putStaged is PutStaged in tx.
func (s *Store) putStaged(ctx context.Context, tx *sql.Tx, op string, w cmk.StagedWrite) (cmk.Staged, error) {
	st := w.State
	if err := orgMissing(ctx, tx, op, st.OrgID); err != nil {
		return cmk.Staged{}, err
	}
	ev, err := eventFor(op, st.OrgID, w.Event)
	if err != nil {
		return cmk.Staged{}, err
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = ev.Time
	}
	if w.Cancel != 0 {
		res, err := tx.ExecContext(ctx, `UPDATE cmk_staged_jobs SET state = 'failed', error = 'cancelled', updated_at = ? WHERE id = ? AND org_id = ? AND state IN ('pending', 'failed')`,
			timeArg(ev.Time), w.Cancel, st.OrgID)
		if err != nil {
			return cmk.Staged{}, classify(ctx, op, stagedJobTable.res(w.Cancel), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return cmk.Staged{}, classify(ctx, op, stagedJobTable.res(w.Cancel), err)
		} else if n != 1 {
			return cmk.Staged{}, &fault.Error{Kind: fault.Conflict, Op: op, Resource: stagedRes(st.OrgID), Reason: "the scheduled revocation is being applied; it can no longer be cancelled"}
		}
	}
	if w.Schedule != nil {
		j := *w.Schedule
		if j.CreatedAt.IsZero() {
			j.CreatedAt = ev.Time
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO cmk_staged_jobs (org_id, kind, target, step, state, attempts, error, owner, fence, not_before, created_at, updated_at)
			VALUES (?, ?, ?, '', 'pending', 0, '', '', 0, ?, ?, ?) RETURNING id`,
			st.OrgID, string(cmk.JobStaged), string(st.Mode), timeArg(st.At), timeArg(j.CreatedAt), timeArg(j.CreatedAt)).Scan(&st.JobID)
		if err != nil {
			if fe := fault.As(classify(ctx, op, "", err)); fe != nil && fe.Kind == fault.Conflict {
				return cmk.Staged{}, &fault.Error{Kind: fault.Conflict, Op: op, Resource: stagedRes(st.OrgID), Reason: "a revocation is already scheduled for this org: cancel it first", Err: err}
			}
			return cmk.Staged{}, classify(ctx, op, "staged jobs", err)
		}
	}
	args := []any{st.DecryptOnly, st.DecryptOnlyReason, st.DecryptOnlyBy, nullTimeArg(st.DecryptOnlySince), st.Revoked, st.RevokedReason, st.RevokedBy, nullTimeArg(st.RevokedSince),
		string(st.Mode), nullTimeArg(st.At), st.Reason, st.ScheduledBy, nullTimeArg(st.ScheduledAt), st.JobID, timeArg(st.UpdatedAt)}
	var res sql.Result
	if st.Revision == 0 {
		res, err = tx.ExecContext(ctx, `INSERT INTO cmk_staged (decrypt_only, decrypt_only_reason, decrypt_only_by, decrypt_only_since, revoked, revoked_reason, revoked_by, revoked_since,
			mode, due_at, reason, scheduled_by, scheduled_at, job_id, updated_at, org_id, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
			ON CONFLICT (org_id) DO NOTHING`, append(args, st.OrgID)...)
	} else {
		res, err = tx.ExecContext(ctx, `UPDATE cmk_staged SET decrypt_only = ?, decrypt_only_reason = ?, decrypt_only_by = ?, decrypt_only_since = ?, revoked = ?, revoked_reason = ?, revoked_by = ?, revoked_since = ?,
			mode = ?, due_at = ?, reason = ?, scheduled_by = ?, scheduled_at = ?, job_id = ?, updated_at = ?, revision = revision + 1
			WHERE org_id = ? AND revision = ?`, append(args, st.OrgID, st.Revision)...)
	}
	if err != nil {
		return cmk.Staged{}, classify(ctx, op, stagedRes(st.OrgID), err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return cmk.Staged{}, classify(ctx, op, stagedRes(st.OrgID), err)
	} else if n != 1 {
		return cmk.Staged{}, &fault.Error{Kind: fault.Conflict, Op: op, Resource: stagedRes(st.OrgID), Reason: "the org's staged revocation changed since it was read; try again", Err: cmk.ErrStale}
	}
	if w.Bump != "" {
		if _, err := bumpGeneration(ctx, tx, op, st.OrgID, w.Bump, ev.Time); err != nil {
			return cmk.Staged{}, err
		}
	}
	if _, err := s.appendAudit(ctx, tx, op, ev); err != nil {
		return cmk.Staged{}, err
	}
	return getStaged(ctx, tx, op, st.OrgID)
}

// PutStaged implements [cmk.StagedStore].
func (s *Store) PutStaged(ctx context.Context, w cmk.StagedWrite) (cmk.Staged, error) {
	const op = "store staged revocation"
	if err := checkStagedWrite(op, w); err != nil {
		return cmk.Staged{}, err
	}
	var out cmk.Staged
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		out, err = s.putStaged(ctx, tx, op, w)
		return err
	})
	return out, err
}

// GetStagedJob implements [cmk.StagedStore].
func (s *Store) GetStagedJob(ctx context.Context, id int64) (jobs.Job, error) {
	return stagedJobTable.get(ctx, s.r, "get staged job", id)
}

// StagedJobs implements [cmk.StagedStore].
func (s *Store) StagedJobs() jobs.Store { return tableJobs{s, stagedJobTable} }

// FinishStagedJob implements [cmk.StagedStore].
func (s *Store) FinishStagedJob(ctx context.Context, j jobs.Job, w *cmk.StagedWrite) error {
	const op = "finish staged job"
	if err := stagedJobTable.check(op, j, jobs.Done, jobs.Failed); err != nil {
		return err
	}
	if w != nil {
		if w.Schedule != nil || w.Cancel != 0 {
			return &fault.Error{Kind: fault.Invalid, Op: op, Field: "write", Reason: "a finishing staged job neither schedules nor cancels"}
		}
		if err := checkStagedWrite(op, *w); err != nil {
			return err
		}
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := stagedJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		if w == nil {
			return nil
		}
		_, err := s.putStaged(ctx, tx, op, *w)
		return err
	})
}
