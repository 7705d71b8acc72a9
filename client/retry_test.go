package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// step is one answer of the test server: a status with an optional
// Retry-After, or (drop) a connection closed without any response.
type step struct {
	status     int
	retryAfter string
	drop       bool
}

// waitRange is the accepted range of one wait before a retry.
type waitRange struct{ min, max time.Duration }

// scriptedServer answers with steps, then 200 with body; it counts the
// requests it received.
func scriptedServer(t *testing.T, steps []step, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i < len(steps) {
			s := steps[i]
			if s.drop {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				conn.Close()
				return
			}
			if s.retryAfter != "" {
				w.Header().Set("Retry-After", s.retryAfter)
			}
			code := map[int]string{503: "unavailable", 429: "rate_limited", 500: "internal", 409: "conflict"}[s.status]
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(s.status)
			w.Write([]byte(`{"error":{"code":"` + code + `","message":"answer ` + strconv.Itoa(i) + `"}}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// testClient returns a client of addr whose waits are recorded, not slept.
func testClient(t *testing.T, addr string, cfg Config, waits *[]time.Duration) *Client {
	t.Helper()
	cfg.Addr, cfg.Token = addr, "t"
	// No keep-alive: net/http itself then never re-sends a request on a
	// reused connection, so the server's count is the client's attempts.
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	c.retry.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return ctx.Err()
	}
	return c
}

func TestRetries(t *testing.T) {
	getOrg := func(c *Client) error { _, err := c.GetOrg(t.Context(), "acme"); return err }
	encrypt := func(c *Client) error {
		_, _, err := c.Encrypt(t.Context(), "acme", "default", []byte("x"), nil)
		return err
	}
	decrypt := func(c *Client) error {
		_, err := c.Decrypt(t.Context(), "acme", "default", []byte("x"), nil)
		return err
	}
	rewrap := func(c *Client) error {
		_, _, err := c.Rewrap(t.Context(), "acme", "default", []byte("x"), nil)
		return err
	}
	datakey := func(c *Client) error {
		_, err := c.DataKey(t.Context(), "acme", "default", DataKeyRequest{})
		return err
	}
	createOrg := func(c *Client) error { _, err := c.CreateOrg(t.Context(), "acme", ""); return err }
	rotate := func(c *Client) error { _, err := c.RotateKey(t.Context(), "acme", "default"); return err }
	cmkEnable := func(c *Client) error { _, err := c.CMKEnable(t.Context(), "acme"); return err }
	const ok = `{"id":"acme","name":"default","ciphertext":"AAAA","key_version":1,"state":"active"}`
	sec := time.Second
	tests := []struct {
		name         string
		call         func(*Client) error
		cfg          Config
		steps        []step
		wantAttempts int32
		wantCode     string // "" = success
		wantWaits    []waitRange
	}{
		{"GET: 503 with Retry-After, then 200", getOrg, Config{}, []step{{status: 503, retryAfter: "2"}},
			2, "", []waitRange{{2 * sec, 2*sec + 200*time.Millisecond}}},
		{"encrypt: 503, then 200", encrypt, Config{}, []step{{status: 503, retryAfter: "1"}},
			2, "", []waitRange{{sec, sec + 100*time.Millisecond}}},
		{"decrypt: 429 twice, then 200", decrypt, Config{}, []step{{status: 429, retryAfter: "1"}, {status: 429, retryAfter: "1"}},
			3, "", []waitRange{{sec, 1100 * time.Millisecond}, {sec, 1100 * time.Millisecond}}},
		{"rewrap: 503 without Retry-After: jittered backoff", rewrap, Config{MinRetryWait: 100 * time.Millisecond}, []step{{status: 503}, {status: 503}},
			3, "", []waitRange{{50 * time.Millisecond, 100 * time.Millisecond}, {100 * time.Millisecond, 200 * time.Millisecond}}},
		{"datakey: connection dropped before a response", datakey, Config{}, []step{{drop: true}},
			2, "", []waitRange{{50 * time.Millisecond, 100 * time.Millisecond}}},
		{"GET: bounded attempts", getOrg, Config{MaxRetries: 2}, []step{{status: 503}, {status: 503}, {status: 503}, {status: 503}},
			3, "unavailable", []waitRange{{50 * time.Millisecond, 100 * time.Millisecond}, {100 * time.Millisecond, 200 * time.Millisecond}}},
		{"GET: backoff capped at MaxRetryWait", getOrg, Config{MaxRetries: 5, MinRetryWait: time.Second, MaxRetryWait: 2 * time.Second},
			[]step{{status: 503}, {status: 503}, {status: 503}},
			4, "", []waitRange{{sec / 2, sec}, {sec, 2 * sec}, {sec, 2 * sec}}},
		{"GET: a Retry-After beyond the time budget ends the call", getOrg, Config{MaxRetryElapsed: 30 * sec}, []step{{status: 503, retryAfter: "60"}},
			1, "unavailable", nil},
		{"GET: the budget counts every wait", getOrg, Config{MaxRetryElapsed: 5 * sec}, []step{{status: 503, retryAfter: "2"}, {status: 503, retryAfter: "2"}, {status: 503, retryAfter: "2"}},
			3, "unavailable", []waitRange{{2 * sec, 2200 * time.Millisecond}, {2 * sec, 2200 * time.Millisecond}}},
		{"GET: retries off", getOrg, Config{MaxRetries: -1}, []step{{status: 503, retryAfter: "1"}},
			1, "unavailable", nil},
		{"GET: 500 is not retried", getOrg, Config{}, []step{{status: 500}}, 1, "internal", nil},
		{"GET: 409 is not retried", getOrg, Config{}, []step{{status: 409}}, 1, "conflict", nil},
		{"create org: 503 may have been applied: not retried", createOrg, Config{}, []step{{status: 503, retryAfter: "1"}},
			1, "unavailable", nil},
		{"rotate: 503: not retried", rotate, Config{}, []step{{status: 503}}, 1, "unavailable", nil},
		{"cmk enable: dropped connection: not retried", cmkEnable, Config{}, []step{{drop: true}}, 1, "", nil},
		{"create org: 429 was refused, so retried", createOrg, Config{}, []step{{status: 429, retryAfter: "1"}},
			2, "", []waitRange{{sec, 1100 * time.Millisecond}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, attempts := scriptedServer(t, tt.steps, ok)
			var waits []time.Duration
			c := testClient(t, srv.URL, tt.cfg, &waits)
			err := tt.call(c)
			if got := attempts.Load(); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d (err %v)", got, tt.wantAttempts, err)
			}
			switch {
			case tt.name == "cmk enable: dropped connection: not retried":
				if err == nil || ErrorCode(err) != "" {
					t.Errorf("err = %v, want a connection error", err)
				}
			case tt.wantCode == "" && err != nil:
				t.Errorf("err = %v, want success", err)
			case tt.wantCode != "" && ErrorCode(err) != tt.wantCode:
				t.Errorf("err = %v (code %q), want code %s", err, ErrorCode(err), tt.wantCode)
			}
			if len(waits) != len(tt.wantWaits) {
				t.Fatalf("waits = %v, want %d of them in %v", waits, len(tt.wantWaits), tt.wantWaits)
			}
			for i, w := range waits {
				if r := tt.wantWaits[i]; w < r.min || w > r.max {
					t.Errorf("wait %d = %v, want in [%v, %v]", i, w, r.min, r.max)
				}
			}
		})
	}
}

// TestRetryUnsentCall: a call that is not safe to repeat is retried when
// the connection could not be opened (nothing was sent).
func TestRetryUnsentCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close() // connections to addr are now refused
	var waits []time.Duration
	c := testClient(t, addr, Config{MaxRetries: 2}, &waits)
	_, err = c.CreateOrg(t.Context(), "acme", "")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("CreateOrg err = %v, want connection refused", err)
	}
	if len(waits) != 2 {
		t.Errorf("waits = %v, want 2 retries of a call that never left the client", waits)
	}
}

// TestRetryCancelled: cancelling the context while waiting ends the call
// with the context's error, keeping the server's.
func TestRetryCancelled(t *testing.T) {
	srv, attempts := scriptedServer(t, []step{{status: 503, retryAfter: "5"}}, `{}`)
	var waits []time.Duration
	c := testClient(t, srv.URL, Config{}, &waits)
	ctx, cancel := context.WithCancel(t.Context())
	c.retry.sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	}
	_, err := c.GetOrg(ctx, "acme")
	if !errors.Is(err, context.Canceled) || ErrorCode(err) != "unavailable" {
		t.Errorf("err = %v, want context.Canceled wrapping the unavailable error", err)
	}
	if attempts.Load() != 1 {
		t.Errorf("attempts = %d, want 1", attempts.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"-1", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestBatchSendsEmptyItems: an empty plaintext in an encrypt batch is sent
// as "" (the empty message), not left out, and likewise a decrypt item's
// ciphertext; an encrypt item has no ciphertext field and the other way
// round.
func TestBatchSendsEmptyItems(t *testing.T) {
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		io.Copy(&b, r.Body)
		mu.Lock()
		bodies = append(bodies, b.String())
		mu.Unlock()
		w.Write([]byte(`{"batch":[]}`))
	}))
	defer srv.Close()
	c, err := New(Config{Addr: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	items := []BatchItem{{Plaintext: nil}, {Plaintext: []byte{}}}
	if _, err := c.EncryptBatch(t.Context(), "acme", "k", items); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecryptBatch(t.Context(), "acme", "k", []BatchItem{{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RewrapBatch(t.Context(), "acme", "k", []BatchItem{{}}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"plaintext":null,"batch":[{"plaintext":""},{"plaintext":""}]}`,
		`{"batch":[{"ciphertext":""}]}`,
		`{"batch":[{"ciphertext":""}]}`,
	}
	if !slices.Equal(bodies, want) {
		t.Errorf("request bodies:\n%s\nwant:\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
	if items[0].Plaintext != nil {
		t.Error("EncryptBatch modified the caller's items")
	}
}

// TestMaxRetriesFromEnvironment: ORGKMS_MAX_RETRIES sets MaxRetries when
// the Config leaves it 0; 0 or a negative number there turns retries off.
func TestMaxRetriesFromEnvironment(t *testing.T) {
	tests := []struct {
		env     string
		cfg     int
		want    int
		wantErr bool
	}{
		{"", 0, DefaultMaxRetries, false},
		{"5", 0, 5, false},
		{"0", 0, 0, false},
		{"-1", 0, 0, false},
		{"5", 2, 2, false}, // the Config wins
		{"many", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv("ORGKMS_MAX_RETRIES", tt.env)
			c, err := New(Config{Addr: "http://127.0.0.1:1", MaxRetries: tt.cfg})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New with ORGKMS_MAX_RETRIES=%q: no error", tt.env)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.retry.max != tt.want {
				t.Errorf("ORGKMS_MAX_RETRIES=%q, MaxRetries %d: %d retries, want %d", tt.env, tt.cfg, c.retry.max, tt.want)
			}
		})
	}
}
