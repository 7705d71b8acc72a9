package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
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

	sqlite3 "modernc.org/sqlite/lib"
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
	return putRecord(ctx, tx, op, r)
}

// putRecord is putCMK for an org known to exist (read in tx already).
func putRecord(ctx context.Context, tx *sql.Tx, op string, r cmk.Record) error {
	args := []any{r.OrgID, string(r.State), r.TenantID, nullTimeArg(r.ConsentedAt), r.ConsentedBy, r.VaultURI, r.KeyName, r.KeyVersion, r.KeyURI,
		r.ActiveKeyURI, r.ActiveVersion, r.ReasonCode, r.Reason, nullTimeArg(r.RecoverableUntil), nullTimeArg(r.RevokedSince),
		nullTimeArg(r.LastProbeAt), r.LastProbeError, r.Degraded, nullTimeArg(r.UpdatedAt),
		nullTimeArg(r.PurgeSuspectedSince), r.PurgeChecks, r.Warning, nullTimeArg(r.DataLostAt)}
	stale := &fault.Error{Kind: fault.Conflict, Op: op, Resource: cmkRes(r.OrgID), Reason: "the customer managed key settings changed meanwhile; reload and try again", Err: cmk.ErrStale}
	if r.Revision == 0 {
		// A first record: it must not exist yet.
		_, err := tx.ExecContext(ctx, `INSERT INTO cmk_orgs (`+cmkColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`, args...)
		if err != nil && fault.KindOf(classify(ctx, op, cmkRes(r.OrgID), err)) == fault.Conflict {
			return stale
		}
		if err != nil {
			return classify(ctx, op, cmkRes(r.OrgID), err)
		}
		return bumpFor(ctx, tx, op, r)
	}
	res, err := tx.ExecContext(ctx, `UPDATE cmk_orgs SET state = ?, tenant_id = ?,
			consented_at = ?, consented_by = ?, vault_uri = ?, key_name = ?, key_version = ?, key_uri = ?,
			active_key_uri = ?, active_version = ?, reason_code = ?, reason = ?, recoverable_until = ?,
			revoked_since = ?, last_probe_at = ?, last_probe_error = ?, degraded = ?, updated_at = ?,
			purge_suspected_since = ?, purge_checks = ?, warning = ?, data_lost_at = ?,
			revision = revision + 1
		WHERE org_id = ? AND revision = ?`, append(args[1:], r.OrgID, r.Revision)...)
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
	r, err := scanCMK(s.stmts.getCMK.QueryRowContext(ctx, orgID))
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
		for i, st := range states {
			args[i] = string(st)
		}
		q += ` WHERE state IN (?` + strings.Repeat(`, ?`, len(states)-1) + `)`
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY org_id`, args...)
	if err != nil {
		return nil, classify(ctx, op, "CMK records", err)
	}
	rs, err := collect(rows, func(rows *sql.Rows) (cmk.Record, error) { return scanCMK(rows) })
	return rs, classify(ctx, op, "CMK records", err)
}

// GetCMKs returns the CMK records of orgIDs that have one, ordered by org
// ID, in one read (a probe round's page of orgs); an org without a record
// is left out.
func (s *Store) GetCMKs(ctx context.Context, orgIDs []string) ([]cmk.Record, error) {
	const op = "get CMK records"
	if len(orgIDs) == 0 {
		return nil, nil
	}
	ids, err := json.Marshal(orgIDs)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "CMK records", Err: err}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+cmkColumns+` FROM cmk_orgs WHERE org_id IN (SELECT value FROM json_each(?)) ORDER BY org_id`, string(ids))
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
		_, err := tx.ExecContext(ctx, `INSERT INTO cmk_consent_requests (state, org_id, actor, tenant_id, expires_at) VALUES (?, ?, ?, ?, ?)`,
			c.State, c.OrgID, c.Actor, c.TenantID, timeArg(c.ExpiresAt))
		return classify(ctx, op, "consent request of org "+c.OrgID, err)
	})
}

// TakeConsentRequest deletes and returns the request with state. NotFound
// if there is none, or if it expired (ExpiresAt is not after now); an
// expired request is deleted too. It also deletes every other request that
// expired before now.
func (s *Store) TakeConsentRequest(ctx context.Context, state string, now time.Time) (cmk.ConsentRequest, error) {
	const op = "take consent request"
	const res = "consent request"
	c := cmk.ConsentRequest{State: state}
	found := false
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT org_id, actor, tenant_id, expires_at FROM cmk_consent_requests WHERE state = ?`, state).
			Scan(&c.OrgID, &c.Actor, &c.TenantID, scanTime(&c.ExpiresAt))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return classify(ctx, op, res, err)
		}
		found = true
		_, err = tx.ExecContext(ctx, `DELETE FROM cmk_consent_requests WHERE state = ? OR expires_at <= ?`, state, timeArg(now))
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
	if job == nil { // else the job's row (its org's, by foreign key) was found
		if err := orgMissing(ctx, tx, op, orgID); err != nil {
			return 0, err
		}
	}
	res := "pending root key of org " + orgID
	if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = ? AND state = ?`, orgID, string(keys.WrappingPending)); err != nil {
		return 0, classify(ctx, op, res, err)
	}
	k := w.Wrapped.Key
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO root_keys (org_id, provider, key_id, key_version, ciphertext, state, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
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
// transaction, orgs in ID order. Each copy runs under its own savepoint,
// its job's fence checked there: one that fails with Conflict (a lost
// lease), NotFound or Invalid is rolled back alone and its error is
// reported at its index; the others commit together. Any other error
// (Unavailable) stores none of them.
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
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		return eachJudged(ctx, tx, op, order, func(i int) error {
			c := steps[i]
			id, err := insertPending(ctx, tx, op, c.Job.OrgID, c.Wrapping, &c.Job)
			if err != nil {
				id = 0
			}
			out[i] = cmk.Copied{ID: id, Err: err}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
	res := fmt.Sprintf("pending root key %d of org %s", id, orgID)
	// The others dropped first (one active wrapping per org), then the
	// copy made active; if id is not a pending wrapping of the org, the
	// caller's rollback (of the transaction, or of the switch's savepoint)
	// restores what was dropped.
	if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = ? AND id <> ?`, orgID, id); err != nil {
		return classify(ctx, op, "root keys of org "+orgID, err)
	}
	r, err := tx.ExecContext(ctx, `UPDATE root_keys SET state = ? WHERE id = ? AND org_id = ? AND state = ?`, string(keys.WrappingActive), id, orgID, string(keys.WrappingPending))
	if err != nil {
		return classify(ctx, op, res, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return classify(ctx, op, res, err)
	} else if n == 0 {
		if err := orgMissing(ctx, tx, op, orgID); err != nil {
			return err
		}
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: res}
	}
	// Another key wraps the root key (not a new version of the same key,
	// which the job has just verified): the org's master key changes, and
	// it is probed at once. A new version leaves both rows as they are.
	r, err = tx.ExecContext(ctx, `UPDATE orgs SET master_provider = ?, master_key_id = ? WHERE id = ? AND (master_provider <> ? OR master_key_id <> ?)`,
		master.Provider, master.ID, orgID, master.Provider, master.ID)
	if err != nil {
		return classify(ctx, op, orgRes(orgID), err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return classify(ctx, op, orgRes(orgID), err)
	} else if n > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE cmk_orgs SET probe_due_at = NULL WHERE org_id = ?`, orgID); err != nil {
			return classify(ctx, op, cmkRes(orgID), err)
		}
	}
	if err := putRecord(ctx, tx, op, rec); err != nil { // the org's wrapping was found above
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
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		return eachJudged(ctx, tx, op, order, func(i int) error {
			err := s.switchWrapping(ctx, tx, op, checked[i])
			out[i] = err
			return err
		})
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
	j, err := scanJob(q.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM cmk_jobs WHERE id = ?`, id))
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
	// The org exists and has no open job: one read.
	var exists, open bool
	err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM orgs WHERE id = ?), EXISTS (SELECT 1 FROM cmk_jobs WHERE org_id = ? AND state IN (?, ?))`,
		j.OrgID, j.OrgID, string(cmk.JobPending), string(cmk.JobRunning)).Scan(&exists, &open)
	switch {
	case err != nil:
		return cmk.Job{}, classify(ctx, op, "CMK jobs of org "+j.OrgID, err)
	case !exists:
		return cmk.Job{}, classify(ctx, op, orgRes(j.OrgID), sql.ErrNoRows)
	case open:
		return cmk.Job{}, jobRunning(op, j.OrgID, nil)
	}
	stored, err := scanJob(tx.QueryRowContext(ctx, `INSERT INTO cmk_jobs (org_id, kind, target, step, state, attempts, error, owner, lease_until, not_before, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, 0, ?, '', NULL, ?, ?, ?) RETURNING `+jobColumns,
		j.OrgID, string(j.Kind), j.Target, j.Step, string(cmk.JobPending), j.Error, nullTimeArg(j.NotBefore), timeArg(j.CreatedAt), timeArg(j.UpdatedAt)))
	if sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE { // the one-open-job index: cannot happen after the check, kept as the guarantee
		return cmk.Job{}, jobRunning(op, j.OrgID, err)
	}
	if err != nil {
		return cmk.Job{}, classify(ctx, op, "CMK job of org "+j.OrgID, err)
	}
	if err := putRecord(ctx, tx, op, rec); err != nil { // the org was read above
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
	// Orgs in ID order, as on PostgreSQL (where it avoids deadlocks).
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(checked[a].Job.OrgID, checked[b].Job.OrgID) })
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		return eachJudged(ctx, tx, op, order, func(i int) error {
			st := checked[i]
			j, err := s.startJob(ctx, tx, op, st.Job, st.Record, st.Event)
			out[i] = cmk.JobStarted{Job: j, Err: err}
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetJob returns the job, or NotFound.
func (s *Store) GetJob(ctx context.Context, id int64) (cmk.Job, error) {
	return getJob(ctx, s.r, "get CMK job", id)
}

// OrgJob returns the org's latest job (the highest ID), or NotFound.
func (s *Store) OrgJob(ctx context.Context, orgID string) (cmk.Job, error) {
	const op = "get CMK job"
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM cmk_jobs WHERE org_id = ? ORDER BY id DESC LIMIT 1`, orgID))
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
	var j cmk.Job
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		var found sql.NullInt64
		err := tx.StmtContext(ctx, s.stmts.claimableJob).QueryRowContext(ctx, timeArg(now)).Scan(&found)
		if err != nil {
			return classify(ctx, op, "CMK jobs", err)
		}
		if !found.Valid {
			return &fault.Error{Kind: fault.NotFound, Op: op, Resource: "claimable CMK job", Reason: "no CMK job is ready to run"}
		}
		id := found.Int64
		_, err = tx.ExecContext(ctx, `UPDATE cmk_jobs SET state = ?, owner = ?, lease_until = ?, attempts = attempts + 1, fence = fence + 1, updated_at = ? WHERE id = ?`,
			string(cmk.JobRunning), owner, timeArg(now.Add(lease)), timeArg(now), id)
		if err != nil {
			return classify(ctx, op, jobRes(id), err)
		}
		j, err = getJob(ctx, tx, op, id)
		return err
	})
	if err != nil {
		return cmk.Job{}, err
	}
	return j, nil
}

// qClaimJobs leases up to ?4 claimable jobs in one statement, each branch
// walking the (state, id) index like qClaimableJob.
const qClaimJobs = `UPDATE cmk_jobs SET state = 'running', owner = ?2, lease_until = ?3, attempts = attempts + 1, fence = fence + 1, updated_at = ?1
	WHERE id IN (SELECT id FROM (
		SELECT id FROM (SELECT id FROM cmk_jobs INDEXED BY cmk_jobs_state_id
			WHERE state = 'pending' AND (not_before IS NULL OR not_before <= ?1) ORDER BY id LIMIT ?4)
		UNION ALL
		SELECT id FROM (SELECT id FROM cmk_jobs INDEXED BY cmk_jobs_state_id
			WHERE state = 'running' AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY id LIMIT ?4))
		ORDER BY id LIMIT ?4)
	RETURNING ` + jobColumns

// ClaimJobs is [Store.ClaimJob] for up to n jobs, oldest first, in one
// transaction: each is leased to owner under its own raised fence. None
// claimable is an empty result. Invalid if owner is empty, lease is not
// positive or n is below 1.
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
	var js []cmk.Job
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.StmtContext(ctx, s.stmts.claimJobs).QueryContext(ctx, timeArg(now), owner, timeArg(now.Add(lease)), n)
		if err != nil {
			return classify(ctx, op, "CMK jobs", err)
		}
		js, err = collect(rows, func(rows *sql.Rows) (cmk.Job, error) { return scanJob(rows) })
		return classify(ctx, op, "CMK jobs", err)
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(js, func(a, b cmk.Job) int { return cmp.Compare(a.ID, b.ID) })
	return js, nil
}

// updateJob stores j's Step, State, Error, NotBefore, LeaseUntil and (when
// not zero) UpdatedAt if j.Owner holds the job: it is running under
// j.Owner and j.Fence (the fencing token of j.Owner's claim). It returns the job's org. NotFound if the job does not exist,
// Conflict if another owner took it over or it is no longer running.
func updateJob(ctx context.Context, tx *sql.Tx, op string, j cmk.Job) (orgID string, err error) {
	err = tx.QueryRowContext(ctx, `UPDATE cmk_jobs SET step = ?, state = ?, error = ?, not_before = ?, lease_until = ?, updated_at = COALESCE(?, updated_at)
		WHERE id = ? AND owner = ? AND fence = ? AND state = ? RETURNING org_id`,
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
			if _, err := tx.ExecContext(ctx, `DELETE FROM root_keys WHERE org_id = ? AND state = ?`, orgID, string(keys.WrappingPending)); err != nil {
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
		res, err := tx.ExecContext(ctx, `UPDATE cmk_jobs SET lease_until = ? WHERE id = ? AND owner = ? AND fence = ? AND state = ?`,
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
	err = tx.QueryRowContext(ctx, `UPDATE cmk_jobs SET step = ?, updated_at = COALESCE(?, updated_at)
		WHERE id = ? AND owner = ? AND fence = ? AND state = ? RETURNING org_id`,
		j.Step, nullTimeArg(j.UpdatedAt), j.ID, j.Owner, j.Fence, string(cmk.JobRunning)).Scan(&orgID)
	if !errors.Is(err, sql.ErrNoRows) {
		return orgID, classify(ctx, op, jobRes(j.ID), err)
	}
	return "", jobLost(ctx, tx, op, j)
}

// ClaimProbes leases up to limit orgs due for a probe to owner: orgs in
// state active, revoked or lost whose probe_due_at is NULL or not after
// now. It moves their probe_due_at to now+interval and sets probe_owner,
// in one write transaction (SQLite has one writer), so concurrent claims never get the same org within one
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
		rows, err := tx.QueryContext(ctx, `UPDATE cmk_orgs SET probe_due_at = ?, probe_owner = ?
			WHERE org_id IN (SELECT org_id FROM cmk_orgs
				WHERE state IN ('active', 'revoked', 'lost') AND (probe_due_at IS NULL OR probe_due_at <= ?)
				ORDER BY probe_due_at NULLS FIRST, org_id LIMIT ?)
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
		if len(orgIDs) == 0 {
			_, err := tx.ExecContext(ctx, `UPDATE cmk_orgs SET probe_due_at = ?
				WHERE probe_owner = ? AND probe_due_at > ?`, timeArg(now), owner, timeArg(now))
			return classify(ctx, op, "CMK probes", err)
		}
		for _, id := range orgIDs {
			if _, err := tx.ExecContext(ctx, `UPDATE cmk_orgs SET probe_due_at = ?
				WHERE org_id = ? AND probe_owner = ? AND probe_due_at > ?`, timeArg(now), id, owner, timeArg(now)); err != nil {
				return classify(ctx, op, "CMK probes", err)
			}
		}
		return nil
	})
}
