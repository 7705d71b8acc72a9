package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// txAttempts bounds how often inTx runs a transaction that the server
// aborted for a serialization failure or a deadlock.
const txAttempts = 5

// inTx runs fn in a read-committed transaction and commits it if fn returns
// nil. A transaction the server aborted to break a deadlock or keep
// serializability is run again from the start, up to txAttempts times, then
// reported as Unavailable: fn must be safe to run again (it only sets
// variables it also resets). fn returns *fault.Error values; a failed
// rollback is attached to fn's error, never dropped.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		var raw error
		raw, err = s.inTx1(ctx, op, fn)
		if err == nil || !retryable(raw) || attempt == txAttempts {
			return err
		}
		t := time.NewTimer(time.Duration(attempt) * 5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// inTx1 runs fn once and returns the classified error and the raw one the
// database reported (for the retry decision).
func (s *Store) inTx1(ctx context.Context, op string, fn func(tx *sql.Tx) error) (raw, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err, classify(ctx, op, "database", err)
	}
	if err := fn(tx); err != nil {
		cerr := classify(ctx, op, "", err)
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			if fe := fault.As(cerr); fe != nil {
				fe.Err = errors.Join(fe.Err, fmt.Errorf("rollback: %w", rerr))
			}
		}
		return err, cerr
	}
	if err := tx.Commit(); err != nil {
		return err, classify(ctx, op, "database", err)
	}
	return nil, nil
}

// lockOrg locks the org's row until the end of tx, so that changes to its
// root key wrappings and jobs take turns, as they do on SQLite's single
// writer. It returns NotFound if the org does not exist. The lock (FOR NO
// KEY UPDATE) does not block foreign-key checks of other rows.
func lockOrg(ctx context.Context, tx *sql.Tx, op, orgID string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM orgs WHERE id = $1 FOR NO KEY UPDATE`, orgID).Scan(&one)
	return classify(ctx, op, orgRes(orgID), err)
}

// appendAudit chains ev to the last event of its org's chain and inserts
// it, in tx. It returns the event as stored.
//
// The chain's head row is locked first (created at seq 0 for a chain's
// first event): a second writer of the same chain, in this process or
// another, waits for the first to commit and then reads the head it left,
// so the chain never forks or gaps. ON CONFLICT DO UPDATE reads the latest
// committed head even in read committed.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, op string, ev audit.Event) (audit.Event, error) {
	res := "audit log of org " + ev.OrgID
	var prev audit.Event
	err := tx.QueryRowContext(ctx, `INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, '')
		ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq RETURNING seq, hash`, ev.OrgID).Scan(&prev.Seq, &prev.Hash)
	if err != nil {
		return audit.Event{}, classify(ctx, op, res, err)
	}
	ev = audit.Chain(prev, ev)
	details, err := detailsArg(ev.Details)
	if err != nil {
		return audit.Event{}, &fault.Error{Kind: fault.Internal, Op: op, Resource: res, Err: err}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_events (org_id, seq, time, actor, action, target, details, prev_hash, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		ev.OrgID, ev.Seq, timeArg(ev.Time), ev.Actor, ev.Action, ev.Target, details, ev.PrevHash, ev.Hash)
	if err != nil {
		return audit.Event{}, classify(ctx, op, fmt.Sprintf("audit event %d of org %s", ev.Seq, ev.OrgID), err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_heads SET seq = $2, hash = $3 WHERE org_id = $1`, ev.OrgID, ev.Seq, ev.Hash); err != nil {
		return audit.Event{}, classify(ctx, op, res, err)
	}
	// The notification the event reports, if any, in the same transaction
	// (package events).
	if err := s.enqueueNotification(ctx, tx, op, ev); err != nil {
		return audit.Event{}, err
	}
	return ev, nil
}

// eventFor returns ev for a change to orgID: an empty ev.OrgID is set to
// orgID, another org's ID is Invalid (the event belongs to the org's chain).
func eventFor(op, orgID string, ev audit.Event) (audit.Event, error) {
	switch ev.OrgID {
	case orgID:
	case "":
		ev.OrgID = orgID
	default:
		return audit.Event{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "event.org_id",
			Reason: fmt.Sprintf("audit event of org %s cannot record a change to org %s", ev.OrgID, orgID)}
	}
	return ev, nil
}
