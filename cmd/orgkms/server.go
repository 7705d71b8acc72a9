package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/metrics"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// stack is a running orgkms: store, keys, tokens and the HTTP server.
type stack struct {
	cfg      config.Config
	log      *slog.Logger
	store    *sqlite.Store
	registry *masterkey.Registry
	keys     *keys.Service
	tokens   *auth.Service
	handler  http.Handler
	listener net.Listener
	server   *http.Server
}

func newLogger(cfg config.Config, w *os.File) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStack opens everything a server needs. migrate applies schema
// migrations; otherwise an outdated schema is refused.
func openStack(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool) (*stack, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: cfg.Database, Logger: log, NoMigrate: !migrate})
	if err != nil {
		return nil, err
	}
	s := &stack{cfg: cfg, log: log, store: st}
	var cache *keys.Cache
	m := metrics.New(
		func() float64 { return float64(cache.Hits.Load()) },
		func() float64 { return float64(cache.Misses.Load()) },
		func() float64 { return float64(cache.Len()) })
	s.registry = providers(log, m)
	platform, err := s.registry.ParseRef(cfg.MasterKey)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("master_key: %w", err)
	}
	if platform.Provider == localkey.Scheme && !strings.HasPrefix(platform.ID, "env:") {
		created, err := localkey.EnsureFile(platform.ID)
		if err != nil {
			st.Close()
			return nil, err
		}
		if created {
			log.Warn("created a new platform master key; back it up: without it no org can be decrypted", slog.String("key_ref", cfg.MasterKey))
		}
	}
	// Fail fast if the platform master key is unusable.
	keeper, err := s.registry.Keeper(platform)
	if err != nil {
		st.Close()
		return nil, err
	}
	if rep := keeper.Probe(ctx, platform); !rep.OK() {
		st.Close()
		return nil, fmt.Errorf("platform master key %s is not usable (%s): %w", cfg.MasterKey, rep.Failed, rep.Err)
	}
	s.keys, err = keys.New(keys.Config{Store: st, Keepers: s.registry, PlatformKey: platform,
		CacheTTL: time.Duration(cfg.CacheTTL), KeyMetadataTTL: time.Duration(cfg.KeyMetadataTTL), Logger: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	cache = s.keys.Cache()
	s.tokens = auth.NewService(st, s.keys, nil, time.Duration(cfg.TokenCacheTTL))
	s.handler = api.New(api.Config{Keys: s.keys, Tokens: s.tokens, Metrics: m, Logger: log, LogRequests: cfg.LogRequests,
		Ready: func(ctx context.Context) error { return st.DB().PingContext(ctx) }})
	return s, nil
}

// listen binds the configured address.
func (s *stack) listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.listener = ln
	s.server = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return nil
}

// URL returns the base URL clients use.
func (s *stack) URL() string {
	scheme := "http"
	if s.cfg.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + s.listener.Addr().String()
}

// serve runs until ctx is cancelled, then shuts down gracefully.
func (s *stack) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLSCert != "" {
			errc <- s.server.ServeTLS(s.listener, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			errc <- s.server.Serve(s.listener)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := s.server.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// close releases everything, flushing usage counters.
func (s *stack) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s.keys != nil {
		if err := s.keys.Close(ctx); err != nil {
			s.log.Warn("flush usage counters failed", slog.String("error", err.Error()))
		}
	}
	s.registry.Close()
	s.store.Close()
}

// ensureBootstrapToken creates an operator token when none exists and
// writes it to DATA_DIR/bootstrap-token (mode 0600). It returns the path, or
// "" when tokens already exist.
func (s *stack) ensureBootstrapToken(ctx context.Context) (string, error) {
	n, err := s.tokens.Count(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	_, secret, err := s.tokens.Create(ctx, "orgkms:bootstrap", auth.CreateTokenRequest{
		Principal: "bootstrap-operator", Roles: []auth.Role{auth.RoleOperator}, Description: "created at first start; revoke once you have your own tokens"})
	if err != nil {
		return "", err
	}
	p := filepath.Join(s.cfg.DataDir, "bootstrap-token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return p, nil
}
