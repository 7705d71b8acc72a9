package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/metrics"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// syncBuffer collects log output safely from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.b.Bytes()...)
}

// testServer is a real orgkms API over a SQLite file and a local master key.
type testServer struct {
	t        testing.TB
	dir      string
	url      string
	srv      *httptest.Server
	store    *sqlite.Store
	keys     *keys.Service
	tokens   *auth.Service
	logs     *syncBuffer
	master   masterkey.Ref
	registry *masterkey.Registry
}

func startServer(t testing.TB, dir string) *testServer {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "orgkms.db"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "master.key")
	if _, err := localkey.EnsureFile(keyPath); err != nil {
		t.Fatal(err)
	}
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	platform, err := reg.ParseRef("local://" + keyPath)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	toks := auth.NewService(st, ks, nil, 0)
	cs, err := cmk.New(cmk.Config{Store: st, Keys: ks, Keepers: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var cache *keys.Cache = ks.Cache()
	m := metrics.New(func() float64 { return float64(cache.Hits.Load()) }, func() float64 { return float64(cache.Misses.Load()) }, func() float64 { return float64(cache.Len()) })
	h := New(Config{Keys: ks, Tokens: toks, CMK: cs, Users: auth.NewUsers(st, nil, 0), Metrics: m, Logger: log, LogRequests: true, Ready: st.Health})
	srv := httptest.NewServer(h)
	ts := &testServer{t: t, dir: dir, url: srv.URL, srv: srv, store: st, keys: ks, tokens: toks, logs: logs, master: platform, registry: reg}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ts.srv.Close()
	ts.keys.Close(context.Background())
	ts.store.Close()
	ts.srv = nil
}

// token creates a token directly through the service.
func (ts *testServer) token(principal, org string, roles ...auth.Role) string {
	ts.t.Helper()
	_, secret, err := ts.tokens.Create(context.Background(), "test", auth.CreateTokenRequest{Principal: principal, OrgID: org, Roles: roles})
	if err != nil {
		ts.t.Fatal(err)
	}
	return secret
}

func (ts *testServer) client(token string) *client.Client {
	ts.t.Helper()
	c, err := client.New(client.Config{Addr: ts.url, Token: token})
	if err != nil {
		ts.t.Fatal(err)
	}
	return c
}

// raw sends a request and returns status and body.
func (ts *testServer) raw(method, path, token string, body any) (int, []byte) {
	ts.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewReader([]byte(b))
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, ts.url+path, r)
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
