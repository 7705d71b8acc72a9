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
	"sync"
	"syscall"
	"time"

	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/console"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
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
	cmk      *cmk.Service
	tokens   *auth.Service
	users    *auth.Users
	api      http.Handler // the API alone
	handler  http.Handler // the API and the console
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
	var azure *azurekv.Provider
	s.registry, azure, err = providers(cfg, log, m)
	if err != nil {
		st.Close()
		return nil, err
	}
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
	var guard func(ctx context.Context, org string) error
	s.keys, err = keys.New(keys.Config{Store: st, Keepers: s.registry, PlatformKey: platform,
		CacheTTL: time.Duration(cfg.CacheTTL), KeyMetadataTTL: time.Duration(cfg.KeyMetadataTTL), Logger: log,
		Guard: func(ctx context.Context, org string) error { return guard(ctx, org) }})
	if err != nil {
		st.Close()
		return nil, err
	}
	ccfg := cmk.Config{Store: st, Keys: s.keys, Keepers: s.registry, CallbackURL: cfg.CMK.CallbackURL,
		ProbeInterval: time.Duration(cfg.CMK.ProbeInterval), JobLease: time.Duration(cfg.CMK.JobLease), Logger: log}
	if azure != nil {
		ccfg.Cloud = cmk.Azure{Provider: azure, ClientID: cfg.CMK.Azure.ClientID, AuthorityHost: orDefault(cfg.CMK.Azure.AuthorityHost, "https://login.microsoftonline.com/"),
			ConsentHost: cfg.CMK.Azure.ConsentHost}
	}
	if at := os.Getenv("ORGKMS_TEST_CRASH_AT"); at != "" {
		// Crash tests only: kill the process at a job step.
		ccfg.CrashAt = at
		ccfg.Crash = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
	s.cmk, err = cmk.New(ccfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	guard = s.cmk.Guard
	cache = s.keys.Cache()
	s.tokens = auth.NewService(st, s.keys, nil, time.Duration(cfg.TokenCacheTTL))
	s.users = auth.NewUsers(st, nil, 8*time.Hour)
	apiHandler := api.New(api.Config{Keys: s.keys, Tokens: s.tokens, CMK: s.cmk, Users: s.users, Metrics: m, Logger: log, LogRequests: cfg.LogRequests,
		Ready: st.Health})
	s.api = apiHandler
	s.mount(nil)
	return s, nil
}

// mount builds the server's handler: the web console under /console/, the
// API everywhere else. demo, when set, shows the Azure emulator's demo
// values in the console (orgkms dev).
func (s *stack) mount(demo *console.Demo) {
	proxies, err := s.cfg.TrustedProxyPrefixes() // checked by Validate
	if err != nil {
		s.log.Error("trusted_proxies ignored", slog.String("error", err.Error()))
	}
	consoleHandler := console.New(console.Config{Keys: s.keys, CMK: s.cmk, Users: s.users, Logger: s.log.With(slog.String("component", "console")),
		SecureCookies: strings.HasPrefix(s.cfg.PublicURL, "https://"), Demo: demo, TrustedProxies: proxies})
	mux := http.NewServeMux()
	mux.Handle("/console/", consoleHandler)
	mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusSeeOther))
	mux.Handle("/", s.api)
	s.handler = mux
}

// listen binds the configured address.
func (s *stack) listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	s.useListener(ln)
	return nil
}

// useListener serves on an already bound listener.
func (s *stack) useListener(ln net.Listener) {
	s.listener = ln
	s.server = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
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
	// Orgs whose customer managed key is revoked or lost are refused from
	// the first request on.
	if err := s.cmk.LoadBlocks(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: a clean stop
		}
		return fmt.Errorf("load revoked orgs: %w", err)
	}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.TLSCert != "" {
			errc <- s.server.ServeTLS(s.listener, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			errc <- s.server.Serve(s.listener)
		}
	}()
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.cmk.Run(bg, s.cfg.CMK.JobWorkers) })
	defer func() { stopBG(); wg.Wait() }()
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

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
