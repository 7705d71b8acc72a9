package azureemu

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
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
	"strings"
	"sync"
	"time"
)

// Config configures an [Emulator]. The zero value is a memory-only emulator
// on a random loopback port.
type Config struct {
	// Dir is the state directory; "" keeps everything in memory (the CA file
	// then lives in a temporary directory removed by Close).
	Dir string
	// Addr is the listen address; default 127.0.0.1:0.
	Addr string
	// Logger receives request logs at debug level; default discards.
	Logger *slog.Logger
	// Now is the clock for tokens, key attributes and retention; default
	// time.Now.
	Now func() time.Time

	// TokenLifetime is the lifetime of access tokens; default 3599 s, as
	// Entra reports.
	TokenLifetime time.Duration
	// KeepTokensAfterRevoke makes tokens issued before a consent revocation
	// stay valid until they expire, as in Azure. By default the emulator
	// rejects them at once, so tests see revocation immediately.
	KeepTokensAfterRevoke bool
	// DisabledKeyAllowsWrap lets encrypt and wrapKey succeed on a disabled
	// key version, as a live report says Azure does. By default every
	// crypto operation on a disabled version is 403 KeyDisabled.
	DisabledKeyAllowsWrap bool
	// DeletedKeyLag and DeletedKeyLagCalls reproduce Azure's soft-delete
	// delay: after a key is deleted, GET /deletedkeys/{name} answers 404
	// KeyNotFound "Deleted Key not found" (and the deleted-key list omits
	// the key) for DeletedKeyLag, and GET /deletedkeys/{name} for its first
	// DeletedKeyLagCalls requests, as if the key had been purged. By
	// default a deleted key is listed as deleted at once.
	DeletedKeyLag      time.Duration
	DeletedKeyLagCalls int
	// ChallengeAuthority is the authority named in the 401 challenge
	// (the SDK takes only the tenant from it); default
	// https://login.microsoftonline.com.
	ChallengeAuthority string
}

// Emulator is a running or ready-to-run Azure Key Vault + Entra ID emulator.
// Its methods are safe for concurrent use.
type Emulator struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	tls     *tlsMaterial
	caPool  *x509.CertPool
	caFile  string
	tempDir string // memory-only mode: holds ca.pem
	admin   string // control API bearer token
	handler http.Handler

	// rsaKeyGen generates RSA keys; tests replace it with a pool.
	rsaKeyGen func(bits int) (*rsa.PrivateKey, error)

	seedMu sync.Mutex // serializes SeedDemo

	mu        sync.Mutex
	st        *state
	faults    map[string]*Fault          // by lower-case vault name
	throttles map[string]*throttleState  // by lower-case vault name (SetThrottle)
	counters  map[string]map[string]int  // vault → op → requests
	keyCounts map[string]map[string]int  // vault/key → op → requests
	consents  map[string]*consentRequest // pending consent pages by anti-forgery token
	// hidden counts, per deleted key ("vault/key", lower case), the GETs
	// of its deleted entry still to answer 404 (Config.DeletedKeyLagCalls).
	hidden map[string]int

	srvMu   sync.Mutex
	srv     *http.Server
	lns     []net.Listener
	addr    string
	serveWG sync.WaitGroup
	closed  bool
}

// Open loads (or creates) the emulator's state, CA and certificate. It does
// not listen: call Start, or serve Handler yourself.
func Open(ctx context.Context, cfg Config) (*Emulator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = 3599 * time.Second
	}
	if cfg.ChallengeAuthority == "" {
		cfg.ChallengeAuthority = "https://login.microsoftonline.com"
	}
	cfg.ChallengeAuthority = strings.TrimSuffix(cfg.ChallengeAuthority, "/")
	e := &Emulator{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       cfg.Now,
		faults:    map[string]*Fault{},
		counters:  map[string]map[string]int{},
		keyCounts: map[string]map[string]int{},
		consents:  map[string]*consentRequest{},
		hidden:    map[string]int{},
		rsaKeyGen: func(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) },
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	dir := cfg.Dir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("emulator state dir: %w", err)
		}
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("emulator listen address %q: %w", cfg.Addr, err)
	}
	e.tls, err = loadOrCreateTLS(dir, host)
	if err != nil {
		return nil, err
	}
	e.caPool = x509.NewCertPool()
	e.caPool.AddCert(e.tls.caCert)
	if dir == "" {
		e.tempDir, err = os.MkdirTemp("", "orgkms-azureemu-")
		if err != nil {
			return nil, fmt.Errorf("emulator temp dir: %w", err)
		}
		e.caFile = filepath.Join(e.tempDir, caCertFile)
		if err := os.WriteFile(e.caFile, e.tls.caPEM, 0o644); err != nil {
			_ = os.RemoveAll(e.tempDir)
			return nil, fmt.Errorf("write emulator CA: %w", err)
		}
		e.st = newState()
		e.admin = hex.EncodeToString(randomBytes(32))
	} else {
		e.caFile = filepath.Join(dir, caCertFile)
		if e.st, err = loadState(dir); err != nil {
			return nil, err
		}
		if e.admin, err = loadOrCreateToken(filepath.Join(dir, adminTokenFile)); err != nil {
			return nil, err
		}
		if err := e.st.save(dir); err != nil {
			return nil, err
		}
	}
	e.handler = e.buildHandler()
	return e, nil
}

// adminTokenFile holds the control API bearer token inside Config.Dir.
const adminTokenFile = "admin-token"

func loadOrCreateToken(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read emulator admin token: %w", err)
	}
	tok := hex.EncodeToString(randomBytes(32))
	if err := writeFileAtomic(name, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// Start listens on Config.Addr and serves TLS in the background until Close.
func (e *Emulator) Start() error {
	ln, err := net.Listen("tcp", e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("emulator listen: %w", err)
	}
	e.srvMu.Lock()
	if e.addr == "" {
		e.addr = ln.Addr().String()
	}
	e.srvMu.Unlock()
	return e.Serve(ln)
}

// Serve serves TLS on an additional listener in the background until Close.
// The first listener's address is the one URL reports.
func (e *Emulator) Serve(ln net.Listener) error {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	if e.closed {
		_ = ln.Close()
		return errors.New("emulator closed")
	}
	if e.addr == "" {
		e.addr = ln.Addr().String()
	}
	if e.srv == nil {
		e.srv = &http.Server{
			Handler:           e.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
			TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{e.tls.leaf},
				MinVersion:   tls.VersionTLS12,
				NextProtos:   []string{"h2", "http/1.1"},
			},
		}
	}
	e.lns = append(e.lns, ln)
	tl := tls.NewListener(ln, e.srv.TLSConfig)
	e.serveWG.Go(func() {
		if err := e.srv.Serve(tl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("emulator serve failed", "err", err)
		}
	})
	return nil
}

// Addr is the listen address (host:port) of the first listener, "" before
// Start.
func (e *Emulator) Addr() string {
	e.srvMu.Lock()
	defer e.srvMu.Unlock()
	return e.addr
}

// URL is the emulator's base URL, https://127.0.0.1:PORT, usable as the Entra
// authority host (append "/") and as the control API base.
func (e *Emulator) URL() string {
	a := e.Addr()
	if a == "" {
		return ""
	}
	return "https://" + a
}

// CAFile is the path of the PEM file holding the emulator CA certificate.
func (e *Emulator) CAFile() string { return e.caFile }

// CAPEM returns the emulator CA certificate in PEM.
func (e *Emulator) CAPEM() []byte { return append([]byte(nil), e.tls.caPEM...) }

// CAPool returns a pool holding only the emulator CA.
func (e *Emulator) CAPool() *x509.CertPool { return e.caPool.Clone() }

// AdminToken is the bearer token of the control API (also in Dir/admin-token).
func (e *Emulator) AdminToken() string { return e.admin }

// Handler returns the emulator's HTTP handler; it routes by Host.
func (e *Emulator) Handler() http.Handler { return e.handler }

// HTTPClient returns a client whose transport sends every host to the
// emulator and trusts its CA. It needs Start to have been called.
func (e *Emulator) HTTPClient() *http.Client {
	return &http.Client{Transport: Transport(e.Addr(), e.caPool)}
}

// Close stops the server and waits for it, then removes temporary files.
// Later calls return nil.
func (e *Emulator) Close() error {
	e.srvMu.Lock()
	if e.closed {
		e.srvMu.Unlock()
		return nil
	}
	e.closed = true
	srv := e.srv
	e.srvMu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err = srv.Shutdown(ctx); err != nil {
			err = srv.Close()
		}
		cancel()
	}
	e.serveWG.Wait()
	if e.tempDir != "" {
		if rerr := os.RemoveAll(e.tempDir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// vaultSuffixes maps data-plane host suffixes to whether they are Managed HSM.
var vaultSuffixes = []struct {
	suffix string
	hsm    bool
}{
	{".vault.azure.net", false},
	{".vault.azure.cn", false},
	{".vault.usgovcloudapi.net", false},
	{".managedhsm.azure.net", true},
}

// parseVaultHost returns the vault name and kind for a data-plane host.
func parseVaultHost(host string) (name string, hsm, ok bool) {
	h := strings.ToLower(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(h, ".")
	for _, s := range vaultSuffixes {
		if n, found := strings.CutSuffix(h, s.suffix); found && n != "" && !strings.Contains(n, ".") {
			return n, s.hsm, true
		}
	}
	return "", false, false
}

func (e *Emulator) buildHandler() http.Handler {
	entra := e.entraMux()
	control := e.controlMux()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		defer func() {
			e.log.Debug("emulator request", "method", r.Method, "host", r.Host, "path", r.URL.Path,
				"status", sw.status, "duration", time.Since(start))
		}()
		if name, hsm, ok := parseVaultHost(r.Host); ok {
			e.serveVault(sw, r, name, hsm)
			return
		}
		if r.URL.Path == "/_emulator" || strings.HasPrefix(r.URL.Path, "/_emulator/") {
			control.ServeHTTP(sw, r)
			return
		}
		entra.ServeHTTP(sw, r)
	})
}

// statusWriter records the status for logging.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// newHexID returns 2n lower-case hex characters; Key Vault versions use n=16.
func newHexID(n int) string { return hex.EncodeToString(randomBytes(n)) }

// newGUID returns a random (version 4) GUID in the usual 8-4-4-4-12 form.
func newGUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
