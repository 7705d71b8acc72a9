package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/platformkey"
)

var _ platformkey.Store = (*Store)(nil)

// PlatformJobs returns the job store of platform jobs.
func (s *Store) PlatformJobs() jobs.Store { return tableJobs{s, platformJobTable} }

// StartPlatformJob creates j (pending) and appends ev to the platform
// chain. Conflict if a job of j.Kind is pending or running.
func (s *Store) StartPlatformJob(ctx context.Context, j jobs.Job, ev audit.Event) (jobs.Job, error) {
	const op = "start platform job"
	if j.Kind == "" {
		return jobs.Job{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.kind", Reason: "platform job has no kind"}
	}
	if j.OrgID == "" {
		j.OrgID = audit.Platform
	}
	ev, err := eventFor(op, audit.Platform, ev)
	if err != nil {
		return jobs.Job{}, err
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = time.Now()
	}
	var out jobs.Job
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO platform_jobs (org_id, kind, target, step, state, attempts, error, owner, fence, not_before, created_at, updated_at)
			VALUES (?, ?, ?, '', ?, 0, '', '', 0, ?, ?, ?) RETURNING id`,
			j.OrgID, string(j.Kind), j.Target, string(jobs.Pending), nullTimeArg(j.NotBefore), timeArg(j.CreatedAt), timeArg(j.CreatedAt)).Scan(&id)
		if err != nil {
			if fe := fault.As(classify(ctx, op, "", err)); fe != nil && fe.Kind == fault.Conflict {
				return &fault.Error{Kind: fault.Conflict, Op: op, Resource: "platform job " + string(j.Kind),
					Reason: "a platform " + string(j.Kind) + " job is already pending or running", Err: err}
			}
			return classify(ctx, op, "platform jobs", err)
		}
		if _, err := s.appendAudit(ctx, tx, op, ev); err != nil {
			return err
		}
		out, err = platformJobTable.get(ctx, tx, op, id)
		return err
	})
	return out, err
}

// LatestPlatformJob returns the newest platform job; NotFound if none.
func (s *Store) LatestPlatformJob(ctx context.Context) (jobs.Job, error) {
	const op = "get platform job"
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM platform_jobs ORDER BY id DESC LIMIT 1`))
	if err != nil {
		return jobs.Job{}, classify(ctx, op, "platform job", err)
	}
	return j, nil
}

// FinishPlatformJob stores j (done or failed) and appends ev to the
// platform chain, while j.Owner holds j under j.Fence.
func (s *Store) FinishPlatformJob(ctx context.Context, j jobs.Job, ev audit.Event) error {
	const op = "finish platform job"
	if err := platformJobTable.check(op, j, jobs.Done, jobs.Failed); err != nil {
		return err
	}
	ev, err := eventFor(op, audit.Platform, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := platformJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		_, err := s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// RootKeyPage returns every wrapping of the first limit orgs after after.
func (s *Store) RootKeyPage(ctx context.Context, after string, limit int) ([]keys.RootKeyWrapping, error) {
	const op = "list root keys"
	if limit < 1 || limit > 10000 {
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "limit must be between 1 and 10000"}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT r.org_id, r.id, r.provider, r.key_id, r.key_version, r.ciphertext, r.state, r.created_at
		FROM (SELECT id FROM orgs WHERE id > ? ORDER BY id LIMIT ?) o JOIN root_keys r ON r.org_id = o.id
		ORDER BY r.org_id, r.state = 'active' DESC, r.id`, after, limit)
	if err != nil {
		return nil, classify(ctx, op, "root keys", err)
	}
	ws, err := collect(rows, func(rows *sql.Rows) (keys.RootKeyWrapping, error) {
		var w keys.RootKeyWrapping
		k := &w.Wrapped.Key
		return w, rows.Scan(&w.OrgID, &w.ID, &k.Provider, &k.ID, &k.Version, &w.Wrapped.Ciphertext, &w.State, scanTime(&w.CreatedAt))
	})
	return ws, classify(ctx, op, "root keys", err)
}

// WrappingCounts counts orgs by master key version and wrapping state.
func (s *Store) WrappingCounts(ctx context.Context) ([]platformkey.WrappingCount, error) {
	const op = "count root keys"
	rows, err := s.r.QueryContext(ctx, `SELECT provider, key_id, key_version, state, count(*) FROM root_keys
		GROUP BY provider, key_id, key_version, state ORDER BY provider, key_id, key_version, state`)
	if err != nil {
		return nil, classify(ctx, op, "root keys", err)
	}
	cs, err := collect(rows, func(rows *sql.Rows) (platformkey.WrappingCount, error) {
		var c platformkey.WrappingCount
		return c, rows.Scan(&c.Key.Provider, &c.Key.ID, &c.Key.Version, &c.State, &c.Orgs)
	})
	return cs, classify(ctx, op, "root keys", err)
}

// AddPlatformCopies stores each of ws as its org's pending wrapping and
// j's Step, in one transaction fenced by j.
func (s *Store) AddPlatformCopies(ctx context.Context, j jobs.Job, ws []keys.RootKeyWrapping) ([]int64, error) {
	const op = "add platform copies"
	if err := platformJobTable.check(op, j, jobs.Running); err != nil {
		return nil, err
	}
	for _, w := range ws {
		switch {
		case w.OrgID == "":
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.org_id", Reason: "root key wrapping has no org"}
		case w.State != keys.WrappingPending:
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.state", Reason: fmt.Sprintf("a new root key wrapping must be pending, not %s", w.State)}
		case w.Wrapped.Key.Version == "":
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.key", Reason: "a root key wrapping records the version of its master key"}
		}
	}
	var ids []int64
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		ids = ids[:0]
		if err := platformJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		for _, w := range ws {
			if err := orgMissing(ctx, tx, op, w.OrgID); err != nil {
				return err
			}
			res := "pending root key of org " + w.OrgID
			k := w.Wrapped.Key
			// Only an older copy to the same key is replaced: another key's
			// pending wrapping belongs to a CMK job moving the org.
			if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = ? AND state = 'pending' AND provider = ? AND key_id = ?`, w.OrgID, k.Provider, k.ID); err != nil {
				return classify(ctx, op, res, err)
			}
			var other int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM root_keys WHERE org_id = ? AND state = 'pending'`, w.OrgID).Scan(&other); err != nil {
				return classify(ctx, op, res, err)
			}
			if other > 0 {
				ids = append(ids, 0)
				continue
			}
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO root_keys (org_id, provider, key_id, key_version, ciphertext, state, created_at)
				VALUES (?, ?, ?, ?, ?, 'pending', ?) RETURNING id`,
				w.OrgID, k.Provider, k.ID, k.Version, nonNil(w.Wrapped.Ciphertext), timeArg(w.CreatedAt)).Scan(&id); err != nil {
				return classify(ctx, op, res, err)
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// SwitchPlatformWrappings switches each org whose wrappings are still as
// the job left them, in one transaction fenced by j.
func (s *Store) SwitchPlatformWrappings(ctx context.Context, j jobs.Job, sw []platformkey.Switch) ([]error, error) {
	const op = "switch platform wrappings"
	if err := platformJobTable.check(op, j, jobs.Running); err != nil {
		return nil, err
	}
	evs := make([]audit.Event, len(sw))
	for i, x := range sw {
		switch {
		case x.Master.Version != "" || x.Master.Provider == "" || x.Master.ID == "":
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "master_key", Reason: "the org's master key is stored unversioned, and not empty"}
		}
		ev, err := eventFor(op, x.OrgID, x.Event)
		if err != nil {
			return nil, err
		}
		evs[i] = ev
	}
	var out []error
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		out = make([]error, len(sw))
		if err := platformJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		for i, x := range sw {
			var n int
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM root_keys WHERE org_id = ? AND ((id = ? AND state = 'active') OR (id = ? AND state = 'pending'))`,
				x.OrgID, x.From, x.To).Scan(&n)
			if err != nil {
				return classify(ctx, op, "root keys of org "+x.OrgID, err)
			}
			if n != 2 {
				if err := orgMissing(ctx, tx, op, x.OrgID); err != nil {
					out[i] = err
					continue
				}
				out[i] = &fault.Error{Kind: fault.Conflict, Op: op, Resource: "root key of org " + x.OrgID,
					Reason: "the org's root key wrappings changed since the platform re-wrap copied it"}
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = ? AND id <> ?`, x.OrgID, x.To); err != nil {
				return classify(ctx, op, "root keys of org "+x.OrgID, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE root_keys SET state = 'active' WHERE id = ?`, x.To); err != nil {
				return classify(ctx, op, "root keys of org "+x.OrgID, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE orgs SET master_provider = ?, master_key_id = ? WHERE id = ?`, x.Master.Provider, x.Master.ID, x.OrgID); err != nil {
				return classify(ctx, op, orgRes(x.OrgID), err)
			}
			if _, err := bumpGeneration(ctx, tx, op, x.OrgID, platformkey.BumpRewrapped, evs[i].Time); err != nil {
				return err
			}
			if _, err := s.appendAudit(ctx, tx, op, evs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
