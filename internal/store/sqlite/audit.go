package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// AppendAudit appends ev to the chain of ev.OrgID (any org ID, or
// [audit.Platform]) and returns it as stored, with Seq, PrevHash and Hash
// set and Time in UTC at microsecond precision. Invalid if ev.OrgID is
// empty.
func (s *Store) AppendAudit(ctx context.Context, ev audit.Event) (audit.Event, error) {
	const op = "append audit event"
	if ev.OrgID == "" {
		return audit.Event{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "org_id", Reason: "audit event has no org ID"}
	}
	var stored audit.Event
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		stored, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
	if err != nil {
		return audit.Event{}, err
	}
	return stored, nil
}

// AuditEvents returns the org's events with Seq > afterSeq, ascending, at
// most limit (0 = all; negative is Invalid). An org without events, or an
// unknown org, has none.
func (s *Store) AuditEvents(ctx context.Context, orgID string, afterSeq int64, limit int) ([]audit.Event, error) {
	const op = "read audit events"
	if limit < 0 {
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "limit must not be negative"}
	}
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, time, actor, action, target, details, prev_hash, hash
		FROM audit_events WHERE org_id = ? AND seq > ? ORDER BY seq LIMIT ?`, orgID, afterSeq, limit)
	if err != nil {
		return nil, classify(ctx, op, "audit log of org "+orgID, err)
	}
	evs, err := collect(rows, func(rows *sql.Rows) (audit.Event, error) {
		e := audit.Event{OrgID: orgID}
		var details string
		if err := rows.Scan(&e.Seq, scanTime(&e.Time), &e.Actor, &e.Action, &e.Target, &details, &e.PrevHash, &e.Hash); err != nil {
			return e, err
		}
		var err error
		e.Details, err = parseDetails(details)
		return e, err
	})
	return evs, classify(ctx, op, "audit log of org "+orgID, err)
}

// AuditOrgs returns the IDs of the chains that have events, sorted,
// [audit.Platform] among them once it has one.
func (s *Store) AuditOrgs(ctx context.Context) ([]string, error) {
	const op = "list audit logs"
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT org_id FROM audit_events ORDER BY org_id`)
	if err != nil {
		return nil, classify(ctx, op, "audit logs", err)
	}
	ids, err := collect(rows, func(rows *sql.Rows) (string, error) {
		var id string
		return id, rows.Scan(&id)
	})
	return ids, classify(ctx, op, "audit logs", err)
}

// AddUsage adds counts to the usage counters in one transaction: a counter
// that exists is incremented, a new one is created. Minutes are truncated to
// the minute (UTC), so counts within one minute add up.
func (s *Store) AddUsage(ctx context.Context, counts []keys.UsageCount) error {
	const op = "add usage"
	if len(counts) == 0 {
		return nil
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		stmt := tx.StmtContext(ctx, s.stmts.addUsage) // closed with tx
		for _, c := range counts {
			c = usageRow(c)
			if _, err := stmt.ExecContext(ctx, c.OrgID, timeArg(c.Minute), c.KeyName, c.Op, c.Principal, c.Outcome, c.Count, timeArg(c.First), timeArg(c.Last)); err != nil {
				return classify(ctx, op, "usage counters of org "+c.OrgID, err)
			}
		}
		return nil
	})
}

// Usage returns the org's counters with Minute >= since, ordered by minute,
// key, op and principal.
func (s *Store) Usage(ctx context.Context, orgID string, since time.Time) ([]keys.UsageCount, error) {
	const op = "read usage"
	rows, err := s.r.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_records
		WHERE org_id = ? AND minute >= ? ORDER BY minute, key_name, op, principal, outcome`, orgID, timeArg(since))
	if err != nil {
		return nil, classify(ctx, op, "usage of org "+orgID, err)
	}
	us, err := collect(rows, scanUsage(orgID))
	return us, classify(ctx, op, "usage of org "+orgID, err)
}
