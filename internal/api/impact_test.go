package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
)

// impactFixture makes real calls: on acme's key default 3 encrypts and a
// decrypt by acme-svc, 2 encrypts by acme-batch on key billing, a decrypt
// by a globex token refused on acme; on globex, 5 encrypts that must never
// count for acme. The usage records are flushed.
func impactFixture(t *testing.T) *testServer {
	t.Helper()
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme", "globex")
	ctx := t.Context()
	if _, err := ts.keys.CreateDataKey(ctx, "test", "acme", "billing"); err != nil {
		t.Fatal(err)
	}
	svc := ts.client(ts.token("acme-svc", "acme", auth.RoleService))
	var ct []byte
	for i := range 3 {
		c, _, err := svc.Encrypt(ctx, "acme", "default", []byte("secret-plaintext"), nil)
		if err != nil {
			t.Fatalf("Encrypt %d: %v", i, err)
		}
		ct = c
	}
	if _, err := svc.Decrypt(ctx, "acme", "default", ct, nil); err != nil {
		t.Fatal(err)
	}
	batch := ts.client(ts.token("acme-batch", "acme", auth.RoleService))
	for range 2 {
		if _, _, err := batch.Encrypt(ctx, "acme", "billing", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	intruder := ts.client(ts.token("globex-secret-name", "globex", auth.RoleService))
	if _, err := intruder.Decrypt(ctx, "acme", "default", ct, nil); apiCode(err) != "permission_denied" {
		t.Fatalf("Decrypt by globex's token on acme = %v, want permission_denied", err)
	}
	for range 5 {
		if _, _, err := intruder.Encrypt(ctx, "globex", "default", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.keys.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	return ts
}

func impactKey(t *testing.T, im client.Impact, name string) client.ImpactKey {
	t.Helper()
	for _, k := range im.DataKeys {
		if k.Name == name {
			return k
		}
	}
	t.Fatalf("impact %s: no data key %s in %+v", im.Action, name, im.DataKeys)
	return client.ImpactKey{}
}

func callersOf(cs []client.ImpactCaller) map[string]int64 {
	m := map[string]int64{}
	for _, c := range cs {
		m[c.Principal] = c.Calls
	}
	return m
}

// TestImpactCounts: the preview counts the org's own calls per key, op and
// caller, what each step would refuse, and never another org's calls or
// token names.
func TestImpactCounts(t *testing.T) {
	ts := impactFixture(t)
	ctx := t.Context()
	admin := ts.client(ts.token("acme-owner", "acme", auth.RoleAdmin, auth.RoleKeyAdmin))

	im, err := admin.CMKImpact(ctx, "acme", "revoke", "")
	if err != nil {
		t.Fatal(err)
	}
	if im.Org != "acme" || im.Action != "revoke" || im.State != "platform" || !im.Possible || im.RefusedFrom != "now" {
		t.Errorf("revoke impact = %+v", im)
	}
	if im.Calls24h != 7 || im.Refused24h != 7 || im.RefusedCallers != 3 || len(im.DataKeys) != 2 {
		t.Errorf("revoke impact: calls %d, refused %d from %d callers, %d keys; want 7, 7, 3, 2", im.Calls24h, im.Refused24h, im.RefusedCallers, len(im.DataKeys))
	}
	def := impactKey(t, im, "default")
	if def.Calls24h != 5 || def.Encrypt24h != 3 || def.Decrypt24h != 2 || def.Versions != 1 || def.LastUse == nil {
		t.Errorf("key default = %+v, want 5 calls, 3 encrypts, 2 decrypts, 1 version, a last use", def)
	}
	if got := callersOf(def.Callers); len(got) != 2 || got["acme-svc"] != 4 || got["(token of another org)"] != 1 {
		t.Errorf("key default callers = %v, want acme-svc 4, (token of another org) 1", got)
	}
	if bill := impactKey(t, im, "billing"); bill.Calls24h != 2 || bill.Encrypt24h != 2 || callersOf(bill.Callers)["acme-batch"] != 2 {
		t.Errorf("key billing = %+v, want 2 encrypts by acme-batch", bill)
	}
	if got := callersOf(im.Callers); len(got) != 3 || got["acme-svc"] != 4 || got["acme-batch"] != 2 {
		t.Errorf("callers = %v", got)
	}
	if !strings.Contains(im.WhatBreaks, "org_revoked") || !strings.Contains(im.WhatBreaks, "7 calls from 3 callers") {
		t.Errorf("what_breaks = %q", im.WhatBreaks)
	}
	if im.Rewrap.Required || !im.FallbackPossible {
		t.Errorf("revoke on the platform key: rewrap %+v, fallback possible %v (%s)", im.Rewrap, im.FallbackPossible, im.FallbackReason)
	}

	// Decrypt-only refuses what produces ciphertext only.
	im, err = admin.CMKImpact(ctx, "acme", "decrypt-only", "")
	if err != nil {
		t.Fatal(err)
	}
	if im.Refused24h != 5 || im.RefusedCallers != 2 || impactKey(t, im, "default").Refused24h != 3 {
		t.Errorf("decrypt-only: refused %d from %d callers, want 5 from 2", im.Refused24h, im.RefusedCallers)
	}

	// A key action sees its key only.
	im, err = admin.CMKImpact(ctx, "acme", "disable-key", "billing")
	if err != nil {
		t.Fatal(err)
	}
	if len(im.DataKeys) != 1 || im.Key != "billing" || im.Calls24h != 2 || im.Refused24h != 2 || len(im.Callers) != 1 {
		t.Errorf("disable-key billing = %+v", im)
	}

	// Disable on the platform key: nothing to disable, nothing refused.
	im, err = admin.CMKImpact(ctx, "acme", "disable", "")
	if err != nil {
		t.Fatal(err)
	}
	if im.Possible || im.Blocked == "" || im.Refused24h != 0 || im.Calls24h != 7 {
		t.Errorf("disable on the platform key = %+v", im)
	}

	// A scheduled revocation: refusals start at its time.
	at := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	if _, err := admin.CMKScheduleRevocation(ctx, "acme", client.CMKRevocationRequest{At: at.Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	if im, err = admin.CMKImpact(ctx, "acme", "revoke", ""); err != nil || im.RefusedFrom != at.Format(time.RFC3339) || !strings.Contains(im.WhatBreaks, "from "+at.Format(time.RFC3339)) {
		t.Errorf("revoke with a scheduled revocation: refused_from %q, what_breaks %q (err %v); want %s", im.RefusedFrom, im.WhatBreaks, err, at.Format(time.RFC3339))
	}

	// Org deletion: the operator previews it; globex saw only its own.
	op := ts.client(ts.token("ops", "", auth.RoleOperator))
	if im, err = op.CMKImpact(ctx, "acme", "delete-org", ""); err != nil || im.Refused24h != 7 {
		t.Errorf("delete-org as operator = %+v, %v", im, err)
	}
	g, err := op.CMKImpact(ctx, "globex", "delete-org", "")
	if err != nil {
		t.Fatal(err)
	}
	if g.Calls24h != 5 || len(g.Callers) != 1 || g.Callers[0].Principal != "globex-secret-name" {
		t.Errorf("globex impact = %+v, want its own 5 calls only", g)
	}

	// The raw body never names another org's token.
	status, body := ts.raw("GET", "/v1/orgs/acme/cmk/impact?action=revoke", ts.token("acme-owner2", "acme", auth.RoleAdmin, auth.RoleKeyAdmin), nil)
	if status != http.StatusOK || strings.Contains(string(body), "globex") || strings.Contains(string(body), "secret-plaintext") {
		t.Errorf("impact body (%d) leaks another org or plaintext: %s", status, body)
	}
}

// TestImpactBadInput: every bad request is a 4xx with a stable code, and
// a caller without the previewed step's action is refused.
func TestImpactBadInput(t *testing.T) {
	ts := impactFixture(t)
	owner := ts.token("acme-owner", "acme", auth.RoleAdmin, auth.RoleKeyAdmin)
	op := ts.token("ops", "", auth.RoleOperator)
	tests := []struct {
		name, token, path string
		wantStatus        int
		wantCode, wantIn  string
	}{
		{"no action", owner, "/v1/orgs/acme/cmk/impact", 400, "invalid_argument", "disable, replace, fallback, decrypt-only, revoke, delete-org, disable-key, delete-key"},
		{"unknown action", owner, "/v1/orgs/acme/cmk/impact?action=explode", 400, "invalid_argument", "disable-key"},
		{"empty action", owner, "/v1/orgs/acme/cmk/impact?action=", 400, "invalid_argument", "action"},
		{"key action without key", owner, "/v1/orgs/acme/cmk/impact?action=delete-key", 400, "invalid_argument", "key"},
		{"key with org action", owner, "/v1/orgs/acme/cmk/impact?action=disable&key=default", 400, "invalid_argument", "key"},
		{"bad key name", owner, "/v1/orgs/acme/cmk/impact?action=delete-key&key=..%2F..", 400, "invalid_argument", "key"},
		{"unknown parameter", owner, "/v1/orgs/acme/cmk/impact?action=disable&since=2020-01-01T00:00:00Z", 400, "invalid_argument", "since"},
		{"action twice", owner, "/v1/orgs/acme/cmk/impact?action=disable&action=revoke", 400, "invalid_argument", "action"},
		{"unknown key", owner, "/v1/orgs/acme/cmk/impact?action=disable-key&key=nope", 404, "not_found", ""},
		{"unknown org", op, "/v1/orgs/initech/cmk/impact?action=delete-org", 404, "not_found", ""},
		{"other org's owner", ts.token("globex-owner", "globex", auth.RoleAdmin, auth.RoleKeyAdmin), "/v1/orgs/acme/cmk/impact?action=disable", 403, "permission_denied", ""},
		{"service token", ts.token("acme-svc2", "acme", auth.RoleService), "/v1/orgs/acme/cmk/impact?action=disable", 403, "permission_denied", ""},
		{"member", ts.token("acme-member", "acme", auth.RoleMember), "/v1/orgs/acme/cmk/impact?action=disable-key&key=default", 403, "permission_denied", ""},
		{"key admin alone on a CMK step", ts.token("acme-ka", "acme", auth.RoleKeyAdmin), "/v1/orgs/acme/cmk/impact?action=disable", 403, "permission_denied", "admin and key_admin"},
		{"admin alone on a key step", ts.token("acme-adm", "acme", auth.RoleAdmin), "/v1/orgs/acme/cmk/impact?action=delete-key&key=default", 403, "permission_denied", "key_admin"},
		{"operator on a CMK step", op, "/v1/orgs/acme/cmk/impact?action=revoke", 403, "permission_denied", ""},
		{"owner on org deletion", owner, "/v1/orgs/acme/cmk/impact?action=delete-org", 403, "permission_denied", "orgs.self_delete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.raw("GET", tt.path, tt.token, nil)
			if status != tt.wantStatus || !strings.Contains(string(body), `"code":"`+tt.wantCode+`"`) || !strings.Contains(string(body), tt.wantIn) {
				t.Errorf("GET %s = %d %s, want %d %s mentioning %q", tt.path, status, body, tt.wantStatus, tt.wantCode, tt.wantIn)
			}
		})
	}
	// Allowed: key admin alone previews a key step; the operator a key step.
	for _, tok := range []string{ts.token("acme-ka2", "acme", auth.RoleKeyAdmin), op} {
		if status, body := ts.raw("GET", "/v1/orgs/acme/cmk/impact?action=disable-key&key=default", tok, nil); status != http.StatusOK {
			t.Errorf("disable-key preview = %d %s, want 200", status, body)
		}
	}
}

// TestImpactLifecycle: with orgs.self_delete the org's admin and key_admin
// preview its deletion; a step taken already is not possible again, and
// the preview says why.
func TestImpactLifecycle(t *testing.T) {
	ts := startShredServer(t, &offsetClock{}, func(c *config.Config) { c.Orgs.SelfDelete = true })
	mustOrg(t, ts, "acme")
	ctx := t.Context()
	owner := ts.client(ts.token("boss", "acme", auth.RoleAdmin, auth.RoleKeyAdmin))
	im, err := owner.CMKImpact(ctx, "acme", "delete-org", "")
	if err != nil || !im.Possible || !strings.Contains(im.WhatBreaks, "org_pending_deletion") {
		t.Fatalf("delete-org preview as admin+key_admin with self_delete = %+v, %v", im, err)
	}
	if _, err := owner.DisableKey(ctx, "acme", "default"); err != nil {
		t.Fatal(err)
	}
	if im, err = owner.CMKImpact(ctx, "acme", "disable-key", "default"); err != nil || im.Possible || !strings.Contains(im.Blocked, "disabled already") {
		t.Errorf("disable-key of a disabled key = %+v, %v; want not possible", im, err)
	}
	if _, err := owner.DeleteOrg(ctx, "acme", 30); err != nil {
		t.Fatal(err)
	}
	if im, err = owner.CMKImpact(ctx, "acme", "delete-org", ""); err != nil || im.Possible || !strings.Contains(im.Blocked, "scheduled for deletion already") {
		t.Errorf("delete-org of an org pending deletion = %+v, %v; want not possible", im, err)
	}
}

// The client's list of actions is the server's.
func TestImpactActionsMatch(t *testing.T) {
	var server []string
	for _, a := range cmk.ImpactActions {
		server = append(server, string(a))
	}
	if !slices.Equal(server, client.ImpactActions) {
		t.Errorf("client.ImpactActions = %v, want cmk.ImpactActions %v", client.ImpactActions, server)
	}
}
