package api_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
)

// vaultClient is the Vault Go client, unchanged, pointed at orgkms with an
// orgkms API token.
func vaultClient(t testing.TB, addr, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	c.ClearNamespace()
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// str returns data[key] as a string, failing the test otherwise.
func str(t *testing.T, s *vault.Secret, key string) string {
	t.Helper()
	if s == nil || s.Data == nil {
		t.Fatalf("no secret data, want %s", key)
	}
	v, ok := s.Data[key].(string)
	if !ok {
		t.Fatalf("data[%s] = %#v, want a string", key, s.Data[key])
	}
	return v
}

func num(t *testing.T, s *vault.Secret, key string) int64 {
	t.Helper()
	n, ok := s.Data[key].(json.Number)
	if !ok {
		t.Fatalf("data[%s] = %#v, want a number", key, s.Data[key])
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// vaultErr asserts that err is a Vault ResponseError with status and one
// error message containing want.
func vaultErr(t *testing.T, what string, err error, status int, want string) {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: err = %v, want a *vault.ResponseError %d", what, err, status)
	}
	if re.StatusCode != status {
		t.Errorf("%s: status %d, want %d (errors %q)", what, re.StatusCode, status, re.Errors)
	}
	if !slices.ContainsFunc(re.Errors, func(e string) bool { return strings.Contains(e, want) }) {
		t.Errorf("%s: errors = %q, want one containing %q", what, re.Errors, want)
	}
}

func transitOrg(t *testing.T, ts *testServer, org string) {
	t.Helper()
	if _, err := ts.keys.CreateOrg(t.Context(), "test", org, ""); err != nil {
		t.Fatal(err)
	}
}

// TestTransitVaultClient drives the Transit-compatible API with the Vault Go
// client: keys create, read, list, rotate and config; encrypt, decrypt,
// rewrap and datakey; context as associated data; min_decryption_version.
func TestTransitVaultClient(t *testing.T) {
	ts := startServer(t, t.TempDir())
	transitOrg(t, ts, "acme")
	v := vaultClient(t, ts.url, ts.token("app", "acme", auth.RoleService, auth.RoleKeyAdmin)).Logical()

	k, err := v.Write("transit/keys/payments", map[string]any{"type": "aes256-gcm96", "exportable": false})
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	if str(t, k, "name") != "payments" || str(t, k, "type") != "aes256-gcm96" || num(t, k, "latest_version") != 1 {
		t.Errorf("create key: data = %v", k.Data)
	}
	again, err := v.Write("transit/keys/payments", nil)
	if err != nil || !slices.Contains(again.Warnings, "key payments already existed") {
		t.Errorf("create existing key: %v, warnings %q, want the warning key payments already existed", err, again.Warnings)
	}
	k, err = v.Read("transit/keys/payments")
	if err != nil {
		t.Fatalf("read key: %v", err)
	}
	if vs, _ := k.Data["keys"].(map[string]any); len(vs) != 1 || vs["1"] == nil {
		t.Errorf("read key: keys = %v, want version 1 with its creation time", k.Data["keys"])
	}
	if num(t, k, "min_decryption_version") != 1 || k.Data["supports_encryption"] != true || k.Data["derived"] != false {
		t.Errorf("read key: data = %v", k.Data)
	}
	if s, err := v.Read("transit/keys/missing"); err != nil || s != nil {
		t.Errorf("read missing key = %v, %v; want nil, nil (404)", s, err)
	}
	l, err := v.List("transit/keys")
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	if ks, _ := l.Data["keys"].([]any); !slices.Contains(ks, any("payments")) || !slices.Contains(ks, any("default")) {
		t.Errorf("list keys = %v, want default and payments", l.Data["keys"])
	}

	enc, err := v.Write("transit/encrypt/payments", map[string]any{"plaintext": b64("4111 1111 1111 1111")})
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	ct1 := str(t, enc, "ciphertext")
	if !strings.HasPrefix(ct1, "vault:v1:") || num(t, enc, "key_version") != 1 {
		t.Errorf("encrypt: data = %v, want a vault:v1: ciphertext and key_version 1", enc.Data)
	}
	dec, err := v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ct1})
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	if got := str(t, dec, "plaintext"); got != b64("4111 1111 1111 1111") {
		t.Errorf("decrypt: plaintext = %q", got)
	}

	// context is bound as associated data: decrypt needs the same one.
	encCtx, err := v.Write("transit/encrypt/payments", map[string]any{"plaintext": b64("pin"), "context": b64("customer-7")})
	if err != nil {
		t.Fatalf("encrypt with context: %v", err)
	}
	ctCtx := str(t, encCtx, "ciphertext")
	_, err = v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ctCtx, "context": b64("customer-8")})
	vaultErr(t, "decrypt with another context", err, 400, "ciphertext is invalid")
	_, err = v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ctCtx})
	vaultErr(t, "decrypt without the context", err, 400, "ciphertext is invalid")
	if dec, err := v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ctCtx, "context": b64("customer-7")}); err != nil || str(t, dec, "plaintext") != b64("pin") {
		t.Errorf("decrypt with the context: %v", err)
	}

	// Rotation: new ciphertexts use v2, old ones still decrypt, rewrap
	// moves them forward.
	rot, err := v.Write("transit/keys/payments/rotate", nil)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if num(t, rot, "latest_version") != 2 {
		t.Errorf("rotate: data = %v, want latest_version 2", rot.Data)
	}
	enc2, err := v.Write("transit/encrypt/payments", map[string]any{"plaintext": b64("new")})
	if err != nil || !strings.HasPrefix(str(t, enc2, "ciphertext"), "vault:v2:") {
		t.Fatalf("encrypt after rotate: %v %v", err, enc2)
	}
	if dec, err := v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ct1}); err != nil || str(t, dec, "plaintext") != b64("4111 1111 1111 1111") {
		t.Fatalf("decrypt v1 after rotate: %v", err)
	}
	rw, err := v.Write("transit/rewrap/payments", map[string]any{"ciphertext": ct1})
	if err != nil {
		t.Fatalf("rewrap: %v", err)
	}
	ct1v2 := str(t, rw, "ciphertext")
	if !strings.HasPrefix(ct1v2, "vault:v2:") || num(t, rw, "key_version") != 2 {
		t.Errorf("rewrap: data = %v, want vault:v2:", rw.Data)
	}
	_, err = v.Write("transit/encrypt/payments", map[string]any{"plaintext": b64("x"), "key_version": 3})
	vaultErr(t, "encrypt with key_version 3", err, 400, "requested version for encryption is higher than the latest key version")
	_, err = v.Write("transit/encrypt/payments", map[string]any{"plaintext": b64("x"), "key_version": 1})
	vaultErr(t, "encrypt with key_version 1", err, 400, "encrypting with a key version other than the latest")
	if enc, err := v.Write("transit/encrypt/payments", map[string]any{"plaintext": b64("x"), "key_version": 2}); err != nil || num(t, enc, "key_version") != 2 {
		t.Errorf("encrypt with key_version 2 (the latest): %v", err)
	}

	// min_decryption_version retires v1 with Transit's error.
	cfg, err := v.Write("transit/keys/payments/config", map[string]any{"min_decryption_version": 2})
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	if num(t, cfg, "min_decryption_version") != 2 {
		t.Errorf("config: data = %v", cfg.Data)
	}
	_, err = v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ct1})
	vaultErr(t, "decrypt v1 below min_decryption_version", err, 400, "ciphertext or signature version is disallowed by policy (too old)")
	if dec, err := v.Write("transit/decrypt/payments", map[string]any{"ciphertext": ct1v2}); err != nil || str(t, dec, "plaintext") != b64("4111 1111 1111 1111") {
		t.Errorf("decrypt the rewrapped ciphertext: %v", err)
	}
	_, err = v.Write("transit/keys/payments/config", map[string]any{"min_decryption_version": 9})
	vaultErr(t, "config beyond the latest version", err, 400, "min_decryption_version")

	// datakey
	dk, err := v.Write("transit/datakey/plaintext/payments", map[string]any{"bits": 512, "context": b64("file-1")})
	if err != nil {
		t.Fatalf("datakey plaintext: %v", err)
	}
	plain, _ := base64.StdEncoding.DecodeString(str(t, dk, "plaintext"))
	if len(plain) != 64 || num(t, dk, "key_version") != 2 {
		t.Errorf("datakey plaintext: %d bytes, data %v; want 64 bytes, key_version 2", len(plain), dk.Data)
	}
	back, err := v.Write("transit/decrypt/payments", map[string]any{"ciphertext": str(t, dk, "ciphertext"), "context": b64("file-1")})
	if err != nil || str(t, back, "plaintext") != str(t, dk, "plaintext") {
		t.Errorf("decrypt the data key: %v", err)
	}
	wk, err := v.Write("transit/datakey/wrapped/payments", nil)
	if err != nil {
		t.Fatalf("datakey wrapped: %v", err)
	}
	if _, has := wk.Data["plaintext"]; has || !strings.HasPrefix(str(t, wk, "ciphertext"), "vault:v2:") {
		t.Errorf("datakey wrapped: data = %v, want a ciphertext only", wk.Data)
	}
	_, err = v.Write("transit/datakey/raw/payments", nil)
	vaultErr(t, "datakey raw", err, 400, "Invalid path, must be 'plaintext' or 'wrapped'")

	// Missing keys and malformed ciphertexts, in Transit's words.
	_, err = v.Write("transit/decrypt/nope", map[string]any{"ciphertext": ct1v2})
	vaultErr(t, "decrypt with a missing key", err, 400, "encryption key not found")
	_, err = v.Write("transit/decrypt/payments", map[string]any{"ciphertext": "AAAA"})
	vaultErr(t, "decrypt without prefix", err, 400, "invalid ciphertext: no prefix")
	_, err = v.Write("transit/decrypt/payments", map[string]any{"ciphertext": "vault:v2:!!"})
	vaultErr(t, "decrypt bad base64", err, 400, "invalid ciphertext: could not decode base64")
	_, err = v.Write("transit/encrypt/payments", map[string]any{})
	vaultErr(t, "encrypt without plaintext", err, 400, "missing plaintext to encrypt")
	_, err = v.Write("transit/keys/nope/rotate", nil)
	vaultErr(t, "rotate a missing key", err, 400, "not found")

	// Every change is in the org's audit log, by the token's principal.
	evs, err := ts.keys.AuditEvents(t.Context(), "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"key.create", "key.rotate", "key.set_min_decryption_version"} {
		if !slices.ContainsFunc(evs, func(e audit.Event) bool {
			return e.Action == want && e.Target == "key/payments" && strings.Contains(e.Actor, "app")
		}) {
			t.Errorf("audit: no %s of key/payments by the token's principal", want)
		}
	}
}

// TestTransitBatch checks batch_input: per-item results in input order with
// reference echoed, Transit's 400 on a failed item (its batch_results still
// in the body), partial_failure_response_code, and rewrap's 200.
func TestTransitBatch(t *testing.T) {
	ts := startServer(t, t.TempDir())
	transitOrg(t, ts, "acme")
	c := vaultClient(t, ts.url, ts.token("app", "acme", auth.RoleService))
	v := c.Logical()

	batch := map[string]any{"batch_input": []map[string]any{
		{"plaintext": b64("one"), "reference": "r1"},
		{"plaintext": "not base64!", "reference": "r2"},
		{"plaintext": b64("three"), "context": b64("c3"), "reference": "r3"},
	}}
	body, _ := json.Marshal(batch)
	resp, err := v.WriteRaw("transit/encrypt/default", body)
	if resp == nil || resp.StatusCode != 400 {
		t.Fatalf("encrypt batch with a bad item: %v, %v; want 400", resp, err)
	}
	res := batchResults(t, resp.Body)
	if len(res) != 3 || res[0].Reference != "r1" || res[1].Reference != "r2" || res[2].Reference != "r3" {
		t.Fatalf("batch_results = %+v, want 3 in input order", res)
	}
	if res[0].Error != "" || !strings.HasPrefix(res[0].Ciphertext, "vault:v1:") || res[2].Error != "" || res[2].Ciphertext == "" {
		t.Errorf("good items: %+v", res)
	}
	if !strings.Contains(res[1].Error, "failed to base64-decode plaintext") || res[1].Ciphertext != "" {
		t.Errorf("bad item: %+v, want the base64 error", res[1])
	}

	// With partial_failure_response_code, Write succeeds and keeps the
	// results.
	batch["partial_failure_response_code"] = 207
	s, err := v.Write("transit/encrypt/default", batch)
	if err != nil {
		t.Fatalf("encrypt batch with partial_failure_response_code: %v", err)
	}
	items, _ := s.Data["batch_results"].([]any)
	if len(items) != 3 {
		t.Fatalf("batch_results = %v", s.Data["batch_results"])
	}

	dec := map[string]any{"batch_input": []map[string]any{
		{"ciphertext": res[0].Ciphertext},
		{"ciphertext": res[2].Ciphertext, "context": b64("c3")},
		{"ciphertext": res[2].Ciphertext, "context": b64("wrong")},
	}}
	body, _ = json.Marshal(dec)
	resp, _ = v.WriteRaw("transit/decrypt/default", body)
	if resp == nil || resp.StatusCode != 400 {
		t.Fatalf("decrypt batch with a bad item: want 400, got %v", resp)
	}
	dres := batchResults(t, resp.Body)
	if len(dres) != 3 || dres[0].Plaintext != b64("one") || dres[1].Plaintext != b64("three") || dres[2].Error == "" || dres[2].Plaintext != "" {
		t.Errorf("decrypt batch_results = %+v", dres)
	}

	if _, err := v.Write("transit/keys/default/rotate", nil); err == nil {
		t.Fatal("rotate with a service-only token: want 403")
	} else {
		vaultErr(t, "rotate with a service-only token", err, 403, "permission denied")
	}
	rw, err := v.Write("transit/rewrap/default", map[string]any{"batch_input": []map[string]any{
		{"ciphertext": res[0].Ciphertext, "reference": "a"},
		{"ciphertext": "vault:v1:AAAA", "reference": "b"},
	}})
	if err != nil {
		t.Fatalf("rewrap batch with a bad item: %v (Transit answers 200)", err)
	}
	ritems, _ := rw.Data["batch_results"].([]any)
	if len(ritems) != 2 {
		t.Fatalf("rewrap batch_results = %v", rw.Data)
	}
	if e := ritems[1].(map[string]any)["error"]; e == nil || e == "" {
		t.Errorf("rewrap item b: %v, want an error", ritems[1])
	}
	if ct := ritems[0].(map[string]any)["ciphertext"]; ct == nil {
		t.Errorf("rewrap item a: %v, want a ciphertext", ritems[0])
	}
	_, err = v.Write("transit/encrypt/default", map[string]any{"batch_input": []any{}})
	vaultErr(t, "empty batch", err, 400, "missing batch input to process")
}

type transitBatchItem struct {
	Ciphertext string `json:"ciphertext"`
	Plaintext  string `json:"plaintext"`
	Reference  string `json:"reference"`
	Error      string `json:"error"`
}

func batchResults(t *testing.T, r io.Reader) []transitBatchItem {
	t.Helper()
	var body struct {
		Data struct {
			BatchResults []transitBatchItem `json:"batch_results"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		t.Fatalf("batch body: %v", err)
	}
	return body.Data.BatchResults
}

// TestTransitTenants checks that a Transit key is the token's org's key: a
// token of org B cannot use org A's keys or decrypt its ciphertexts, a
// platform token needs X-Vault-Namespace, and authorization is orgkms'.
func TestTransitTenants(t *testing.T) {
	ts := startServer(t, t.TempDir())
	transitOrg(t, ts, "acme")
	transitOrg(t, ts, "beta")
	a := vaultClient(t, ts.url, ts.token("a", "acme", auth.RoleService, auth.RoleKeyAdmin)).Logical()
	bc := vaultClient(t, ts.url, ts.token("b", "beta", auth.RoleService, auth.RoleKeyAdmin))
	b := bc.Logical()

	if _, err := a.Write("transit/keys/secrets", nil); err != nil {
		t.Fatal(err)
	}
	enc, err := a.Write("transit/encrypt/secrets", map[string]any{"plaintext": b64("acme only")})
	if err != nil {
		t.Fatal(err)
	}
	ct := str(t, enc, "ciphertext")
	_, err = b.Write("transit/decrypt/secrets", map[string]any{"ciphertext": ct})
	vaultErr(t, "org B decrypts with org A's key name", err, 400, "encryption key not found")
	if s, err := b.Read("transit/keys/secrets"); err != nil || s != nil {
		t.Errorf("org B reads org A's key: %v, %v; want nil, nil (404)", s, err)
	}
	encA, _ := a.Write("transit/encrypt/default", map[string]any{"plaintext": b64("acme default")})
	_, err = b.Write("transit/decrypt/default", map[string]any{"ciphertext": str(t, encA, "ciphertext")})
	vaultErr(t, "org B decrypts org A's default-key ciphertext", err, 400, "ciphertext is invalid")
	bc.SetNamespace("acme")
	_, err = bc.Logical().Write("transit/decrypt/secrets", map[string]any{"ciphertext": ct})
	vaultErr(t, "org B's token naming org A as namespace", err, 403, "limited to org beta")

	// A platform token: refused without a namespace, served with one.
	pc := vaultClient(t, ts.url, ts.token("platform-svc", "", auth.RoleService))
	_, err = pc.Logical().Write("transit/encrypt/secrets", map[string]any{"plaintext": b64("x")})
	vaultErr(t, "platform token without namespace", err, 400, "X-Vault-Namespace")
	pc.SetNamespace("acme/")
	if dec, err := pc.Logical().Write("transit/decrypt/secrets", map[string]any{"ciphertext": ct}); err != nil || str(t, dec, "plaintext") != b64("acme only") {
		t.Errorf("platform token with namespace acme: %v", err)
	}

	// Authorization is orgkms': a member token may read keys, not use them.
	m := vaultClient(t, ts.url, ts.token("m", "acme", auth.RoleMember)).Logical()
	if _, err := m.Read("transit/keys/secrets"); err != nil {
		t.Errorf("member reads a key: %v", err)
	}
	_, err = m.Write("transit/encrypt/secrets", map[string]any{"plaintext": b64("x")})
	vaultErr(t, "member encrypts", err, 403, "permission denied")
	_, err = m.Write("transit/keys/other", nil)
	vaultErr(t, "member creates a key", err, 403, "permission denied")
	bad := vaultClient(t, ts.url, "okms_not-a-token").Logical()
	_, err = bad.Write("transit/encrypt/secrets", map[string]any{"plaintext": b64("x")})
	vaultErr(t, "unknown token", err, 401, "")

	// Upsert: encrypt creates a missing key when the token may manage keys
	// (Transit's create capability), else it is not found.
	if _, err := a.Write("transit/encrypt/fresh", map[string]any{"plaintext": b64("x")}); err != nil {
		t.Errorf("encrypt upserts a key for a key_admin token: %v", err)
	}
	svc := vaultClient(t, ts.url, ts.token("s", "acme", auth.RoleService)).Logical()
	_, err = svc.Write("transit/encrypt/fresh2", map[string]any{"plaintext": b64("x")})
	vaultErr(t, "encrypt on a missing key, service-only token", err, 400, "encryption key not found")

	// Authorization: Bearer works as well as X-Vault-Token.
	code, body := ts.raw("PUT", "/v1/transit/decrypt/secrets", ts.token("a2", "acme", auth.RoleService), map[string]any{"ciphertext": ct})
	if code != 200 || !strings.Contains(string(body), b64("acme only")) {
		t.Errorf("decrypt with Authorization: Bearer: %d %s", code, body)
	}
}

// TestTransitUnsupported checks that each Transit feature orgkms does not
// have answers 400 naming it. The endpoints without a route are not in
// openapi.json, so this server does not check exchanges against it.
func TestTransitUnsupported(t *testing.T) {
	ts := startServer(t, t.TempDir())
	transitOrg(t, ts, "acme")
	tok := ts.token("a", "acme", auth.RoleService, auth.RoleKeyAdmin)
	v := vaultClient(t, ts.url, tok).Logical()
	for _, tc := range []struct {
		path string
		data map[string]any
		want string
	}{
		{"transit/keys/k1", map[string]any{"convergent_encryption": true, "derived": true}, "convergent encryption"},
		{"transit/keys/k1", map[string]any{"derived": true}, "derived keys"},
		{"transit/keys/k1", map[string]any{"exportable": true}, "exportable keys"},
		{"transit/keys/k1", map[string]any{"type": "rsa-2048"}, `key type "rsa-2048"`},
		{"transit/keys/k1", map[string]any{"type": "chacha20-poly1305"}, `key type "chacha20-poly1305"`},
		{"transit/keys/k1", map[string]any{"auto_rotate_period": "24h"}, "automatic rotation"},
		{"transit/keys/default/config", map[string]any{"deletion_allowed": true}, "deleting keys"},
		{"transit/keys/default/config", map[string]any{"min_encryption_version": 1}, "min_encryption_version"},
		{"transit/keys/default/config", map[string]any{"allow_plaintext_backup": true}, "plaintext key backup"},
		{"transit/encrypt/default", map[string]any{"plaintext": b64("x"), "nonce": b64("123456789012")}, "nonce"},
		{"transit/encrypt/default", map[string]any{"plaintext": b64("x"), "type": "ecdsa-p256"}, `key type "ecdsa-p256"`},
	} {
		_, err := v.Write(tc.path, tc.data)
		vaultErr(t, tc.path+" "+tc.want, err, 400, tc.want)
	}
	if s, err := v.Read("transit/keys/k1"); s != nil || err != nil {
		t.Errorf("a refused create made key k1: %v %v", s, err)
	}
}

// TestTransitUnsupportedEndpoints checks the Transit endpoints orgkms does
// not serve: 400 naming the feature. They are not routes (openapi.json does
// not describe them, as it describes no missing path), so this server is
// not wrapped in the conformance check.
func TestTransitUnsupportedEndpoints(t *testing.T) {
	ts := startServer(t, t.TempDir())
	transitOrg(t, ts, "acme")
	srv := httptest.NewServer(ts.server.Handler)
	t.Cleanup(srv.Close)
	v := vaultClient(t, srv.URL, ts.token("a", "acme", auth.RoleService, auth.RoleKeyAdmin)).Logical()
	for _, tc := range []struct {
		method, path, want string
	}{
		{"PUT", "transit/sign/default", "signing (sign)"},
		{"PUT", "transit/verify/default", "verification"},
		{"PUT", "transit/hmac/default", "HMAC"},
		{"PUT", "transit/hash", "hashing"},
		{"PUT", "transit/random/32", "random bytes"},
		{"GET", "transit/export/encryption-key/default", "key export"},
		{"GET", "transit/backup/default", "key backup"},
		{"PUT", "transit/restore/default", "key restore"},
		{"PUT", "transit/keys/default/trim", "trimming key versions"},
		{"PUT", "transit/keys/default/import", "key import"},
		{"DELETE", "transit/keys/default", "deleting keys"},
	} {
		var err error
		switch tc.method {
		case "GET":
			_, err = v.Read(tc.path)
		case "DELETE":
			_, err = v.Delete(tc.path)
		default:
			_, err = v.Write(tc.path, map[string]any{"input": b64("x")})
		}
		vaultErr(t, tc.method+" "+tc.path, err, 400, tc.want)
	}
	list, _ := http.NewRequest("LIST", srv.URL+"/v1/transit/keys", nil)
	list.Header.Set("X-Vault-Token", ts.token("l", "acme", auth.RoleMember))
	lresp, err := http.DefaultClient.Do(list)
	if err != nil {
		t.Fatal(err)
	}
	lbody, _ := io.ReadAll(lresp.Body)
	lresp.Body.Close()
	if lresp.StatusCode != 200 || !strings.Contains(string(lbody), `"keys":["default"]`) {
		t.Errorf("LIST /v1/transit/keys: %d %s, want 200 and the key default", lresp.StatusCode, lbody)
	}
	_, err = v.Write("transit/nothing/here", nil)
	vaultErr(t, "unknown path", err, 404, "unsupported path")
	req, _ := http.NewRequest("PATCH", srv.URL+"/v1/transit/encrypt/default", nil)
	req.Header.Set("X-Vault-Token", ts.token("b", "acme", auth.RoleService))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST, PUT" {
		t.Errorf("PATCH encrypt: %d, Allow %q; want 405, Allow POST, PUT", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// rawHeader is raw with extra request headers.
func (ts *testServer) rawHeader(method, path, token string, hdr http.Header, body any) (int, []byte) {
	ts.t.Helper()
	var r io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		r = strings.NewReader(string(j))
	}
	req, _ := http.NewRequest(method, ts.url+path, r)
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
