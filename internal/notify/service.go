package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/events"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// ReplayWindow is how far a receiver should accept a request's
// X-Orgkms-Timestamp from its own clock, and how long the previous secret
// keeps signing after a rotation.
const ReplayWindow = 5 * time.Minute

// MaxWebhooks bounds an org's webhooks.
const MaxWebhooks = 10

// Header names of a delivery.
const (
	HeaderTimestamp = "X-Orgkms-Timestamp"
	HeaderSignature = "X-Orgkms-Signature"
	HeaderEventID   = "X-Orgkms-Event-Id"
	HeaderEventType = "X-Orgkms-Event-Type"
	HeaderAttempt   = "X-Orgkms-Attempt"
)

// Keepers gives the keeper of a master key (masterkey.Registry).
type Keepers interface {
	Keeper(ref masterkey.Ref) (*masterkey.Keeper, error)
}

// Config configures a [Service]. Zero durations and counts take the
// defaults named.
type Config struct {
	Store       Store
	Keepers     Keepers
	PlatformKey masterkey.Ref // wraps new secrets
	NodeID      string        // lease owner prefix
	// AllowHTTP accepts http:// URLs (webhooks.allow_http; development).
	AllowHTTP bool
	// AllowPrivate accepts receivers on loopback, private and link-local
	// addresses (webhooks.allow_private_addresses).
	AllowPrivate bool
	// RootCAs verifies receivers' certificates; nil: the system roots.
	RootCAs     *x509.CertPool
	Timeout     time.Duration // one attempt; default 10s
	MaxAttempts int           // default 30
	MaxAge      time.Duration // a delivery is given up this long after its event; default 24h
	Backoff     time.Duration // delay after the first failure, doubled after each; default 30s
	MaxBackoff  time.Duration // default 1h
	Poll        time.Duration // how often Run looks for due deliveries; default 1s
	Workers     int           // deliveries sent at once per node; default 4
	Resolver    *net.Resolver // default net.DefaultResolver
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer // optional
}

// Service manages webhooks and delivers their notifications.
type Service struct {
	cfg     Config
	st      Store
	now     func() time.Time
	log     *slog.Logger
	client  *http.Client
	kick    chan struct{}
	mu      sync.Mutex
	secrets map[string]cachedSecret

	outcomes *prometheus.CounterVec
	latency  prometheus.Histogram
	backlog  prometheus.Gauge
}

type cachedSecret struct {
	ct     []byte
	secret []byte
	until  time.Time
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keepers == nil || cfg.PlatformKey.Provider == "" {
		return nil, errors.New("notify: Store, Keepers and PlatformKey are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, 10*time.Second)
	def(&cfg.MaxAge, 24*time.Hour)
	def(&cfg.Backoff, 30*time.Second)
	def(&cfg.MaxBackoff, time.Hour)
	def(&cfg.Poll, time.Second)
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 30
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node"
	}
	s := &Service{cfg: cfg, st: cfg.Store, now: cfg.Now, log: cfg.Logger, kick: make(chan struct{}, 1), secrets: map[string]cachedSecret{}}
	s.client = s.newClient()
	s.outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "orgkms_webhook_deliveries_total",
		Help: "Webhook delivery attempts sent by this node, by outcome (delivered, retry, failed: given up)."}, []string{"outcome"})
	s.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "orgkms_webhook_delivery_duration_seconds",
		Help: "Latency of webhook delivery attempts.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)})
	s.backlog = prometheus.NewGauge(prometheus.GaugeOpts{Name: "orgkms_webhook_outbox_pending",
		Help: "Pending webhook deliveries of every org (the outbox backlog), as this node last counted them."})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.outcomes, s.latency, s.backlog} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("notify: register metrics: %w", err)
			}
		}
	}
	return s, nil
}

// newClient returns the delivery client: no proxy, no redirects, a
// timeout, and the SSRF guard on every connection.
func (s *Service) newClient() *http.Client {
	dialer := &net.Dialer{Timeout: s.cfg.Timeout, Control: func(network, address string, _ syscall.RawConn) error {
		if s.cfg.AllowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("address %s: %w", address, err)
		}
		if reason := forbidden(ap.Addr()); reason != "" {
			return &forbiddenError{addr: ap.Addr(), reason: reason}
		}
		return nil
	}}
	tr := &http.Transport{
		Proxy:                 nil, // a proxy would bypass the address guard
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   s.cfg.Timeout,
		ResponseHeaderTimeout: s.cfg.Timeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       30 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: s.cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type forbiddenError struct {
	addr   netip.Addr
	reason string
}

func (e *forbiddenError) Error() string {
	return "address " + e.addr.String() + " is " + e.reason + ": refused (webhooks.allow_private_addresses)"
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), // NAT64: may reach any IPv4 address
	netip.MustParsePrefix("2001:db8::/32"),
}

// forbidden says why a is not a public address, or "".
func forbidden(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return "reserved"
		}
	}
	return ""
}

// CreateRequest is what an admin gives to register a webhook.
type CreateRequest struct {
	URL         string
	Description string
	Events      []string // empty = every type
}

// Create registers a webhook for orgID and returns it with its secret:
// the only time the secret is shown. Invalid for a bad URL, description or
// event type; WebhookURLInsecure for http:// without AllowHTTP;
// WebhookAddressForbidden for a non-public host; NotFound for an unknown
// org; Conflict when the org has MaxWebhooks already.
func (s *Service) Create(ctx context.Context, orgID, actor string, req CreateRequest) (Webhook, string, error) {
	const op = "create webhook"
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return Webhook{}, "", err
	}
	u, err := s.checkURL(ctx, req.URL)
	if err != nil {
		return Webhook{}, "", err
	}
	if len(req.Description) > 200 || !utf8.ValidString(req.Description) || strings.ContainsFunc(req.Description, func(r rune) bool { return r < 0x20 }) {
		return Webhook{}, "", &fault.Error{Kind: fault.Invalid, Op: op, Field: "description", Reason: "description must be at most 200 printable characters"}
	}
	types, err := parseTypes(req.Events)
	if err != nil {
		return Webhook{}, "", err
	}
	existing, err := s.st.ListWebhooks(ctx, orgID)
	if err != nil {
		return Webhook{}, "", err
	}
	if len(existing) >= MaxWebhooks {
		return Webhook{}, "", &fault.Error{Kind: fault.Conflict, Op: op, Resource: "webhooks of org " + orgID,
			Reason: fmt.Sprintf("org %s has %d webhooks, the most allowed; delete one first", orgID, MaxWebhooks)}
	}
	id := "wh_" + randomHex(8)
	raw := make([]byte, 32)
	rand.Read(raw)
	defer clear(raw)
	wrapped, err := s.wrap(ctx, orgID, id, raw)
	if err != nil {
		return Webhook{}, "", err
	}
	now := s.now().UTC()
	w := Webhook{OrgID: orgID, ID: id, URL: u, Description: req.Description, Events: types, Secret: wrapped, CreatedAt: now, CreatedBy: actor}
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "webhook.create", Target: "webhook/" + id,
		Details: map[string]string{"url": u, "events": typesString(types)}}
	if err := s.st.CreateWebhook(ctx, w, ev); err != nil {
		return Webhook{}, "", err
	}
	return w, secretString(raw), nil
}

// RotateSecret gives the webhook a new secret, returned here only; the
// old one keeps signing beside it for ReplayWindow.
func (s *Service) RotateSecret(ctx context.Context, orgID, id, actor string) (string, error) {
	if _, err := s.st.GetWebhook(ctx, orgID, id); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	defer clear(raw)
	wrapped, err := s.wrap(ctx, orgID, id, raw)
	if err != nil {
		return "", err
	}
	now := s.now().UTC()
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "webhook.rotate_secret", Target: "webhook/" + id,
		Details: map[string]string{"previous_until": now.Add(ReplayWindow).Format(time.RFC3339)}}
	if err := s.st.RotateWebhookSecret(ctx, orgID, id, wrapped, now.Add(ReplayWindow), ev); err != nil {
		return "", err
	}
	return secretString(raw), nil
}

// List returns the org's webhooks.
func (s *Service) List(ctx context.Context, orgID string) ([]Webhook, error) {
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return nil, err
	}
	return s.st.ListWebhooks(ctx, orgID)
}

// Get returns the org's webhook id; NotFound otherwise.
func (s *Service) Get(ctx context.Context, orgID, id string) (Webhook, error) {
	return s.st.GetWebhook(ctx, orgID, id)
}

// Delete deletes the webhook with its pending deliveries and history.
func (s *Service) Delete(ctx context.Context, orgID, id, actor string) error {
	ev := audit.Event{OrgID: orgID, Time: s.now().UTC(), Actor: actor, Action: "webhook.delete", Target: "webhook/" + id}
	if err := s.st.DeleteWebhook(ctx, orgID, id, ev); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.secrets, orgID+"/"+id)
	s.mu.Unlock()
	return nil
}

// Deliveries returns the webhook's delivery history, newest first.
func (s *Service) Deliveries(ctx context.Context, orgID, id string, limit int) ([]Delivery, error) {
	if _, err := s.st.GetWebhook(ctx, orgID, id); err != nil {
		return nil, err
	}
	if limit < 0 || limit > 500 {
		return nil, &fault.Error{Kind: fault.Invalid, Field: "limit", Reason: "limit must be between 1 and 500"}
	}
	return s.st.Deliveries(ctx, orgID, id, limit)
}

// Test sends a ping to the webhook now and returns the attempt (a failed
// attempt is a result, not an error); the ping is kept in the history.
func (s *Service) Test(ctx context.Context, orgID, id, actor string) (Delivery, error) {
	w, err := s.st.GetWebhook(ctx, orgID, id)
	if err != nil {
		return Delivery{}, err
	}
	now := s.now().UTC()
	e := events.Event{ID: "evt_" + randomHex(16), Type: events.Ping, OrgID: orgID, Time: now, Data: map[string]string{"webhook": id, "sent_by": actor}}
	d := Delivery{OrgID: orgID, WebhookID: id, EventID: e.ID, EventType: events.Ping, Body: e.Body(), CreatedAt: now, NextAttemptAt: now}
	a := s.attempt(ctx, w, d, 1)
	d.State, d.Attempts, d.LastStatus, d.LastError, d.UpdatedAt = Delivered, 1, a.StatusCode, a.Error, a.Time
	if a.Error != "" {
		d.State = Failed
	}
	d.History = []Attempt{a}
	if d.ID, err = s.st.AddDelivery(ctx, d, d.History); err != nil {
		return Delivery{}, err
	}
	_, _ = s.st.AppendAudit(context.WithoutCancel(ctx), audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "webhook.test", Target: "webhook/" + id,
		Details: map[string]string{"status_code": strconv.Itoa(a.StatusCode), "outcome": string(d.State)}})
	return d, nil
}

func parseTypes(in []string) ([]events.Type, error) {
	var out []events.Type
	for _, t := range in {
		typ := events.Type(strings.TrimSpace(t))
		if !typ.Valid() {
			names := make([]string, 0, len(events.Types()))
			for _, k := range events.Types() {
				names = append(names, string(k))
			}
			return nil, &fault.Error{Kind: fault.Invalid, Field: "events", Reason: fmt.Sprintf("unknown event type %q; the types are %s", t, strings.Join(names, ", "))}
		}
		if !slices.Contains(out, typ) {
			out = append(out, typ)
		}
	}
	return out, nil
}

func typesString(ts []events.Type) string {
	if len(ts) == 0 {
		return "*"
	}
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

// checkURL validates a webhook URL and returns it normalized.
func (s *Service) checkURL(ctx context.Context, raw string) (string, error) {
	bad := func(reason string) error { return &fault.Error{Kind: fault.Invalid, Field: "url", Reason: reason} }
	if raw == "" {
		return "", bad("url is required")
	}
	if len(raw) > 2048 {
		return "", bad("url is longer than 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "", bad("url must be an absolute https:// URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !s.cfg.AllowHTTP {
			return "", &fault.Error{Kind: fault.WebhookURLInsecure, Field: "url"}
		}
	default:
		return "", bad("url must be an https:// URL, not " + u.Scheme + "://")
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if u.User != nil {
		return "", bad("url must not carry credentials (user:password@); the signature authenticates orgkms")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return "", bad("url must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return "", bad("url has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("url has an invalid port")
		}
	}
	if s.cfg.AllowPrivate {
		return u.String(), nil
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		addrs, err = s.cfg.Resolver.LookupNetIP(rctx, "ip", host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return "", bad("url host " + host + " does not resolve")
		}
	}
	for _, a := range addrs {
		if reason := forbidden(a); reason != "" {
			return "", &fault.Error{Kind: fault.WebhookAddressForbidden, Field: "url",
				Reason: "the webhook URL's host " + host + " is a " + reason + " address (" + a.String() + "); receivers must have public addresses"}
		}
	}
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// secretPrefix starts every webhook secret.
const secretPrefix = "whsec_"

func secretString(raw []byte) string { return secretPrefix + base64.RawURLEncoding.EncodeToString(raw) }

func secretAAD(orgID, id string) []byte {
	return []byte("orgkms/webhook-secret/v1/org/" + orgID + "/webhook/" + id)
}

func (s *Service) wrap(ctx context.Context, orgID, id string, raw []byte) (masterkey.Wrapped, error) {
	k, err := s.cfg.Keepers.Keeper(s.cfg.PlatformKey)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	return k.Wrap(ctx, s.cfg.PlatformKey, raw, secretAAD(orgID, id))
}

// signingSecrets returns the secrets that sign for w now: its secret, and
// its previous one until PreviousUntil.
func (s *Service) signingSecrets(ctx context.Context, w Webhook, now time.Time) ([][]byte, error) {
	cur, err := s.unwrap(ctx, w.OrgID+"/"+w.ID, w, w.Secret)
	if err != nil {
		return nil, err
	}
	out := [][]byte{cur}
	if len(w.Previous.Ciphertext) > 0 && now.Before(w.PreviousUntil) {
		prev, err := s.unwrap(ctx, w.OrgID+"/"+w.ID+"/previous", w, w.Previous)
		if err != nil {
			return nil, err
		}
		out = append(out, prev)
	}
	return out, nil
}

func (s *Service) unwrap(ctx context.Context, key string, w Webhook, wr masterkey.Wrapped) ([]byte, error) {
	now := time.Now()
	s.mu.Lock()
	c, ok := s.secrets[key]
	s.mu.Unlock()
	if ok && now.Before(c.until) && bytes.Equal(c.ct, wr.Ciphertext) {
		return c.secret, nil
	}
	k, err := s.cfg.Keepers.Keeper(wr.Key)
	if err != nil {
		return nil, err
	}
	raw, err := k.Unwrap(ctx, wr, secretAAD(w.OrgID, w.ID))
	if err != nil {
		return nil, err
	}
	secret := []byte(secretString(raw))
	clear(raw)
	s.mu.Lock()
	s.secrets[key] = cachedSecret{ct: bytes.Clone(wr.Ciphertext), secret: secret, until: now.Add(5 * time.Minute)}
	s.mu.Unlock()
	return secret, nil
}

// Sign returns the X-Orgkms-Signature value for body at timestamp ts
// (unix seconds) under secrets: "v1=<hex>" for each, comma-separated.
func Sign(ts string, body []byte, secrets ...[]byte) string {
	sigs := make([]string, len(secrets))
	for i, sec := range secrets {
		m := hmac.New(sha256.New, sec)
		m.Write([]byte(ts))
		m.Write([]byte("."))
		m.Write(body)
		sigs[i] = "v1=" + hex.EncodeToString(m.Sum(nil))
	}
	return strings.Join(sigs, ", ")
}

// Verify is the receiver's check, as documented: sig (the
// X-Orgkms-Signature value) holds a v1= HMAC of ts.body by secret, and ts
// is within ReplayWindow of now.
func Verify(secret, ts, sig string, body []byte, now time.Time) error {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("bad timestamp")
	}
	if d := now.Sub(time.Unix(n, 0)); d > ReplayWindow || d < -ReplayWindow {
		return errors.New("timestamp outside the replay window")
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, part := range strings.Split(sig, ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// attempt sends d to w once and reports how it went.
func (s *Service) attempt(ctx context.Context, w Webhook, d Delivery, n int) Attempt {
	start := s.now().UTC()
	a := Attempt{DeliveryID: d.ID, N: n, Time: start}
	secrets, err := s.signingSecrets(ctx, w, start)
	if err != nil {
		a.Error = "signing secret unavailable: " + fault.Message(err)
		return a
	}
	ts := strconv.FormatInt(start.Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Body))
	if err != nil {
		a.Error = "bad request: the webhook URL cannot be used"
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "orgkms-webhooks/1")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(ts, d.Body, secrets...))
	req.Header.Set(HeaderEventID, d.EventID)
	req.Header.Set(HeaderEventType, string(d.EventType))
	req.Header.Set(HeaderAttempt, strconv.Itoa(n))
	t0 := time.Now()
	resp, err := s.client.Do(req)
	a.Latency = time.Since(t0)
	s.latency.Observe(a.Latency.Seconds())
	if err != nil {
		a.Error = describe(err, s.cfg.Timeout)
		return a
	}
	defer resp.Body.Close()
	a.StatusCode = resp.StatusCode
	buf := make([]byte, MaxExcerpt)
	k, _ := io.ReadFull(resp.Body, buf)
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10) // let the connection be reused; bounded
	a.Excerpt = excerpt(buf[:k])
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Error = fmt.Sprintf("receiver answered %d (a redirect, not followed)", resp.StatusCode)
	default:
		a.Error = fmt.Sprintf("receiver answered %d", resp.StatusCode)
	}
	return a
}

// describe renders a transport error without the request URL (which may
// carry a receiver's token).
func describe(err error, timeout time.Duration) string {
	var fe *forbiddenError
	if errors.As(err, &fe) {
		return fe.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out after " + timeout.String()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return "TLS certificate of the receiver is not trusted"
	}
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return msg
}

// excerpt keeps b as printable UTF-8.
func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' {
			return ' '
		}
		return r
	}, s)
}

// Kick makes Run look for due deliveries now (a state change committed).
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run delivers due notifications until ctx is cancelled.
func (s *Service) Run(ctx context.Context) {
	owner := s.cfg.NodeID + "/" + randomHex(4)
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		if n, err := s.RunOnce(ctx, owner); err != nil && ctx.Err() == nil {
			s.log.Warn("webhook deliveries failed", slog.String("kind", fault.KindOf(err).Code()), slog.String("error", fault.Message(err)))
		} else if n > 0 {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// lease is how long a claimed delivery is held: an attempt and its record.
func (s *Service) lease() time.Duration { return 2*s.cfg.Timeout + 30*time.Second }

// RunOnce claims the deliveries due now (as owner), sends them and records
// the attempts; it returns how many it claimed.
func (s *Service) RunOnce(ctx context.Context, owner string) (int, error) {
	if n, err := s.st.PendingDeliveries(ctx); err == nil {
		s.backlog.Set(float64(n))
	}
	ds, err := s.st.ClaimDeliveries(ctx, owner, s.now().UTC(), s.lease(), 4*s.cfg.Workers)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, s.cfg.Workers)
	var wg sync.WaitGroup
	for _, d := range ds {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.deliver(ctx, d)
		})
	}
	wg.Wait()
	return len(ds), nil
}

func (s *Service) deliver(ctx context.Context, d Delivery) {
	w, err := s.st.GetWebhook(ctx, d.OrgID, d.WebhookID)
	if err != nil {
		if fault.KindOf(err) != fault.NotFound { // deleted meanwhile: so are its deliveries
			s.log.Warn("webhook delivery failed", slog.String("org_id", d.OrgID), slog.String("webhook", d.WebhookID), slog.String("error", fault.Message(err)))
		}
		return
	}
	n := d.Attempts + 1
	a := s.attempt(ctx, w, d, n)
	state := Delivered
	outcome := "delivered"
	if a.Error != "" {
		next := a.Time.Add(s.backoff(n))
		if n >= s.cfg.MaxAttempts || next.After(d.CreatedAt.Add(s.cfg.MaxAge)) {
			state, outcome = Failed, "failed"
		} else {
			state, outcome, a.NextRetryAt = Pending, "retry", next
		}
	}
	if ctx.Err() != nil {
		return // stopping: the lease expires and another run sends it again
	}
	if err := s.st.RecordAttempt(ctx, d, a, state); err != nil {
		s.log.Warn("webhook attempt not recorded", slog.String("org_id", d.OrgID), slog.String("webhook", d.WebhookID),
			slog.String("kind", fault.KindOf(err).Code()), slog.String("error", fault.Message(err)))
		return
	}
	s.outcomes.WithLabelValues(outcome).Inc()
	if a.Error != "" {
		s.log.Info("webhook attempt failed", slog.String("org_id", d.OrgID), slog.String("webhook", d.WebhookID), slog.String("event", string(d.EventType)),
			slog.Int("attempt", n), slog.Int("status", a.StatusCode), slog.String("error", a.Error), slog.String("outcome", outcome))
	}
}

// backoff is the delay after the n-th failed attempt: Backoff doubled n-1
// times, at most MaxBackoff, times a random factor in [0.5, 1) (jitter, so
// that receivers recovering from an outage are not hit all at once).
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.Backoff
	for i := 1; i < n && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.cfg.MaxBackoff)
	var b [8]byte
	rand.Read(b[:])
	f := 0.5 + float64(binary.BigEndian.Uint64(b[:])>>11)/float64(1<<53)/2
	return time.Duration(float64(d) * f)
}
