package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/orgkms/orgkms/internal/config"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
)

// auditOf returns every audit event of org.
func auditOf(t *testing.T, c *client.Client, org string) []client.AuditEvent {
	t.Helper()
	evs, err := c.Audit(t.Context(), org, 0, 1000)
	if err != nil {
		t.Fatalf("Audit(%s) = %v", org, err)
	}
	return evs
}

// TestLifecycleRoutesBadInput: every malformed request to the deletion and
// data-key lifecycle routes is a 4xx with a stable code and a field or
// message that says what to do; none of them changes anything or appends
// an audit event.
func TestLifecycleRoutesBadInput(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	opTok := ts.token("ops", "", auth.RoleOperator)
	op := ts.client(opTok)
	for _, id := range []string{"acme", "globex"} {
		if _, err := op.CreateOrg(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.CreateKey(ctx, "acme", "extra"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateKey(ctx, "acme", "off"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.DisableKey(ctx, "acme", "off"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateKey(ctx, "acme", "doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.DeleteKey(ctx, "acme", "doomed", 0); err != nil {
		t.Fatal(err)
	}
	ka := ts.token("ka", "acme", auth.RoleKeyAdmin)
	before, beforeGlobex := len(auditOf(t, op, "acme")), len(auditOf(t, op, "globex"))

	const key, org = "/v1/orgs/acme/keys/extra", "/v1/orgs/acme"
	huge := `{"waiting_days":7,"x":"` + strings.Repeat("a", 9<<20) + `"}`
	for _, c := range []struct {
		name, method, path, tok, body string
		status                        int
		code, field, says             string
	}{
		{"days as a string", "DELETE", key, ka, `{"waiting_days":"7"}`, 400, "invalid_argument", "waiting_days", "whole number of days"},
		{"fractional days", "DELETE", key, ka, `{"waiting_days":7.5}`, 400, "invalid_argument", "waiting_days", "whole number of days"},
		{"negative days", "DELETE", key, ka, `{"waiting_days":-1}`, 400, "invalid_argument", "waiting_days", "between 7 and 30"},
		{"exponent days", "DELETE", key, ka, `{"waiting_days":1e9}`, 400, "invalid_argument", "waiting_days", "whole number of days"},
		{"huge days", "DELETE", key, ka, `{"waiting_days":1e30}`, 400, "invalid_argument", "waiting_days", "whole number of days"},
		{"null days", "DELETE", key, ka, `{"waiting_days":null}`, 400, "invalid_argument", "waiting_days", "whole number of days"},
		{"zero days in the body", "DELETE", key, ka, `{"waiting_days":0}`, 400, "invalid_argument", "waiting_days", "between 7 and 30"},
		{"too many days", "DELETE", org, opTok, `{"waiting_days":31}`, 400, "invalid_argument", "waiting_days", "between 7 and 30"},
		{"null body", "DELETE", key, ka, `null`, 400, "invalid_argument", "body", "JSON object"},
		{"array body", "DELETE", key, ka, `[7]`, 400, "invalid_argument", "body", "JSON object"},
		{"number body", "DELETE", org, opTok, `7`, 400, "invalid_argument", "body", "JSON object"},
		{"not JSON", "DELETE", org, opTok, `not json`, 400, "invalid_argument", "body", "JSON object"},
		{"truncated JSON", "DELETE", org, opTok, `{"waiting_days":`, 400, "invalid_argument", "", "truncated"},
		{"unknown field", "DELETE", key, ka, `{"waiting_days":7,"foo":1}`, 400, "invalid_argument", "", `unknown field "foo"`},
		{"huge body", "DELETE", key, ka, huge, 413, "payload_too_large", "", "8 MiB"},
		{"query and body disagree", "DELETE", key + "?waiting_days=8", ka, `{"waiting_days":9}`, 400, "invalid_argument", "waiting_days", "given twice"},
		{"repeated query", "DELETE", key + "?waiting_days=7&waiting_days=9", ka, ``, 400, "invalid_argument", "waiting_days", "more than once"},
		{"empty query", "DELETE", org + "?waiting_days=", opTok, ``, 400, "invalid_argument", "waiting_days", "is empty"},
		{"zero query", "DELETE", org + "?waiting_days=0", opTok, ``, 400, "invalid_argument", "waiting_days", "between 7 and 30"},
		{"overflowing query", "DELETE", key + "?waiting_days=99999999999999999999", ka, ``, 400, "invalid_argument", "waiting_days", "whole number"},
		{"misspelt query", "DELETE", key + "?waiting_day=30", ka, ``, 400, "invalid_argument", "waiting_day", "only waiting_days"},
		{"unknown query on org", "DELETE", org + "?force=1", opTok, ``, 400, "invalid_argument", "force", "only waiting_days"},
		{"body on disable", "POST", key + "/disable", ka, `{"waiting_days":7}`, 400, "invalid_argument", "", "takes no request body"},
		{"garbage on enable", "POST", "/v1/orgs/acme/keys/off/enable", ka, `garbage`, 400, "invalid_argument", "", "takes no request body"},
		{"array on cancel", "POST", "/v1/orgs/acme/keys/doomed/cancel-deletion", ka, `[]`, 400, "invalid_argument", "", "takes no request body"},
		{"body on org cancel", "POST", org + "/cancel-deletion", opTok, `{"now":true}`, 400, "invalid_argument", "", "takes no request body"},
		{"query on disable", "POST", key + "/disable?force=1", ka, ``, 400, "invalid_argument", "force", "no query parameters"},
		{"huge body on disable", "POST", key + "/disable", ka, huge, 413, "payload_too_large", "", "8 MiB"},
		{"path traversal key", "POST", "/v1/orgs/acme/keys/..%2f..%2fglobex/disable", ka, ``, 404, "not_found", "", "not found"},
		{"unicode key", "DELETE", "/v1/orgs/acme/keys/%C3%A9t%C3%A9", ka, ``, 404, "not_found", "", "not found"},
		{"very long key", "POST", "/v1/orgs/acme/keys/" + strings.Repeat("k", 5000) + "/enable", ka, ``, 404, "not_found", "", "not found"},
		{"no such key", "POST", "/v1/orgs/acme/keys/nokey/cancel-deletion", ka, ``, 404, "not_found", "", "not found"},
		{"disable a disabled key", "POST", "/v1/orgs/acme/keys/off/disable", ka, ``, 409, "conflict", "", "enable it"},
		{"enable an enabled key", "POST", key + "/enable", ka, `{}`, 409, "conflict", "", "enabled already"},
		{"cancel an enabled key", "POST", key + "/cancel-deletion", ka, ``, 409, "conflict", "", "nothing to cancel"},
		{"disable a doomed key", "POST", "/v1/orgs/acme/keys/doomed/disable", ka, ``, 409, "conflict", "", "cancel the deletion first"},
		{"delete a doomed key", "DELETE", "/v1/orgs/acme/keys/doomed", ka, ``, 409, "conflict", "", "cancel the deletion first"},
		{"cancel an active org", "POST", org + "/cancel-deletion", opTok, ``, 409, "conflict", "", "nothing to cancel"},
		{"another org's key", "POST", "/v1/orgs/globex/keys/default/disable", ka, ``, 403, "permission_denied", "", "limited to org acme"},
		{"a missing org's key", "POST", "/v1/orgs/nosuch/keys/default/disable", ka, ``, 403, "permission_denied", "", "limited to org acme"},
		{"wrong method", "PUT", org + "/cancel-deletion", opTok, ``, 405, "method_not_allowed", "", "accepts POST"},
		{"wrong method on a key", "GET", key + "/disable", ka, ``, 405, "method_not_allowed", "", "accepts POST"},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, b := ts.raw(c.method, c.path, c.tok, c.body)
			code, msg := errorBody(t, b)
			if st != c.status || code != c.code || !strings.Contains(msg, c.says) {
				t.Fatalf("%s %.60s = %d %s %q, want %d %s saying %q", c.method, c.path, st, code, msg, c.status, c.code, c.says)
			}
			if c.field != "" && !strings.Contains(string(b), `"field":"`+c.field+`"`) {
				t.Errorf("%s %.60s: body %s does not name field %s", c.method, c.path, b, c.field)
			}
		})
	}
	// The 405 names what the path accepts.
	req := func(method, path string) string {
		resp, err := ts.srv.Client().Do(mustRequest(t, method, ts.url+path, opTok))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Allow")
	}
	if got := req("PATCH", org); got != "GET, HEAD, DELETE" {
		t.Errorf("PATCH %s: Allow = %q, want GET, HEAD, DELETE", org, got)
	}
	if after := auditOf(t, op, "acme"); len(after) != before {
		t.Errorf("refused calls appended %d audit events: %+v", len(after)-before, after[before:])
	}
	if after := auditOf(t, op, "globex"); len(after) != beforeGlobex {
		t.Errorf("calls refused on globex appended %d audit events to it: %+v", len(after)-beforeGlobex, after[beforeGlobex:])
	}
	for name, want := range map[string]string{"extra": "enabled", "off": "disabled", "doomed": "pending_deletion"} {
		k, err := op.GetKey(ctx, "acme", name)
		if err != nil || k.State != want {
			t.Errorf("key %s after refused calls: %+v, %v; want state %s", name, k, err, want)
		}
	}
	for _, id := range []string{"acme", "globex"} {
		o, err := op.GetOrg(ctx, id)
		if err != nil || o.State != "active" {
			t.Errorf("org %s after refused calls: %+v, %v; want active", id, o, err)
		}
	}
}

// TestLifecycleRoutesDeletedOrg: once an org is shredded, every lifecycle
// route answers 410 org_deleted (as the data plane does), not a conflict.
func TestLifecycleRoutesDeletedOrg(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	opTok := ts.token("ops", "", auth.RoleOperator)
	op := ts.client(opTok)
	if _, err := op.CreateOrg(ctx, "gone", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := op.DeleteOrg(ctx, "gone", 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(8 * 24 * time.Hour)
	runShreds(t, ts, clock, "gone")
	ka := ts.token("ka", "gone", auth.RoleKeyAdmin)
	before := len(auditOf(t, op, "gone"))
	for _, c := range []struct{ method, path, tok string }{
		{"DELETE", "/v1/orgs/gone", opTok},
		{"DELETE", "/v1/orgs/gone?waiting_days=30", opTok},
		{"POST", "/v1/orgs/gone/cancel-deletion", opTok},
		{"POST", "/v1/orgs/gone/keys/default/disable", ka},
		{"POST", "/v1/orgs/gone/keys/default/enable", ka},
		{"DELETE", "/v1/orgs/gone/keys/default", ka},
		{"POST", "/v1/orgs/gone/keys/default/cancel-deletion", ka},
		{"POST", "/v1/orgs/gone/keys/nokey/disable", opTok},
	} {
		st, b := ts.raw(c.method, c.path, c.tok, nil)
		if code, msg := errorBody(t, b); st != 410 || code != "org_deleted" {
			t.Errorf("%s %s = %d %s %q, want 410 org_deleted", c.method, c.path, st, code, msg)
		}
	}
	// Its keys read as deleted with it, not as enabled.
	ks, err := op.ListKeys(ctx, "gone")
	if err != nil || len(ks) == 0 {
		t.Fatalf("ListKeys(gone) = %+v, %v", ks, err)
	}
	for _, k := range ks {
		if k.State != "deleted" || k.DeletedAt == nil {
			t.Errorf("ListKeys(gone): key %s = %+v, want deleted with a deleted_at", k.Name, k)
		}
	}
	if k, err := op.GetKey(ctx, "gone", "default"); err != nil || k.State != "deleted" || k.DeletedAt == nil {
		t.Errorf("GetKey(gone, default) = %+v, %v; want deleted with a deleted_at", k, err)
	}
	if after := auditOf(t, op, "gone"); len(after) != before {
		t.Errorf("refused calls appended %d audit events: %+v", len(after)-before, after[before:])
	}
}

// TestLifecycleRoutesAudit: each lifecycle change appends one event naming
// the caller, the target and (for a deletion) its date and waiting period;
// no event carries a token secret.
func TestLifecycleRoutesAudit(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	opTok := ts.token("ops", "", auth.RoleOperator)
	op := ts.client(opTok)
	if _, err := op.CreateOrg(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateKey(ctx, "acme", "extra"); err != nil {
		t.Fatal(err)
	}
	kaTok := ts.token("alice", "acme", auth.RoleKeyAdmin)
	ka := ts.client(kaTok)
	before := len(auditOf(t, op, "acme"))
	steps := []struct {
		do     func() error
		action string
		actor  string
		target string
		days   string
	}{
		{func() error { _, err := ka.DisableKey(ctx, "acme", "extra"); return err }, "key.disable", "alice", "key/extra", ""},
		{func() error { _, err := ka.EnableKey(ctx, "acme", "extra"); return err }, "key.enable", "alice", "key/extra", ""},
		{func() error { _, err := ka.DeleteKey(ctx, "acme", "extra", 12); return err }, "key.deletion.schedule", "alice", "key/extra", "12"},
		{func() error { _, err := ka.CancelKeyDeletion(ctx, "acme", "extra"); return err }, "key.deletion.cancel", "alice", "key/extra", ""},
		{func() error { _, err := op.DeleteOrg(ctx, "acme", 0); return err }, "org.deletion.schedule", "ops", "org/acme", "7"},
		{func() error { _, err := op.CancelOrgDeletion(ctx, "acme"); return err }, "org.deletion.cancel", "ops", "org/acme", ""},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.action, err)
		}
	}
	evs := auditOf(t, op, "acme")[before:]
	if len(evs) != len(steps) {
		t.Fatalf("%d audit events for %d changes: %+v", len(evs), len(steps), evs)
	}
	for i, s := range steps {
		e := evs[i]
		if e.Action != s.action || e.Actor != s.actor || e.Target != s.target || e.Details["waiting_days"] != s.days {
			t.Errorf("event %d = %+v, want %s by %s on %s (waiting_days %q)", i, e, s.action, s.actor, s.target, s.days)
		}
		if s.days != "" && e.Details["deletion_date"] == "" {
			t.Errorf("event %d (%s) has no deletion_date: %+v", i, s.action, e)
		}
		for k, v := range e.Details {
			if strings.Contains(v, kaTok) || strings.Contains(v, opTok) {
				t.Errorf("event %d detail %s carries a token secret", i, k)
			}
		}
	}
}

func mustRequest(t *testing.T, method, url, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

// TestLifecycleWaitingDaysAccepted: the accepted spellings of the waiting
// period (body with spaces, query, both agreeing, {} for the default) each
// set the deletion date they say.
func TestLifecycleWaitingDaysAccepted(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	opTok := ts.token("ops", "", auth.RoleOperator)
	op := ts.client(opTok)
	if _, err := op.CreateOrg(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		query, body string
		days        int
	}{
		{"", `{ "waiting_days" : 14 }`, 14},
		{"?waiting_days=30", ``, 30},
		{"?waiting_days=10", `{"waiting_days":10}`, 10},
		{"", `{}`, 7},
	} {
		name := fmt.Sprintf("k%d", i)
		if _, err := op.CreateKey(ctx, "acme", name); err != nil {
			t.Fatal(err)
		}
		start := clock.Now()
		st, b := ts.raw("DELETE", "/v1/orgs/acme/keys/"+name+c.query, opTok, c.body)
		if st != http.StatusOK {
			t.Fatalf("DELETE %s%s %q = %d %s", name, c.query, c.body, st, b)
		}
		var k client.Key
		if err := json.Unmarshal(b, &k); err != nil || k.DeletionDate == nil {
			t.Fatalf("DELETE %s: body %s: %v", name, b, err)
		}
		if got := k.DeletionDate.Sub(start); got < time.Duration(c.days)*24*time.Hour-time.Hour || got > time.Duration(c.days)*24*time.Hour+time.Hour {
			t.Errorf("DELETE %s%s %q: deletion in %v, want %d days", name, c.query, c.body, got, c.days)
		}
	}
}

// TestUncleanPathsRefused: a path with an empty, . or .. segment is refused
// with 400, not redirected to its cleaned form: Go's client (and curl -L)
// follows a 307 with the same method and body, so DeleteKey(acme, "..")
// deleted org acme and CancelKeyDeletion(acme, "..") cancelled the org's
// deletion. Nothing changes and nothing is audited.
func TestUncleanPathsRefused(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, func(c *config.Config) { c.Orgs.SelfDelete = true })
	ctx := t.Context()
	opTok := ts.token("ops", "", auth.RoleOperator)
	op := ts.client(opTok)
	for _, id := range []string{"acme", "globex"} {
		if _, err := op.CreateOrg(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.DeleteOrg(ctx, "globex", 0); err != nil {
		t.Fatal(err)
	}
	owner := ts.client(ts.token("owner", "acme", auth.RoleAdmin, auth.RoleKeyAdmin))
	before := map[string]int{"acme": len(auditOf(t, op, "acme")), "globex": len(auditOf(t, op, "globex"))}
	for _, c := range []struct {
		name string
		do   func() error
	}{
		{"operator DeleteKey(acme, ..)", func() error { _, err := op.DeleteKey(ctx, "acme", "..", 0); return err }},
		{"owner DeleteKey(acme, ..)", func() error { _, err := owner.DeleteKey(ctx, "acme", "..", 30); return err }},
		{"operator CancelKeyDeletion(globex, ..)", func() error { _, err := op.CancelKeyDeletion(ctx, "globex", ".."); return err }},
		{"operator DisableKey(acme, .)", func() error { _, err := op.DisableKey(ctx, "acme", "."); return err }},
		{"operator DeleteKey(acme, empty)", func() error { _, err := op.DeleteKey(ctx, "acme", "", 0); return err }},
		{"operator CancelOrgDeletion(empty)", func() error { _, err := op.CancelOrgDeletion(ctx, ""); return err }},
	} {
		err := c.do()
		if !errors.Is(err, client.CodeInvalidArgument) && !errors.Is(err, client.CodeNotFound) && !errors.Is(err, client.CodeMethodNotAllowed) {
			t.Errorf("%s = %v, want invalid_argument (or not_found / method_not_allowed for a route that does not exist)", c.name, err)
		}
	}
	for _, p := range []string{"/v1/orgs/acme/keys/..", "/v1/orgs/acme/keys/./disable", "/v1/orgs//cancel-deletion", "/v1/orgs/acme/keys/default/../../../globex", "/v1/orgs/acme/keys/%2e%2E", "/v1/orgs/acme/keys/.%2e/cancel-deletion"} {
		st, b := ts.raw("DELETE", p, opTok, nil)
		if code, msg := errorBody(t, b); st != http.StatusBadRequest || code != "invalid_argument" || !strings.Contains(msg, "percent-encode") {
			t.Errorf("DELETE %s = %d %s %q, want 400 invalid_argument", p, st, code, msg)
		}
	}
	if o, err := op.GetOrg(ctx, "acme"); err != nil || o.State != "active" {
		t.Errorf("acme after the refused calls: %+v, %v; want active", o, err)
	}
	if o, err := op.GetOrg(ctx, "globex"); err != nil || o.State != "pending_deletion" {
		t.Errorf("globex after the refused calls: %+v, %v; want pending_deletion", o, err)
	}
	for org, n := range before {
		if after := auditOf(t, op, org); len(after) != n {
			t.Errorf("refused calls appended %d audit events to %s: %+v", len(after)-n, org, after[n:])
		}
	}
	// The console's own paths are the console's business.
	st, _ := ts.raw("GET", "/console/./", "", nil)
	if st == http.StatusBadRequest {
		t.Errorf("GET /console/./ = 400: the API's refusal reached the console")
	}
}

// TestLifecycleRoutesDeletedKey: once a data key is shredded, every
// lifecycle route of the key answers 410 key_deleted, and appends nothing.
func TestLifecycleRoutesDeletedKey(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	opTok := ts.token("ops", "", auth.RoleOperator)
	op := ts.client(opTok)
	if _, err := op.CreateOrg(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateKey(ctx, "acme", "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.DeleteKey(ctx, "acme", "old", 0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(8 * 24 * time.Hour)
	runShreds(t, ts, clock, "acme")
	ka := ts.token("ka", "acme", auth.RoleKeyAdmin)
	before := len(auditOf(t, op, "acme"))
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/orgs/acme/keys/old/disable"},
		{"POST", "/v1/orgs/acme/keys/old/enable"},
		{"DELETE", "/v1/orgs/acme/keys/old"},
		{"POST", "/v1/orgs/acme/keys/old/cancel-deletion"},
	} {
		st, b := ts.raw(c.method, c.path, ka, nil)
		if code, msg := errorBody(t, b); st != http.StatusGone || code != "key_deleted" {
			t.Errorf("%s %s = %d %s %q, want 410 key_deleted", c.method, c.path, st, code, msg)
		}
	}
	if after := auditOf(t, op, "acme"); len(after) != before {
		t.Errorf("refused calls appended %d audit events: %+v", len(after)-before, after[before:])
	}
}

// TestImpactEmptyKey: an empty key= is refused whatever the action (it was
// taken as no key on an org-wide action); the document says a key name has
// at least one character.
func TestImpactEmptyKey(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	owner := ts.token("owner", "acme", auth.RoleAdmin, auth.RoleKeyAdmin)
	for _, q := range []string{"?action=disable&key=", "?action=delete-key&key=", "?key=&action=revoke"} {
		st, b := ts.raw("GET", "/v1/orgs/acme/cmk/impact"+q, owner, nil)
		if code, msg := errorBody(t, b); st != http.StatusBadRequest || code != "invalid_argument" || !strings.Contains(string(b), `"field":"key"`) {
			t.Errorf("impact%s = %d %s %q, want 400 invalid_argument on key", q, st, code, msg)
		}
	}
}
