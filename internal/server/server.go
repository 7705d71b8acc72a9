package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/cluster"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/awscloud"
	"github.com/orgkms/orgkms/internal/cmk/azurecloud"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/console"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11"
	"github.com/orgkms/orgkms/internal/metrics"
	"github.com/orgkms/orgkms/internal/notify"
	"github.com/orgkms/orgkms/internal/platformkey"
	"github.com/orgkms/orgkms/internal/shred"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// Options are what only orgkms dev and tests inject; the zero value is what
// orgkms serve uses.
type Options struct {
	// Logger receives every component's logs; default a logger built from
	// the config's log_level and log_format, writing to stderr.
	Logger *slog.Logger
	// Migrate applies schema migrations; otherwise an outdated schema is
	// refused (config auto_migrate also turns it on).
	Migrate bool
	// Now is the clock of the CMK service and of console sessions; default
	// time.Now.
	Now func() time.Time
	// AzureHTTPClient carries every request of the azurekv driver
	// (development and tests: one that reaches the Azure emulator); default
	// a client trusting the system CAs and cmk.azure.ca_file.
	AzureHTTPClient *http.Client
	// AzureMaxRetries and AzureRetryDelay tune the azurekv driver's retries
	// (tests: fewer and shorter); zero = the driver's defaults.
	AzureMaxRetries int
	AzureRetryDelay time.Duration
	// GCPInsecure dials cmk.gcp.endpoint in plaintext without credentials:
	// development and tests only, to reach the in-process Cloud KMS fake
	// (internal/gcpkmsemu).
	GCPInsecure bool
	// Getenv reads the variable of a local:env: platform key; default
	// os.Getenv.
	Getenv func(string) string
	// JobPoll is how often the job worker looks for work; default the CMK
	// service's (1s).
	JobPoll time.Duration
	// SessionTTL is the console's session lifetime; default 8h.
	SessionTTL time.Duration
	// JobObserver observes every durable step and run outcome of a re-wrap
	// job, besides the job metrics (see cmk.Config.JobObserver): the crash
	// tests.
	JobObserver func(jobs.Event)
	// NoGenerationListener turns off the PostgreSQL LISTEN of generation
	// notifications (tests: a node that misses every notification and
	// catches up through the periodic generation check alone).
	NoGenerationListener bool
	// Demo shows the Azure emulator's demo tenant, vault and key in the
	// console (orgkms dev).
	Demo *console.Demo

	gate masterkey.Gate // the vault budget, set by Open for providers
}

// Server is a whole orgkms. Its fields are for the commands and tests that
// drive it; they are valid from Open until Close.
type Server struct {
	Config   config.Config
	Log      *slog.Logger
	NodeID   string
	Store    Store // *sqlite.Store, or *postgres.Store for a postgres:// database
	Registry *masterkey.Registry
	Metrics  *metrics.Metrics
	Keys     *keys.Service
	CMK      *cmk.Service
	Platform *platformkey.Service // the platform master key's rotation
	Shred    *shred.Service       // org and data key deletion (crypto-shred)
	Cluster  *cluster.Node
	Budget   *budget.Budget // the shared-vault budgets of this node (cmk.vault_budget)
	Tokens   *auth.Service
	Users    *auth.Users
	Webhooks *notify.Service
	API      http.Handler // the API alone
	Handler  http.Handler // the API and the console: what Serve serves

	mu        sync.Mutex
	stopBG    context.CancelFunc
	bg        sync.WaitGroup
	closed    bool
	closeErr  error
	releaseDD func() error // releases the data directory
}

// Open builds a server from cfg in the order the package doc states. cfg
// gets its defaults filled (config.Config.Defaults) and must validate. On
// failure Open releases what it built and returns the error.
func Open(ctx context.Context, cfg config.Config, opts Options) (_ *Server, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = NewLogger(cfg, os.Stderr)
	}
	s := &Server{Config: cfg, Log: log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	// 2. The data directory and the node identity.
	if s.releaseDD, err = prepareDataDir(cfg, log); err != nil {
		return nil, err
	}
	if s.NodeID, err = nodeID(cfg.DataDir); err != nil {
		return nil, err
	}

	// 3. The store.
	if s.Store, err = OpenStore(ctx, cfg, log, opts.Migrate || cfg.AutoMigrate); err != nil {
		return nil, err
	}

	// 4. Master-key drivers and the platform master key.
	s.Metrics = metrics.New(
		func() float64 { return float64(s.Keys.Cache().Hits.Load()) },
		func() float64 { return float64(s.Keys.Cache().Misses.Load()) },
		func() float64 { return float64(s.Keys.Cache().Len()) })
	// Every call to a customer vault draws from the vault's budget, shared
	// by the orgs on it and by the live nodes (cmk.vault_budget).
	s.Budget = budget.New(budget.Config{Ceilings: cfg.CMK.VaultBudget.Ceilings(), Nodes: func() int {
		if s.Cluster == nil {
			return 1
		}
		return s.Cluster.Live()
	}})
	s.Metrics.RegisterVaultBudgets(s.Budget.States)
	opts.gate = s.Budget
	var azure *azurekv.Provider
	if s.Registry, azure, err = providers(cfg, opts, log, s.Metrics); err != nil {
		return nil, err
	}
	platform, err := s.Registry.ParseRef(cfg.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("master_key: %w", err)
	}
	if platform.Provider == localkey.Scheme && !strings.HasPrefix(platform.ID, "env:") {
		created, err := localkey.EnsureFile(platform.ID)
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("created a new platform master key; back it up: without it no org can be decrypted", slog.String("key_ref", platform.String()))
		}
	}
	var previous []masterkey.Ref
	for _, u := range cfg.PreviousMasterKeys {
		ref, err := s.Registry.ParseRef(u)
		if err != nil {
			return nil, fmt.Errorf("previous_master_keys: %w", err)
		}
		if ref.Unversioned() == platform.Unversioned() {
			return nil, fmt.Errorf("previous_master_keys: %s is master_key itself", ref)
		}
		previous = append(previous, ref.Unversioned())
	}
	for _, ref := range previous {
		// A previous key that cannot be read is not fatal (the orgs it
		// wraps are named by master-key status), but say so at once.
		k, err := s.Registry.Keeper(ref)
		if err == nil {
			_, err = k.Describe(ctx, ref)
		}
		if err != nil {
			log.Warn("previous platform master key is not readable: the orgs it wraps cannot be re-wrapped", slog.String("key_ref", ref.String()), slog.String("error", err.Error()))
		}
	}
	keeper, err := s.Registry.Keeper(platform)
	if err != nil {
		return nil, err
	}
	if rep := keeper.Probe(ctx, platform); !rep.OK() {
		return nil, fmt.Errorf("platform master key %s is not usable (%s): %w", platform, rep.Failed, rep.Err)
	}

	// 5. Keys, then CMK; the keys guard asks the CMK service, which exists
	// before any key is used.
	var guard func(ctx context.Context, org string) error
	var dataLost func(org string) time.Time
	var produce func(ctx context.Context, org string) error
	if s.Keys, err = keys.New(keys.Config{Store: s.Store, Keepers: s.Registry, PlatformKey: platform, PreviousPlatformKeys: previous,
		CacheTTL: time.Duration(cfg.CacheTTL), KeyMetadataTTL: time.Duration(cfg.KeyMetadataTTL), Logger: log,
		UsageRetention: time.Duration(cfg.Usage.Retention), NodeID: s.NodeID,
		Guard:    func(ctx context.Context, org string) error { return guard(ctx, org) },
		Produce:  func(ctx context.Context, org string) error { return produce(ctx, org) },
		DataLost: func(org string) time.Time { return dataLost(org) }}); err != nil {
		return nil, err
	}
	ccfg := cmk.Config{Store: s.Store, Keys: s.Keys, Keepers: s.Registry, CallbackURL: cfg.CMK.CallbackURL,
		ProbeInterval: time.Duration(cfg.CMK.ProbeInterval), JobLease: time.Duration(cfg.CMK.JobLease), JobPoll: opts.JobPoll,
		PurgeConfirmChecks: cfg.CMK.PurgeConfirmChecks, PurgeConfirmAfter: time.Duration(cfg.CMK.PurgeConfirmAfter),
		NodeID: s.NodeID, Now: opts.Now, Logger: log, RevocationMinLead: time.Duration(cfg.CMK.RevocationMinLead),
		JobObserver: func(ev jobs.Event) {
			s.Metrics.ObserveJob(ev)
			if opts.JobObserver != nil {
				opts.JobObserver(ev)
			}
		},
		// Several nodes may share a PostgreSQL database: a job held by
		// another node is running, not stalled, until its lease expires.
		NodeTimeout: time.Duration(cfg.Cluster.NodeTimeout), SharedStore: cfg.Postgres(),
		Changed: func(org string) { s.Cluster.Changed(org) }, Fresh: func() error { return s.Cluster.Fresh() }, VaultBudget: s.Budget}
	// The clouds offered (cmk.clouds), the default first; config.Validate
	// refuses a cloud not built here.
	for _, name := range cfg.CMK.Offered() {
		switch {
		case name == azurecloud.Name && azure != nil:
			ccfg.Clouds = append(ccfg.Clouds, azurecloud.Cloud{Provider: azure, ClientID: cfg.CMK.Azure.ClientID, AuthorityHost: orDefault(cfg.CMK.Azure.AuthorityHost, "https://login.microsoftonline.com/"),
				ConsentHost: cfg.CMK.Azure.ConsentHost})
		case name == awscloud.Name && cfg.CMK.AWS.Enabled: // the awskms driver is registered (aws.go)
			a := cfg.CMK.AWS
			ccfg.Clouds = append(ccfg.Clouds, awscloud.Cloud{AllowedRegions: a.AllowedRegions, AccountID: a.AccountID, PrincipalARN: a.PrincipalARN, Secret: []byte(a.ExternalIDSecret)})
		case name == "gcp" && gcpCloud(cfg) != nil: // gcpkms.go
			ccfg.Clouds = append(ccfg.Clouds, gcpCloud(cfg))
		default:
			return nil, fmt.Errorf("cmk.clouds: cloud %q is not available in this orgkms", name)
		}
	}
	if s.CMK, err = cmk.New(ccfg); err != nil {
		return nil, err
	}
	guard, dataLost, produce = s.CMK.Guard, s.CMK.DataLost, s.CMK.ProduceGuard
	ncfg := cluster.Config{Store: s.Store, CMK: s.CMK, NodeID: s.NodeID, Address: cfg.Cluster.AdvertiseAddress, Version: Version,
		Heartbeat: time.Duration(cfg.Cluster.HeartbeatInterval), NodeTimeout: time.Duration(cfg.Cluster.NodeTimeout),
		GenerationCheck: time.Duration(cfg.Cluster.GenerationCheck), StaleAfter: time.Duration(cfg.Cluster.StaleAfter), Now: opts.Now, Logger: log}
	if l, ok := s.Store.(cluster.Listener); ok && !opts.NoGenerationListener {
		ncfg.Listener = l
	}
	s.Cluster = cluster.New(ncfg)
	var stale atomic.Int64
	if s.Platform, err = platformkey.New(platformkey.Config{Store: s.Store, Keys: s.Keys, Keepers: s.Registry, NodeID: s.NodeID,
		Check: time.Duration(cfg.PlatformKeyCheck), Lease: time.Duration(cfg.CMK.JobLease), Poll: opts.JobPoll, Shared: cfg.Postgres(),
		Observer: func(ev jobs.Event) {
			s.Metrics.ObserveJob(ev)
			if opts.JobObserver != nil {
				opts.JobObserver(ev)
			}
		},
		Changed: func(org string) { s.Cluster.Changed(org) }, Stale: func(n int) { stale.Store(int64(n)) },
		Now: opts.Now, Logger: log}); err != nil {
		return nil, err
	}
	if s.Shred, err = shred.New(shred.Config{Store: s.Store, Keys: s.Keys, NodeID: s.NodeID,
		Lease: time.Duration(cfg.CMK.JobLease), Poll: opts.JobPoll, Shared: cfg.Postgres(),
		Observer: func(ev jobs.Event) {
			s.Metrics.ObserveJob(ev)
			if opts.JobObserver != nil {
				opts.JobObserver(ev)
			}
		},
		Changed: func(org string) { s.Cluster.Changed(org) }, Now: opts.Now, Logger: log}); err != nil {
		return nil, err
	}
	s.Metrics.RegisterPlatformKey(func() float64 { return float64(stale.Load()) })
	if s.Webhooks, err = openWebhooks(cfg, opts, s, platform, log); err != nil {
		return nil, err
	}
	s.Metrics.RegisterLiveNodes(func() float64 { return float64(s.Cluster.Live()) })

	// 6. Tokens, users, API, console.
	s.Tokens = auth.NewService(s.Store, s.Keys, nil, time.Duration(cfg.TokenCacheTTL))
	s.Users = auth.NewUsers(s.Store, opts.Now, opts.SessionTTL)
	apiHandler := api.New(api.Config{Keys: s.Keys, Tokens: s.Tokens, CMK: s.CMK, Users: s.Users, Metrics: s.Metrics, Logger: log,
		LogRequests: cfg.LogRequests, Ready: s.ready, Nodes: s.Cluster, PlatformKey: s.Platform, Webhooks: s.Webhooks, VaultBudgets: s.Budget.States,
		Shred: s.Shred, SelfDelete: cfg.Orgs.SelfDelete})
	s.API = apiHandler
	proxies, err := cfg.TrustedProxyPrefixes()
	if err != nil {
		return nil, err
	}
	consoleHandler := console.New(console.Config{Keys: s.Keys, CMK: s.CMK, Users: s.Users, Logger: log.With(slog.String("component", "console")),
		SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"), Now: opts.Now, Demo: opts.Demo, TrustedProxies: proxies, Webhooks: s.Webhooks,
		Shred: s.Shred, SelfDelete: cfg.Orgs.SelfDelete})
	mux := http.NewServeMux()
	mux.Handle("/console/", consoleHandler)
	mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusSeeOther))
	mux.Handle("/", s.API)

	// 7. Revoked and lost orgs are refused from the first request on; the
	// node is listed and has its generations' baseline before it serves.
	if err := s.CMK.LoadBlocks(ctx); err != nil {
		return nil, fmt.Errorf("load revoked orgs: %w", err)
	}
	if err := s.Cluster.Register(ctx); err != nil {
		return nil, fmt.Errorf("register node: %w", err)
	}
	if err := s.Cluster.CheckAll(ctx); err != nil {
		return nil, fmt.Errorf("check generations: %w", err)
	}
	// A path with an empty, . or .. segment is refused, not redirected
	// to its cleaned form (which the API client would follow, method and
	// body included).
	s.Handler = apiHandler.RefuseUncleanPaths(mux, "/console/")
	return s, nil
}

// Start runs the background work (the CMK probe and re-wrap jobs, with
// cmk.job_workers workers) until ctx is cancelled or Close is called. It is
// for callers that serve Handler themselves (tests); Serve calls it.
func (s *Server) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.stopBG != nil {
		return
	}
	bg, stop := context.WithCancel(ctx)
	s.stopBG = stop
	s.bg.Go(func() { s.CMK.Run(bg, s.Config.CMK.JobWorkers) })
	s.bg.Go(func() { s.Cluster.Run(bg) })
	s.bg.Go(func() { s.Platform.Run(bg) })
	s.bg.Go(func() { s.Webhooks.Run(bg) })
	s.bg.Go(func() { s.Shred.Run(bg) })
}

// Version is the orgkms version a node registers with.
var Version = "dev"

// ready is /readyz: the database answers, the node is registered and has
// checked the orgs' generations recently.
func (s *Server) ready(ctx context.Context) error {
	if err := s.Store.Health(ctx); err != nil {
		return err
	}
	return s.Cluster.Ready()
}

// Listen binds the configured address.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.Config.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.Config.Addr, err)
	}
	return ln, nil
}

// URL returns the base URL of a server listening on ln.
func (s *Server) URL(ln net.Listener) string {
	scheme := "http"
	if s.Config.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

// Serve serves Handler on ln (HTTPS with the configured certificate) and
// runs the background work until ctx is cancelled, then shuts down
// gracefully. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() {
		if s.Config.TLSCert != "" {
			errc <- srv.ServeTLS(ln, s.Config.TLSCert, s.Config.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	s.Start(ctx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.Log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	s.stopBackground()
	return err
}

func (s *Server) stopBackground() {
	s.mu.Lock()
	stop := s.stopBG
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.bg.Wait()
}

// Close stops the background work and releases everything in reverse
// order: usage counters flushed, keepers closed, store closed, data
// directory released. It is idempotent, safe on a Server whose Open failed
// half-way, and returns the first error.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.stopBackground()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	keep := func(err error) {
		if err != nil && s.closeErr == nil {
			s.closeErr = err
		}
	}
	if s.Keys != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Keys.Close(ctx); err != nil {
			s.Log.Warn("flush usage counters failed", slog.String("error", err.Error()))
			keep(err)
		}
		cancel()
	}
	if s.Registry != nil {
		keep(s.Registry.Close())
	}
	if s.Store != nil {
		keep(s.Store.Close())
	}
	if s.releaseDD != nil {
		keep(s.releaseDD())
	}
	return s.closeErr
}

// Store is what the server needs of its database: every store interface,
// the readiness probe and Close. Both *sqlite.Store and *postgres.Store
// are one.
type Store interface {
	platformkey.Store // cmk.Store and keys.Store among them
	shred.Store
	auth.Store
	auth.UserStore
	notify.Store
	Health(ctx context.Context) error
	Close() error
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)

// OpenStore opens the configured database: PostgreSQL for a postgres://
// URL (cfg.Postgres), else the SQLite file. With migrate it applies the
// schema migrations; otherwise a schema of another version is a Conflict
// that says to run `orgkms migrate`.
func OpenStore(ctx context.Context, cfg config.Config, log *slog.Logger, migrate bool) (Store, error) {
	if cfg.Postgres() {
		st, err := postgres.Open(ctx, postgres.Config{URL: cfg.Database, Logger: log, NoMigrate: !migrate,
			MaxConns: int32(cfg.Pool.MaxConns), StatementTimeout: time.Duration(cfg.Pool.StatementTimeout), ConnectTimeout: time.Duration(cfg.Pool.ConnectTimeout)})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: cfg.Database, Logger: log, NoMigrate: !migrate})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// prepareDataDir makes the data directory ready before anything opens a
// file in it, and returns what releases it at Close. Start-up checks of the
// directory itself (ownership, mode, a lock against a second server) belong
// here.
func prepareDataDir(cfg config.Config, log *slog.Logger) (release func() error, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := sqlite.TightenDir(cfg.DataDir, log); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}

var nodeIDRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// nodeID returns the node's stable identity, kept in DATA_DIR/node-id
// (created on first start), so that the jobs a node leased before a restart
// are recognized as its own.
func nodeID(dir string) (string, error) {
	p := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(p)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if !nodeIDRe.MatchString(id) {
			return "", fmt.Errorf("%s must hold one node ID (letters, digits, '.', '_', '-'; at most 64); delete it to get a new one", p)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read node ID: %w", err)
	}
	var r [6]byte
	if _, err := io.ReadFull(rand.Reader, r[:]); err != nil {
		return "", err
	}
	id := "node-" + hex.EncodeToString(r[:])
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create node ID: %w", err)
	}
	if _, err := f.WriteString(id + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("write node ID: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write node ID: %w", err)
	}
	return id, nil
}

// providers builds the explicit registry of master-key drivers: localkey
// and pkcs11 always, awskms when cmk.aws.enabled, gcpkms when
// cmk.gcp.enabled, azurekv when the platform's cloud is azure.
func providers(cfg config.Config, opts Options, log *slog.Logger, m *metrics.Metrics) (*masterkey.Registry, *azurekv.Provider, error) {
	kopts := masterkey.KeeperOptions{Logger: log, Observer: m.ObserveMasterKey}
	r := masterkey.NewRegistry()
	r.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{Getenv: opts.Getenv}), kopts))
	// The PKCS#11 driver loads its module and logs in on first use: only a
	// server whose master_key is a pkcs11: URI touches an HSM.
	hsm, err := pkcs11.New(pkcs11.Config{ModulePath: cfg.PKCS11.ModulePath, PINSource: cfg.PKCS11.PINSource,
		PoolSize: cfg.PKCS11.PoolSize, Getenv: opts.Getenv})
	if err != nil {
		return nil, nil, err
	}
	r.Register(pkcs11.Driver(), masterkey.NewKeeper(pkcs11.Scheme, hsm, kopts))
	if err := registerAWS(r, cfg.CMK.AWS, opts.Getenv, opts.gate, kopts); err != nil { // cmk.aws.enabled (aws.go)
		return nil, nil, err
	}
	if err := registerGCP(r, cfg, opts, kopts); err != nil { // cmk.gcp.enabled (gcpkms.go)
		return nil, nil, err
	}
	if !slices.Contains(cfg.CMK.Offered(), "azure") {
		return r, nil, nil
	}
	a := cfg.CMK.Azure
	hc := opts.AzureHTTPClient
	if hc == nil {
		var err error
		if hc, err = AzureHTTPClient(a, nil); err != nil {
			return nil, nil, err
		}
	}
	maxRetries := a.MaxRetries // cmk.azure.max_retries; Options override it
	if opts.AzureMaxRetries != 0 {
		maxRetries = opts.AzureMaxRetries
	}
	p, err := azurekv.New(azurekv.Config{ClientID: a.ClientID, ClientSecret: a.ClientSecret, AuthorityHost: a.AuthorityHost,
		ExtraHostSuffixes: a.ExtraHostSuffixes, HTTPClient: hc, MaxRetries: maxRetries, RetryDelay: opts.AzureRetryDelay,
		Timeout: time.Duration(a.Timeout), TryTimeout: time.Duration(a.TryTimeout), Gate: opts.gate})
	if err != nil {
		return nil, nil, err
	}
	azOpts := kopts
	// The driver bounds every call itself (cmk.azure.timeout, retries
	// included); the keeper's limit is only a backstop above it.
	azOpts.Timeout = p.Timeout() + time.Second
	r.Register(p.Driver(), masterkey.NewKeeper(azurekv.Scheme, p, azOpts))
	return r, p, nil
}

// AzureHTTPClient returns the client of the azurekv driver: TLS 1.2 or
// later, trusting the system CAs and cmk.azure.ca_file. transport, when not
// nil, replaces the default transport (its TLS settings are the caller's).
func AzureHTTPClient(a config.Azure, transport func(roots *x509.CertPool) http.RoundTripper) (*http.Client, error) {
	var pool *x509.CertPool
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cmk.azure.ca_file: %w", err)
		}
		pool, err = x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cmk.azure.ca_file %s holds no PEM certificate", a.CAFile)
		}
	}
	if transport != nil {
		return &http.Client{Transport: transport(pool), Timeout: 60 * time.Second}, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// NewLogger returns the logger the configuration asks for (log_level,
// log_format) writing to w.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
