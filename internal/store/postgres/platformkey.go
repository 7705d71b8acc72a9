package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
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
			VALUES ($1, $2, $3, '', $4, 0, '', '', 0, $5, $6, $7) RETURNING id`,
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
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM platform_jobs ORDER BY id DESC LIMIT 1`))
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
	rows, err := s.db.QueryContext(ctx, `SELECT r.org_id, r.id, r.provider, r.key_id, r.key_version, r.ciphertext, r.state, r.created_at
		FROM (SELECT id FROM orgs WHERE id > $1 ORDER BY id LIMIT $2) o JOIN root_keys r ON r.org_id = o.id
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
	rows, err := s.db.QueryContext(ctx, `SELECT provider, key_id, key_version, state, count(*) FROM root_keys
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

// Set-based platform copies and switches: a page of orgs in a handful of
// statements (rows as one JSON array, jsonb_to_recordset) instead of about
// ten round trips per org, as startjobs.go does for StartJobs.
const (
	qDropSameKeyCopies = `DELETE FROM root_keys r USING jsonb_to_recordset($1::jsonb) AS u(org_id text, provider text, key_id text)
		WHERE r.org_id = u.org_id AND r.state = 'pending' AND r.provider = u.provider AND r.key_id = u.key_id AND r.org_id = ANY(` + orgsOfRows + `)`
	qOtherPending = `SELECT org_id FROM root_keys WHERE org_id = ANY($1) AND state = 'pending'`
	qInsertCopies = `INSERT INTO root_keys (org_id, provider, key_id, key_version, ciphertext, state, created_at)
		SELECT org_id, provider, key_id, key_version, decode(ciphertext, 'base64'), 'pending', created_at
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, provider text, key_id text, key_version text, ciphertext text, created_at timestamptz)
		RETURNING org_id, id`
	qSwitchable = `SELECT r.org_id FROM root_keys r JOIN jsonb_to_recordset($1::jsonb) AS u(org_id text, f bigint, t bigint) ON r.org_id = u.org_id
		WHERE ((r.id = u.f AND r.state = 'active') OR (r.id = u.t AND r.state = 'pending')) AND r.org_id = ANY(` + orgsOfRows + `)
		GROUP BY r.org_id HAVING count(*) = 2`
	qDropOthers = `DELETE FROM root_keys r USING jsonb_to_recordset($1::jsonb) AS u(org_id text, t bigint)
		WHERE r.org_id = u.org_id AND r.id <> u.t AND r.org_id = ANY(` + orgsOfRows + `)`
	qActivate   = `UPDATE root_keys SET state = 'active' WHERE id = ANY($1)`
	qSetMasters = `UPDATE orgs o SET master_provider = u.provider, master_key_id = u.key_id
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, provider text, key_id text) WHERE o.id = u.org_id AND o.id = ANY(` + orgsOfRows + `)`
	qBumpGenerations = `INSERT INTO org_generations (org_id, generation, reason, changed_at)
		SELECT org_id, 1, reason, changed_at FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, reason text, changed_at timestamptz) ORDER BY org_id
		ON CONFLICT (org_id) DO UPDATE SET generation = org_generations.generation + 1, reason = excluded.reason, changed_at = excluded.changed_at`
)

// pageQuery runs q in tx and collects the first column of its rows.
func pageQuery(ctx context.Context, tx *sql.Tx, op, res, q string, args ...any) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	got, err := collect(rows, func(rows *sql.Rows) (string, error) {
		var v string
		return v, rows.Scan(&v)
	})
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	m := make(map[string]bool, len(got))
	for _, v := range got {
		m[v] = true
	}
	return m, nil
}

func pageExec(ctx context.Context, tx *sql.Tx, op, res, q string, rows []map[string]any) error {
	arg, err := jsonArg(rows)
	if err != nil {
		return &fault.Error{Kind: fault.Internal, Op: op, Resource: res, Err: err}
	}
	if _, err := tx.ExecContext(ctx, q, arg); err != nil {
		return classify(ctx, op, res, err)
	}
	return nil
}

// orgsOnce returns the org IDs of a page, sorted, Invalid when one repeats.
func orgsOnce(op string, ids []string) ([]string, error) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "org_id", Reason: "org " + sorted[i] + " appears twice in one page"}
		}
	}
	return sorted, nil
}

// AddPlatformCopies stores each of ws as its org's pending wrapping and
// j's Step, in one transaction fenced by j.
func (s *Store) AddPlatformCopies(ctx context.Context, j jobs.Job, ws []keys.RootKeyWrapping) ([]int64, error) {
	const op = "add platform copies"
	if err := platformJobTable.check(op, j, jobs.Running); err != nil {
		return nil, err
	}
	ids := make([]string, len(ws))
	for i, w := range ws {
		switch {
		case w.OrgID == "":
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.org_id", Reason: "root key wrapping has no org"}
		case w.State != keys.WrappingPending:
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.state", Reason: fmt.Sprintf("a new root key wrapping must be pending, not %s", w.State)}
		case w.Wrapped.Key.Version == "":
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.key", Reason: "a root key wrapping records the version of its master key"}
		}
		ids[i] = w.OrgID
	}
	sorted, err := orgsOnce(op, ids)
	if err != nil {
		return nil, err
	}
	var out []int64
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		out = make([]int64, len(ws))
		if err := platformJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		exists, err := pageQuery(ctx, tx, op, "orgs", qLockOrgs, sorted)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !exists[id] {
				return &fault.Error{Kind: fault.NotFound, Op: op, Resource: orgRes(id)}
			}
		}
		if len(ws) == 0 {
			return nil
		}
		drops := make([]map[string]any, len(ws))
		for i, w := range ws {
			drops[i] = map[string]any{"org_id": w.OrgID, "provider": w.Wrapped.Key.Provider, "key_id": w.Wrapped.Key.ID}
		}
		if err := pageExec(ctx, tx, op, "pending root keys", qDropSameKeyCopies, drops); err != nil {
			return err
		}
		// Another key's pending wrapping belongs to a CMK job moving the org.
		other, err := pageQuery(ctx, tx, op, "pending root keys", qOtherPending, sorted)
		if err != nil {
			return err
		}
		var ins []map[string]any
		for _, w := range ws {
			if other[w.OrgID] {
				continue
			}
			k := w.Wrapped.Key
			ins = append(ins, map[string]any{"org_id": w.OrgID, "provider": k.Provider, "key_id": k.ID, "key_version": k.Version,
				"ciphertext": nonNil(w.Wrapped.Ciphertext), "created_at": jsonTime(w.CreatedAt)})
		}
		if len(ins) == 0 {
			return nil
		}
		arg, err := jsonArg(ins)
		if err != nil {
			return &fault.Error{Kind: fault.Internal, Op: op, Resource: "pending root keys", Err: err}
		}
		rows, err := tx.QueryContext(ctx, qInsertCopies, arg)
		if err != nil {
			return classify(ctx, op, "pending root keys", err)
		}
		type made struct {
			org string
			id  int64
		}
		got, err := collect(rows, func(rows *sql.Rows) (made, error) {
			var m made
			return m, rows.Scan(&m.org, &m.id)
		})
		if err != nil {
			return classify(ctx, op, "pending root keys", err)
		}
		byOrg := make(map[string]int64, len(got))
		for _, m := range got {
			byOrg[m.org] = m.id
		}
		for i, w := range ws {
			out[i] = byOrg[w.OrgID]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SwitchPlatformWrappings switches each org whose wrappings are still as
// the job left them, in one transaction fenced by j.
func (s *Store) SwitchPlatformWrappings(ctx context.Context, j jobs.Job, sw []platformkey.Switch) ([]error, error) {
	const op = "switch platform wrappings"
	if err := platformJobTable.check(op, j, jobs.Running); err != nil {
		return nil, err
	}
	evs := make([]audit.Event, len(sw))
	ids := make([]string, len(sw))
	for i, x := range sw {
		if x.Master.Version != "" || x.Master.Provider == "" || x.Master.ID == "" {
			return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "master_key", Reason: "the org's master key is stored unversioned, and not empty"}
		}
		ev, err := eventFor(op, x.OrgID, x.Event)
		if err != nil {
			return nil, err
		}
		evs[i], ids[i] = ev, x.OrgID
	}
	sorted, err := orgsOnce(op, ids)
	if err != nil {
		return nil, err
	}
	var out []error
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		out = make([]error, len(sw))
		if err := platformJobTable.write(ctx, tx, op, j); err != nil {
			return err
		}
		if len(sw) == 0 {
			return nil
		}
		exists, err := pageQuery(ctx, tx, op, "orgs", qLockOrgs, sorted)
		if err != nil {
			return err
		}
		pairs := make([]map[string]any, len(sw))
		for i, x := range sw {
			pairs[i] = map[string]any{"org_id": x.OrgID, "f": x.From, "t": x.To}
		}
		arg, err := jsonArg(pairs)
		if err != nil {
			return &fault.Error{Kind: fault.Internal, Op: op, Resource: "root keys", Err: err}
		}
		ok, err := pageQuery(ctx, tx, op, "root keys", qSwitchable, arg)
		if err != nil {
			return err
		}
		var drops, masters, gens []map[string]any
		var tos []int64
		var heads []string
		var chain []audit.Event
		for i, x := range sw {
			switch {
			case !exists[x.OrgID]:
				out[i] = &fault.Error{Kind: fault.NotFound, Op: op, Resource: orgRes(x.OrgID)}
				continue
			case !ok[x.OrgID]:
				out[i] = &fault.Error{Kind: fault.Conflict, Op: op, Resource: "root key of org " + x.OrgID,
					Reason: "the org's root key wrappings changed since the platform re-wrap copied it"}
				continue
			}
			drops = append(drops, map[string]any{"org_id": x.OrgID, "t": x.To})
			masters = append(masters, map[string]any{"org_id": x.OrgID, "provider": x.Master.Provider, "key_id": x.Master.ID})
			at := evs[i].Time
			if at.IsZero() {
				at = time.Now()
			}
			gens = append(gens, map[string]any{"org_id": x.OrgID, "reason": platformkey.BumpRewrapped, "changed_at": jsonTime(at)})
			tos = append(tos, x.To)
			heads = append(heads, x.OrgID)
			chain = append(chain, evs[i])
		}
		if len(tos) == 0 {
			return nil
		}
		if err := pageExec(ctx, tx, op, "root keys", qDropOthers, drops); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, qActivate, tos); err != nil {
			return classify(ctx, op, "root keys", err)
		}
		if err := pageExec(ctx, tx, op, "orgs", qSetMasters, masters); err != nil {
			return err
		}
		if err := pageExec(ctx, tx, op, "generations", qBumpGenerations, gens); err != nil {
			return err
		}
		return s.appendAuditSet(ctx, tx, op, heads, chain)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendAuditSet appends evs (one per org, orgs[i] the org of evs[i], in
// org ID order) to their orgs' chains, set-based, as appendAudit does for
// one: each chain's head is locked first.
func (s *Store) appendAuditSet(ctx context.Context, tx *sql.Tx, op string, orgs []string, evs []audit.Event) error {
	order := make([]int, len(orgs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(orgs[a], orgs[b]) })
	sorted := make([]string, len(orgs))
	for i, k := range order {
		sorted[i] = orgs[k]
	}
	rows, err := tx.QueryContext(ctx, qLockHeads, sorted)
	if err != nil {
		return classify(ctx, op, "audit logs", err)
	}
	prevs, err := collect(rows, func(rows *sql.Rows) (audit.Event, error) {
		var e audit.Event
		return e, rows.Scan(&e.OrgID, &e.Seq, &e.Hash)
	})
	if err != nil {
		return classify(ctx, op, "audit logs", err)
	}
	prev := make(map[string]audit.Event, len(prevs))
	for _, e := range prevs {
		prev[e.OrgID] = audit.Event{Seq: e.Seq, Hash: e.Hash}
	}
	var ins, moved []map[string]any
	for _, ev := range evs {
		ev = audit.Chain(prev[ev.OrgID], ev)
		details, err := detailsArg(ev.Details)
		if err != nil {
			return &fault.Error{Kind: fault.Internal, Op: op, Resource: "audit log of org " + ev.OrgID, Err: err}
		}
		ins = append(ins, map[string]any{"org_id": ev.OrgID, "seq": ev.Seq, "time": jsonTime(ev.Time), "actor": ev.Actor, "action": ev.Action,
			"target": ev.Target, "details": details, "prev_hash": ev.PrevHash, "hash": ev.Hash})
		moved = append(moved, map[string]any{"org_id": ev.OrgID, "seq": ev.Seq, "hash": ev.Hash})
		if err := s.enqueueNotification(ctx, tx, op, ev); err != nil { // none for a platform re-wrap today
			return err
		}
	}
	if err := pageExec(ctx, tx, op, "audit logs", qInsertEvents, ins); err != nil {
		return err
	}
	return pageExec(ctx, tx, op, "audit logs", qMoveHeads, moved)
}
