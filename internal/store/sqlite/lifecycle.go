package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	return orgLifecycle(ctx, s.r, "get org lifecycle", orgID)
}

func orgLifecycle(ctx context.Context, q querier, op, orgID string) (keys.Lifecycle, error) {
	l, err := scanLifecycle(q.QueryRowContext(ctx, `SELECT state, deletion_date, changed_by, changed_at, shredded_at FROM org_lifecycle WHERE org_id = ?`, orgID))
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
	rows, err := s.r.QueryContext(ctx, `SELECT name, state, deletion_date, changed_by, changed_at, shredded_at FROM key_lifecycle WHERE org_id = ? ORDER BY name`, orgID)
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
	l, err := scanLifecycle(q.QueryRowContext(ctx, `SELECT state, deletion_date, changed_by, changed_at, shredded_at FROM key_lifecycle WHERE org_id = ? AND name = ?`, orgID, name))
	if errors.Is(err, sql.ErrNoRows) {
		var one int
		err := q.QueryRowContext(ctx, `SELECT 1 FROM data_keys WHERE org_id = ? AND name = ?`, orgID, name).Scan(&one)
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
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM shred_jobs WHERE org_id = ? AND kind = ? AND target = ? AND state = 'running'`,
				orgID, string(kind), keyName).Scan(&running); err != nil {
				return classify(ctx, op, "shred jobs", err)
			}
			if running > 0 {
				return &fault.Error{Kind: fault.Conflict, Op: op, Resource: lifecycleRes(orgID, keyName),
					Reason: fmt.Sprintf("the shred of %s is running: it can no longer be cancelled", lifecycleRes(orgID, keyName))}
			}
			if _, err := tx.ExecContext(ctx, `UPDATE shred_jobs SET state = 'failed', error = 'cancelled', updated_at = ? WHERE org_id = ? AND kind = ? AND target = ? AND state = 'pending'`,
				timeArg(l.ChangedAt), orgID, string(kind), keyName); err != nil {
				return classify(ctx, op, "shred jobs", err)
			}
		}
		table, where, args := "org_lifecycle", "org_id = ?", []any{orgID}
		if keyName != "" {
			table, where, args = "key_lifecycle", "org_id = ? AND name = ?", []any{orgID, keyName}
		}
		if l.State == keys.LifecycleEnabled {
			_, err = tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE `+where, args...)
		} else if keyName == "" {
			_, err = tx.ExecContext(ctx, `INSERT INTO org_lifecycle (org_id, state, deletion_date, changed_by, changed_at, shredded_at) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (org_id) DO UPDATE SET state = excluded.state, deletion_date = excluded.deletion_date, changed_by = excluded.changed_by, changed_at = excluded.changed_at, shredded_at = excluded.shredded_at`,
				orgID, string(l.State), nullTimeArg(l.DeletionDate), l.ChangedBy, timeArg(l.ChangedAt), nullTimeArg(l.ShreddedAt))
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO key_lifecycle (org_id, name, state, deletion_date, changed_by, changed_at, shredded_at) VALUES (?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (org_id, name) DO UPDATE SET state = excluded.state, deletion_date = excluded.deletion_date, changed_by = excluded.changed_by, changed_at = excluded.changed_at, shredded_at = excluded.shredded_at`,
				orgID, keyName, string(l.State), nullTimeArg(l.DeletionDate), l.ChangedBy, timeArg(l.ChangedAt), nullTimeArg(l.ShreddedAt))
		}
		if err != nil {
			return classify(ctx, op, lifecycleRes(orgID, keyName), err)
		}
		if job != nil {
			_, err := tx.ExecContext(ctx, `INSERT INTO shred_jobs (org_id, kind, target, step, state, attempts, error, owner, fence, not_before, created_at, updated_at)
				VALUES (?, ?, ?, '', 'pending', 0, '', '', 0, ?, ?, ?)`,
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
		rows, err := s.r.QueryContext(ctx, `SELECT id FROM root_keys WHERE org_id = ? ORDER BY id`, orgID)
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
	rows, err := s.r.QueryContext(ctx, `SELECT name, version FROM data_key_versions WHERE org_id = ? AND (? = '' OR name = ?) ORDER BY name, version`, orgID, keyName, keyName)
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
				func() error { return exec(`DELETE FROM data_key_versions WHERE org_id = ?`, j.OrgID) },
				func() error { return exec(`DELETE FROM root_keys WHERE org_id = ?`, j.OrgID) },
				func() error { return exec(`DELETE FROM cmk_consent_requests WHERE org_id = ?`, j.OrgID) },
				// The org's webhooks go too: their signing secrets, and the
				// deliveries of events nobody may be sent on its behalf now.
				func() error {
					return exec(`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE org_id = ?)`, j.OrgID)
				},
				func() error { return exec(`DELETE FROM webhook_deliveries WHERE org_id = ?`, j.OrgID) },
				func() error { return exec(`DELETE FROM webhooks WHERE org_id = ?`, j.OrgID) },
				func() error { return exec(`DELETE FROM cmk_orgs WHERE org_id = ?`, j.OrgID) },
				func() error {
					return exec(`UPDATE cmk_jobs SET state = 'failed', error = 'the org was deleted', updated_at = ? WHERE org_id = ? AND state IN ('pending', 'running')`, timeArg(at), j.OrgID)
				},
				func() error {
					return exec(`UPDATE shred_jobs SET state = 'done', step = 'erased', updated_at = ? WHERE org_id = ? AND kind = ? AND state = 'pending'`, timeArg(at), j.OrgID, string(shred.JobKey))
				},
				func() error {
					return exec(`UPDATE org_lifecycle SET state = ?, shredded_at = ? WHERE org_id = ?`, string(keys.LifecycleDeleted), timeArg(at), j.OrgID)
				},
			}
		case shred.JobKey:
			steps = []func() error{
				func() error {
					return exec(`DELETE FROM data_key_versions WHERE org_id = ? AND name = ?`, j.OrgID, j.Target)
				},
				func() error {
					return exec(`UPDATE key_lifecycle SET state = ?, shredded_at = ? WHERE org_id = ? AND name = ?`, string(keys.LifecycleDeleted), timeArg(at), j.OrgID, j.Target)
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

// ScrubShredded zeroes what the shred erased in the database files: the
// database runs with secure_delete (deleted cells and freed pages are
// overwritten), and a truncating checkpoint copies the WAL into the
// database and empties it, so no earlier page image remains. A checkpoint
// that a reader kept from completing is Unavailable (retry).
func (s *Store) ScrubShredded(ctx context.Context) error {
	const op = "scrub shredded keys"
	if s.path == Memory {
		return nil
	}
	var busy, logFrames, checkpointed int
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return classify(ctx, op, "database", err)
	}
	if busy != 0 {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "database", Reason: "a reader kept the write-ahead log from being checkpointed; retry"}
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
	rows, err := s.r.QueryContext(ctx, `SELECT `+jobColumns+` FROM shred_jobs WHERE org_id = ? ORDER BY id DESC`, orgID)
	if err != nil {
		return nil, classify(ctx, op, orgRes(orgID), err)
	}
	js, err := collect(rows, func(rows *sql.Rows) (jobs.Job, error) { return scanJob(rows) })
	return js, classify(ctx, op, orgRes(orgID), err)
}
