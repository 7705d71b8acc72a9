package postgres

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// Set-based StartJobs: a batch of starts in a handful of statements
// instead of about ten round trips per org. Each statement takes the rows
// of every start as one JSON array (jsonb_to_recordset).
const (
	qLockOrgs = `SELECT id FROM orgs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`
	qOpenJobs = `SELECT org_id FROM cmk_jobs WHERE org_id = ANY($1) AND state IN ('pending', 'running')`
	qPutCMKs  = `UPDATE cmk_orgs c SET state = u.state, tenant_id = u.tenant_id,
			consented_at = u.consented_at, consented_by = u.consented_by, vault_uri = u.vault_uri, key_name = u.key_name,
			key_version = u.key_version, key_uri = u.key_uri, active_key_uri = u.active_key_uri, active_version = u.active_version,
			reason_code = u.reason_code, reason = u.reason, recoverable_until = u.recoverable_until, revoked_since = u.revoked_since,
			last_probe_at = u.last_probe_at, last_probe_error = u.last_probe_error, degraded = u.degraded, updated_at = u.updated_at,
			purge_suspected_since = u.purge_suspected_since, purge_checks = u.purge_checks, warning = u.warning, data_lost_at = u.data_lost_at,
			revision = c.revision + 1
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, state text, tenant_id text, consented_at timestamptz, consented_by text,
			vault_uri text, key_name text, key_version text, key_uri text, active_key_uri text, active_version text, reason_code text,
			reason text, recoverable_until timestamptz, revoked_since timestamptz, last_probe_at timestamptz, last_probe_error text,
			degraded boolean, updated_at timestamptz, purge_suspected_since timestamptz, purge_checks bigint, warning text,
			data_lost_at timestamptz, revision bigint)
		WHERE c.org_id = u.org_id AND c.revision = u.revision AND c.org_id = ANY(` + orgsOfRows + `)
		RETURNING c.org_id`
	qInsertJobs = `INSERT INTO cmk_jobs (org_id, kind, target, step, state, attempts, error, owner, lease_until, not_before, created_at, updated_at)
		SELECT org_id, kind, target, step, 'pending', 0, error, '', NULL, not_before, created_at, updated_at
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, kind text, target text, step text, error text,
			not_before timestamptz, created_at timestamptz, updated_at timestamptz)
		RETURNING ` + jobColumns
	// qLockHeads locks (creating at seq 0) the chain heads of the orgs, in
	// the order given (org ID order), as appendAudit does for one.
	qLockHeads = `INSERT INTO audit_heads (org_id, seq, hash) SELECT o, 0, '' FROM unnest($1::text[]) WITH ORDINALITY AS t(o, n) ORDER BY n
		ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq RETURNING org_id, seq, hash`
	qInsertEvents = `INSERT INTO audit_events (org_id, seq, time, actor, action, target, details, prev_hash, hash)
		SELECT org_id, seq, time, actor, action, target, details, prev_hash, hash
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, seq bigint, time timestamptz, actor text, action text, target text,
			details text, prev_hash text, hash text)`
	qMoveHeads = `UPDATE audit_heads h SET seq = u.seq, hash = u.hash
		FROM jsonb_to_recordset($1::jsonb) AS u(org_id text, seq bigint, hash text) WHERE h.org_id = u.org_id AND h.org_id = ANY(` + orgsOfRows + `)`
)

// orgsOfRows and idsOfRows are the org_id and id fields of the JSON rows
// of $1, as an array the statements that join a table with
// jsonb_to_recordset also compare the table's key with. The planner
// guesses 100 rows for jsonb_to_recordset and so read the whole table (a
// sequential scan of 10,000 cmk_orgs for a group of 30 switches, 10 ms
// instead of 1 ms); an array computed once (an InitPlan) lets it use the
// key's index.
const (
	orgsOfRows = `ARRAY(SELECT jsonb_array_elements($1::jsonb)->>'org_id')`
	idsOfRows  = `ARRAY(SELECT (jsonb_array_elements($1::jsonb)->>'id')::bigint)`
)

// jsonTime is a time for jsonb_to_recordset: NULL when zero.
func jsonTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return timeArg(t).Format(time.RFC3339Nano)
}

// cmkRow is record r as a row of qPutCMKs.
func cmkRow(r cmk.Record) map[string]any {
	return map[string]any{"org_id": r.OrgID, "state": string(r.State), "tenant_id": r.TenantID, "consented_at": jsonTime(r.ConsentedAt),
		"consented_by": r.ConsentedBy, "vault_uri": r.VaultURI, "key_name": r.KeyName, "key_version": r.KeyVersion, "key_uri": r.KeyURI,
		"active_key_uri": r.ActiveKeyURI, "active_version": r.ActiveVersion, "reason_code": r.ReasonCode, "reason": r.Reason,
		"recoverable_until": jsonTime(r.RecoverableUntil), "revoked_since": jsonTime(r.RevokedSince), "last_probe_at": jsonTime(r.LastProbeAt),
		"last_probe_error": r.LastProbeError, "degraded": r.Degraded, "updated_at": jsonTime(r.UpdatedAt),
		"purge_suspected_since": jsonTime(r.PurgeSuspectedSince), "purge_checks": r.PurgeChecks, "warning": r.Warning,
		"data_lost_at": jsonTime(r.DataLostAt), "revision": r.Revision}
}

// jsonArg is rows as a JSON array of objects, the argument of a
// set-based statement (jsonb_to_recordset). The values the statements
// pass (strings, integers, booleans, nil, byte slices) are written
// directly, as encoding/json would write them (byte slices in standard
// base64, invalid UTF-8 as U+FFFD); any other value goes through
// encoding/json. json.Marshal of the maps was a third of the client's
// time in the set-based switches of a mass re-wrap.
func jsonArg(rows []map[string]any) (string, error) {
	b := make([]byte, 0, 64+len(rows)*256)
	b = append(b, '[')
	for i, row := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		first := true
		for k, v := range row {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSONValue(b, v); err != nil {
				return "", err
			}
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	return string(b), nil
}

// appendJSONValue appends v as JSON.
func appendJSONValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case []byte:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '"')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, '"'), nil
	default:
		m, err := json.Marshal(v)
		return append(b, m...), err
	}
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

// startJobsSet starts the jobs of starts (checked, one per org, in org ID
// order, each record at a revision above 0 and without a generation bump)
// in tx, set-based, with StartJob's rules per org. It returns each start's
// outcome; an error return fails the whole transaction.
func (s *Store) startJobsSet(ctx context.Context, tx *sql.Tx, op string, starts []cmk.JobStart) ([]cmk.JobStarted, error) {
	out := make([]cmk.JobStarted, len(starts))
	orgs := make([]string, len(starts))
	for i, st := range starts {
		orgs[i] = st.Job.OrgID
	}
	query := func(q string, args ...any) (*sql.Rows, error) {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, classify(ctx, op, "CMK jobs", err)
		}
		return rows, nil
	}
	strs := func(rows *sql.Rows) (map[string]bool, error) {
		got, err := collect(rows, func(rows *sql.Rows) (string, error) {
			var v string
			return v, rows.Scan(&v)
		})
		m := make(map[string]bool, len(got))
		for _, v := range got {
			m[v] = true
		}
		return m, classify(ctx, op, "CMK jobs", err)
	}
	// The orgs, locked as lockOrg locks one.
	rows, err := query(qLockOrgs, orgs)
	if err != nil {
		return nil, err
	}
	exists, err := strs(rows)
	if err != nil {
		return nil, err
	}
	rows, err = query(qOpenJobs, orgs)
	if err != nil {
		return nil, err
	}
	open, err := strs(rows)
	if err != nil {
		return nil, err
	}
	var recs []map[string]any
	for i, st := range starts {
		org := st.Job.OrgID
		switch {
		case !exists[org]:
			out[i].Err = classify(ctx, op, orgRes(org), sql.ErrNoRows)
			continue
		case open[org]:
			out[i].Err = jobRunning(op, org, nil)
			continue
		}
		recs = append(recs, cmkRow(st.Record))
	}
	if len(recs) == 0 {
		return out, nil
	}
	arg, err := jsonArg(recs)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "CMK records", Err: err}
	}
	rows, err = query(qPutCMKs, arg)
	if err != nil {
		return nil, err
	}
	stored, err := strs(rows)
	if err != nil {
		return nil, err
	}
	var jobs []map[string]any
	var heads []string
	for i, st := range starts {
		org := st.Job.OrgID
		if out[i].Err != nil {
			continue
		}
		if !stored[org] {
			out[i].Err = &fault.Error{Kind: fault.Conflict, Op: op, Resource: cmkRes(org), Reason: "the customer managed key settings changed meanwhile; reload and try again", Err: cmk.ErrStale}
			continue
		}
		j := st.Job
		jobs = append(jobs, map[string]any{"org_id": org, "kind": string(j.Kind), "target": j.Target, "step": j.Step, "error": j.Error,
			"not_before": jsonTime(j.NotBefore), "created_at": jsonTime(j.CreatedAt), "updated_at": jsonTime(j.UpdatedAt)})
		heads = append(heads, org)
	}
	if len(jobs) == 0 {
		return out, nil
	}
	if arg, err = jsonArg(jobs); err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "CMK jobs", Err: err}
	}
	rows, err = query(qInsertJobs, arg)
	if err != nil {
		return nil, err
	}
	made, err := collect(rows, func(rows *sql.Rows) (cmk.Job, error) { return scanJob(rows) })
	if err != nil {
		return nil, classify(ctx, op, "CMK jobs", err)
	}
	byOrg := make(map[string]cmk.Job, len(made))
	for _, j := range made {
		byOrg[j.OrgID] = j
	}
	// The audit events, chained to each org's locked head.
	rows, err = query(qLockHeads, heads)
	if err != nil {
		return nil, err
	}
	prevs, err := collect(rows, func(rows *sql.Rows) (audit.Event, error) {
		var e audit.Event
		return e, rows.Scan(&e.OrgID, &e.Seq, &e.Hash)
	})
	if err != nil {
		return nil, classify(ctx, op, "audit logs", err)
	}
	prev := make(map[string]audit.Event, len(prevs))
	for _, e := range prevs {
		prev[e.OrgID] = audit.Event{Seq: e.Seq, Hash: e.Hash}
	}
	var evs, moved []map[string]any
	for i, st := range starts {
		j, ok := byOrg[st.Job.OrgID]
		if out[i].Err != nil || !ok {
			continue
		}
		ev := audit.Chain(prev[st.Job.OrgID], st.Event)
		details, err := detailsArg(ev.Details)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "audit log of org " + ev.OrgID, Err: err}
		}
		evs = append(evs, map[string]any{"org_id": ev.OrgID, "seq": ev.Seq, "time": jsonTime(ev.Time), "actor": ev.Actor, "action": ev.Action,
			"target": ev.Target, "details": details, "prev_hash": ev.PrevHash, "hash": ev.Hash})
		moved = append(moved, map[string]any{"org_id": ev.OrgID, "seq": ev.Seq, "hash": ev.Hash})
		out[i].Job = j
		if err := s.enqueueNotification(ctx, tx, op, ev); err != nil { // none for a rotation's start today
			return nil, err
		}
	}
	for _, q := range []struct {
		sql  string
		rows []map[string]any
	}{{qInsertEvents, evs}, {qMoveHeads, moved}} {
		arg, err := jsonArg(q.rows)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Internal, Op: op, Resource: "audit logs", Err: err}
		}
		if _, err := tx.ExecContext(ctx, q.sql, arg); err != nil {
			return nil, classify(ctx, op, "audit logs", err)
		}
	}
	return out, nil
}
