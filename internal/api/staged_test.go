package api_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// TestMain drops the package's PostgreSQL database at the end (pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }

// stagedClock is a settable clock for the staged revocation tests: a
// scheduled revocation fires when the test moves it, never on wall time.
type stagedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stagedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *stagedClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type stagedEnv struct {
	t     *testing.T
	s     *server.Server
	url   string
	clock *stagedClock
	tok   map[string]string
}

func startStaged(t *testing.T, cfg config.Config, opts server.Options) *stagedEnv {
	t.Helper()
	clock := &stagedClock{t: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}
	opts.Logger, opts.Migrate, opts.Now = slog.New(slog.DiscardHandler), true, clock.Now
	s, err := server.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	conf := newConformance(t)
	srv := httptest.NewServer(conf.wrap(s.Handler))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { conf.check(t) })
	e := &stagedEnv{t: t, s: s, url: srv.URL, clock: clock, tok: map[string]string{}}
	ctx := t.Context()
	for _, org := range []string{"acme", "other"} {
		if _, err := s.Keys.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name, org string, roles ...auth.Role) {
		_, secret, err := s.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: name, OrgID: org, Roles: roles})
		if err != nil {
			t.Fatal(err)
		}
		e.tok[name] = secret
	}
	mk("operator", "", auth.RoleOperator)
	mk("svc", "acme", auth.RoleService)
	mk("admin", "acme", auth.RoleAdmin, auth.RoleKeyAdmin)
	mk("keyadmin", "acme", auth.RoleKeyAdmin)
	mk("member", "acme", auth.RoleMember)
	mk("other-admin", "other", auth.RoleAdmin, auth.RoleKeyAdmin)
	return e
}

func (e *stagedEnv) client(name string) *client.Client {
	e.t.Helper()
	c, err := client.New(client.Config{Addr: e.url, Token: e.tok[name]})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// call sends a raw request and returns status and error code.
func (e *stagedEnv) call(method, path, token, body string) (int, string, map[string]any) {
	e.t.Helper()
	var r *strings.Reader
	if body != "" {
		r = strings.NewReader(body)
	} else {
		r = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, e.url+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	code := ""
	if eb, ok := out["error"].(map[string]any); ok {
		code, _ = eb["code"].(string)
	}
	return resp.StatusCode, code, out
}

func wantCode(t *testing.T, what string, err error, code client.Code) {
	t.Helper()
	if !errors.Is(err, code) {
		t.Errorf("%s = %v, want %s", what, err, code)
	}
}

func TestStagedRevocationSQLite(t *testing.T) {
	runStaged(t, startStaged(t, config.Config{DataDir: t.TempDir()}, server.Options{}))
}

func TestStagedRevocationPostgres(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	getenv := func(name string) string {
		if name == "TEST_MASTER_KEY" {
			return base64.StdEncoding.EncodeToString(key)
		}
		return os.Getenv(name)
	}
	runStaged(t, startStaged(t, config.Config{DataDir: t.TempDir(), Database: pgtest.URL(t), MasterKey: "local:env:TEST_MASTER_KEY"}, server.Options{Getenv: getenv}))
}

func runStaged(t *testing.T, e *stagedEnv) {
	ctx := t.Context()
	svc, admin := e.client("svc"), e.client("admin")
	ct, _, err := svc.Encrypt(ctx, "acme", "default", []byte("before"), []byte("ctx"))
	if err != nil {
		t.Fatalf("Encrypt before = %v", err)
	}
	at := func(d time.Duration) string { return e.clock.Now().Add(d).Format(time.RFC3339) }

	t.Run("authorization", func(t *testing.T) {
		for _, who := range []string{"member", "keyadmin", "other-admin", "operator", "svc"} {
			for _, r := range []struct{ method, path, body string }{
				{"POST", "/v1/orgs/acme/cmk/decrypt-only", `{"enabled":true}`},
				{"POST", "/v1/orgs/acme/cmk/revocation", `{"at":"` + at(time.Hour) + `"}`},
				{"DELETE", "/v1/orgs/acme/cmk/revocation", ""},
			} {
				if st, code, _ := e.call(r.method, r.path, e.tok[who], r.body); st != http.StatusForbidden || code != "permission_denied" {
					t.Errorf("%s %s as %s = %d %s, want 403 permission_denied", r.method, r.path, who, st, code)
				}
			}
		}
		if st, code, _ := e.call("POST", "/v1/orgs/acme/cmk/decrypt-only", "", `{"enabled":true}`); st != http.StatusUnauthorized {
			t.Errorf("decrypt-only without a token = %d %s, want 401", st, code)
		}
		if s, _ := admin.CMKStatus(ctx, "acme"); s.Staged.DecryptOnly || s.Staged.Scheduled != nil {
			t.Errorf("refused calls changed the staged state: %+v", s.Staged)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		tok := e.tok["admin"]
		for _, tc := range []struct{ name, method, path, body, field string }{
			{"no enabled", "POST", "/v1/orgs/acme/cmk/decrypt-only", `{"reason":"x"}`, "enabled"},
			{"enabled not a bool", "POST", "/v1/orgs/acme/cmk/decrypt-only", `{"enabled":"yes"}`, ""},
			{"reason too long", "POST", "/v1/orgs/acme/cmk/decrypt-only", `{"enabled":true,"reason":"` + strings.Repeat("x", 201) + `"}`, "reason"},
			{"unknown field", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"` + at(time.Hour) + `","when":"now"}`, ""},
			{"no time", "POST", "/v1/orgs/acme/cmk/revocation", `{"mode":"revoke"}`, "at"},
			{"malformed time", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"tomorrow"}`, "at"},
			{"time without zone", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"2031-05-06T10:00:00"}`, "at"},
			{"past time", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"` + at(-time.Hour) + `"}`, "at"},
			{"too soon", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"` + at(4*time.Minute) + `"}`, "at"},
			{"too far", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"` + at(91*24*time.Hour) + `"}`, "at"},
			{"bad mode", "POST", "/v1/orgs/acme/cmk/revocation", `{"at":"` + at(time.Hour) + `","mode":"shred"}`, "mode"},
		} {
			st, code, out := e.call(tc.method, tc.path, tok, tc.body)
			if st != http.StatusBadRequest || code != "invalid_argument" {
				t.Errorf("%s: %s %s = %d %s, want 400 invalid_argument", tc.name, tc.method, tc.path, st, code)
				continue
			}
			if f, _ := out["error"].(map[string]any)["field"].(string); tc.field != "" && f != tc.field {
				t.Errorf("%s: field = %q, want %q", tc.name, f, tc.field)
			}
		}
		if st, code, _ := e.call("DELETE", "/v1/orgs/acme/cmk/revocation", tok, ""); st != http.StatusConflict || code != "conflict" {
			t.Errorf("cancel with nothing scheduled = %d %s, want 409 conflict", st, code)
		}
		if st, code, _ := e.call("POST", "/v1/orgs/nosuch/cmk/decrypt-only", tok, `{"enabled":true}`); st != http.StatusForbidden && st != http.StatusNotFound {
			t.Errorf("decrypt-only of another org = %d %s, want 403 or 404", st, code)
		}
	})

	t.Run("decrypt-only", func(t *testing.T) {
		s, err := admin.CMKDecryptOnly(ctx, "acme", true, "key ceremony")
		if err != nil || !s.Staged.DecryptOnly || s.Staged.DecryptOnlyReason != "key ceremony" || s.Staged.DecryptOnlyBy != "admin" || s.Staged.DecryptOnlySince == nil {
			t.Fatalf("CMKDecryptOnly(on) = %+v, %v", s.Staged, err)
		}
		if s.Revocation == nil || s.Revocation.Reason != "decrypt_only" {
			t.Errorf("revocation = %+v, want generation reason decrypt_only", s.Revocation)
		}
		_, _, err = svc.Encrypt(ctx, "acme", "default", []byte("new"), nil)
		wantCode(t, "Encrypt in decrypt-only", err, client.CodeOrgDecryptOnly)
		_, err = svc.DataKey(ctx, "acme", "default", client.DataKeyRequest{})
		wantCode(t, "DataKey in decrypt-only", err, client.CodeOrgDecryptOnly)
		_, _, err = svc.Rewrap(ctx, "acme", "default", ct, []byte("ctx"))
		wantCode(t, "Rewrap in decrypt-only", err, client.CodeOrgDecryptOnly)
		if pt, err := svc.Decrypt(ctx, "acme", "default", ct, []byte("ctx")); err != nil || string(pt) != "before" {
			t.Errorf("Decrypt in decrypt-only = %q, %v; want the plaintext", pt, err)
		}
		// Another org is untouched.
		if _, _, err := e.client("operator").Encrypt(ctx, "other", "default", []byte("x"), nil); errors.Is(err, client.CodeOrgDecryptOnly) {
			t.Errorf("Encrypt of another org = %v", err)
		}
		// Again: no change, no event.
		if _, err := admin.CMKDecryptOnly(ctx, "acme", true, "again"); err != nil {
			t.Errorf("CMKDecryptOnly(on again) = %v", err)
		}
		s, err = admin.CMKDecryptOnly(ctx, "acme", false, "done")
		if err != nil || s.Staged.DecryptOnly {
			t.Fatalf("CMKDecryptOnly(off) = %+v, %v", s.Staged, err)
		}
		if _, _, err := svc.Encrypt(ctx, "acme", "default", []byte("after"), nil); err != nil {
			t.Errorf("Encrypt after decrypt-only off = %v", err)
		}
		wantActions(t, admin, "acme", map[string]int{"cmk.decrypt_only.on": 1, "cmk.decrypt_only.off": 1})
	})

	t.Run("schedule and cancel", func(t *testing.T) {
		when := e.clock.Now().Add(10 * time.Minute).Truncate(time.Second)
		s, err := admin.CMKScheduleRevocation(ctx, "acme", client.CMKRevocationRequest{At: when.Format(time.RFC3339), Reason: "contract ends"})
		if err != nil {
			t.Fatalf("CMKScheduleRevocation = %v", err)
		}
		sc := s.Staged.Scheduled
		if sc == nil || sc.Mode != "revoke" || !sc.At.Equal(when) || sc.ScheduledBy != "admin" || sc.SecondsLeft != 600 || sc.JobState != "pending" || sc.Reason != "contract ends" {
			t.Fatalf("scheduled = %+v, want revoke at %v by admin, 600 s left, pending", sc, when)
		}
		_, err = admin.CMKScheduleRevocation(ctx, "acme", client.CMKRevocationRequest{At: when.Add(time.Hour).Format(time.RFC3339)})
		wantCode(t, "second schedule", err, client.CodeConflict)
		e.clock.Add(5 * time.Minute)
		if err := e.s.CMK.RunPendingStaged(ctx); err != nil {
			t.Fatal(err)
		}
		if s, _ := admin.CMKStatus(ctx, "acme"); s.Staged.Revoked || s.Staged.Scheduled == nil || s.Staged.Scheduled.SecondsLeft != 300 {
			t.Errorf("status before the time = %+v, want still scheduled, 300 s left", s.Staged)
		}
		if _, _, err := svc.Encrypt(ctx, "acme", "default", []byte("x"), nil); err != nil {
			t.Errorf("Encrypt before the time = %v", err)
		}
		s, err = admin.CMKCancelRevocation(ctx, "acme")
		if err != nil || s.Staged.Scheduled != nil || s.Staged.Revoked {
			t.Fatalf("CMKCancelRevocation = %+v, %v", s.Staged, err)
		}
		e.clock.Add(10 * time.Minute)
		if err := e.s.CMK.RunPendingStaged(ctx); err != nil {
			t.Fatal(err)
		}
		if _, _, err := svc.Encrypt(ctx, "acme", "default", []byte("x"), nil); err != nil {
			t.Errorf("Encrypt after the cancelled time = %v", err)
		}
		wantActions(t, admin, "acme", map[string]int{"cmk.revocation.schedule": 1, "cmk.revocation.cancel": 1, "cmk.revocation.apply": 0})
	})

	t.Run("revocation fires", func(t *testing.T) {
		when := e.clock.Now().Add(6 * time.Minute)
		if _, err := admin.CMKScheduleRevocation(ctx, "acme", client.CMKRevocationRequest{At: when.Format(time.RFC3339Nano), Mode: "revoke"}); err != nil {
			t.Fatalf("CMKScheduleRevocation = %v", err)
		}
		e.clock.Add(6 * time.Minute)
		if err := e.s.CMK.RunPendingStaged(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := admin.CMKStatus(ctx, "acme")
		if err != nil || !s.Staged.Revoked || s.Staged.RevokedBy != "admin" || s.Staged.Scheduled != nil {
			t.Fatalf("status after the time = %+v, %v; want revoked by admin", s.Staged, err)
		}
		if s.Revocation == nil || s.Revocation.Reason != "staged_revoked" {
			t.Errorf("revocation = %+v, want reason staged_revoked", s.Revocation)
		}
		_, _, err = svc.Encrypt(ctx, "acme", "default", []byte("x"), nil)
		wantCode(t, "Encrypt revoked", err, client.CodeOrgRevoked)
		_, err = svc.Decrypt(ctx, "acme", "default", ct, []byte("ctx"))
		wantCode(t, "Decrypt revoked", err, client.CodeOrgRevoked)
		// Run again: it applied once.
		if err := e.s.CMK.RunPendingStaged(ctx); err != nil {
			t.Fatal(err)
		}
		wantActions(t, admin, "acme", map[string]int{"cmk.revocation.apply": 1})
		// The customer lifts it.
		s, err = admin.CMKCancelRevocation(ctx, "acme")
		if err != nil || s.Staged.Revoked {
			t.Fatalf("lift = %+v, %v", s.Staged, err)
		}
		if pt, err := svc.Decrypt(ctx, "acme", "default", ct, []byte("ctx")); err != nil || string(pt) != "before" {
			t.Errorf("Decrypt after the lift = %q, %v", pt, err)
		}
		wantActions(t, admin, "acme", map[string]int{"cmk.revocation.lift": 1})
	})

	t.Run("scheduled decrypt-only", func(t *testing.T) {
		when := e.clock.Now().Add(24 * time.Hour)
		if _, err := admin.CMKScheduleRevocation(ctx, "acme", client.CMKRevocationRequest{At: when.Format(time.RFC3339), Mode: "decrypt_only", Reason: "migration"}); err != nil {
			t.Fatalf("CMKScheduleRevocation(decrypt_only) = %v", err)
		}
		e.clock.Add(24*time.Hour + time.Second)
		// Due: no longer cancellable.
		_, err := admin.CMKCancelRevocation(ctx, "acme")
		wantCode(t, "cancel when due", err, client.CodeConflict)
		if err := e.s.CMK.RunPendingStaged(ctx); err != nil {
			t.Fatal(err)
		}
		s, _ := admin.CMKStatus(ctx, "acme")
		if !s.Staged.DecryptOnly || s.Staged.DecryptOnlyReason != "migration" || s.Staged.DecryptOnlyBy != "admin" || s.Staged.Scheduled != nil {
			t.Errorf("status after the time = %+v, want decrypt-only by admin", s.Staged)
		}
		_, _, err = svc.Encrypt(ctx, "acme", "default", []byte("x"), nil)
		wantCode(t, "Encrypt after scheduled decrypt-only", err, client.CodeOrgDecryptOnly)
		if _, err := svc.Decrypt(ctx, "acme", "default", ct, []byte("ctx")); err != nil {
			t.Errorf("Decrypt after scheduled decrypt-only = %v", err)
		}
	})

	if n, err := admin.VerifyAudit(ctx, "acme"); err != nil {
		t.Errorf("VerifyAudit = %+v, %v", n, err)
	}
}

// wantActions checks how many events of each action org's audit log has.
func wantActions(t *testing.T, c *client.Client, org string, want map[string]int) {
	t.Helper()
	evs, err := c.Audit(context.Background(), org, 0, 1000)
	if err != nil {
		t.Fatalf("Audit(%s) = %v", org, err)
	}
	got := map[string]int{}
	for _, ev := range evs {
		got[ev.Action]++
	}
	for a, n := range want {
		if got[a] != n {
			t.Errorf("audit log of %s has %d %s events, want %d", org, got[a], a, n)
		}
	}
}
