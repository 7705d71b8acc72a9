package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

func cmkRes(orgID string) string { return "CMK of org " + orgID }
func jobRes(id int64) string     { return fmt.Sprintf("CMK job %d", id) }

const cmkColumns = `org_id, state, tenant_id, consented_at, consented_by, vault_uri, key_name, key_version, key_uri,
	active_key_uri, active_version, reason_code, reason, recoverable_until, revoked_since,
	last_probe_at, last_probe_error, degraded, updated_at, purge_suspected_since, purge_checks, warning, data_lost_at, revision`

func scanCMK(row interface{ Scan(...any) error }) (cmk.Record, error) {
	var r cmk.Record
	err := row.Scan(&r.OrgID, &r.State, &r.TenantID, scanTime(&r.ConsentedAt), &r.ConsentedBy, &r.VaultURI, &r.KeyName, &r.KeyVersion, &r.KeyURI,
		&r.ActiveKeyURI, &r.ActiveVersion, &r.ReasonCode, &r.Reason, scanTime(&r.RecoverableUntil), scanTime(&r.RevokedSince),
		scanTime(&r.LastProbeAt), &r.LastProbeError, &r.Degraded, scanTime(&r.UpdatedAt),
		scanTime(&r.PurgeSuspectedSince), &r.PurgeChecks, &r.Warning, scanTime(&r.DataLostAt), &r.Revision)
	return r, err
}

// recordFor returns r for a change to orgID, like [eventFor]: an empty
// r.OrgID is set to orgID, another org's ID is Invalid. An empty state is
// Invalid.
func recordFor(op, orgID string, r cmk.Record) (cmk.Record, error) {
	switch r.OrgID {
	case orgID:
	case "":
		r.OrgID = orgID
	default:
		return cmk.Record{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "record.org_id",
			Reason: fmt.Sprintf("CMK record of org %s cannot record a change to org %s", r.OrgID, orgID)}
	}
	if r.State == "" {
		return cmk.Record{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "record.state", Reason: "CMK state is empty"}
	}
	return r, nil
}

// putCMK upserts r in tx. NotFound if its org does not exist.
func putCMK(ctx context.Context, tx *sql.Tx, op string, r cmk.Record) error {
	if err := orgMissing(ctx, tx, op, r.OrgID); err != nil {
		return err
	}
	args := []any{r.OrgID, string(r.State), r.TenantID, nullTimeArg(r.ConsentedAt), r.ConsentedBy, r.VaultURI, r.KeyName, r.KeyVersion, r.KeyURI,
		r.ActiveKeyURI, r.ActiveVersion, r.ReasonCode, r.Reason, nullTimeArg(r.RecoverableUntil), nullTimeArg(r.RevokedSince),
		nullTimeArg(r.LastProbeAt), r.LastProbeError, r.Degraded, nullTimeArg(r.UpdatedAt),
		nullTimeArg(r.PurgeSuspectedSince), r.PurgeChecks, r.Warning, nullTimeArg(r.DataLostAt)}
	stale := &fault.Error{Kind: fault.Conflict, Op: op, Resource: cmkRes(r.OrgID), Reason: "the customer managed key settings changed meanwhile; reload and try again", Err: cmk.ErrStale}
	if r.Revision == 0 {
		// A first record: it must not exist yet.
		_, err := tx.ExecContext(ctx, `INSERT INTO cmk_orgs (`+cmkColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, 1)`, args...)
		if err != nil && fault.KindOf(classify(ctx, op, cmkRes(r.OrgID), err)) == fault.Conflict {
			return stale
		}
		if err != nil {
			return classify(ctx, op, cmkRes(r.OrgID), err)
		}
		return bumpFor(ctx, tx, op, r)
	}
	res, err := tx.ExecContext(ctx, `UPDATE cmk_orgs SET state = $1, tenant_id = $2,
			consented_at = $3, consented_by = $4, vault_uri = $5, key_name = $6, key_version = $7, key_uri = $8,
			active_key_uri = $9, active_version = $10, reason_code = $11, reason = $12, recoverable_until = $13,
			revoked_since = $14, last_probe_at = $15, last_probe_error = $16, degraded = $17, updated_at = $18,
			purge_suspected_since = $19, purge_checks = $20, warning = $21, data_lost_at = $22,
			revision = revision + 1
		WHERE org_id = $23 AND revision = $24`, append(args[1:], r.OrgID, r.Revision)...)
	if err != nil {
		return classify(ctx, op, cmkRes(r.OrgID), err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return classify(ctx, op, cmkRes(r.OrgID), err)
	} else if n == 0 {
		return stale
	}
	return bumpFor(ctx, tx, op, r)
}

// bumpFor raises the org's generation in tx when r asks for it (r.Bump).
func bumpFor(ctx context.Context, tx *sql.Tx, op string, r cmk.Record) error {
	if r.Bump == "" {
		return nil
	}
	_, err := bumpGeneration(ctx, tx, op, r.OrgID, r.Bump, r.UpdatedAt)
	return err
}

// GetCMK returns the org's CMK record. NotFound (resource "CMK of org X")
// when the org has none: it never started the CMK flow, or does not exist.
func (s *Store) GetCMK(ctx context.Context, orgID string) (cmk.Record, error) {
	const op = "get CMK"
	r, err := scanCMK(s.db.QueryRowContext(ctx, qGetCMK, orgID))
	if err != nil {
		return cmk.Record{}, classify(ctx, op, cmkRes(orgID), err)
	}
	return r, nil
}

// PutCMK inserts or replaces the record of r.OrgID and appends ev, when not
// nil, in one transaction. NotFound if the org does not exist; Invalid if
// r.OrgID or r.State is empty or ev names another org.
func (s *Store) PutCMK(ctx context.Context, r cmk.Record, ev *audit.Event) error {
	const op = "put CMK"
	if r.OrgID == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "record.org_id", Reason: "CMK record has no org ID"}
	}
	r, err := recordFor(op, r.OrgID, r)
	if err != nil {
		return err
	}
	var e audit.Event
	if ev != nil {
		if e, err = eventFor(op, r.OrgID, *ev); err != nil {
			return err
		}
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := putCMK(ctx, tx, op, r); err != nil {
			return err
		}
		if ev == nil {
			return nil
		}
		_, err := s.appendAudit(ctx, tx, op, e)
		return err
	})
}

// ListCMK returns the records in any of states, all when none is given,
// ordered by org ID.
func (s *Store) ListCMK(ctx context.Context, states ...cmk.State) ([]cmk.Record, error) {
	const op = "list CMK"
	q := `SELECT ` + cmkColumns + ` FROM cmk_orgs`
	args := make([]any, len(states))
	if len(states) > 0 {
		ph := make([]string, len(states))
		for i, st := range states {
			args[i], ph[i] = string(st), fmt.Sprintf("$%d", i+1)
		}
		q += ` WHERE state IN (` + strings.Join(ph, ", ") + `)`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY org_id`, args...)
	if err != nil {
		return nil, classify(ctx, op, "CMK records", err)
	}
	rs, err := collect(rows, func(rows *sql.Rows) (cmk.Record, error) { return scanCMK(rows) })
	return rs, classify(ctx, op, "CMK records", err)
}

// GetCMKs returns the CMK records of orgIDs that have one, ordered by org
// ID, in one round trip (a probe round's page of orgs); an org without a
// record is left out.
func (s *Store) GetCMKs(ctx context.Context, orgIDs []string) ([]cmk.Record, error) {
	const op = "get CMK records"
	if len(orgIDs) == 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+cmkColumns+` FROM cmk_orgs WHERE org_id = ANY($1) ORDER BY org_id`, orgIDs)
	if err != nil {
		return nil, classify(ctx, op, "CMK records", err)
	}
	rs, err := collect(rows, func(rows *sql.Rows) (cmk.Record, error) { return scanCMK(rows) })
	return rs, classify(ctx, op, "CMK records", err)
}

// PutConsentRequest stores c. Invalid if c.State, c.OrgID or c.ExpiresAt
// is empty; NotFound if the org does not exist; Conflict if a request with
// the same state exists.
func (s *Store) PutConsentRequest(ctx context.Context, c cmk.ConsentRequest) error {
	const op = "put consent request"
	switch {
	case c.State == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "state", Reason: "consent request state is empty"}
	case c.OrgID == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "org_id", Reason: "consent request has no org ID"}
	case c.ExpiresAt.IsZero():
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "expires_at", Reason: "consent request has no expiry"}
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := orgMissing(ctx, tx, op, c.OrgID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO cmk_consent_requests (state, org_id, actor, tenant_id, expires_at) VALUES ($1, $2, $3, $4, $5)`,
			c.State, c.OrgID, c.Actor, c.TenantID, timeArg(c.ExpiresAt))
		return classify(ctx, op, "consent request of org "+c.OrgID, err)
	})
}

// TakeConsentRequest deletes and returns the request with state. NotFound
// if there is none, or if it expired (ExpiresAt is not after now); an
// expired request is deleted too. It also deletes every other request that
// expired before now. Of concurrent takes of one request, exactly one gets
// it: the row is deleted and read in one statement.
func (s *Store) TakeConsentRequest(ctx context.Context, state string, now time.Time) (cmk.ConsentRequest, error) {
	const op = "take consent request"
	const res = "consent request"
	c := cmk.ConsentRequest{State: state}
	found := false
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		found = false
		err := tx.QueryRowContext(ctx, `DELETE FROM cmk_consent_requests WHERE state = $1 RETURNING org_id, actor, tenant_id, expires_at`, state).
			Scan(&c.OrgID, &c.Actor, &c.TenantID, scanTime(&c.ExpiresAt))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return classify(ctx, op, res, err)
		}
		found = true
		_, err = tx.ExecContext(ctx, `DELETE FROM cmk_consent_requests WHERE expires_at <= $1`, timeArg(now))
		return classify(ctx, op, res, err)
	})
	switch {
	case err != nil:
		return cmk.ConsentRequest{}, err
	case !found:
		return cmk.ConsentRequest{}, &fault.Error{Kind: fault.NotFound, Op: op, Resource: res,
			Reason: "consent request not found: it was already used or never started; start the consent again"}
	case !now.Before(c.ExpiresAt):
		return cmk.ConsentRequest{}, &fault.Error{Kind: fault.NotFound, Op: op, Resource: res,
			Reason: "consent request expired; start the consent again"}
	}
	return c, nil
}

// AddPendingWrapping stores w as the org's pending wrapping, replacing an
// older pending one, and returns its ID. Invalid if w names another org, is
// not pending or its key has no version; NotFound if the org does not
// exist.
func (s *Store) AddPendingWrapping(ctx context.Context, orgID string, w keys.RootKeyWrapping) (int64, error) {
	return s.addPending(ctx, "add pending root key", orgID, w, nil)
}

// AddJobWrapping stores w as the pending wrapping of job j's org, like
// [Store.AddPendingWrapping], and stores j like [Store.UpdateJob] (its
// Step), in one transaction: only while j.Owner holds the job under
// j.Fence. Conflict if another claim took the job over; Invalid if j is
// not running.
func (s *Store) AddJobWrapping(ctx context.Context, j cmk.Job, w keys.RootKeyWrapping) (int64, error) {
	const op = "add pending root key of a job"
	if err := checkJobUpdate(op, j, cmk.JobRunning); err != nil {
		return 0, err
	}
	if j.OrgID == "" {
		return 0, &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id", Reason: "CMK job has no org ID"}
	}
	return s.addPending(ctx, op, j.OrgID, w, &j)
}

func (s *Store) addPending(ctx context.Context, op, orgID string, w keys.RootKeyWrapping, job *cmk.Job) (int64, error) {
	if err := checkPending(op, orgID, w); err != nil {
		return 0, err
	}
	var id int64
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		id, err = insertPending(ctx, tx, op, orgID, w, job)
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// checkPending checks a new pending wrapping of orgID.
func checkPending(op, orgID string, w keys.RootKeyWrapping) error {
	switch {
	case w.OrgID != "" && w.OrgID != orgID:
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.org_id",
			Reason: fmt.Sprintf("root key wrapping of org %s given for org %s", w.OrgID, orgID)}
	case w.State != "" && w.State != keys.WrappingPending:
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.state",
			Reason: fmt.Sprintf("a new root key wrapping must be pending, not %s", w.State)}
	case w.Wrapped.Key.Version == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "wrapping.key",
			Reason: "a root key wrapping records the version of its master key"}
	}
	return nil
}

// insertPending is the write of a pending wrapping (checked by
// checkPending) in tx, with job's step when job is not nil (fenced).
func insertPending(ctx context.Context, tx *sql.Tx, op, orgID string, w keys.RootKeyWrapping, job *cmk.Job) (int64, error) {
	if job != nil {
		jobOrg, err := stepJob(ctx, tx, op, *job)
		if err != nil {
			return 0, err
		}
		if jobOrg != orgID {
			return 0, &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id", Reason: fmt.Sprintf("CMK job %d belongs to org %s, not %s", job.ID, jobOrg, orgID)}
		}
	}
	if err := lockOrg(ctx, tx, op, orgID); err != nil {
		return 0, err
	}
	res := "pending root key of org " + orgID
	if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = $1 AND state = $2`, orgID, string(keys.WrappingPending)); err != nil {
		return 0, classify(ctx, op, res, err)
	}
	k := w.Wrapped.Key
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO root_keys (org_id, provider, key_id, key_version, ciphertext, state, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		orgID, k.Provider, k.ID, k.Version, nonNil(w.Wrapped.Ciphertext), string(keys.WrappingPending), timeArg(w.CreatedAt)).Scan(&id)
	return id, classify(ctx, op, res, err)
}

// checkCopy checks one copy of [Store.AddJobWrappings] as AddJobWrapping
// does.
func checkCopy(op string, c cmk.CopyStep) error {
	if err := checkJobUpdate(op, c.Job, cmk.JobRunning); err != nil {
		return err
	}
	if c.Job.OrgID == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id", Reason: "CMK job has no org ID"}
	}
	return checkPending(op, c.Job.OrgID, c.Wrapping)
}

// AddJobWrappings is [Store.AddJobWrapping] for each of steps, in one
// transaction, orgs in ID order. The common case (one copy per org, its
// job held under its fence) is set-based: four statements for the whole
// batch (jobs stepped under their fences, orgs locked, old pending copies
// deleted, new ones inserted) instead of four round trips per org. A copy
// whose job is not held as it says, and every copy when the batch meets
// anything else (an org gone), runs alone under its own savepoint, as
// AddJobWrapping would, with its own outcome at its index; the copies
// that succeed commit together. Any other error (Unavailable) stores none
// of them.
func (s *Store) AddJobWrappings(ctx context.Context, steps []cmk.CopyStep) ([]cmk.Copied, error) {
	const op = "add pending root keys of jobs"
	out := make([]cmk.Copied, len(steps))
	order := make([]int, 0, len(steps))
	for i, c := range steps {
		if err := checkCopy(op, c); err != nil {
			out[i].Err = err
			continue
		}
		order = append(order, i)
	}
	if len(order) == 0 {
		return out, nil
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(steps[a].Job.OrgID, steps[b].Job.OrgID) })
	var set []int
	seen := map[string]bool{}
	for _, i := range order {
		if org := steps[i].Job.OrgID; !seen[org] {
			set = append(set, i)
			seen[org] = true
		}
	}
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		done, err := s.copySet(ctx, tx, op, steps, set, out)
		if err != nil {
			return err
		}
		for _, i := range order {
			if done[i] {
				continue
			}
			c := steps[i]
			if _, err := tx.ExecContext(ctx, `SAVEPOINT add_job_wrapping`); err != nil {
				return classify(ctx, op, "database", err)
			}
			id, err := insertPending(ctx, tx, op, c.Job.OrgID, c.Wrapping, &c.Job)
			out[i] = cmk.Copied{ID: id, Err: err}
			if err != nil {
				out[i].ID = 0
				switch fault.KindOf(err) {
				case fault.Conflict, fault.NotFound, fault.Invalid:
				default:
					return err
				}
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT add_job_wrapping`); err != nil {
					return classify(ctx, op, "database", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT add_job_wrapping`); err != nil {
				return classify(ctx, op, "database", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Set-based copies (see AddJobWrappings). qStepJobs locks the jobs held as
// the copies say (owner, fence, running, of their org), in org ID order as
// the orgs are locked after them, and stores their steps.
const (
	qStepJobs = `WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, org_id text, owner text, fence bigint, step text, updated_at timestamptz)),
		held AS (SELECT j.id FROM cmk_jobs j JOIN u ON j.id = u.id AND j.org_id = u.org_id AND j.owner = u.owner AND j.fence = u.fence
			WHERE j.state = 'running' AND j.id = ANY(` + idsOfRows + `) ORDER BY j.org_id FOR UPDATE OF j)
		UPDATE cmk_jobs j SET step = u.step, updated_at = COALESCE(u.updated_at, j.updated_at)
		FROM u WHERE j.id = u.id AND j.id IN (SELECT id FROM held) AND j.id = ANY(` + idsOfRows + `) RETURNING j.id, j.org_id`
	qDropPendings  = `DELETE FROM root_keys WHERE org_id = ANY($1) AND state = 'pending'`
	qInsertPending = `INSERT INTO root_keys (org_id, provider, key_id, key_version, ciphertext, state, created_at)
		SELECT org_id, provider, key_id, key_version, decode(ciphertext, 'base64'), 'pending', created_at
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, provider text, key_id text, key_version text, ciphertext text, created_at timestamptz)
		ORDER BY org_id RETURNING id, org_id`
)

// copySet stores the copies of steps at indexes set (checked, one per org,
// in org ID order) whose jobs are held as they say, set-based, in tx,
// under a savepoint: if any org of theirs is gone, it rolls back and
// leaves every copy to the caller. It sets out and reports the indexes it
// stored; the others are left to the caller, untouched.
func (s *Store) copySet(ctx context.Context, tx *sql.Tx, op string, steps []cmk.CopyStep, set []int, out []cmk.Copied) (map[int]bool, error) {
	done := map[int]bool{}
	if len(set) < 2 {
		return done, nil // one copy: the single path is as short
	}
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return classify(ctx, op, "root keys", err)
	}
	type idOrg struct {
		id  int64
		org string
	}
	query := func(q string, arg string) ([]idOrg, error) {
		rows, err := tx.QueryContext(ctx, q, arg)
		if err != nil {
			return nil, classify(ctx, op, "root keys", err)
		}
		got, err := collect(rows, func(rows *sql.Rows) (idOrg, error) {
			var v idOrg
			return v, rows.Scan(&v.id, &v.org)
		})
		return got, classify(ctx, op, "root keys", err)
	}
	if err := exec(`SAVEPOINT copy_set`); err != nil {
		return nil, err
	}
	jobRows := make([]map[string]any, len(set))
	for k, i := range set {
		j := steps[i].Job
		jobRows[k] = map[string]any{"id": j.ID, "org_id": j.OrgID, "owner": j.Owner, "fence": j.Fence, "step": j.Step, "updated_at": jsonTime(j.UpdatedAt)}
	}
	arg, err := jsonArg(jobRows)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "CMK jobs", Err: err}
	}
	stepped, err := query(qStepJobs, arg)
	if err != nil {
		return nil, err
	}
	held := make(map[int64]bool, len(stepped))
	for _, v := range stepped {
		held[v.id] = true
	}
	var mine []int
	var orgs []string
	for _, i := range set {
		if held[steps[i].Job.ID] {
			mine = append(mine, i)
			orgs = append(orgs, steps[i].Job.OrgID)
		}
	}
	rollback := func() (map[int]bool, error) {
		if err := exec(`ROLLBACK TO SAVEPOINT copy_set`); err != nil {
			return nil, err
		}
		return map[int]bool{}, exec(`RELEASE SAVEPOINT copy_set`)
	}
	if len(mine) == 0 {
		return rollback()
	}
	rows, err := tx.QueryContext(ctx, qLockOrgs, orgs)
	if err != nil {
		return nil, classify(ctx, op, "orgs", err)
	}
	locked, err := collect(rows, func(rows *sql.Rows) (string, error) {
		var v string
		return v, rows.Scan(&v)
	})
	if err != nil {
		return nil, classify(ctx, op, "orgs", err)
	}
	if len(locked) != len(orgs) {
		return rollback() // an org is gone: each copy says so on its own
	}
	if err := exec(qDropPendings, orgs); err != nil {
		return nil, err
	}
	wrapRows := make([]map[string]any, len(mine))
	for k, i := range mine {
		w := steps[i].Wrapping
		key := w.Wrapped.Key
		wrapRows[k] = map[string]any{"org_id": steps[i].Job.OrgID, "provider": key.Provider, "key_id": key.ID, "key_version": key.Version,
			"ciphertext": nonNil(w.Wrapped.Ciphertext), "created_at": jsonTime(w.CreatedAt)}
	}
	if arg, err = jsonArg(wrapRows); err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "root keys", Err: err}
	}
	inserted, err := query(qInsertPending, arg)
	if err != nil {
		return nil, err
	}
	byOrg := make(map[string]int64, len(inserted))
	for _, v := range inserted {
		byOrg[v.org] = v.id
	}
	for _, i := range mine {
		id, ok := byOrg[steps[i].Job.OrgID]
		if !ok {
			return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "root keys", Reason: "a copy was not inserted"}
		}
		out[i] = cmk.Copied{ID: id}
		done[i] = true
	}
	return done, exec(`RELEASE SAVEPOINT copy_set`)
}

// SwitchWrapping makes the org's pending wrapping id its only, active one,
// sets the org's master key to master, stores rec and appends ev, in one
// transaction. NotFound if id is not a pending wrapping of the org (also
// when it is already active), or if the org does not exist; Invalid if
// master has a version or is empty, or rec or ev names another org.
func (s *Store) SwitchWrapping(ctx context.Context, orgID string, id int64, master masterkey.Ref, rec cmk.Record, ev audit.Event, done *cmk.Job) error {
	const op = "switch root key"
	st, err := checkSwitch(op, cmk.SwitchStep{OrgID: orgID, ID: id, Master: master, Record: rec, Event: ev, Done: done})
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error { return s.switchWrapping(ctx, tx, op, st) })
}

// checkSwitch checks a switch's arguments and returns it with its record
// and event set to its org.
func checkSwitch(op string, st cmk.SwitchStep) (cmk.SwitchStep, error) {
	switch {
	case st.Master.Version != "":
		return cmk.SwitchStep{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "master_key", Reason: "the org's master key is stored unversioned"}
	case st.Master.Provider == "" || st.Master.ID == "":
		return cmk.SwitchStep{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "master_key", Reason: "the org's master key is empty"}
	}
	rec, err := recordFor(op, st.OrgID, st.Record)
	if err != nil {
		return cmk.SwitchStep{}, err
	}
	ev, err := eventFor(op, st.OrgID, st.Event)
	if err != nil {
		return cmk.SwitchStep{}, err
	}
	if st.Done != nil {
		if err := checkJobUpdate(op, *st.Done, cmk.JobDone, cmk.JobFailed); err != nil {
			return cmk.SwitchStep{}, err
		}
	}
	st.Record, st.Event = rec, ev
	return st, nil
}

// switchWrapping is the write of one switch (checked by checkSwitch), in tx.
func (s *Store) switchWrapping(ctx context.Context, tx *sql.Tx, op string, st cmk.SwitchStep) error {
	orgID, id, master, rec, ev, done := st.OrgID, st.ID, st.Master, st.Record, st.Event, st.Done
	if done != nil {
		jobOrg, err := updateJob(ctx, tx, op, *done)
		if err != nil {
			return err
		}
		if jobOrg != orgID {
			return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id", Reason: fmt.Sprintf("CMK job %d belongs to org %s, not %s", done.ID, jobOrg, orgID)}
		}
	}
	if err := lockOrg(ctx, tx, op, orgID); err != nil {
		return err
	}
	res := fmt.Sprintf("pending root key %d of org %s", id, orgID)
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM root_keys WHERE id = $1 AND org_id = $2 AND state = $3`, id, orgID, string(keys.WrappingPending)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		if err := orgMissing(ctx, tx, op, orgID); err != nil {
			return err
		}
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: res}
	}
	if err != nil {
		return classify(ctx, op, res, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = $1 AND id <> $2`, orgID, id); err != nil {
		return classify(ctx, op, "root keys of org "+orgID, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE root_keys SET state = $1 WHERE id = $2`, string(keys.WrappingActive), id); err != nil {
		return classify(ctx, op, res, err)
	}
	// Another key wraps the root key (not a new version of the same
	// key, which the job has just verified): probe it at once.
	if _, err := tx.ExecContext(ctx, `UPDATE cmk_orgs SET probe_due_at = NULL WHERE org_id = $1
			AND EXISTS (SELECT 1 FROM orgs WHERE id = $1 AND (master_provider <> $2 OR master_key_id <> $3))`,
		orgID, master.Provider, master.ID); err != nil {
		return classify(ctx, op, cmkRes(orgID), err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE orgs SET master_provider = $1, master_key_id = $2 WHERE id = $3`, master.Provider, master.ID, orgID); err != nil {
		return classify(ctx, op, orgRes(orgID), err)
	}
	if err := putCMK(ctx, tx, op, rec); err != nil {
		return err
	}
	_, err = s.appendAudit(ctx, tx, op, ev)
	return err
}

// SwitchWrappings is [Store.SwitchWrapping] for each of steps, in one
// transaction, orgs in ID order. Each switch runs under its own savepoint,
// its job's fence checked there: one that fails with Conflict (a lost
// lease, a stale record), NotFound or Invalid is rolled back alone and its
// error is reported at its index; the others commit together. Any other
// error (Unavailable) stores none of them.
func (s *Store) SwitchWrappings(ctx context.Context, steps []cmk.SwitchStep) ([]error, error) {
	const op = "switch root keys"
	out := make([]error, len(steps))
	checked := make([]cmk.SwitchStep, len(steps))
	order := make([]int, 0, len(steps))
	for i, st := range steps {
		c, err := checkSwitch(op, st)
		if err != nil {
			out[i] = err
			continue
		}
		checked[i] = c
		order = append(order, i)
	}
	if len(order) == 0 {
		return out, nil
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(checked[a].OrgID, checked[b].OrgID) })
	// The common case (one job's switch per org, its record at a revision)
	// goes set-based; the rest one by one after.
	var set []int
	seen := map[string]bool{}
	for _, i := range order {
		if st := checked[i]; st.Done != nil && st.Record.Revision > 0 && !seen[st.OrgID] {
			set = append(set, i)
			seen[st.OrgID] = true
		}
	}
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		done, err := s.switchSet(ctx, tx, op, checked, set, out)
		if err != nil {
			return err
		}
		for _, i := range order {
			if done[i] {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT switch_root_key`); err != nil {
				return classify(ctx, op, "database", err)
			}
			err := s.switchWrapping(ctx, tx, op, checked[i])
			out[i] = err
			if err != nil {
				switch fault.KindOf(err) {
				case fault.Conflict, fault.NotFound, fault.Invalid:
				default:
					return err
				}
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT switch_root_key`); err != nil {
					return classify(ctx, op, "database", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT switch_root_key`); err != nil {
				return classify(ctx, op, "database", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const jobColumns = `id, org_id, kind, target, step, state, attempts, error, owner, fence, lease_until, not_before, created_at, updated_at`

func scanJob(row interface{ Scan(...any) error }) (cmk.Job, error) {
	var j cmk.Job
	err := row.Scan(&j.ID, &j.OrgID, &j.Kind, &j.Target, &j.Step, &j.State, &j.Attempts, &j.Error, &j.Owner, &j.Fence,
		scanTime(&j.LeaseUntil), scanTime(&j.NotBefore), scanTime(&j.CreatedAt), scanTime(&j.UpdatedAt))
	return j, err
}

func getJob(ctx context.Context, q querier, op string, id int64) (cmk.Job, error) {
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM cmk_jobs WHERE id = $1`, id))
	if err != nil {
		return cmk.Job{}, classify(ctx, op, jobRes(id), err)
	}
	return j, nil
}

// jobRunning is the Conflict of a second job for an org.
func jobRunning(op, orgID string, err error) error {
	return &fault.Error{Kind: fault.Conflict, Op: op, Resource: "CMK job of org " + orgID,
		Reason: "a CMK job is already running for org " + orgID, Err: err}
}

// StartJob creates j in state pending, stores rec and appends ev, in one
// transaction, and returns the job as stored. j's ID, State, Attempts,
// Owner and LeaseUntil are ignored; a zero UpdatedAt is set to CreatedAt.
// Conflict if the org has a pending or running job; NotFound if the org
// does not exist; Invalid if j.OrgID or j.Kind is empty, or rec or ev
// names another org.
func (s *Store) StartJob(ctx context.Context, j cmk.Job, rec cmk.Record, ev audit.Event) (cmk.Job, error) {
	const op = "start CMK job"
	j, rec, ev, err := checkJobStart(op, j, rec, ev)
	if err != nil {
		return cmk.Job{}, err
	}
	var stored cmk.Job
	err = s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		stored, err = s.startJob(ctx, tx, op, j, rec, ev)
		return err
	})
	if err != nil {
		return cmk.Job{}, err
	}
	return stored, nil
}

// checkJobStart checks and completes the arguments of a job start.
func checkJobStart(op string, j cmk.Job, rec cmk.Record, ev audit.Event) (cmk.Job, cmk.Record, audit.Event, error) {
	switch {
	case j.OrgID == "":
		return j, rec, ev, &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id", Reason: "CMK job has no org ID"}
	case j.Kind == "":
		return j, rec, ev, &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.kind", Reason: "CMK job kind is empty"}
	}
	rec, err := recordFor(op, j.OrgID, rec)
	if err != nil {
		return j, rec, ev, err
	}
	if ev, err = eventFor(op, j.OrgID, ev); err != nil {
		return j, rec, ev, err
	}
	if j.UpdatedAt.IsZero() {
		j.UpdatedAt = j.CreatedAt
	}
	return j, rec, ev, nil
}

// startJob is StartJob in tx, its arguments checked.
func (s *Store) startJob(ctx context.Context, tx *sql.Tx, op string, j cmk.Job, rec cmk.Record, ev audit.Event) (cmk.Job, error) {
	if err := lockOrg(ctx, tx, op, j.OrgID); err != nil {
		return cmk.Job{}, err
	}
	var open int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM cmk_jobs WHERE org_id = $1 AND state IN ($2, $3)`,
		j.OrgID, string(cmk.JobPending), string(cmk.JobRunning)).Scan(&open)
	switch {
	case err == nil:
		return cmk.Job{}, jobRunning(op, j.OrgID, nil)
	case !errors.Is(err, sql.ErrNoRows):
		return cmk.Job{}, classify(ctx, op, "CMK jobs of org "+j.OrgID, err)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO cmk_jobs (org_id, kind, target, step, state, attempts, error, owner, lease_until, not_before, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 0, $6, '', NULL, $7, $8, $9) RETURNING id`,
		j.OrgID, string(j.Kind), j.Target, j.Step, string(cmk.JobPending), j.Error, nullTimeArg(j.NotBefore), timeArg(j.CreatedAt), timeArg(j.UpdatedAt)).Scan(&id)
	if pgCode(err) == codeUniqueViolation { // the one-open-job index: cannot happen after the check under the org lock, kept as the guarantee
		return cmk.Job{}, jobRunning(op, j.OrgID, err)
	}
	if err != nil {
		return cmk.Job{}, classify(ctx, op, "CMK job of org "+j.OrgID, err)
	}
	stored, err := getJob(ctx, tx, op, id)
	if err != nil {
		return cmk.Job{}, err
	}
	if err := putCMK(ctx, tx, op, rec); err != nil {
		return cmk.Job{}, err
	}
	if _, err := s.appendAudit(ctx, tx, op, ev); err != nil {
		return cmk.Job{}, err
	}
	return stored, nil
}

// StartJobs is [Store.StartJob] for each of starts, in one transaction.
// Each start runs under its own savepoint: one that fails with Conflict,
// NotFound or Invalid is rolled back alone and its error is reported at
// its index; the others commit together. Any other error (Unavailable)
// stores none of them.
func (s *Store) StartJobs(ctx context.Context, starts []cmk.JobStart) ([]cmk.JobStarted, error) {
	const op = "start CMK jobs"
	out := make([]cmk.JobStarted, len(starts))
	checked := make([]cmk.JobStart, len(starts))
	order := make([]int, 0, len(starts))
	for i, st := range starts {
		j, rec, ev, err := checkJobStart(op, st.Job, st.Record, st.Event)
		if err != nil {
			out[i].Err = err
			continue
		}
		checked[i] = cmk.JobStart{Job: j, Record: rec, Event: ev}
		order = append(order, i)
	}
	if len(order) == 0 {
		return out, nil
	}
	// Orgs in ID order: two nodes' batches lock their orgs in the same
	// order, so they wait for each other instead of deadlocking.
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(checked[a].Job.OrgID, checked[b].Job.OrgID) })
	// The common case (a record replaced at its revision, no generation
	// bump, one start per org) goes set-based; the rest one by one after.
	var set, single []int
	seen := map[string]bool{}
	for _, i := range order {
		st := checked[i]
		if st.Record.Revision > 0 && st.Record.Bump == "" && !seen[st.Job.OrgID] {
			set = append(set, i)
			seen[st.Job.OrgID] = true
		} else {
			single = append(single, i)
		}
	}
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		if len(set) > 0 {
			batch := make([]cmk.JobStart, len(set))
			for k, i := range set {
				batch[k] = checked[i]
			}
			res, err := s.startJobsSet(ctx, tx, op, batch)
			if err != nil {
				return err
			}
			for k, i := range set {
				out[i] = res[k]
			}
		}
		for _, i := range single {
			st := checked[i]
			if _, err := tx.ExecContext(ctx, `SAVEPOINT start_job`); err != nil {
				return classify(ctx, op, "database", err)
			}
			j, err := s.startJob(ctx, tx, op, st.Job, st.Record, st.Event)
			out[i] = cmk.JobStarted{Job: j, Err: err}
			if err != nil {
				switch fault.KindOf(err) {
				case fault.Conflict, fault.NotFound, fault.Invalid:
				default:
					return err
				}
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT start_job`); err != nil {
					return classify(ctx, op, "database", err)
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT start_job`); err != nil {
				return classify(ctx, op, "database", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetJob returns the job, or NotFound.
func (s *Store) GetJob(ctx context.Context, id int64) (cmk.Job, error) {
	return getJob(ctx, s.db, "get CMK job", id)
}

// OrgJob returns the org's latest job (the highest ID), or NotFound.
func (s *Store) OrgJob(ctx context.Context, orgID string) (cmk.Job, error) {
	const op = "get CMK job"
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM cmk_jobs WHERE org_id = $1 ORDER BY id DESC LIMIT 1`, orgID))
	if err != nil {
		return cmk.Job{}, classify(ctx, op, "CMK job of org "+orgID, err)
	}
	return j, nil
}

// ClaimJob leases the oldest (lowest ID) claimable job to owner until
// now+lease, sets it running and increments its Attempts, and returns it as
// stored (UpdatedAt is now). Claimable is a pending job whose NotBefore is
// zero or not after now, or a running job whose LeaseUntil is zero or not
// after now. NotFound if none; Invalid if owner is empty or lease is not
// positive.
func (s *Store) ClaimJob(ctx context.Context, owner string, now time.Time, lease time.Duration) (cmk.Job, error) {
	const op = "claim CMK job"
	switch {
	case owner == "":
		return cmk.Job{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "owner", Reason: "lease owner is empty"}
	case lease <= 0:
		return cmk.Job{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "lease", Reason: "lease must be positive"}
	}
	j, err := scanJob(s.db.QueryRowContext(ctx, qClaimJob, timeArg(now), owner, timeArg(now.Add(lease))))
	if errors.Is(err, sql.ErrNoRows) {
		return cmk.Job{}, &fault.Error{Kind: fault.NotFound, Op: op, Resource: "claimable CMK job", Reason: "no CMK job is ready to run"}
	}
	if err != nil {
		return cmk.Job{}, classify(ctx, op, "CMK jobs", err)
	}
	return j, nil
}

// ClaimJobs is [Store.ClaimJob] for up to n jobs, oldest first, in one
// statement: each is leased to owner under its own raised fence; rows
// other claims hold are skipped, as in ClaimJob. None claimable is an
// empty result. Invalid if owner is empty, lease is not positive or n is
// below 1.
func (s *Store) ClaimJobs(ctx context.Context, owner string, now time.Time, lease time.Duration, n int) ([]cmk.Job, error) {
	const op = "claim CMK jobs"
	switch {
	case owner == "":
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "owner", Reason: "lease owner is empty"}
	case lease <= 0:
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "lease", Reason: "lease must be positive"}
	case n < 1:
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "n", Reason: "claim at least one job"}
	}
	rows, err := s.db.QueryContext(ctx, qClaimJobs, timeArg(now), owner, timeArg(now.Add(lease)), n)
	if err != nil {
		return nil, classify(ctx, op, "CMK jobs", err)
	}
	js, err := collect(rows, func(rows *sql.Rows) (cmk.Job, error) { return scanJob(rows) })
	if err != nil {
		return nil, classify(ctx, op, "CMK jobs", err)
	}
	slices.SortFunc(js, func(a, b cmk.Job) int { return cmp.Compare(a.ID, b.ID) })
	return js, nil
}

// updateJob stores j's Step, State, Error, NotBefore, LeaseUntil and (when
// not zero) UpdatedAt if j.Owner holds the job: it is running under
// j.Owner and j.Fence (the fencing token of j.Owner's claim). It returns the job's org. NotFound if the job does not exist,
// Conflict if another owner took it over or it is no longer running.
func updateJob(ctx context.Context, tx *sql.Tx, op string, j cmk.Job) (orgID string, err error) {
	err = tx.QueryRowContext(ctx, `UPDATE cmk_jobs SET step = $1, state = $2, error = $3, not_before = $4, lease_until = $5, updated_at = COALESCE($6, updated_at)
		WHERE id = $7 AND owner = $8 AND fence = $9 AND state = $10 RETURNING org_id`,
		j.Step, string(j.State), j.Error, nullTimeArg(j.NotBefore), nullTimeArg(j.LeaseUntil), nullTimeArg(j.UpdatedAt),
		j.ID, j.Owner, j.Fence, string(cmk.JobRunning)).Scan(&orgID)
	if !errors.Is(err, sql.ErrNoRows) {
		return orgID, classify(ctx, op, jobRes(j.ID), err)
	}
	cur, err := getJob(ctx, tx, op, j.ID)
	if err != nil {
		return "", err
	}
	reason := fmt.Sprintf("CMK job %d is %s, held by %s under fence %d, not %s under fence %d: another node took it over", j.ID, cur.State, cur.Owner, cur.Fence, j.Owner, j.Fence)
	if cur.State != cmk.JobRunning {
		reason = fmt.Sprintf("CMK job %d is %s, not running under %s", j.ID, cur.State, j.Owner)
	}
	return "", &fault.Error{Kind: fault.Conflict, Op: op, Resource: jobRes(j.ID), Reason: reason}
}

// checkJobUpdate checks the fields of a job update: a known owner and
// OrgID, and a state in states.
func checkJobUpdate(op string, j cmk.Job, states ...cmk.JobState) error {
	switch {
	case j.Owner == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.owner", Reason: "lease owner is empty"}
	case !slices.Contains(states, j.State):
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.state",
			Reason: fmt.Sprintf("CMK job state must be one of %v, not %q", states, j.State)}
	}
	return nil
}

// UpdateJob stores j's Step, State, Error, NotBefore, LeaseUntil and, when
// not zero, UpdatedAt, if j.Owner still holds the job (it is running under
// j.Owner). State must be running, or pending to release the job (e.g. to
// retry after NotBefore); done and failed go through [Store.FinishJob].
// Conflict if another owner took the job over or it is not running;
// NotFound if it does not exist.
func (s *Store) UpdateJob(ctx context.Context, j cmk.Job) error {
	const op = "update CMK job"
	if err := checkJobUpdate(op, j, cmk.JobRunning, cmk.JobPending); err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		_, err := updateJob(ctx, tx, op, j)
		return err
	})
}

// FinishJob, in one transaction, stores j like [Store.UpdateJob] (its state
// must be done or failed), stores rec and appends ev. Conflict if j.Owner
// no longer holds the job; NotFound if it does not exist; Invalid if j,
// rec or ev name different orgs.
func (s *Store) FinishJob(ctx context.Context, j cmk.Job, rec cmk.Record, ev audit.Event) error {
	const op = "finish CMK job"
	if err := checkJobUpdate(op, j, cmk.JobDone, cmk.JobFailed); err != nil {
		return err
	}
	if rec.State == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "record.state", Reason: "CMK state is empty"}
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		orgID, err := updateJob(ctx, tx, op, j)
		if err != nil {
			return err
		}
		if j.OrgID != "" && j.OrgID != orgID {
			return &fault.Error{Kind: fault.Invalid, Op: op, Field: "job.org_id",
				Reason: fmt.Sprintf("CMK job %d belongs to org %s, not %s", j.ID, orgID, j.OrgID)}
		}
		if err := lockOrg(ctx, tx, op, orgID); err != nil {
			return err
		}
		rec, err := recordFor(op, orgID, rec)
		if err != nil {
			return err
		}
		if ev, err = eventFor(op, orgID, ev); err != nil {
			return err
		}
		if j.State == cmk.JobFailed {
			// A failed job leaves no copy of the root key behind: the active
			// wrapping is the only one.
			if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = $1 AND state = $2`, orgID, string(keys.WrappingPending)); err != nil {
				return classify(ctx, op, "pending root keys of org "+orgID, err)
			}
		}
		if err := putCMK(ctx, tx, op, rec); err != nil {
			return err
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// RenewJob moves running job j's lease to until if j.Owner still holds it
// under j.Fence; nothing else changes. Conflict if another claim took the
// job over (its fence moved) or it is no longer running; NotFound if it
// does not exist.
func (s *Store) RenewJob(ctx context.Context, j cmk.Job, until time.Time) error {
	const op = "renew CMK job"
	if err := checkJobUpdate(op, j, cmk.JobRunning); err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE cmk_jobs SET lease_until = $1 WHERE id = $2 AND owner = $3 AND fence = $4 AND state = $5`,
			timeArg(until), j.ID, j.Owner, j.Fence, string(cmk.JobRunning))
		if err != nil {
			return classify(ctx, op, jobRes(j.ID), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return classify(ctx, op, jobRes(j.ID), err)
		} else if n == 1 {
			return nil
		}
		return jobLost(ctx, tx, op, j)
	})
}

// jobLost is the error of a fenced write of j that matched no row.
func jobLost(ctx context.Context, tx *sql.Tx, op string, j cmk.Job) error {
	cur, err := getJob(ctx, tx, op, j.ID)
	if err != nil {
		return err
	}
	reason := fmt.Sprintf("CMK job %d is %s, held by %s under fence %d, not %s under fence %d: another node took it over", j.ID, cur.State, cur.Owner, cur.Fence, j.Owner, j.Fence)
	if cur.State != cmk.JobRunning {
		reason = fmt.Sprintf("CMK job %d is %s, not running under %s", j.ID, cur.State, j.Owner)
	}
	return &fault.Error{Kind: fault.Conflict, Op: op, Resource: jobRes(j.ID), Reason: reason}
}

// stepJob stores running job j's Step (and UpdatedAt, when not zero) if
// j.Owner holds it under j.Fence; its lease stays as the renewals left it.
// It returns the job's org.
func stepJob(ctx context.Context, tx *sql.Tx, op string, j cmk.Job) (orgID string, err error) {
	err = tx.QueryRowContext(ctx, `UPDATE cmk_jobs SET step = $1, updated_at = COALESCE($2, updated_at)
		WHERE id = $3 AND owner = $4 AND fence = $5 AND state = $6 RETURNING org_id`,
		j.Step, nullTimeArg(j.UpdatedAt), j.ID, j.Owner, j.Fence, string(cmk.JobRunning)).Scan(&orgID)
	if !errors.Is(err, sql.ErrNoRows) {
		return orgID, classify(ctx, op, jobRes(j.ID), err)
	}
	return "", jobLost(ctx, tx, op, j)
}

// ClaimProbes leases up to limit orgs due for a probe to owner: orgs in
// state active, revoked or lost whose probe_due_at is NULL or not after
// now. It moves their probe_due_at to now+interval and sets probe_owner,
// in one statement; rows another claim (or a record write) has locked are skipped (FOR UPDATE SKIP LOCKED), and a row claimed meanwhile is re-checked once locked, so concurrent claims never get the same org within one
// interval. It returns their IDs, possibly none. Record writes never
// touch these columns; SwitchWrapping makes the org due at once. Invalid
// if owner is empty, interval is not positive or limit is below 1.
func (s *Store) ClaimProbes(ctx context.Context, owner string, now time.Time, interval time.Duration, limit int) ([]string, error) {
	const op = "claim probes"
	switch {
	case owner == "":
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "owner", Reason: "probe owner is empty"}
	case interval <= 0:
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "interval", Reason: "probe interval must be positive"}
	case limit < 1:
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "probe batch must be at least 1"}
	}
	var ids []string
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `UPDATE cmk_orgs SET probe_due_at = $1, probe_owner = $2
			WHERE org_id IN (SELECT org_id FROM cmk_orgs
				WHERE state IN ('active', 'revoked', 'lost') AND (probe_due_at IS NULL OR probe_due_at <= $3)
				ORDER BY probe_due_at NULLS FIRST, org_id LIMIT $4
				FOR UPDATE SKIP LOCKED)
			RETURNING org_id`, timeArg(now.Add(interval)), owner, timeArg(now), limit)
		if err != nil {
			return classify(ctx, op, "CMK probes", err)
		}
		ids, err = collect(rows, func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
		return classify(ctx, op, "CMK probes", err)
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// ReleaseProbes implements [cmk.Store].
func (s *Store) ReleaseProbes(ctx context.Context, owner string, orgIDs []string, now time.Time) error {
	const op = "release probes"
	if owner == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "owner", Reason: "probe owner is empty"}
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		if len(orgIDs) == 0 {
			_, err = tx.ExecContext(ctx, `UPDATE cmk_orgs SET probe_due_at = $1
				WHERE probe_owner = $2 AND probe_due_at > $1`, timeArg(now), owner)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE cmk_orgs SET probe_due_at = $1
				WHERE org_id = ANY($2) AND probe_owner = $3 AND probe_due_at > $1`, timeArg(now), orgIDs, owner)
		}
		return classify(ctx, op, "CMK probes", err)
	})
}
