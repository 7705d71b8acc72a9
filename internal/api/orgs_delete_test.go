package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// offsetClock is the wall clock moved forward by an offset the test sets:
// a scheduled deletion's date is reached by moving it.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// startShredServer is startServer with a movable clock and cfg edited by
// edit.
func startShredServer(t *testing.T, clock *offsetClock, edit func(*config.Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := config.Config{DataDir: dir, LogRequests: true}
	if edit != nil {
		edit(&cfg)
	}
	s, err := server.Open(context.Background(), cfg, server.Options{Logger: log, Migrate: true, Now: clock.Now})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	conf := newConformance(t)
	srv := httptest.NewServer(conf.wrap(s.Handler))
	t.Cleanup(func() { conf.check(t) })
	ts := &testServer{t: t, dir: dir, url: srv.URL, srv: srv, server: s, store: s.Store.(*sqlite.Store), keys: s.Keys, tokens: s.Tokens, logs: logs,
		master: s.Keys.PlatformKey(), registry: s.Registry}
	t.Cleanup(ts.stop)
	return ts
}

// runShreds runs the due shred jobs until org's newest one is done (a
// scrub a reader kept from completing is retried).
func runShreds(t *testing.T, ts *testServer, clock *offsetClock, org string) {
	t.Helper()
	for range 50 {
		if err := ts.server.Shred.RunPending(t.Context()); err != nil {
			t.Fatalf("Shred.RunPending = %v", err)
		}
		js, err := ts.server.Shred.Jobs(t.Context(), org)
		if err != nil {
			t.Fatalf("Shred.Jobs(%s) = %v", org, err)
		}
		if len(js) > 0 && js[0].State == jobs.Done {
			return
		}
		if len(js) > 0 && js[0].State == jobs.Failed {
			t.Fatalf("shred job of %s failed: %s", org, js[0].Error)
		}
		clock.Advance(time.Minute) // past a retry's backoff
	}
	t.Fatalf("the shred job of %s did not finish", org)
}

// storedBlobs returns every wrapped key blob of org as stored.
func storedBlobs(t *testing.T, ts *testServer, org string) [][]byte {
	t.Helper()
	var out [][]byte
	roots, err := ts.store.RootKeys(t.Context(), org)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roots {
		out = append(out, r.Wrapped.Ciphertext)
	}
	ks, err := ts.store.ListDataKeys(t.Context(), org)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks {
		dk, err := ts.store.GetDataKey(t.Context(), org, k.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range dk.Versions {
			out = append(out, v.Wrapped)
		}
	}
	return out
}

// databaseBytes returns the database file and its WAL (when present).
func databaseBytes(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range []string{"orgkms.db", "orgkms.db-wal", "orgkms.db-journal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		t.Fatalf("no database file in %s", dir)
	}
	return all
}

func errorBody(t *testing.T, body []byte) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message, Field string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %s: %v", body, err)
	}
	return e.Error.Code, e.Error.Message
}

// TestOrgDeletionShred: DELETE /v1/orgs/{org} refuses the org at once,
// cancel restores it, and at the date the job erases every wrapped key of
// the org from the database files, byte for byte; other orgs decrypt.
func TestOrgDeletionShred(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	op := ts.client(ts.token("ops", "", auth.RoleOperator))
	opToken := ts.token("ops2", "", auth.RoleOperator)
	for _, id := range []string{"acme", "globex"} {
		if _, err := op.CreateOrg(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := op.CreateKey(ctx, "acme", "extra"); err != nil {
		t.Fatal(err)
	}
	if _, err := op.RotateKey(ctx, "acme", "extra"); err != nil {
		t.Fatal(err)
	}
	acme := ts.client(ts.token("svc", "acme", auth.RoleService))
	globex := ts.client(ts.token("svc", "globex", auth.RoleService))
	ctAcme, _, err := acme.Encrypt(ctx, "acme", "default", []byte("acme secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctExtra, _, err := acme.Encrypt(ctx, "acme", "extra", []byte("acme extra"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctGlobex, _, err := globex.Encrypt(ctx, "globex", "default", []byte("globex secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs := storedBlobs(t, ts, "acme")
	if len(blobs) != 4 { // root key, default v1, extra v1 and v2
		t.Fatalf("acme has %d stored blobs, want 4", len(blobs))
	}
	globexBlobs := storedBlobs(t, ts, "globex")

	// Bad input and authorization.
	for _, q := range []string{"?waiting_days=3", "?waiting_days=31", "?waiting_days=abc", "?waiting_days=0"} {
		status, body := ts.raw("DELETE", "/v1/orgs/acme"+q, opToken, nil)
		if code, _ := errorBody(t, body); status != 400 || code != "invalid_argument" {
			t.Errorf("DELETE /v1/orgs/acme%s = %d %s, want 400 invalid_argument", q, status, body)
		}
	}
	for _, b := range []string{`{"waiting_days": 40}`, `{"days": 7}`, `{"waiting_days": "7"}`, `[`} {
		status, body := ts.raw("DELETE", "/v1/orgs/acme", opToken, b)
		if code, _ := errorBody(t, body); status != 400 || code != "invalid_argument" {
			t.Errorf("DELETE /v1/orgs/acme body %s = %d %s, want 400 invalid_argument", b, status, body)
		}
	}
	for name, tok := range map[string]string{
		"service":       ts.token("svc2", "acme", auth.RoleService),
		"member":        ts.token("m", "acme", auth.RoleMember),
		"admin+keyadm":  ts.token("a", "acme", auth.RoleAdmin, auth.RoleKeyAdmin),
		"other org ops": ts.token("g", "globex", auth.RoleAdmin, auth.RoleKeyAdmin),
	} {
		for _, path := range []string{"DELETE /v1/orgs/acme", "POST /v1/orgs/acme/cancel-deletion"} {
			m, p, _ := strings.Cut(path, " ")
			status, body := ts.raw(m, p, tok, nil)
			if code, _ := errorBody(t, body); status != 403 || code != "permission_denied" {
				t.Errorf("%s as %s = %d %s, want 403 permission_denied", path, name, status, body)
			}
		}
	}
	status, body := ts.raw("DELETE", "/v1/orgs/nope", opToken, nil)
	if status != 404 {
		t.Errorf("DELETE /v1/orgs/nope = %d %s, want 404", status, body)
	}
	status, body = ts.raw("POST", "/v1/orgs/acme/cancel-deletion", opToken, nil)
	if code, _ := errorBody(t, body); status != 409 || code != "conflict" {
		t.Errorf("cancel-deletion of an active org = %d %s, want 409 conflict", status, body)
	}

	// Schedule: refused at once, with the date and how to cancel.
	o, err := op.DeleteOrg(ctx, "acme", 0)
	if err != nil {
		t.Fatalf("DeleteOrg(acme) = %v", err)
	}
	want := clock.Now().Add(7 * 24 * time.Hour)
	if !o.PendingDeletion || o.State != "pending_deletion" || o.DeletionDate == nil || o.DeletionDate.Sub(want).Abs() > time.Minute {
		t.Fatalf("DeleteOrg(acme) = %+v, want pending deletion in 7 days", o)
	}
	if got, err := op.GetOrg(ctx, "acme"); err != nil || !got.PendingDeletion || !got.DeletionDate.Equal(*o.DeletionDate) {
		t.Errorf("GetOrg(acme) = %+v, %v; want pending deletion", got, err)
	}
	if got := listedOrgs(t, op); got["acme"].State != "pending_deletion" || got["acme"].DeletionDate == nil || !got["acme"].DeletionDate.Equal(*o.DeletionDate) || got["globex"].State != "active" {
		t.Errorf("ListOrgs = acme %+v, globex %+v; want acme pending deletion on its date, globex active", got["acme"], got["globex"])
	}
	_, err = acme.Decrypt(ctx, "acme", "default", ctAcme, nil)
	if !errors.Is(err, client.CodeOrgPendingDeletion) {
		t.Fatalf("Decrypt(acme) pending deletion = %v, want org_pending_deletion", err)
	}
	if msg := err.Error(); !strings.Contains(msg, o.DeletionDate.Format("2006-01-02")) || !strings.Contains(msg, "cancel-deletion") {
		t.Errorf("pending-deletion error %q names neither the date nor how to cancel", msg)
	}
	if _, _, err := acme.Encrypt(ctx, "acme", "default", []byte("x"), nil); !errors.Is(err, client.CodeOrgPendingDeletion) {
		t.Errorf("Encrypt(acme) pending deletion = %v, want org_pending_deletion", err)
	}
	if _, err := op.CreateKey(ctx, "acme", "k3"); !errors.Is(err, client.CodeOrgPendingDeletion) {
		t.Errorf("CreateKey(acme) pending deletion = %v, want org_pending_deletion", err)
	}
	if pt, err := globex.Decrypt(ctx, "globex", "default", ctGlobex, nil); err != nil || string(pt) != "globex secret" {
		t.Errorf("Decrypt(globex) = %q, %v; another org is untouched", pt, err)
	}
	if _, err := op.DeleteOrg(ctx, "acme", 0); !errors.Is(err, client.CodeConflict) {
		t.Errorf("DeleteOrg(acme) twice = %v, want conflict", err)
	}

	// Cancel: served again at once.
	if o, err := op.CancelOrgDeletion(ctx, "acme"); err != nil || o.PendingDeletion || o.State != "active" {
		t.Fatalf("CancelOrgDeletion(acme) = %+v, %v; want active", o, err)
	}
	if pt, err := acme.Decrypt(ctx, "acme", "default", ctAcme, nil); err != nil || string(pt) != "acme secret" {
		t.Fatalf("Decrypt(acme) after cancel = %q, %v", pt, err)
	}

	// Schedule again (waiting period in the body), reach the date, shred.
	status, body = ts.raw("DELETE", "/v1/orgs/acme", opToken, `{"waiting_days": 10}`)
	if status != http.StatusAccepted {
		t.Fatalf("DELETE /v1/orgs/acme = %d %s, want 202", status, body)
	}
	if err := ts.store.ScrubDeleted(ctx); err != nil { // everything so far in the main file
		t.Fatal(err)
	}
	before := databaseBytes(t, ts.dir)
	for i, b := range append(append([][]byte{}, blobs...), globexBlobs...) {
		if !bytes.Contains(before, b) {
			t.Fatalf("blob %d is not in the database files before the shred: the byte check cannot see it", i)
		}
	}
	// Not yet: the job waits for the date.
	if err := ts.server.Shred.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := storedBlobs(t, ts, "acme"); len(got) != 4 {
		t.Fatalf("acme has %d blobs before its deletion date, want 4", len(got))
	}
	clock.Advance(10*24*time.Hour + time.Minute)
	runShreds(t, ts, clock, "acme")

	for _, tc := range []struct {
		key string
		ct  []byte
	}{{"default", ctAcme}, {"extra", ctExtra}} {
		if _, err := acme.Decrypt(ctx, "acme", tc.key, tc.ct, nil); !errors.Is(err, client.CodeOrgDeleted) {
			t.Errorf("Decrypt(acme, %s) after the shred = %v, want org_deleted", tc.key, err)
		}
	}
	status, body = ts.raw("POST", "/v1/orgs/acme/keys/default/decrypt", ts.token("svc3", "acme", auth.RoleService), map[string]any{"ciphertext": ctAcme})
	if code, _ := errorBody(t, body); status != http.StatusGone || code != "org_deleted" {
		t.Errorf("decrypt after the shred = %d %s, want 410 org_deleted", status, body)
	}
	if got, err := op.GetOrg(ctx, "acme"); err != nil || got.State != "deleted" || got.DeletedAt == nil {
		t.Errorf("GetOrg(acme) after the shred = %+v, %v; want deleted", got, err)
	}
	if got := listedOrgs(t, op)["acme"]; got.State != "deleted" || got.DeletedAt == nil {
		t.Errorf("ListOrgs: acme after the shred = %+v, want deleted", got)
	}
	if _, err := op.CancelOrgDeletion(ctx, "acme"); !errors.Is(err, client.CodeOrgDeleted) {
		t.Errorf("CancelOrgDeletion(acme) after the shred = %v, want org_deleted (as every route of a deleted org)", err)
	}
	if _, err := op.CreateOrg(ctx, "acme", ""); !errors.Is(err, client.CodeConflict) {
		t.Errorf("CreateOrg(acme) after the shred = %v, want conflict (the ID is never reused)", err)
	}
	after := databaseBytes(t, ts.dir)
	for i, b := range blobs {
		if bytes.Contains(after, b) {
			t.Errorf("wrapped key blob %d of acme is still in the database files after the shred", i)
		}
	}
	for i, b := range globexBlobs {
		if !bytes.Contains(after, b) {
			t.Errorf("wrapped key blob %d of globex is gone from the database files", i)
		}
	}
	if pt, err := globex.Decrypt(ctx, "globex", "default", ctGlobex, nil); err != nil || string(pt) != "globex secret" {
		t.Errorf("Decrypt(globex) after the shred of acme = %q, %v", pt, err)
	}

	// The audit chain stays, verifies, and ends with what was destroyed.
	v, err := op.VerifyAudit(ctx, "acme")
	if err != nil || !v.OK {
		t.Fatalf("VerifyAudit(acme) = %+v, %v", v, err)
	}
	evs, err := op.Audit(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action)
	}
	last := evs[len(evs)-1]
	if last.Action != "org.shredded" || last.Details["root_key_wrappings"] != "1" || last.Details["data_key_versions"] != "3" ||
		last.Details["keys"] != "default:1 extra:1,2" || last.Details["data_keys"] != "2" {
		t.Errorf("last audit event of acme = %+v, want org.shredded with 1 root key, 3 versions of default:1 extra:1,2", last)
	}
	for _, a := range []string{"org.deletion.schedule", "org.deletion.cancel"} {
		if !strings.Contains(strings.Join(actions, " "), a) {
			t.Errorf("audit actions %v lack %s", actions, a)
		}
	}
	raw, _ := json.Marshal(evs)
	for i, b := range blobs {
		for _, enc := range []string{string(b), hexOf(b), b64Of(b)} {
			if strings.Contains(string(raw), enc) {
				t.Errorf("the audit log holds blob %d", i)
			}
		}
	}
}

// TestOrgDeletionSelfDelete: with orgs.self_delete, the org's admin with
// key_admin schedules and cancels its deletion; an admin alone, a member,
// a service token and another org's administrator cannot.
func TestOrgDeletionSelfDelete(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, func(c *config.Config) { c.Orgs.SelfDelete = true })
	mustOrg(t, ts, "acme", "globex")
	for name, tok := range map[string]string{
		"admin":          ts.token("a", "acme", auth.RoleAdmin),
		"key_admin":      ts.token("k", "acme", auth.RoleKeyAdmin),
		"member":         ts.token("m", "acme", auth.RoleMember),
		"service":        ts.token("s", "acme", auth.RoleService),
		"other org both": ts.token("g", "globex", auth.RoleAdmin, auth.RoleKeyAdmin),
	} {
		status, body := ts.raw("DELETE", "/v1/orgs/acme", tok, nil)
		if status != 403 {
			t.Errorf("DELETE /v1/orgs/acme as %s = %d %s, want 403", name, status, body)
		}
	}
	both := ts.client(ts.token("boss", "acme", auth.RoleAdmin, auth.RoleKeyAdmin))
	o, err := both.DeleteOrg(t.Context(), "acme", 30)
	if err != nil || !o.PendingDeletion {
		t.Fatalf("DeleteOrg(acme) as its admin+key_admin = %+v, %v", o, err)
	}
	if o, err := both.CancelOrgDeletion(t.Context(), "acme"); err != nil || o.PendingDeletion {
		t.Fatalf("CancelOrgDeletion(acme) as its admin+key_admin = %+v, %v", o, err)
	}
}

// TestKeyLifecycle: disable refuses encrypt and decrypt with key_disabled,
// enable restores; a scheduled deletion refuses with key_pending_deletion
// until cancelled; at the date the key's versions are shredded and its
// ciphertexts fail with key_deleted, while the org's other keys work.
func TestKeyLifecycle(t *testing.T) {
	clock := &offsetClock{}
	ts := startShredServer(t, clock, nil)
	ctx := t.Context()
	mustOrg(t, ts, "acme")
	ka := ts.client(ts.token("ka", "acme", auth.RoleKeyAdmin))
	svc := ts.client(ts.token("svc", "acme", auth.RoleService))
	if _, err := ka.CreateKey(ctx, "acme", "tmp"); err != nil {
		t.Fatal(err)
	}
	ct, _, err := svc.Encrypt(ctx, "acme", "tmp", []byte("tmp secret"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctDefault, _, err := svc.Encrypt(ctx, "acme", "default", []byte("kept"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpBlobs := [][]byte{}
	dk, _ := ts.store.GetDataKey(ctx, "acme", "tmp")
	for _, v := range dk.Versions {
		tmpBlobs = append(tmpBlobs, v.Wrapped)
	}

	// Authorization and bad input.
	for name, tok := range map[string]string{"service": ts.token("s2", "acme", auth.RoleService), "member": ts.token("m", "acme", auth.RoleMember)} {
		for _, path := range []string{"POST /v1/orgs/acme/keys/tmp/disable", "POST /v1/orgs/acme/keys/tmp/enable", "DELETE /v1/orgs/acme/keys/tmp", "POST /v1/orgs/acme/keys/tmp/cancel-deletion"} {
			m, p, _ := strings.Cut(path, " ")
			if status, body := ts.raw(m, p, tok, nil); status != 403 {
				t.Errorf("%s as %s = %d %s, want 403", path, name, status, body)
			}
		}
	}
	kaToken := ts.token("ka2", "acme", auth.RoleKeyAdmin)
	if status, body := ts.raw("DELETE", "/v1/orgs/acme/keys/tmp?waiting_days=1", kaToken, nil); status != 400 {
		t.Errorf("DELETE key with waiting_days=1 = %d %s, want 400", status, body)
	}
	if status, body := ts.raw("POST", "/v1/orgs/acme/keys/nope/disable", kaToken, nil); status != 404 {
		t.Errorf("disable a missing key = %d %s, want 404", status, body)
	}
	if _, err := ka.EnableKey(ctx, "acme", "tmp"); !errors.Is(err, client.CodeConflict) {
		t.Errorf("EnableKey of an enabled key = %v, want conflict", err)
	}

	// Disable / enable.
	if k, err := ka.DisableKey(ctx, "acme", "tmp"); err != nil || k.State != "disabled" {
		t.Fatalf("DisableKey = %+v, %v", k, err)
	}
	if _, err := svc.Decrypt(ctx, "acme", "tmp", ct, nil); !errors.Is(err, client.CodeKeyDisabled) {
		t.Errorf("Decrypt with a disabled key = %v, want key_disabled", err)
	}
	if _, _, err := svc.Encrypt(ctx, "acme", "tmp", []byte("x"), nil); !errors.Is(err, client.CodeKeyDisabled) {
		t.Errorf("Encrypt with a disabled key = %v, want key_disabled", err)
	}
	if pt, err := svc.Decrypt(ctx, "acme", "default", ctDefault, nil); err != nil || string(pt) != "kept" {
		t.Errorf("Decrypt(default) beside a disabled key = %q, %v", pt, err)
	}
	if ks, err := ka.ListKeys(ctx, "acme"); err != nil || len(ks) != 2 || ks[1].State != "disabled" || ks[0].State != "enabled" {
		t.Errorf("ListKeys = %+v, %v; want default enabled, tmp disabled", ks, err)
	}
	if k, err := ka.EnableKey(ctx, "acme", "tmp"); err != nil || k.State != "enabled" {
		t.Fatalf("EnableKey = %+v, %v", k, err)
	}
	if pt, err := svc.Decrypt(ctx, "acme", "tmp", ct, nil); err != nil || string(pt) != "tmp secret" {
		t.Fatalf("Decrypt after enable = %q, %v", pt, err)
	}

	// Deletion: refused while pending, cancel restores.
	k, err := ka.DeleteKey(ctx, "acme", "tmp", 0)
	if err != nil || k.State != "pending_deletion" || k.DeletionDate == nil {
		t.Fatalf("DeleteKey = %+v, %v", k, err)
	}
	if _, err := svc.Decrypt(ctx, "acme", "tmp", ct, nil); !errors.Is(err, client.CodeKeyPendingDeletion) {
		t.Errorf("Decrypt pending deletion = %v, want key_pending_deletion", err)
	}
	if _, err := ka.DisableKey(ctx, "acme", "tmp"); !errors.Is(err, client.CodeConflict) {
		t.Errorf("DisableKey pending deletion = %v, want conflict", err)
	}
	if k, err := ka.CancelKeyDeletion(ctx, "acme", "tmp"); err != nil || k.State != "enabled" {
		t.Fatalf("CancelKeyDeletion = %+v, %v", k, err)
	}
	if pt, err := svc.Decrypt(ctx, "acme", "tmp", ct, nil); err != nil || string(pt) != "tmp secret" {
		t.Fatalf("Decrypt after cancel = %q, %v", pt, err)
	}
	// Shred at the date.
	if _, err := ka.DeleteKey(ctx, "acme", "tmp", 7); err != nil {
		t.Fatal(err)
	}
	clock.Advance(7*24*time.Hour + time.Minute)
	runShreds(t, ts, clock, "acme")
	if _, err := svc.Decrypt(ctx, "acme", "tmp", ct, nil); !errors.Is(err, client.CodeKeyDeleted) {
		t.Errorf("Decrypt after the key's shred = %v, want key_deleted", err)
	}
	if pt, err := svc.Decrypt(ctx, "acme", "default", ctDefault, nil); err != nil || string(pt) != "kept" {
		t.Errorf("Decrypt(default) after the shred of tmp = %q, %v", pt, err)
	}
	if k, err := ka.GetKey(ctx, "acme", "tmp"); err != nil || k.State != "deleted" || k.DeletedAt == nil || len(k.Versions) != 0 {
		t.Errorf("GetKey(tmp) after the shred = %+v, %v; want deleted without versions", k, err)
	}
	after := databaseBytes(t, ts.dir)
	for i, b := range tmpBlobs {
		if bytes.Contains(after, b) {
			t.Errorf("version blob %d of tmp is still in the database files", i)
		}
	}
	evs, _ := ts.keys.AuditEvents(ctx, "acme", 0, 0)
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action)
	}
	for _, a := range []string{"key.disable", "key.enable", "key.deletion.schedule", "key.deletion.cancel", "key.shredded"} {
		if !strings.Contains(strings.Join(actions, " "), a) {
			t.Errorf("audit actions %v lack %s", actions, a)
		}
	}
	if _, err := ts.keys.VerifyAudit(ctx, "acme"); err != nil {
		t.Errorf("VerifyAudit(acme) = %v", err)
	}
}

// listedOrgs returns the orgs of GET /v1/orgs by ID.
func listedOrgs(t *testing.T, c *client.Client) map[string]client.Org {
	t.Helper()
	page, err := c.ListOrgs(t.Context(), "", 1000)
	if err != nil {
		t.Fatalf("ListOrgs = %v", err)
	}
	m := map[string]client.Org{}
	for _, o := range page.Orgs {
		m[o.ID] = o
	}
	return m
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }
func b64Of(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
