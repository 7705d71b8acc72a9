package postgres

import (
	"context"
	"database/sql"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// Set-based switches (see SwitchWrappings): a batch of jobs' switches in
// a dozen statements instead of about fifteen round trips per org. Each
// statement takes the batch's rows as one JSON array, in org ID order.
const (
	// qFinishHeld locks the jobs held as the switches say (owner, fence,
	// running, of their org), in org ID order as the orgs are locked after
	// them, and stores them as updateJob does.
	qFinishHeld = `WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, org_id text, owner text, fence bigint, step text,
			state text, error text, not_before timestamptz, lease_until timestamptz, updated_at timestamptz)),
		held AS (SELECT j.id FROM cmk_jobs j JOIN u ON j.id = u.id AND j.org_id = u.org_id AND j.owner = u.owner AND j.fence = u.fence
			WHERE j.state = 'running' AND j.id = ANY(` + idsOfRows + `) ORDER BY j.org_id FOR UPDATE OF j)
		UPDATE cmk_jobs j SET step = u.step, state = u.state, error = u.error, not_before = u.not_before, lease_until = u.lease_until,
			updated_at = COALESCE(u.updated_at, j.updated_at)
		FROM u WHERE j.id = u.id AND j.id IN (SELECT id FROM held) AND j.id = ANY(` + idsOfRows + `) RETURNING j.id`
	qPendingOf = `SELECT r.org_id FROM root_keys r JOIN jsonb_to_recordset($1::jsonb) AS u(id bigint, org_id text)
		ON r.id = u.id AND r.org_id = u.org_id WHERE r.state = 'pending' AND r.id = ANY(` + idsOfRows + `)`
	qSwitchDropOthers = `DELETE FROM root_keys r USING jsonb_to_recordset($1::jsonb) AS u(id bigint, org_id text)
		WHERE r.org_id = u.org_id AND r.id <> u.id AND r.org_id = ANY(` + orgsOfRows + `)`
	qSwitchActivate = `UPDATE root_keys r SET state = 'active' FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, org_id text)
		WHERE r.id = u.id AND r.org_id = u.org_id AND r.id = ANY(` + idsOfRows + `)`
	// qProbeMoved makes an org moved to another key (not a new version of
	// the same key) due for a probe at once; it runs before qSetMasters (platformkey.go).
	qProbeMoved = `UPDATE cmk_orgs c SET probe_due_at = NULL
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, provider text, key_id text), orgs o
		WHERE c.org_id = u.org_id AND o.id = u.org_id AND (o.master_provider <> u.provider OR o.master_key_id <> u.key_id)
			AND c.org_id = ANY(` + orgsOfRows + `) AND o.id = ANY(` + orgsOfRows + `)`
)

// switchSet stores the switches of steps at indexes set (checked, one per
// org, in org ID order, each with its done job and a record at a revision
// above 0) whose jobs are held as they say, set-based, in tx, under a
// savepoint. A switch whose job is not held is left to the caller,
// untouched. When anything else would refuse one of them (an org gone, a
// wrapping not pending, a stale record), it rolls back and leaves every
// switch to the caller, who judges each alone. It sets out for the
// switches it stored and reports their indexes.
func (s *Store) switchSet(ctx context.Context, tx *sql.Tx, op string, steps []cmk.SwitchStep, set []int, out []error) (map[int]bool, error) {
	done := map[int]bool{}
	if len(set) < 2 {
		return done, nil // one switch: the single path is as short
	}
	exec := func(q string, rows []map[string]any) error {
		arg, err := jsonArg(rows)
		if err != nil {
			return &fault.Error{Kind: fault.Internal, Op: op, Resource: "root keys", Err: err}
		}
		_, err = tx.ExecContext(ctx, q, arg)
		return classify(ctx, op, "root keys", err)
	}
	query := func(q string, arg any, scan func(*sql.Rows) error) error {
		rows, err := tx.QueryContext(ctx, q, arg)
		if err != nil {
			return classify(ctx, op, "root keys", err)
		}
		_, err = collect(rows, func(rows *sql.Rows) (struct{}, error) { return struct{}{}, scan(rows) })
		return classify(ctx, op, "root keys", err)
	}
	jsonQuery := func(q string, rows []map[string]any, scan func(*sql.Rows) error) error {
		arg, err := jsonArg(rows)
		if err != nil {
			return &fault.Error{Kind: fault.Internal, Op: op, Resource: "root keys", Err: err}
		}
		return query(q, arg, scan)
	}
	if _, err := tx.ExecContext(ctx, `SAVEPOINT switch_set`); err != nil {
		return nil, classify(ctx, op, "database", err)
	}
	rollback := func() (map[int]bool, error) {
		if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT switch_set`); err != nil {
			return nil, classify(ctx, op, "database", err)
		}
		_, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT switch_set`)
		return map[int]bool{}, classify(ctx, op, "database", err)
	}
	jobRows := make([]map[string]any, len(set))
	for k, i := range set {
		j := *steps[i].Done
		jobRows[k] = map[string]any{"id": j.ID, "org_id": steps[i].OrgID, "owner": j.Owner, "fence": j.Fence, "step": j.Step, "state": string(j.State),
			"error": j.Error, "not_before": jsonTime(j.NotBefore), "lease_until": jsonTime(j.LeaseUntil), "updated_at": jsonTime(j.UpdatedAt)}
	}
	held := map[int64]bool{}
	if err := jsonQuery(qFinishHeld, jobRows, func(rows *sql.Rows) error {
		var id int64
		err := rows.Scan(&id)
		held[id] = true
		return err
	}); err != nil {
		return nil, err
	}
	var mine []int
	var orgs []string
	var pairs, masters, recs, bumps []map[string]any
	for _, i := range set {
		st := steps[i]
		if !held[st.Done.ID] {
			continue
		}
		mine = append(mine, i)
		orgs = append(orgs, st.OrgID)
		pairs = append(pairs, map[string]any{"id": st.ID, "org_id": st.OrgID})
		masters = append(masters, map[string]any{"org_id": st.OrgID, "provider": st.Master.Provider, "key_id": st.Master.ID})
		recs = append(recs, cmkRow(st.Record))
		if st.Record.Bump != "" {
			bumps = append(bumps, map[string]any{"org_id": st.OrgID, "reason": st.Record.Bump, "changed_at": jsonTime(changedAt(st.Record))})
		}
	}
	if len(mine) == 0 {
		return rollback()
	}
	count := func(n *int) func(*sql.Rows) error {
		return func(rows *sql.Rows) error {
			var v string
			*n++
			return rows.Scan(&v)
		}
	}
	var locked, pending, stored int
	if err := query(qLockOrgs, orgs, count(&locked)); err != nil {
		return nil, err
	}
	if locked != len(mine) {
		return rollback() // an org is gone
	}
	if err := jsonQuery(qPendingOf, pairs, count(&pending)); err != nil {
		return nil, err
	}
	if pending != len(mine) {
		return rollback() // a wrapping is not pending
	}
	if err := jsonQuery(qPutCMKs, recs, count(&stored)); err != nil {
		return nil, err
	}
	if stored != len(mine) {
		return rollback() // a record changed meanwhile
	}
	for _, q := range []struct {
		sql  string
		rows []map[string]any
	}{{qSwitchDropOthers, pairs}, {qSwitchActivate, pairs}, {qProbeMoved, masters}, {qSetMasters, masters}, {qBumpGenerations, bumps}} {
		if len(q.rows) == 0 {
			continue
		}
		if err := exec(q.sql, q.rows); err != nil {
			return nil, err
		}
	}
	// The audit events, chained to each org's locked head.
	prev := make(map[string]audit.Event, len(orgs))
	if err := query(qLockHeads, orgs, func(rows *sql.Rows) error {
		var e audit.Event
		err := rows.Scan(&e.OrgID, &e.Seq, &e.Hash)
		prev[e.OrgID] = e
		return err
	}); err != nil {
		return nil, err
	}
	var evs, moved []map[string]any
	for _, i := range mine {
		st := steps[i]
		p := prev[st.OrgID]
		ev := audit.Chain(audit.Event{Seq: p.Seq, Hash: p.Hash}, st.Event)
		details, err := detailsArg(ev.Details)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "audit log of org " + ev.OrgID, Err: err}
		}
		evs = append(evs, map[string]any{"org_id": ev.OrgID, "seq": ev.Seq, "time": jsonTime(ev.Time), "actor": ev.Actor, "action": ev.Action,
			"target": ev.Target, "details": details, "prev_hash": ev.PrevHash, "hash": ev.Hash})
		moved = append(moved, map[string]any{"org_id": ev.OrgID, "seq": ev.Seq, "hash": ev.Hash})
	}
	if err := exec(qInsertEvents, evs); err != nil {
		return nil, err
	}
	if err := exec(qMoveHeads, moved); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT switch_set`); err != nil {
		return nil, classify(ctx, op, "database", err)
	}
	for _, i := range mine {
		out[i] = nil
		done[i] = true
	}
	return done, nil
}

// changedAt is when a bump of record r happened, as bumpFor has it.
func changedAt(r cmk.Record) time.Time {
	if r.UpdatedAt.IsZero() {
		return time.Now()
	}
	return r.UpdatedAt
}
