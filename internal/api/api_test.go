package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/envelope"
	"github.com/orgkms/orgkms/internal/keys"
)

type roleCase struct {
	name  string
	token string
	p     auth.Principal // zero for unauthenticated
}

// TestRouteRoleMatrix walks every route with every kind of principal and
// checks that authorization is enforced exactly as the policy says, and that
// the policy is the intended one.
func TestRouteRoleMatrix(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := t.Context()
	for _, id := range []string{"acme", "globex"} {
		if _, err := ts.keys.CreateOrg(ctx, "test", id, ""); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(name, org string, roles ...auth.Role) roleCase {
		return roleCase{name, ts.token(name, org, roles...), auth.Principal{Name: name, OrgID: org, Roles: roles}}
	}
	cases := []roleCase{
		{"anonymous", "", auth.Principal{}},
		{"bad-token", "okms_not-a-real-token", auth.Principal{}},
		mk("operator", "", auth.RoleOperator),
		mk("service-all", "", auth.RoleService),
		mk("service-acme", "acme", auth.RoleService),
		mk("service-globex", "globex", auth.RoleService),
		mk("admin-acme", "acme", auth.RoleAdmin),
		mk("keyadmin-acme", "acme", auth.RoleKeyAdmin),
		mk("admin-keyadmin-acme", "acme", auth.RoleAdmin, auth.RoleKeyAdmin),
		mk("member-acme", "acme", auth.RoleMember),
		mk("keyadmin-globex", "globex", auth.RoleKeyAdmin),
	}
	// The intended policy, written out independently of auth.Allowed: which
	// principals may perform each action on org acme.
	want := map[auth.Action][]string{
		auth.ActOrgCreate:     {"operator"},
		auth.ActOrgList:       {"operator"},
		auth.ActOrgRead:       {"operator", "service-all", "service-acme", "admin-acme", "keyadmin-acme", "admin-keyadmin-acme", "member-acme"},
		auth.ActKeyRead:       {"operator", "service-all", "service-acme", "admin-acme", "keyadmin-acme", "admin-keyadmin-acme", "member-acme"},
		auth.ActKeyManage:     {"operator", "keyadmin-acme", "admin-keyadmin-acme"},
		auth.ActCrypto:        {"service-all", "service-acme"},
		auth.ActAuditRead:     {"operator", "admin-acme", "keyadmin-acme", "admin-keyadmin-acme"},
		auth.ActCacheManage:   {"operator"},
		auth.ActPlatformRead:  {"operator"},
		auth.ActTokenManage:   {"operator"},
		auth.ActCMKManage:     {"admin-keyadmin-acme"},
		auth.ActOrgDelete:     {"operator"}, // and admin-keyadmin-acme with orgs.self_delete (TestOrgDeletionAuthorization)
		auth.ActUsersManage:   {"operator", "admin-acme", "admin-keyadmin-acme"},
		auth.ActWebhookManage: {"operator", "admin-acme", "admin-keyadmin-acme"},
		auth.ActWhoAmI:        {"operator", "service-all", "service-acme", "service-globex", "admin-acme", "keyadmin-acme", "admin-keyadmin-acme", "member-acme", "keyadmin-globex"},
	}
	bodies := map[string]any{
		"POST /v1/orgs":                          map[string]string{"id": "neworg"},
		"POST /v1/orgs/{org}/keys":               map[string]string{"name": "k2"},
		"POST /v1/orgs/{org}/keys/{key}/encrypt": map[string]string{"plaintext": "aGVsbG8="},
		"POST /v1/orgs/{org}/keys/{key}/decrypt": map[string]string{"ciphertext": "aGVsbG8="},
		"POST /v1/orgs/{org}/keys/{key}/rewrap":  map[string]string{"ciphertext": "aGVsbG8="},
		"POST /v1/orgs/{org}/keys/{key}/datakey": map[string]string{},
		"POST /v1/orgs/{org}/keys/{key}/config":  map[string]int{"min_decryption_version": 1},
		"POST /v1/orgs/{org}/keys/{key}/rotate":  map[string]string{},
		"POST /v1/tokens":                        map[string]any{"principal": "x", "roles": []string{"service"}},
		"POST /v1/orgs/{org}/cache/purge":        map[string]string{},
		"POST /v1/cache/purge":                   map[string]string{},
	}
	for _, rt := range api.Routes {
		if rt.Action == "" {
			continue
		}
		allowed, ok := want[rt.Action]
		if !ok {
			t.Fatalf("route %s uses action %s, which the test's intended policy does not cover", rt.Pattern, rt.Action)
		}
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.NewReplacer("{org}", "acme", "{key}", "default", "{id}", "tok_doesnotexist", "{name}", "default", "{type}", "plaintext").Replace(path)
		hdr := http.Header{}
		if strings.HasPrefix(path, "/v1/transit/") {
			hdr.Set("X-Vault-Namespace", "acme") // Transit routes take the org from the token or this header
		}
		for _, rc := range cases {
			t.Run(rt.Pattern+"/"+rc.name, func(t *testing.T) {
				status, body := ts.rawHeader(method, path, rc.token, hdr, bodies[rt.Pattern])
				wantAllowed := false
				for _, a := range allowed {
					wantAllowed = wantAllowed || a == rc.name
				}
				if rc.token != "" && rc.p.Name != "" && auth.Allowed(rc.p, rt.Action, "acme") != wantAllowed {
					t.Errorf("auth.Allowed(%s, %s, acme) = %v, intended %v", rc.name, rt.Action, !wantAllowed, wantAllowed)
				}
				switch {
				case rc.p.Name == "":
					if status != http.StatusUnauthorized {
						t.Errorf("%s %s as %s: status %d, want 401; body %s", method, path, rc.name, status, body)
					}
				case wantAllowed:
					if status == http.StatusUnauthorized || status == http.StatusForbidden || status >= 500 {
						t.Errorf("%s %s as %s: status %d, want allowed; body %s", method, path, rc.name, status, body)
					}
				default:
					if status != http.StatusForbidden {
						t.Errorf("%s %s as %s: status %d, want 403; body %s", method, path, rc.name, status, body)
					}
				}
			})
		}
	}
}

func mustOrg(t *testing.T, ts *testServer, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := ts.keys.CreateOrg(t.Context(), "test", id, ""); err != nil {
			t.Fatal(err)
		}
	}
}

func apiCode(err error) string { return client.ErrorCode(err) }

// TestTenantIsolation: a ciphertext decrypts only under the org, key and
// context it was made with; any modification is ciphertext_invalid, never 500.
func TestTenantIsolation(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme", "globex")
	c := ts.client(ts.token("svc", "", auth.RoleService))
	ctx := t.Context()
	if _, err := ts.keys.CreateDataKey(ctx, "test", "acme", "other"); err != nil {
		t.Fatal(err)
	}
	ct, v, err := c.Encrypt(ctx, "acme", "default", []byte("hello"), []byte("ctx-1"))
	if err != nil || v != 1 {
		t.Fatalf("Encrypt = v%d, %v", v, err)
	}
	if pt, err := c.Decrypt(ctx, "acme", "default", ct, []byte("ctx-1")); err != nil || string(pt) != "hello" {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	tests := []struct {
		name, org, key string
		ct, context    []byte
		wantCode       string
	}{
		{"other org", "globex", "default", ct, []byte("ctx-1"), "ciphertext_invalid"},
		{"other key", "acme", "other", ct, []byte("ctx-1"), "ciphertext_invalid"},
		{"other context", "acme", "default", ct, []byte("ctx-2"), "ciphertext_invalid"},
		{"missing context", "acme", "default", ct, nil, "ciphertext_invalid"},
		{"truncated", "acme", "default", ct[:len(ct)-1], []byte("ctx-1"), "ciphertext_invalid"},
		{"header only", "acme", "default", ct[:32], []byte("ctx-1"), "ciphertext_invalid"},
		{"empty", "acme", "default", []byte{}, []byte("ctx-1"), "invalid_argument"},
		{"not orgkms", "acme", "default", []byte("hello world, this is not a ciphertext at all!!!!!!"), nil, "ciphertext_invalid"},
		{"unknown org", "initech", "default", ct, []byte("ctx-1"), "not_found"},
		{"unknown key", "acme", "nope", ct, []byte("ctx-1"), "not_found"},
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x80
		tests = append(tests, struct {
			name, org, key string
			ct, context    []byte
			wantCode       string
		}{fmt.Sprintf("flipped byte %d", i), "acme", "default", bad, []byte("ctx-1"), "ciphertext_invalid"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Decrypt(ctx, tt.org, tt.key, tt.ct, tt.context)
			if got := apiCode(err); got != tt.wantCode {
				t.Fatalf("Decrypt(%s) code = %q, want %q (err %v)", tt.name, got, tt.wantCode, err)
			}
		})
	}
	// Rewrap refuses foreign ciphertexts the same way.
	if _, _, err := c.Rewrap(ctx, "globex", "default", ct, []byte("ctx-1")); apiCode(err) != "ciphertext_invalid" {
		t.Fatalf("Rewrap under another org code = %q, want ciphertext_invalid", apiCode(err))
	}
}

// TestRotationAndRetirement covers versions, rewrap and min decryption version.
func TestRotationAndRetirement(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	ctx := t.Context()
	c := ts.client(ts.token("svc", "acme", auth.RoleService))
	admin := ts.client(ts.token("ka", "acme", auth.RoleKeyAdmin))
	ct1, _, err := c.Encrypt(ctx, "acme", "default", []byte("v1 data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := admin.RotateKey(ctx, "acme", "default")
	if err != nil || k.LatestVersion != 2 || len(k.Versions) != 2 {
		t.Fatalf("RotateKey = %+v, %v", k, err)
	}
	ct2, v, err := c.Encrypt(ctx, "acme", "default", []byte("v2 data"), nil)
	if err != nil || v != 2 {
		t.Fatalf("Encrypt after rotation = v%d, %v; want v2", v, err)
	}
	if pt, err := c.Decrypt(ctx, "acme", "default", ct1, nil); err != nil || string(pt) != "v1 data" {
		t.Fatalf("Decrypt v1 after rotation = %q, %v", pt, err)
	}
	re, v, err := c.Rewrap(ctx, "acme", "default", ct1, nil)
	if err != nil || v != 2 {
		t.Fatalf("Rewrap = v%d, %v", v, err)
	}
	if _, err := admin.SetMinDecryptionVersion(ctx, "acme", "default", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, "acme", "default", ct1, nil); apiCode(err) != "key_version_retired" {
		t.Fatalf("Decrypt of a retired version code = %q, want key_version_retired", apiCode(err))
	}
	for _, ct := range [][]byte{ct2, re} {
		if _, err := c.Decrypt(ctx, "acme", "default", ct, nil); err != nil {
			t.Fatalf("Decrypt v2: %v", err)
		}
	}
	if _, err := admin.SetMinDecryptionVersion(ctx, "acme", "default", 3); apiCode(err) != "invalid_argument" {
		t.Fatalf("min version above latest code = %q, want invalid_argument", apiCode(err))
	}
	// Batch: per-item results and errors.
	res, err := c.DecryptBatch(ctx, "acme", "default", []client.BatchItem{{Ciphertext: ct2}, {Ciphertext: ct1}, {Ciphertext: []byte("junk")}})
	if err != nil || len(res) != 3 {
		t.Fatalf("DecryptBatch = %v, %v", res, err)
	}
	if string(res[0].Plaintext) != "v2 data" || res[1].Error == nil || res[1].Error.Code != "key_version_retired" || res[2].Error == nil || res[2].Error.Code != "ciphertext_invalid" {
		t.Fatalf("DecryptBatch results = %+v", res)
	}
	dk, err := c.DataKey(ctx, "acme", "default", client.DataKeyRequest{Bits: 512})
	if err != nil || len(dk.Plaintext) != 64 {
		t.Fatalf("DataKey = %d bytes, %v", len(dk.Plaintext), err)
	}
	if pt, err := c.Decrypt(ctx, "acme", "default", dk.Ciphertext, nil); err != nil || !bytes.Equal(pt, dk.Plaintext) {
		t.Fatalf("Decrypt(datakey ciphertext) mismatch: %v", err)
	}
	w, err := c.DataKey(ctx, "acme", "default", client.DataKeyRequest{Type: "wrapped"})
	if err != nil || w.Plaintext != nil || len(w.Ciphertext) == 0 {
		t.Fatalf("wrapped DataKey = %+v, %v", w, err)
	}
}

// TestBadInput: user mistakes get a clear 4xx with a stable code, never 500.
func TestBadInput(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	tok := ts.token("root", "", auth.RoleOperator, auth.RoleService)
	big := `{"plaintext":"` + strings.Repeat("A", 9<<20) + `"}`
	manyItems := make([]map[string]string, keys.MaxBatch+1)
	for i := range manyItems {
		manyItems[i] = map[string]string{"plaintext": "aA=="}
	}
	tooLong := base64.StdEncoding.EncodeToString(make([]byte, keys.MaxPlaintext+1))
	tests := []struct {
		name, method, path string
		body               any
		wantStatus         int
		wantCode           string
	}{
		{"invalid json", "POST", "/v1/orgs", `{"id":`, 400, "invalid_argument"},
		{"not json", "POST", "/v1/orgs", `hello`, 400, "invalid_argument"},
		{"empty body", "POST", "/v1/orgs", ``, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/orgs", `{"id":"x","color":"red"}`, 400, "invalid_argument"},
		{"wrong type", "POST", "/v1/orgs", `{"id":42}`, 400, "invalid_argument"},
		{"two objects", "POST", "/v1/orgs", `{"id":"a1"}{"id":"a2"}`, 400, "invalid_argument"},
		{"bad org id", "POST", "/v1/orgs", `{"id":"Acme Inc"}`, 400, "invalid_argument"},
		{"duplicate org", "POST", "/v1/orgs", `{"id":"acme"}`, 409, "conflict"},
		{"bad base64", "POST", "/v1/orgs/acme/keys/default/encrypt", `{"plaintext":"!!!"}`, 400, "invalid_argument"},
		{"missing plaintext", "POST", "/v1/orgs/acme/keys/default/encrypt", `{}`, 400, "invalid_argument"},
		{"single and batch", "POST", "/v1/orgs/acme/keys/default/encrypt", `{"plaintext":"aA==","batch":[{"plaintext":"aA=="}]}`, 400, "invalid_argument"},
		{"body too large", "POST", "/v1/orgs/acme/keys/default/encrypt", big, 413, "payload_too_large"},
		{"plaintext too large", "POST", "/v1/orgs/acme/keys/default/encrypt", `{"plaintext":"` + tooLong + `"}`, 413, "payload_too_large"},
		{"batch too large", "POST", "/v1/orgs/acme/keys/default/encrypt", map[string]any{"batch": manyItems}, 413, "payload_too_large"},
		{"context too large", "POST", "/v1/orgs/acme/keys/default/encrypt", map[string]any{"plaintext": "aA==", "context": base64.StdEncoding.EncodeToString(make([]byte, 2000))}, 400, "invalid_argument"},
		{"bad datakey bits", "POST", "/v1/orgs/acme/keys/default/datakey", `{"bits":100}`, 400, "invalid_argument"},
		{"bad datakey type", "POST", "/v1/orgs/acme/keys/default/datakey", `{"type":"raw"}`, 400, "invalid_argument"},
		{"bad key name", "POST", "/v1/orgs/acme/keys", `{"name":"Bad Name"}`, 400, "invalid_argument"},
		{"duplicate key", "POST", "/v1/orgs/acme/keys", `{"name":"default"}`, 409, "conflict"},
		{"unknown org", "GET", "/v1/orgs/nope", nil, 404, "not_found"},
		{"unknown key", "GET", "/v1/orgs/acme/keys/nope", nil, 404, "not_found"},
		{"rotate unknown key", "POST", "/v1/orgs/acme/keys/nope/rotate", `{}`, 404, "not_found"},
		{"unknown route", "GET", "/v1/nothing", nil, 404, "not_found"},
		{"bad limit", "GET", "/v1/orgs?limit=0", nil, 400, "invalid_argument"},
		{"bad since", "GET", "/v1/orgs/acme/usage?since=yesterday", nil, 400, "invalid_argument"},
		{"token bad role", "POST", "/v1/tokens", `{"principal":"x","roles":["god"]}`, 400, "invalid_argument"},
		{"token operator for org", "POST", "/v1/tokens", `{"principal":"x","org":"acme","roles":["operator"]}`, 400, "invalid_argument"},
		{"token unknown org", "POST", "/v1/tokens", `{"principal":"x","org":"nope","roles":["service"]}`, 404, "not_found"},
		{"token bad ttl", "POST", "/v1/tokens", `{"principal":"x","roles":["service"],"ttl":"soon"}`, 400, "invalid_argument"},
		{"revoke unknown token", "DELETE", "/v1/tokens/tok_nope", nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := ts.raw(tt.method, tt.path, tok, tt.body)
			var eb client.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("body is not an error object: %.200s", body)
			}
			if status != tt.wantStatus || eb.Error.Code != tt.wantCode {
				t.Fatalf("%s %s: status %d code %q, want %d %q (message %q)", tt.method, tt.path, status, eb.Error.Code, tt.wantStatus, tt.wantCode, eb.Error.Message)
			}
			if eb.Error.Message == "" || eb.Error.RequestID == "" {
				t.Fatalf("error lacks message or request id: %s", body)
			}
		})
	}
}

// TestRestartKeepsData: after a restart on the same data directory, old
// ciphertexts decrypt.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	mustOrg(t, ts, "acme")
	tok := ts.token("svc", "", auth.RoleService)
	ct, _, err := ts.client(tok).Encrypt(t.Context(), "acme", "default", []byte("persist me"), []byte("c"))
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()
	ts2 := startServer(t, dir)
	pt, err := ts2.client(tok).Decrypt(t.Context(), "acme", "default", ct, []byte("c"))
	if err != nil || string(pt) != "persist me" {
		t.Fatalf("Decrypt after restart = %q, %v", pt, err)
	}
}

// TestNoKeyMaterialAtRestOrInLogs unwraps every key through the real
// hierarchy, then proves that none of those bytes (raw, hex or base64), nor
// the plaintexts, appear in the database files or in the logs.
func TestNoKeyMaterialAtRestOrInLogs(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	mustOrg(t, ts, "acme", "globex")
	ctx := t.Context()
	c := ts.client(ts.token("svc", "", auth.RoleService))
	admin := ts.client(ts.token("ka", "acme", auth.RoleKeyAdmin))
	if _, err := admin.RotateKey(ctx, "acme", "default"); err != nil {
		t.Fatal(err)
	}
	secretText := []byte("top-secret-plaintext-0123456789")
	var cts [][]byte
	for _, org := range []string{"acme", "globex"} {
		ct, _, err := c.Encrypt(ctx, org, "default", secretText, nil)
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, ct)
		if _, err := c.Decrypt(ctx, org, "default", ct, nil); err != nil {
			t.Fatal(err)
		}
		// A failing request too, so error paths are logged.
		c.Decrypt(ctx, org, "default", ct[:40], nil)
	}
	dk, err := c.DataKey(ctx, "acme", "default", client.DataKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.keys.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}

	var secrets [][]byte
	master, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, master, secretText, dk.Plaintext)
	keeper, err := ts.registry.Keeper(ts.master)
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", "globex"} {
		roots, err := ts.store.RootKeys(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		root, err := keeper.Unwrap(ctx, roots[0].Wrapped, keys.RootAAD(org))
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, root)
		rk, _ := envelope.NewKey(root)
		dkey, err := ts.store.GetDataKey(ctx, org, "default")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range dkey.Versions {
			m, err := envelope.UnwrapKey(rk, v.Wrapped, keys.DataKeyAAD(org, "default", v.Version))
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, m)
		}
	}
	if len(secrets) != 3+2+3 {
		t.Fatalf("collected %d secrets, want 8", len(secrets))
	}
	ts.stop() // checkpoint and close the database
	files, _ := filepath.Glob(filepath.Join(dir, "orgkms.db*"))
	if len(files) == 0 {
		t.Fatal("no database files found")
	}
	blobs := map[string][]byte{"logs": ts.logs.Bytes()}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blobs[filepath.Base(f)] = b
	}
	if len(blobs["logs"]) == 0 {
		t.Fatal("no logs captured")
	}
	for name, blob := range blobs {
		for i, s := range secrets {
			for _, form := range [][]byte{s, []byte(hex.EncodeToString(s)), []byte(base64.StdEncoding.EncodeToString(s)), []byte(base64.RawURLEncoding.EncodeToString(s))} {
				if bytes.Contains(blob, form) {
					t.Errorf("%s contains secret #%d", name, i)
				}
			}
		}
	}
	if len(cts) != 2 {
		t.Fatal("missing ciphertexts")
	}
}

// TestAuditTamperingDetected: a change to a stored audit event breaks the
// chain at that event, and verify reports where.
func TestAuditTamperingDetected(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	tok := ts.token("root", "", auth.RoleOperator)
	c := ts.client(tok)
	ctx := t.Context()
	for range 3 {
		if _, err := c.RotateKey(ctx, "acme", "default"); err != nil {
			t.Fatal(err)
		}
	}
	v, err := c.VerifyAudit(ctx, "acme")
	if err != nil || !v.OK || v.Events != 4 {
		t.Fatalf("VerifyAudit before tampering = %+v, %v; want ok with 4 events", v, err)
	}
	if _, err := ts.store.DB().ExecContext(ctx, `UPDATE audit_events SET actor = 'token:someone-else' WHERE org_id = 'acme' AND seq = 3`); err != nil {
		t.Fatal(err)
	}
	v, err = c.VerifyAudit(ctx, "acme")
	if err != nil || v.OK || v.BrokenAt != 3 || !strings.Contains(v.Reason, "modified") {
		t.Fatalf("VerifyAudit after tampering = %+v, %v; want broken at 3", v, err)
	}
	if _, err := ts.store.DB().ExecContext(ctx, `DELETE FROM audit_events WHERE org_id = 'acme' AND seq = 2`); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.VerifyAudit(ctx, "acme"); v.OK || v.BrokenAt != 3 {
		t.Fatalf("VerifyAudit after deleting an event = %+v; want broken at 3", v)
	}
}

// TestEmptyPlaintextRoundTrip: an empty message is a valid message.
func TestEmptyPlaintextRoundTrip(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	c := ts.client(ts.token("svc", "acme", auth.RoleService))
	ct, _, err := c.Encrypt(t.Context(), "acme", "default", []byte{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := c.Decrypt(t.Context(), "acme", "default", ct, nil)
	if err != nil || len(pt) != 0 {
		t.Fatalf("Decrypt(empty) = %q, %v", pt, err)
	}
	res, err := c.DecryptBatch(t.Context(), "acme", "default", []client.BatchItem{{Ciphertext: ct}})
	if err != nil || res[0].Error != nil || res[0].Plaintext == nil {
		t.Fatalf("DecryptBatch(empty) = %+v, %v; want an empty plaintext", res, err)
	}
}

func TestUsersAPI(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	ctx := t.Context()
	op := ts.client(ts.token("root", "", auth.RoleOperator))
	u, err := op.CreateUser(ctx, "acme", client.CreateUserRequest{Email: "Alice@Acme.example", Roles: []string{"admin", "key_admin"}, Password: "correct horse battery"})
	if err != nil || u.Email != "alice@acme.example" || u.Org != "acme" || len(u.Roles) != 2 {
		t.Fatalf("CreateUser = %+v, %v", u, err)
	}
	if _, err := op.CreateUser(ctx, "acme", client.CreateUserRequest{Email: "alice@acme.example", Roles: []string{"member"}, Password: "correct horse battery"}); apiCode(err) != "conflict" {
		t.Fatalf("duplicate email: %v, want conflict", err)
	}
	if _, err := op.CreateUser(ctx, "acme", client.CreateUserRequest{Email: "bob@acme.example", Roles: []string{"operator"}, Password: "correct horse battery"}); apiCode(err) != "invalid_argument" {
		t.Fatalf("operator role in an org: %v, want invalid_argument", err)
	}
	if _, err := op.CreateUser(ctx, "", client.CreateUserRequest{Email: "ops@platform.example", Roles: []string{"operator"}, Password: "correct horse battery"}); err != nil {
		t.Fatalf("platform user: %v", err)
	}
	us, err := op.ListUsers(ctx, "acme")
	if err != nil || len(us) != 1 || us[0].Email != "alice@acme.example" {
		t.Fatalf("ListUsers(acme) = %+v, %v", us, err)
	}
	raw, _ := json.Marshal(us)
	if strings.Contains(string(raw), "argon2") || strings.Contains(string(raw), "horse") {
		t.Fatal("a user listing leaks the password or its hash")
	}
	// The org's admin manages the org's users, not another org's.
	admin := ts.client(ts.token("a", "acme", auth.RoleAdmin))
	if _, err := admin.ListUsers(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ListUsers(ctx, ""); apiCode(err) != "permission_denied" {
		t.Fatalf("org admin listing platform users: %v", err)
	}
	// Separation of duties: an Admin alone cannot mint a Key Admin.
	if _, err := admin.CreateUser(ctx, "acme", client.CreateUserRequest{Email: "sock@acme.example", Roles: []string{"admin", "key_admin"}, Password: "correct horse battery"}); apiCode(err) != "permission_denied" {
		t.Fatalf("admin creating a key_admin: %v, want permission_denied", err)
	}
}

// TestCMKFallbackRoute: the fallback must confirm the data loss, and only
// a lost org may fall back.
func TestCMKFallbackRoute(t *testing.T) {
	ts := startServer(t, t.TempDir())
	op := ts.token("op", "", auth.RoleOperator)
	if code, body := ts.raw("POST", "/v1/orgs", op, map[string]string{"id": "acme"}); code != 201 {
		t.Fatalf("create org: %d %s", code, body)
	}
	tok := ts.token("sec", "acme", auth.RoleAdmin, auth.RoleKeyAdmin)
	tests := []struct {
		name     string
		body     any
		wantCode int
		wantErr  string
	}{
		{"no confirmation", map[string]bool{"confirm_data_loss": false}, 400, "invalid_argument"},
		{"empty body", "{}", 400, "invalid_argument"},
		{"not lost", map[string]bool{"confirm_data_loss": true}, 409, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := ts.raw("POST", "/v1/orgs/acme/cmk/fallback", tok, tt.body)
			var e client.ErrorBody
			json.Unmarshal(body, &e)
			if code != tt.wantCode || e.Error.Code != tt.wantErr {
				t.Fatalf("POST fallback = %d %s, want %d %s", code, body, tt.wantCode, tt.wantErr)
			}
		})
	}
}
