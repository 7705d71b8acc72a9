package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// inTx runs fn in a write transaction (BEGIN IMMEDIATE on the writer
// connection) and commits it if fn returns nil. fn returns *fault.Error
// values; a failed rollback is attached to fn's error, never dropped.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	err := s.inTx1(ctx, op, fn)
	if s.guard != nil {
		s.guard.noteWrite(err)
	}
	return err
}

func (s *Store) inTx1(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return classify(ctx, op, "database", err)
	}
	if err := fn(tx); err != nil {
		err = classify(ctx, op, "", err)
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			if fe := fault.As(err); fe != nil {
				fe.Err = errors.Join(fe.Err, fmt.Errorf("rollback: %w", rerr))
			}
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return classify(ctx, op, "database", err)
	}
	return nil
}

// appendAudit chains ev to the last event of its org's chain and inserts
// it, in tx. It returns the event as stored.
func (s *Store) appendAudit(ctx context.Context, tx *sql.Tx, op string, ev audit.Event) (audit.Event, error) {
	var prev audit.Event
	err := tx.StmtContext(ctx, s.stmts.lastAudit).QueryRowContext(ctx, ev.OrgID).Scan(&prev.Seq, &prev.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return audit.Event{}, classify(ctx, op, "audit log of org "+ev.OrgID, err)
	}
	ev = audit.Chain(prev, ev)
	details, err := detailsArg(ev.Details)
	if err != nil {
		return audit.Event{}, &fault.Error{Kind: fault.Internal, Op: op, Resource: "audit log of org " + ev.OrgID, Err: err}
	}
	_, err = tx.StmtContext(ctx, s.stmts.insertAudit).ExecContext(ctx, ev.OrgID, ev.Seq, timeArg(ev.Time), ev.Actor, ev.Action, ev.Target, details, ev.PrevHash, ev.Hash)
	if err != nil {
		return audit.Event{}, classify(ctx, op, fmt.Sprintf("audit event %d of org %s", ev.Seq, ev.OrgID), err)
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

// judged reports whether err refuses one item of a batch (its own outcome)
// rather than failing the whole transaction.
func judged(err error) bool {
	switch fault.KindOf(err) {
	case fault.Conflict, fault.NotFound, fault.Invalid:
		return true
	}
	return false
}

// eachJudged runs item(i) for each i of order in tx, each judged on its
// own: an item refused with Conflict, NotFound or Invalid changes nothing,
// the others' writes stay. The common case (none refused) runs every item
// under one savepoint, two statements for the batch instead of two per
// item; when one is refused, that savepoint is rolled back and every item
// runs again from the start, each under its own savepoint. item returns
// the item's outcome; it must be safe to run again (it only sets what it
// also resets). Any other error fails the transaction.
func eachJudged(ctx context.Context, tx *sql.Tx, op string, order []int, item func(i int) error) error {
	exec := func(q string) error {
		_, err := tx.ExecContext(ctx, q)
		return classify(ctx, op, "database", err)
	}
	if err := exec(`SAVEPOINT batch`); err != nil {
		return err
	}
	refused := false
	for _, i := range order {
		if err := item(i); err != nil {
			if !judged(err) {
				return err
			}
			refused = true
			break
		}
	}
	if !refused {
		return exec(`RELEASE SAVEPOINT batch`)
	}
	if err := exec(`ROLLBACK TO SAVEPOINT batch`); err != nil {
		return err
	}
	if err := exec(`RELEASE SAVEPOINT batch`); err != nil {
		return err
	}
	for _, i := range order {
		if err := exec(`SAVEPOINT item`); err != nil {
			return err
		}
		if err := item(i); err != nil {
			if !judged(err) {
				return err
			}
			if err := exec(`ROLLBACK TO SAVEPOINT item`); err != nil {
				return err
			}
		}
		if err := exec(`RELEASE SAVEPOINT item`); err != nil {
			return err
		}
	}
	return nil
}
