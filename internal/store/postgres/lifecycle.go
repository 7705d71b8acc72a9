package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/shred"
)

var _ shred.Store = (*Store)(nil)

func lifecycleRes(orgID, keyName string) string {
	if keyName == "" {
		return orgRes(orgID)
	}
	return keyRes(orgID, keyName)
}

func scanLifecycle(row interface{ Scan(...any) error }) (keys.Lifecycle, error) {
	var l keys.Lifecycle
	err := row.Scan(&l.State, scanTime(&l.DeletionDate), &l.ChangedBy, scanTime(&l.ChangedAt), scanTime(&l.ShreddedAt))
	return l, err
}

// OrgLifecycle returns the org's lifecycle; the zero Lifecycle when it has
// none. NotFound if the org does not exist.
func (s *Store) OrgLifecycle(ctx context.Context, orgID string) (keys.Lifecycle, error) {
	return orgLifecycle(ctx, s.db, "get org lifecycle", orgID)
}

func orgLifecycle(ctx context.Context, q querier, op, orgID string) (keys.Lifecycle, error) {
	l, err := scanLifecycle(q.QueryRowContext(ctx, `SELECT state, deletion_date, changed_by, changed_at, shredded_at FROM org_lifecycle WHERE org_id = $1`, orgID))
	if errors.Is(err, sql.ErrNoRows) {
		return keys.Lifecycle{}, orgMissing(ctx, q, op, orgID)
	}
	if err != nil {
		return keys.Lifecycle{}, classify(ctx, op, orgRes(orgID), err)
	}
	return l, nil
}

// KeyLifecycles returns the lifecycle of each of the org's keys that has
// one, by name.
func (s *Store) KeyLifecycles(ctx context.Context, orgID string) (map[string]keys.Lifecycle, error) {
	const op = "list key lifecycles"
	rows, err := s.db.QueryContext(ctx, `SELECT name, state, deletion_date, changed_by, changed_at, shredded_at FROM key_lifecycle WHERE org_id = $1 ORDER BY name`, orgID)
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	type named struct {
		name string
		l    keys.Lifecycle
	}
	ls, err := collect(rows, func(rows *sql.Rows) (named, error) {
		var n named
		err := rows.Scan(&n.name, &n.l.State, scanTime(&n.l.DeletionDate), &n.l.ChangedBy, scanTime(&n.l.ChangedAt), scanTime(&n.l.ShreddedAt))
		return n, err
	})
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	out := make(map[string]keys.Lifecycle, len(ls))
	for _, n := range ls {
		out[n.name] = n.l
	}
	return out, nil
}

func keyLifecycle(ctx context.Context, q querier, op, orgID, name string) (keys.Lifecycle, error) {
	l, err := scanLifecycle(q.QueryRowContext(ctx, `SELECT state, deletion_date, changed_by, changed_at, shredded_at FROM key_lifecycle WHERE org_id = $1 AND name = $2`, orgID, name))
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		err := q.QueryRowContext(ctx, `SELECT 1 FROM data_keys WHERE org_id = $1 AND name = $2`, orgID, name).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return keys.Lifecycle{}, keyMissing(ctx, q, op, orgID, name)
		}
		return keys.Lifecycle{}, classify(ctx, op, keyRes(orgID, name), err)
	}
	if err != nil {
		return keys.Lifecycle{}, classify(ctx, op, keyRes(orgID, name), err)
	}
	return l, nil
}

// SetLifecycle changes the lifecycle of the org or one of its keys; see
// [shred.Store.SetLifecycle].
func (s *Store) SetLifecycle(ctx context.Context, orgID, keyName string, from []keys.LifecycleState, l keys.Lifecycle, job *jobs.Job, ev audit.Event) error {
	const op = "set lifecycle"
	ev, err := eventFor(op, orgID, ev)
	if err != nil {
		return err
	}
	if job != nil && (job.Kind == "" || l.State != keys.LifecyclePendingDeletion) {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job", Reason: "a shred job is started only with a pending deletion"}
	}
	kind := shred.JobOrg
	if keyName != "" {
		kind = shred.JobKey
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := lockOrg(ctx, tx, op, orgID); err != nil {
			return err
		}
		var cur keys.Lifecycle
		var err error
		if keyName == "" {
			cur, err = orgLifecycle(ctx, tx, op, orgID)
		} else {
			cur, err = keyLifecycle(ctx, tx, op, orgID, keyName)
		}
		if err != nil {
			return err
		}
		if !slices.Contains(from, cur.State) {
			return &fault.Error{Kind: fault.Conflict, Op: op, Resource: lifecycleRes(orgID, keyName),
				Reason: fmt.Sprintf("%s is %s: this change is not allowed in that state", lifecycleRes(orgID, keyName), cur.Text(keyName == ""))}
		}
		if l.State != keys.LifecyclePendingDeletion {
			var running int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM shred_jobs WHERE org_id = $1 AND kind = $2 AND target = $3 AND state = 'running'`,
				orgID, string(kind), keyName).Scan(&running); err != nil {
				return classify(ctx, op, "shred jobs", err)
			}
			if running > 0 {
				return &fault.Error{Kind: fault.Conflict, Op: op, Resource: lifecycleRes(orgID, keyName),
					Reason: fmt.Sprintf("the shred of %s is running: it can no longer be cancelled", lifecycleRes(orgID, keyName))}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE shred_jobs SET state = 'failed', error = 'cancelled', updated_at = $1 WHERE org_id = $2 AND kind = $3 AND target = $4 AND state = 'pending'`,
				timeArg(l.ChangedAt), orgID, string(kind), keyName); err != nil {
				return classify(ctx, op, "shred jobs", err)
			}
		}
		table, where, args := "org_lifecycle", "org_id = $1", []any{orgID}
		if keyName != "" {
			table, where, args = "key_lifecycle", "org_id = $1 AND name = $2", []any{orgID, keyName}
		}
		if l.State == keys.LifecycleEnabled {
			_, err = tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+where, args...)
		} else if keyName == "" {
			_, err = tx.ExecContext(ctx, `INSERT INTO org_lifecycle (org_id, state, deletion_date, changed_by, changed_at, shredded_at) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (org_id) DO UPDATE SET state = excluded.state, deletion_date = excluded.deletion_date, changed_by = excluded.changed_by, changed_at = excluded.changed_at, shredded_at = excluded.shredded_at`,
				orgID, string(l.State), nullTimeArg(l.DeletionDate), l.ChangedBy, timeArg(l.ChangedAt), nullTimeArg(l.ShreddedAt))
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO key_lifecycle (org_id, name, state, deletion_date, changed_by, changed_at, shredded_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (org_id, name) DO UPDATE SET state = excluded.state, deletion_date = excluded.deletion_date, changed_by = excluded.changed_by, changed_at = excluded.changed_at, shredded_at = excluded.shredded_at`,
				orgID, keyName, string(l.State), nullTimeArg(l.DeletionDate), l.ChangedBy, timeArg(l.ChangedAt), nullTimeArg(l.ShreddedAt))
		}
		if err != nil {
			return classify(ctx, op, lifecycleRes(orgID, keyName), err)
		}
		if job != nil {
			_, err := tx.ExecContext(ctx, `INSERT INTO shred_jobs (org_id, kind, target, step, state, attempts, error, owner, fence, not_before, created_at, updated_at)
				VALUES ($1, $2, $3, '', 'pending', 0, '', '', 0, $4, $5, $6)`,
				orgID, string(kind), keyName, nullTimeArg(job.NotBefore), timeArg(l.ChangedAt), timeArg(l.ChangedAt))
			if err != nil {
				return classify(ctx, op, "shred job of "+lifecycleRes(orgID, keyName), err)
			}
		}
		if _, err := bumpGeneration(ctx, tx, op, orgID, shred.BumpLifecycle, l.ChangedAt); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// ShredInventory returns what the shred of the org or key would erase.
func (s *Store) ShredInventory(ctx context.Context, orgID, keyName string) (shred.Inventory, error) {
	const op = "shred inventory"
	inv := shred.Inventory{Versions: map[string][]uint32{}}
	if _, err := s.GetOrg(ctx, orgID); err != nil {
		return inv, err
	}
	if keyName == "" {
		rows, err := s.db.QueryContext(ctx, `SELECT id FROM root_keys WHERE org_id = $1 ORDER BY id`, orgID)
		if err != nil {
			return inv, classify(ctx, op, orgRes(orgID), err)
		}
		if inv.RootKeys, err = collect(rows, func(rows *sql.Rows) (int64, error) {
			var id int64
			return id, rows.Scan(&id)
		}); err != nil {
			return inv, classify(ctx, op, orgRes(orgID), err)
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name, version FROM data_key_versions WHERE org_id = $1 AND ($2 = '' OR name = $3) ORDER BY name, version`, orgID, keyName, keyName)
	if err != nil {
		return inv, classify(ctx, op, orgRes(orgID), err)
	}
	type nv struct {
		name string
		v    uint32
	}
	vs, err := collect(rows, func(rows *sql.Rows) (nv, error) {
		var x nv
		return x, rows.Scan(&x.name, &x.v)
	})
	if err != nil {
		return inv, classify(ctx, op, orgRes(orgID), err)
	}
	for _, x := range vs {
		inv.Versions[x.name] = append(inv.Versions[x.name], x.v)
	}
	return inv, nil
}

// Shred erases the org's or key's wrapped keys; see [shred.Store.Shred].
func (s *Store) Shred(ctx context.Context, j jobs.Job, at time.Time, ev audit.Event) error {
	const op = "shred"
	if j.Owner == "" || j.State != jobs.Running {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job", Reason: "only a running, owned shred job erases"}
	}
	ev, err := eventFor(op, j.OrgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := lockOrg(ctx, tx, op, j.OrgID); err != nil {
			return err
		}
		if err := shredJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		exec := func(q string, args ...any) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return classify(ctx, op, lifecycleRes(j.OrgID, j.Target), err)
		}
		var steps []func() error
		switch j.Kind {
		case shred.JobOrg:
			steps = []func() error{
				func() error { return exec(`DELETE FROM data_key_versions WHERE org_id = $1`, j.OrgID) },
				func() error { return exec(`DELETE FROM root_keys WHERE org_id = $1`, j.OrgID) },
				func() error { return exec(`DELETE FROM cmk_consent_requests WHERE org_id = $1`, j.OrgID) },
				// The org's webhooks go too: their signing secrets, and the
				// deliveries of events nobody may be sent on its behalf now.
				func() error {
					return exec(`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE org_id = $1)`, j.OrgID)
				},
				func() error { return exec(`DELETE FROM webhook_deliveries WHERE org_id = $1`, j.OrgID) },
				func() error { return exec(`DELETE FROM webhooks WHERE org_id = $1`, j.OrgID) },
				func() error { return exec(`DELETE FROM cmk_orgs WHERE org_id = $1`, j.OrgID) },
				func() error {
					return exec(`UPDATE cmk_jobs SET state = 'failed', error = 'the org was deleted', updated_at = $1 WHERE org_id = $2 AND state IN ('pending', 'running')`, timeArg(at), j.OrgID)
				},
				func() error {
					return exec(`UPDATE shred_jobs SET state = 'done', step = 'erased', updated_at = $1 WHERE org_id = $2 AND kind = $3 AND state = 'pending'`, timeArg(at), j.OrgID, string(shred.JobKey))
				},
				func() error {
					return exec(`UPDATE org_lifecycle SET state = $1, shredded_at = $2 WHERE org_id = $3`, string(keys.LifecycleDeleted), timeArg(at), j.OrgID)
				},
			}
		case shred.JobKey:
			steps = []func() error{
				func() error {
					return exec(`DELETE FROM data_key_versions WHERE org_id = $1 AND name = $2`, j.OrgID, j.Target)
				},
				func() error {
					return exec(`UPDATE key_lifecycle SET state = $1, shredded_at = $2 WHERE org_id = $3 AND name = $4`, string(keys.LifecycleDeleted), timeArg(at), j.OrgID, j.Target)
				},
			}
		default:
			return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.kind", Reason: fmt.Sprintf("%q is not a shred job", j.Kind)}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return err
			}
		}
		if _, err := bumpGeneration(ctx, tx, op, j.OrgID, shred.BumpShredded, at); err != nil {
			return err
		}
		_, err := s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// Bounds of the scrub's VACUUM FULL, on its own connection: the rewrite
// holds an ACCESS EXCLUSIVE lock on the table, so every statement that
// reads the table queues behind it, including behind its wait for the lock.
// It gives up waiting for the lock after scrubLockTimeout (a long reader
// holds it: the job retries later rather than stall the data plane), and the
// rewrite itself may outlast the statement timeout of ordinary statements.
const (
	scrubLockTimeout      = 3 * time.Second
	scrubStatementTimeout = 15 * time.Minute
)

// ScrubShredded rewrites the tables that held the erased wrapped keys
// (VACUUM FULL of root_keys, data_key_versions and webhooks): PostgreSQL keeps the
// row versions of deleted rows in a table's files until a vacuum, and even
// a plain VACUUM only marks their space reusable; a full vacuum writes the
// live rows to new files (heap, TOAST table and indexes) and truncates the
// old ones when it commits. Copies in the write-ahead log, in WAL archives,
// in replicas and in backups cannot be reached from here: protecting them
// is the operator's (docs/crypto-shred.md). Unavailable when a table's lock
// was not granted within a few seconds (retry).
func (s *Store) ScrubShredded(ctx context.Context) error {
	return s.vacuumFull(ctx, "scrub shredded keys", "root_keys", "data_key_versions", "webhooks")
}

// vacuumFull rewrites tables with VACUUM FULL on a connection of its own,
// within scrubLockTimeout and scrubStatementTimeout. Unavailable when a
// table's lock was not granted in time, or when the role may not vacuum a
// table (VACUUM would skip it with a mere warning and leave every byte in
// place).
func (s *Store) vacuumFull(ctx context.Context, op string, tables ...string) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return classify(ctx, op, "database", err)
	}
	defer func() {
		// The session settings must not outlive the scrub on a pooled
		// connection.
		rctx := context.WithoutCancel(ctx)
		for _, q := range []string{`RESET lock_timeout`, `RESET statement_timeout`} {
			if _, rerr := conn.ExecContext(rctx, q); rerr != nil {
				// Not reset: the connection is closed instead of
				// going back to the pool; the scrub's outcome stands.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				break
			}
		}
		if cerr := conn.Close(); cerr != nil && err == nil {
			err = classify(ctx, op, "database", cerr)
		}
	}()
	for _, set := range []string{
		fmt.Sprintf(`SET lock_timeout = %d`, scrubLockTimeout.Milliseconds()),
		fmt.Sprintf(`SET statement_timeout = %d`, scrubStatementTimeout.Milliseconds()),
	} {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			return classify(ctx, op, "database", err)
		}
	}
	// VACUUM skips, with a mere warning, a table its role may not vacuum
	// (neither its owner's nor the database owner's member, nor superuser):
	// the scrub would succeed and leave every byte in place.
	rows, err := conn.QueryContext(ctx, `SELECT c.relname, current_user FROM pg_class c, pg_database d
		WHERE c.oid = ANY($1::text[]::regclass[]) AND d.datname = current_database()
		AND NOT pg_has_role(c.relowner, 'USAGE') AND NOT pg_has_role(d.datdba, 'USAGE') ORDER BY c.relname`, tables)
	if err != nil {
		return classify(ctx, op, "database", err)
	}
	var notOwned []string
	var role string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table, &role); err != nil {
			rows.Close()
			return classify(ctx, op, "database", err)
		}
		notOwned = append(notOwned, table)
	}
	if err := rows.Close(); err != nil {
		return classify(ctx, op, "database", err)
	}
	if err := rows.Err(); err != nil {
		return classify(ctx, op, "database", err)
	}
	if len(notOwned) > 0 {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "table " + strings.Join(notOwned, ", "),
			Reason: fmt.Sprintf("the database role %s does not own the table(s) %s, so VACUUM FULL would skip them and leave the erased rows in their files: run orgkms as the role that owns the tables (the one that ran the migrations); the scrub retries", role, strings.Join(notOwned, ", "))}
	}
	for _, table := range tables {
		if _, err := conn.ExecContext(ctx, `VACUUM (FULL) `+table); err != nil {
			return classify(ctx, op, "table "+table, err)
		}
	}
	return nil
}

// FinishShredJob stores j (done or failed) and appends ev, while j.Owner
// holds j under j.Fence.
func (s *Store) FinishShredJob(ctx context.Context, j jobs.Job, ev *audit.Event) error {
	const op = "finish shred job"
	if j.Owner == "" || (j.State != jobs.Done && j.State != jobs.Failed) {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.state", Reason: "a finished shred job is done or failed and owned"}
	}
	if ev != nil {
		e, err := eventFor(op, j.OrgID, *ev)
		if err != nil {
			return err
		}
		ev = &e
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := shredJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		_, err := s.appendAudit(ctx, tx, op, *ev)
		return err
	})
}

// ShredJobs returns the job store of shred jobs.
func (s *Store) ShredJobs() jobs.Store { return tableJobs{s, shredJobTable} }

// ShredJobsOf returns the org's shred jobs, newest first (status pages).
func (s *Store) ShredJobsOf(ctx context.Context, orgID string) ([]jobs.Job, error) {
	const op = "list shred jobs"
	rows, err := s.db.QueryContext(ctx, `SELECT `+jobColumns+` FROM shred_jobs WHERE org_id = $1 ORDER BY id DESC`, orgID)
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	js, err := collect(rows, func(rows *sql.Rows) (jobs.Job, error) { return scanJob(rows) })
	return js, classify(ctx, op, orgRes(orgID), err)
}
