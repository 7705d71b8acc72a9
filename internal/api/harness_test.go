package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/server"
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

// testServer is a whole orgkms (internal/server, as orgkms serve builds it)
// over a SQLite file and a local master key in dir, serving its handler.
type testServer struct {
	t        testing.TB
	dir      string
	url      string
	srv      *httptest.Server
	server   *server.Server
	store    *sqlite.Store
	keys     *keys.Service
	tokens   *auth.Service
	logs     *syncBuffer
	master   masterkey.Ref
	registry *masterkey.Registry
}

func startServer(t testing.TB, dir string) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.Open(context.Background(), config.Config{DataDir: dir, LogRequests: true}, server.Options{Logger: log, Migrate: true})
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

func (ts *testServer) stop() {
	if ts.srv == nil {
		return
	}
	ts.srv.Close()
	if err := ts.server.Close(); err != nil {
		ts.t.Errorf("server Close: %v", err)
	}
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
