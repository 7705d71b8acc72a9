package sqlite

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// usageRow normalizes a count for storage: minute truncated, outcome
// defaulting to ok, first and last defaulting to the minute.
func usageRow(c keys.UsageCount) keys.UsageCount {
	c.Minute = c.Minute.UTC().Truncate(time.Minute)
	if c.Outcome == "" {
		c.Outcome = keys.OutcomeOK
	}
	if c.First.IsZero() {
		c.First = c.Minute
	}
	if c.Last.IsZero() {
		c.Last = c.Minute
	}
	return c
}

const usageColumns = `key_name, op, principal, outcome, minute, count, first_at, last_at`

func scanUsage(orgID string) func(rows *sql.Rows) (keys.UsageCount, error) {
	return func(rows *sql.Rows) (keys.UsageCount, error) {
		u := keys.UsageCount{OrgID: orgID}
		return u, rows.Scan(&u.KeyName, &u.Op, &u.Principal, &u.Outcome, scanTime(&u.Minute), &u.Count, scanTime(&u.First), scanTime(&u.Last))
	}
}

// QueryUsage returns the org's usage records matching f, newest minute
// first (see [keys.UsageFilter]).
func (s *Store) QueryUsage(ctx context.Context, orgID string, f keys.UsageFilter) ([]keys.UsageCount, error) {
	const op = "query usage"
	if f.Limit < 0 {
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "limit must not be negative"}
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + usageColumns + ` FROM usage_records WHERE org_id = ?`)
	args := []any{orgID}
	cond := func(c string, a ...any) { q.WriteString(" AND " + c); args = append(args, a...) }
	if !f.Since.IsZero() {
		cond("minute >= ?", timeArg(f.Since.Truncate(time.Minute)))
	}
	if !f.Until.IsZero() {
		cond("minute < ?", timeArg(f.Until))
	}
	if f.Key != "" {
		cond("key_name = ?", f.Key)
	}
	if f.Caller != "" {
		cond("principal = ?", f.Caller)
	}
	if f.Op != "" {
		cond("op = ?", f.Op)
	}
	switch f.Outcome {
	case "":
	case keys.OutcomeDenied:
		cond("outcome <> ?", keys.OutcomeOK)
	default:
		cond("outcome = ?", f.Outcome)
	}
	if a := f.After; a != nil {
		cond("(minute, key_name, op, principal, outcome) < (?, ?, ?, ?, ?)", timeArg(a.Minute.Truncate(time.Minute)), a.KeyName, a.Op, a.Principal, a.Outcome)
	}
	q.WriteString(" ORDER BY minute DESC, key_name DESC, op DESC, principal DESC, outcome DESC")
	if f.Limit > 0 {
		q.WriteString(" LIMIT " + strconv.Itoa(f.Limit))
	}
	rows, err := s.r.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, classify(ctx, op, "usage of org "+orgID, err)
	}
	us, err := collect(rows, scanUsage(orgID))
	return us, classify(ctx, op, "usage of org "+orgID, err)
}

// DeleteUsageBefore deletes at most limit records older than t and, when
// it deleted any, appends ev (Details["records"] = the count) in the same
// transaction.
func (s *Store) DeleteUsageBefore(ctx context.Context, t time.Time, limit int, ev audit.Event) (int64, error) {
	const op = "delete old usage"
	if limit <= 0 {
		return 0, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "limit must be positive"}
	}
	var n int64
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM usage_records WHERE (org_id, minute, key_name, op, principal, outcome) IN
			(SELECT org_id, minute, key_name, op, principal, outcome FROM usage_records WHERE minute < ? LIMIT ?)`, timeArg(t), limit)
		if err != nil {
			return classify(ctx, op, "usage records", err)
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return classify(ctx, op, "usage records", err)
		}
		d := make(map[string]string, len(ev.Details)+1)
		for k, v := range ev.Details {
			d[k] = v
		}
		d["records"] = strconv.FormatInt(n, 10)
		ev.Details = d
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ClaimUsageCleanup claims the retention cleanup when it is due at now.
func (s *Store) ClaimUsageCleanup(ctx context.Context, owner string, now time.Time, every time.Duration) (bool, error) {
	const op = "claim usage cleanup"
	var claimed bool
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE usage_cleanup SET due_at = ?, owner = ? WHERE id = 1 AND (due_at IS NULL OR due_at <= ?)`,
			timeArg(now.Add(every)), owner, timeArg(now))
		if err != nil {
			return classify(ctx, op, "usage cleanup", err)
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return classify(ctx, op, "usage cleanup", err)
	})
	return claimed, err
}
