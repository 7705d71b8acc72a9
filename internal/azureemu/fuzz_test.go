package azureemu

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseToken: a bearer token a client presents to a vault is untrusted
// input. Checking it never panics, and only what the emulator signed is
// accepted: the claims of an accepted token are exactly those of a token it
// issued (here, the seeds).
func FuzzParseToken(f *testing.F) {
	e := &Emulator{st: newState(), now: time.Now}
	base := tokenClaims{Aud: resourceVault, Iss: issuerV1("t1"), Iat: 1, Nbf: 1, Exp: 2, AppID: "app", Oid: "oid", Sub: "oid", Tid: "t1", Uti: "u", Ver: "1.0"}
	gen := base
	gen.Gen = 3
	issued := []tokenClaims{base, gen}
	for _, c := range issued {
		tok := e.issueTokenLocked(c)
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	for _, s := range []string{"a.b.c", "..", "eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ0MSJ9.", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if c, ok := e.parseTokenLocked(tok); ok && !slices.Contains(issued, c) {
			t.Fatalf("token %q was accepted with claims %+v the emulator never signed", tok, c)
		}
		e.checkToken(tok, resourceVault, "t1", false) // never panics
	})
}

// FuzzVaultPath: the method and path of a vault request are untrusted
// input. Routing never panics; a known operation needs a real access-policy
// permission and names a key unless it lists keys.
func FuzzVaultPath(f *testing.F) {
	for _, s := range []struct{ method, path string }{
		{"GET", "/keys"}, {"GET", "/keys/k1"}, {"GET", "/keys/k1/"}, {"GET", "/keys/k1/0123456789abcdef0123456789abcdef"},
		{"POST", "/keys/k1/wrapkey"}, {"POST", "/keys/k1/v1/unwrapKey"}, {"POST", "/keys/k1/create"}, {"POST", "/keys/k1/rotate"},
		{"PATCH", "/keys/k1/v1"}, {"DELETE", "/keys/k1"}, {"GET", "/keys/k1/versions"}, {"GET", "/deletedkeys"},
		{"GET", "/deletedkeys/k1"}, {"POST", "/deletedkeys/k1/recover"}, {"DELETE", "/deletedkeys/k1"}, {"GET", "/secrets/s1"},
		{"GET", "//"}, {"POST", "/keys//wrapkey"}, {"GET", "/KEYS/K1/V1/"},
	} {
		f.Add(s.method, s.path)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		op, perm, name, _, ok := classify(method, path)
		if !ok {
			return
		}
		if op == "" || !slices.Contains(Permissions, perm) {
			t.Fatalf("classify(%q, %q) = op %q, permission %q", method, path, op, perm)
		}
		if name == "" && op != OpList && op != OpListDeleted {
			t.Fatalf("classify(%q, %q) = %s without a key name", method, path, op)
		}
		if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodPut}, method) {
			t.Fatalf("classify(%q, %q) accepted method %q", method, path, method)
		}
	})
}
