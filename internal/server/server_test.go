package server_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func open(t *testing.T, cfg config.Config, opts server.Options) *server.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Migrate = true
	s, err := server.Open(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A revoked org is refused from the first request a freshly opened server
// answers, before any probe has run: Open loads the revoked orgs before it
// returns a handler.
func TestRevokedOrgRefusedFromFirstRequest(t *testing.T) {
	ctx := t.Context()
	cfg := config.Config{DataDir: t.TempDir()}
	s1 := open(t, cfg, server.Options{})
	if _, err := s1.Keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, token, err := s1.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "svc", OrgID: "acme", Roles: []auth.Role{auth.RoleService}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s1.Store.PutCMK(ctx, cmk.Record{OrgID: "acme", State: cmk.StateRevoked, ReasonCode: "cmk_key_disabled",
		Reason: "key orgkms-cmk is disabled in vault contoso-kv", RevokedSince: now, UpdatedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s2 := open(t, cfg, server.Options{})
	srv := httptest.NewServer(s2.Handler)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/orgs/acme/keys/default/encrypt", strings.NewReader(`{"plaintext":"aGVsbG8="}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFailedDependency || !strings.HasPrefix(body.Error.Code, "cmk_") {
		t.Errorf("first encrypt of a revoked org: status %d, code %q; want 424 and a cmk_* code", resp.StatusCode, body.Error.Code)
	}
}

func TestCloseIsIdempotentAndReleases(t *testing.T) {
	s := open(t, config.Config{DataDir: t.TempDir()}, server.Options{})
	s.Start(t.Context())
	if err := s.Close(); err != nil {
		t.Fatalf("first Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	if err := s.Store.(*sqlite.Store).DB().PingContext(t.Context()); err == nil {
		t.Error("the store still answers after Close")
	}
	s.Start(t.Context()) // after Close: starts nothing
	if err := s.Close(); err != nil {
		t.Fatalf("Close after Start on a closed server = %v", err)
	}
	var none *server.Server
	if err := none.Close(); err != nil {
		t.Fatalf("Close of a nil server = %v", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name     string
		cfg      func(dir string) config.Config
		wantText string
		wantDir  bool // the data directory exists after the failed Open
	}{
		{"invalid config, before touching the disk", func(dir string) config.Config {
			return config.Config{DataDir: filepath.Join(dir, "data"), Addr: "nope"}
		}, "addr", false},
		{"unusable platform key", func(dir string) config.Config {
			return config.Config{DataDir: filepath.Join(dir, "data"), MasterKey: "local:env:ORGKMS_TEST_NO_SUCH_KEY"}
		}, "platform master key", true},
		{"unknown master key provider", func(dir string) config.Config {
			return config.Config{DataDir: filepath.Join(dir, "data"), MasterKey: "awskms://alias/x"}
		}, "master_key", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := server.Open(t.Context(), tc.cfg(dir), server.Options{Logger: slog.New(slog.DiscardHandler), Migrate: true,
				Getenv: func(string) string { return "" }})
			if err == nil {
				s.Close()
				t.Fatalf("Open = nil error, want one naming %q", tc.wantText)
			}
			if s != nil {
				t.Errorf("Open returned a server with its error %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Open error %q does not name %q", err, tc.wantText)
			}
			if _, statErr := os.Stat(filepath.Join(dir, "data")); (statErr == nil) != tc.wantDir {
				t.Errorf("data directory exists = %v after the failed Open, want %v", statErr == nil, tc.wantDir)
			}
		})
	}
}

// The node identity is created once in DATA_DIR/node-id and kept across
// restarts; a damaged file stops the start with a message naming it.
func TestNodeIDPersists(t *testing.T) {
	cfg := config.Config{DataDir: t.TempDir()}
	s1 := open(t, cfg, server.Options{})
	id := s1.NodeID
	s1.Close()
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "node-id"))
	if err != nil || strings.TrimSpace(string(b)) != id || id == "" {
		t.Fatalf("node-id file = %q, %v; want %q", b, err, id)
	}
	s2 := open(t, cfg, server.Options{})
	if s2.NodeID != id {
		t.Errorf("NodeID after a restart = %q, want %q", s2.NodeID, id)
	}
	s2.Close()
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "node-id"), []byte("not a node id\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = server.Open(t.Context(), cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Migrate: true})
	if err == nil || !strings.Contains(err.Error(), "node-id") {
		t.Errorf("Open with a damaged node-id = %v, want an error naming node-id", err)
	}
}
