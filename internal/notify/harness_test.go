package notify_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/notify"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
	"github.com/orgkms/orgkms/internal/testwait"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is an injected clock the test moves.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// world is a notify.Service over a store with orgs acme and globex.
type world struct {
	t     *testing.T
	st    notifyStore
	svc   *notify.Service
	clock *clock
	logs  *syncBuffer
	reg   *masterkey.Registry
	pk    masterkey.Ref
	cfg   notify.Config
}

type notifyStore interface {
	notify.Store
	keys.Store
}

type option func(*notify.Config)

func newWorld(t *testing.T, st notifyStore, opts ...option) *world {
	t.Helper()
	ctx := t.Context()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	kp := filepath.Join(t.TempDir(), "master.key")
	if _, err := localkey.EnsureFile(kp); err != nil {
		t.Fatal(err)
	}
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	pk, err := reg.ParseRef("local://" + kp)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: pk, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close(context.Background()) })
	for _, org := range []string{"acme", "globex"} {
		if _, err := ks.GetOrg(ctx, org); err == nil {
			continue // a second node on the same database
		}
		if _, err := ks.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
	}
	c := newClock()
	cfg := notify.Config{Store: st, Keepers: reg, PlatformKey: pk, NodeID: "n1", AllowPrivate: true, Timeout: 5 * time.Second,
		Backoff: time.Second, MaxBackoff: 8 * time.Second, MaxAttempts: 5, Poll: 20 * time.Millisecond, Now: c.now, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, st: st, svc: svc, clock: c, logs: logs, reg: reg, pk: pk, cfg: cfg}
}

func sqliteStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// received is one request a receiver got.
type received struct {
	Header http.Header
	Body   []byte
	Event  struct {
		ID   string            `json:"id"`
		Type string            `json:"type"`
		Org  string            `json:"org"`
		Time time.Time         `json:"time"`
		Data map[string]string `json:"data"`
	}
	Verified bool // the signature verified with the receiver's secret, by the documented algorithm
}

// receiver is a real HTTPS webhook receiver. It verifies every request's
// signature as the docs tell a customer to (its own code, not
// notify.Verify) and answers with the statuses queued in fail first.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []received
	fail   []int // statuses to answer before 204s
	body   string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hooks/orgkms?tenant=acme" }

func (r *receiver) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.srv.Certificate())
	return p
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

// verify is the documented check: HMAC-SHA256 keyed by the secret string
// over timestamp "." body, hex, equal to one v1= value; the timestamp
// within five minutes.
func verify(secret string, h http.Header, body []byte, now time.Time) bool {
	ts := h.Get("X-Orgkms-Timestamp")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(n, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "." + string(body)))
	want := hex.EncodeToString(mac.Sum(nil))
	for _, part := range strings.Split(h.Get("X-Orgkms-Signature"), ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1="); ok && hmac.Equal([]byte(v), []byte(want)) {
			return true
		}
	}
	return false
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	rec := received{Header: req.Header.Clone(), Body: body}
	json.Unmarshal(body, &rec.Event)
	// The timestamp is the service's injected clock: verify against it.
	ts, _ := strconv.ParseInt(req.Header.Get("X-Orgkms-Timestamp"), 10, 64)
	rec.Verified = r.secret != "" && verify(r.secret, req.Header, body, time.Unix(ts, 0))
	r.got = append(r.got, rec)
	status := http.StatusNoContent
	if len(r.fail) > 0 {
		status, r.fail = r.fail[0], r.fail[1:]
	}
	extra := r.body
	r.mu.Unlock()
	if status >= 300 && status < 400 {
		w.Header().Set("Location", "https://elsewhere.example/")
	}
	w.WriteHeader(status)
	io.WriteString(w, extra)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// appendEvent appends an audit event of org as a state change would.
func (w *world) appendEvent(org, action string, details map[string]string) audit.Event {
	w.t.Helper()
	ev, err := w.st.AppendAudit(w.t.Context(), audit.Event{OrgID: org, Time: w.clock.now(), Actor: "orgkms", Action: action, Target: "cmk", Details: details})
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

// runUntil runs delivery rounds, moving the clock by step after each,
// until cond holds (at most rounds rounds).
func (w *world) runUntil(step time.Duration, rounds int, cond func() bool) {
	w.t.Helper()
	for range rounds {
		if cond() {
			return
		}
		if _, err := w.svc.RunOnce(w.t.Context(), "n1/test"); err != nil {
			w.t.Fatalf("RunOnce = %v", err)
		}
		w.clock.advance(step)
	}
	if !cond() {
		w.t.Fatalf("condition not met after %d delivery rounds", rounds)
	}
}

// waitFor polls cond with a generous timeout (for the Run loops).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, time.Minute, cond)
}
