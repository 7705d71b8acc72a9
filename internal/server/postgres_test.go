package server_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// call sends body to the API of srv with token and decodes the answer.
func call(t *testing.T, srv *httptest.Server, token, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST %s: decode: %v", path, err)
	}
	return resp.StatusCode, out
}

// TestServerOnPostgres runs two whole servers, each with its own data
// directory, on one PostgreSQL database and one platform master key: what
// one node encrypts the other decrypts, and both are ready.
func TestServerOnPostgres(t *testing.T) {
	ctx := t.Context()
	key := make([]byte, 32)
	rand.Read(key)
	getenv := func(name string) string {
		if name == "TEST_MASTER_KEY" {
			return base64.StdEncoding.EncodeToString(key)
		}
		return ""
	}
	url := pgtest.URL(t)
	node := func() (*server.Server, *httptest.Server) {
		s := open(t, config.Config{DataDir: t.TempDir(), Database: url, MasterKey: "local:env:TEST_MASTER_KEY"}, server.Options{Getenv: getenv})
		if _, ok := s.Store.(*postgres.Store); !ok {
			t.Fatalf("Server.Store is %T, want *postgres.Store for a postgres:// database", s.Store)
		}
		srv := httptest.NewServer(s.Handler)
		t.Cleanup(srv.Close)
		return s, srv
	}
	s1, srv1 := node()
	_, srv2 := node()
	if _, err := s1.Keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, token, err := s1.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "svc", OrgID: "acme", Roles: []auth.Role{auth.RoleService}})
	if err != nil {
		t.Fatal(err)
	}
	plaintext := base64.StdEncoding.EncodeToString([]byte("hello from node 1"))
	status, enc := call(t, srv1, token, "/v1/orgs/acme/keys/default/encrypt", `{"plaintext":"`+plaintext+`","context":"aW52b2ljZS00Mg=="}`)
	ct, _ := enc["ciphertext"].(string)
	if status != http.StatusOK || ct == "" {
		t.Fatalf("encrypt on node 1 = %d %v, want 200 and a ciphertext", status, enc)
	}
	status, dec := call(t, srv2, token, "/v1/orgs/acme/keys/default/decrypt", `{"ciphertext":"`+ct+`","context":"aW52b2ljZS00Mg=="}`)
	if status != http.StatusOK || dec["plaintext"] != plaintext {
		t.Errorf("decrypt on node 2 = %d %v, want 200 and %q", status, dec, plaintext)
	}
	for i, srv := range []*httptest.Server{srv1, srv2} {
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /readyz on node %d = %d, want 200", i+1, resp.StatusCode)
		}
	}
}

// TestServerOnPostgresNeedsMigrate opens a server without migrations on an
// empty PostgreSQL database: it is refused with the migration to run, and
// the refusal does not show the database password.
func TestServerOnPostgresNeedsMigrate(t *testing.T) {
	url := pgtest.URL(t)
	cfg := config.Config{DataDir: t.TempDir(), Database: url}
	s, err := server.Open(t.Context(), cfg, server.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open(no migrate) on an empty database = nil error")
	}
	pw := cfg.Database[strings.Index(cfg.Database, "://")+3 : strings.Index(cfg.Database, "@")]
	pw = pw[strings.Index(pw, ":")+1:]
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(fault.Message(err), "run `orgkms migrate`") || strings.Contains(err.Error(), pw) {
		t.Errorf("Open(no migrate) on an empty database = %v, want a Conflict saying to run orgkms migrate, without the password", err)
	}
	s = open(t, cfg, server.Options{}) // open migrates
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = server.Open(t.Context(), cfg, server.Options{})
	if err != nil {
		t.Fatalf("Open(no migrate) on a migrated database = %v", err)
	}
	s.Close()
}
