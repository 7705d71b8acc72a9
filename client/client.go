// Package client is the Go client of the orgkms HTTP API, for platform
// services and the orgkms CLI.
//
// A Client is configured like Vault's: the server address and an API token,
// by default from the environment variables ORGKMS_ADDR and ORGKMS_TOKEN.
// Every method returns an *Error for API errors, carrying the stable code
// (e.g. "ciphertext_invalid") and the server's message; branch on the code
// with errors.Is(err, client.CodeCiphertextInvalid) (see [Code]).
//
// # Retries
//
// A call that is safe to repeat is retried when the server answers 429 or
// 503, or when the connection fails before a response arrives: every GET,
// and the data plane's POSTs (Encrypt, Decrypt, Rewrap, their batches, and
// DataKey), whose repetition changes nothing on the server. Any other call
// (creating an org, a key or a token, rotating, CMK changes, ...) is
// retried only when the server cannot have acted on it: a 429, which the
// server sends only when it refused the request, or a connection that could
// not be opened, so that nothing was sent. A 503 or a broken connection
// after the request was sent is returned as it is, since the call may have
// been applied.
//
// The wait before a retry honours the server's Retry-After, and otherwise
// grows exponentially from Config.MinRetryWait to Config.MaxRetryWait, with
// random jitter so that many clients do not retry in step. Retries are
// bounded by Config.MaxRetries and by Config.MaxRetryElapsed, the total time
// a call may spend waiting to retry; a Retry-After beyond that budget ends
// the call with the server's error, whose RetryAfter says how long to wait.
// Set MaxRetries to a negative number (or ORGKMS_MAX_RETRIES to 0) to turn
// retries off.
package client

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Client calls the orgkms API. Safe for concurrent use.
type Client struct {
	addr  string
	token string
	http  *http.Client
	retry retryPolicy
}

// Config configures a Client. Zero fields take their defaults.
type Config struct {
	Addr       string        // e.g. http://127.0.0.1:8200; default $ORGKMS_ADDR
	Token      string        // default $ORGKMS_TOKEN
	CACert     string        // PEM file of a CA to trust; default $ORGKMS_CACERT
	HTTPClient *http.Client  // overrides everything transport-related
	Timeout    time.Duration // of one attempt, default 60s (ignored with HTTPClient)

	// MaxRetries is how many times a call may be retried after its first
	// attempt (see the package doc for which calls): 0 means
	// $ORGKMS_MAX_RETRIES when set, else DefaultMaxRetries; a negative
	// value turns retries off.
	MaxRetries int
	// MinRetryWait and MaxRetryWait bound the exponential backoff between
	// attempts when the server sends no Retry-After; defaults 100ms and 2s.
	MinRetryWait, MaxRetryWait time.Duration
	// MaxRetryElapsed bounds the total time one call spends waiting to
	// retry; default 30s. A Retry-After that does not fit ends the call.
	MaxRetryElapsed time.Duration
}

// Retry defaults of Config.
const (
	DefaultMaxRetries      = 3
	DefaultMinRetryWait    = 100 * time.Millisecond
	DefaultMaxRetryWait    = 2 * time.Second
	DefaultMaxRetryElapsed = 30 * time.Second
)

// New returns a client.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		cfg.Addr = os.Getenv("ORGKMS_ADDR")
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv("ORGKMS_TOKEN")
	}
	if cfg.CACert == "" {
		cfg.CACert = os.Getenv("ORGKMS_CACERT")
	}
	if cfg.MaxRetries == 0 {
		if v := os.Getenv("ORGKMS_MAX_RETRIES"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("ORGKMS_MAX_RETRIES=%q is not a number (a negative one turns retries off)", v)
			}
			cfg.MaxRetries = cmp.Or(n, -1) // 0 in the environment: no retries
		}
	}
	if cfg.Addr == "" {
		return nil, errors.New("no server address: set ORGKMS_ADDR (e.g. http://127.0.0.1:8200)")
	}
	u, err := url.Parse(cfg.Addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server address %q is not an http(s) URL", cfg.Addr)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		if cfg.CACert != "" {
			pem, err := os.ReadFile(cfg.CACert)
			if err != nil {
				return nil, fmt.Errorf("read CA certificate: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("CA certificate file %s holds no PEM certificate", cfg.CACert)
			}
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		timeout := cfg.Timeout
		if timeout == 0 {
			timeout = 60 * time.Second
		}
		hc = &http.Client{Transport: tr, Timeout: timeout}
	}
	return &Client{addr: strings.TrimRight(cfg.Addr, "/"), token: cfg.Token, http: hc, retry: newRetryPolicy(cfg)}, nil
}

type requestIDKey struct{}

// WithRequestID returns a context whose calls send id as their
// X-Request-Id, so that the server records the caller's correlation ID
// (e.g. a Kubernetes request UID) as the call's request ID: in its request
// log, in its error bodies and in the X-Request-Id response header. The
// server keeps an id of 1-64 characters of [A-Za-z0-9._-] and replaces any
// other with a random one; every attempt of a retried call sends the same id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID set on ctx by [WithRequestID], or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Addr returns the server address.
func (c *Client) Addr() string { return c.addr }

// Error is an error returned by the API. Branch on its code with
// errors.Is(err, client.CodeXxx) (see [Code]).
type Error struct {
	Status     int
	Code       string // stable code, e.g. "ciphertext_invalid"
	Message    string
	Field      string
	RequestID  string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
	}
	return e.Message
}

// Is reports whether target is the [Code] of e, so that errors.Is(err,
// client.CodeNotFound) matches an API error with that code.
func (e *Error) Is(target error) bool {
	c, ok := target.(Code)
	return ok && string(c) == e.Code
}

// ErrorCode returns the API error code of err, or "".
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// do sends a call that is retried only when the server cannot have acted
// on it (GETs are always retry-safe).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out, method == http.MethodGet)
}

// doSafe sends a call that is safe to repeat whatever happened to an
// earlier attempt (the data plane's POSTs).
func (c *Client) doSafe(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, method, path, in, out, true)
}

// call sends one API call, with retries as the package doc describes.
func (c *Client) call(ctx context.Context, method, path string, in, out any, safe bool) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	var waited time.Duration
	for attempt := 0; ; attempt++ {
		retry, err := c.attempt(ctx, method, path, body, out, safe)
		if !retry || attempt >= c.retry.max || ctx.Err() != nil {
			return err
		}
		wait, ok := c.retry.wait(attempt, retryAfter(err), waited)
		if !ok {
			return err
		}
		if werr := c.retry.sleep(ctx, wait); werr != nil {
			return fmt.Errorf("%w (cancelled while waiting to retry: %w)", werr, err)
		}
		waited += wait
	}
}

// attempt sends the call once; retry reports whether it may be sent again.
func (c *Client) attempt(ctx context.Context, method, path string, body []byte, out any, safe bool) (retry bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.addr+path, rd)
	if err != nil {
		return false, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if id := RequestID(ctx); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Before a response: a safe call may be repeated; any call may
		// when the connection was never made.
		return (safe || notSent(err)) && !permanent(err), fmt.Errorf("cannot reach orgkms at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		apiErr := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			apiErr.Code, apiErr.Message, apiErr.Field, apiErr.RequestID = eb.Error.Code, eb.Error.Message, eb.Error.Field, eb.Error.RequestID
		} else {
			apiErr.Code = "http_" + strconv.Itoa(resp.StatusCode)
			apiErr.Message = fmt.Sprintf("unexpected HTTP %d from %s", resp.StatusCode, c.addr)
		}
		apiErr.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		switch resp.StatusCode {
		case http.StatusTooManyRequests: // refused: not applied
			return true, apiErr
		case http.StatusServiceUnavailable:
			return safe, apiErr
		}
		return false, apiErr
	}
	if out == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return false, err
	}
	if raw, ok := out.(rawBody); ok {
		_, err := io.Copy(raw.Writer, resp.Body)
		return false, err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return false, fmt.Errorf("decode response of %s %s: %w", method, path, err)
	}
	return false, nil
}

// nonNil returns a copy of items in which the field picked by f is never
// nil, so that an empty value is sent (as "") rather than left out.
func nonNil(items []BatchItem, f func(*BatchItem) *[]byte) []BatchItem {
	out := slices.Clone(items)
	for i := range out {
		if p := f(&out[i]); *p == nil {
			*p = []byte{}
		}
	}
	return out
}

// esc escapes a name for a path segment. "." and ".." are escaped too
// (url.PathEscape leaves them): as dot segments they would address another
// route, e.g. DeleteKey(org, "..") the org itself.
func esc(s string) string {
	if s == "." || s == ".." {
		return strings.Repeat("%2E", len(s))
	}
	return url.PathEscape(s)
}

// CreateOrg creates an org (operator).
func (c *Client) CreateOrg(ctx context.Context, id, name string) (Org, error) {
	var o Org
	err := c.do(ctx, "POST", "/v1/orgs", CreateOrgRequest{ID: id, Name: name}, &o)
	return o, err
}

// GetOrg returns an org.
func (c *Client) GetOrg(ctx context.Context, id string) (Org, error) {
	var o Org
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(id), nil, &o)
	return o, err
}

// ListOrgs returns one page of orgs after the given ID.
func (c *Client) ListOrgs(ctx context.Context, after string, limit int) (OrgList, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l OrgList
	err := c.do(ctx, "GET", "/v1/orgs?"+q.Encode(), nil, &l)
	return l, err
}

// ListKeys lists an org's data keys.
func (c *Client) ListKeys(ctx context.Context, org string) ([]Key, error) {
	var l KeyList
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/keys", nil, &l)
	return l.Keys, err
}

// CreateKey creates a data key.
func (c *Client) CreateKey(ctx context.Context, org, name string) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/keys", CreateKeyRequest{Name: name}, &k)
	return k, err
}

// GetKey returns a data key with its versions.
func (c *Client) GetKey(ctx context.Context, org, name string) (Key, error) {
	var k Key
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/keys/"+esc(name), nil, &k)
	return k, err
}

// RotateKey adds a version to a data key.
func (c *Client) RotateKey(ctx context.Context, org, name string) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/keys/"+esc(name)+"/rotate", struct{}{}, &k)
	return k, err
}

// SetMinDecryptionVersion retires older versions for decryption.
func (c *Client) SetMinDecryptionVersion(ctx context.Context, org, name string, v uint32) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/keys/"+esc(name)+"/config", KeyConfigRequest{MinDecryptionVersion: &v}, &k)
	return k, err
}

func (c *Client) keyPath(org, name, op string) string {
	return "/v1/orgs/" + esc(org) + "/keys/" + esc(name) + "/" + op
}

// Encrypt encrypts plaintext under org's key name, bound to context (may be nil).
func (c *Client) Encrypt(ctx context.Context, org, name string, plaintext, context []byte) (ciphertext []byte, version uint32, err error) {
	if plaintext == nil {
		plaintext = []byte{}
	}
	var r CryptoResponse
	err = c.doSafe(ctx, "POST", c.keyPath(org, name, "encrypt"), EncryptRequest{Plaintext: plaintext, Context: context}, &r)
	return r.Ciphertext, r.KeyVersion, err
}

// Decrypt decrypts a ciphertext made by Encrypt with the same org, key and context.
func (c *Client) Decrypt(ctx context.Context, org, name string, ciphertext, context []byte) ([]byte, error) {
	var r CryptoResponse
	err := c.doSafe(ctx, "POST", c.keyPath(org, name, "decrypt"), DecryptRequest{Ciphertext: ciphertext, Context: context}, &r)
	if err == nil && r.Plaintext == nil {
		r.Plaintext = []byte{}
	}
	return r.Plaintext, err
}

// Rewrap re-encrypts a ciphertext under the latest key version, server-side.
func (c *Client) Rewrap(ctx context.Context, org, name string, ciphertext, context []byte) ([]byte, uint32, error) {
	var r CryptoResponse
	err := c.doSafe(ctx, "POST", c.keyPath(org, name, "rewrap"), DecryptRequest{Ciphertext: ciphertext, Context: context}, &r)
	return r.Ciphertext, r.KeyVersion, err
}

// EncryptBatch encrypts many items; per-item failures are in the results.
func (c *Client) EncryptBatch(ctx context.Context, org, name string, items []BatchItem) ([]BatchResult, error) {
	var r CryptoResponse
	err := c.doSafe(ctx, "POST", c.keyPath(org, name, "encrypt"), EncryptRequest{Batch: nonNil(items, func(it *BatchItem) *[]byte { return &it.Plaintext })}, &r)
	return r.Batch, err
}

// DecryptBatch decrypts many items; per-item failures are in the results.
func (c *Client) DecryptBatch(ctx context.Context, org, name string, items []BatchItem) ([]BatchResult, error) {
	var r CryptoResponse
	err := c.doSafe(ctx, "POST", c.keyPath(org, name, "decrypt"), DecryptRequest{Batch: nonNil(items, func(it *BatchItem) *[]byte { return &it.Ciphertext })}, &r)
	return r.Batch, err
}

// RewrapBatch rewraps many items; per-item failures are in the results.
func (c *Client) RewrapBatch(ctx context.Context, org, name string, items []BatchItem) ([]BatchResult, error) {
	var r CryptoResponse
	err := c.doSafe(ctx, "POST", c.keyPath(org, name, "rewrap"), DecryptRequest{Batch: nonNil(items, func(it *BatchItem) *[]byte { return &it.Ciphertext })}, &r)
	return r.Batch, err
}

// DataKey generates a data key encrypted under org's key name.
func (c *Client) DataKey(ctx context.Context, org, name string, req DataKeyRequest) (DataKeyResponse, error) {
	var r DataKeyResponse
	err := c.doSafe(ctx, "POST", c.keyPath(org, name, "datakey"), req, &r)
	return r, err
}

// CreateToken creates an API token; the secret is in the result only.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest) (Token, error) {
	var t Token
	err := c.do(ctx, "POST", "/v1/tokens", req, &t)
	return t, err
}

// ListTokens lists API tokens.
func (c *Client) ListTokens(ctx context.Context) ([]Token, error) {
	var l TokenList
	err := c.do(ctx, "GET", "/v1/tokens", nil, &l)
	return l.Tokens, err
}

// RevokeToken revokes an API token.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/v1/tokens/"+esc(id), nil, nil)
}

// Audit returns an org's audit events after seq ("_platform" for the platform chain).
func (c *Client) Audit(ctx context.Context, org string, after int64, limit int) ([]AuditEvent, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatInt(after, 10))
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var l AuditList
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/audit?"+q.Encode(), nil, &l)
	return l.Events, err
}

// VerifyAudit verifies an org's audit chain on the server.
func (c *Client) VerifyAudit(ctx context.Context, org string) (AuditVerify, error) {
	var v AuditVerify
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/audit/verify", nil, &v)
	return v, err
}

// QueryUsage returns one page of an org's usage records matching q, newest
// minute first; NextPageToken continues it.
func (c *Client) QueryUsage(ctx context.Context, org string, q UsageQuery) (UsageList, error) {
	var l UsageList
	path := "/v1/orgs/" + esc(org) + "/usage"
	if v := q.Values().Encode(); v != "" {
		path += "?" + v
	}
	err := c.do(ctx, "GET", path, nil, &l)
	return l, err
}

// ExportUsage writes every usage record of org matching q (Limit and
// PageToken unused) to w, as format "csv" or "jsonl" (one JSON object a
// line).
func (c *Client) ExportUsage(ctx context.Context, org string, q UsageQuery, format string, w io.Writer) error {
	q.Limit, q.PageToken = 0, ""
	v := q.Values()
	v.Set("format", format)
	return c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/usage/export?"+v.Encode(), nil, rawBody{w})
}

// rawBody receives a response body as it is (exports), not decoded.
type rawBody struct{ io.Writer }

// Usage returns an org's aggregated usage counters since t.
func (c *Client) Usage(ctx context.Context, org string, since time.Time) ([]UsageCount, error) {
	var l UsageList
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/usage?since="+url.QueryEscape(since.UTC().Format(time.RFC3339)), nil, &l)
	return l.Usage, err
}

// PurgeCache drops unwrapped keys of org ("" = all orgs) from the server's memory.
func (c *Client) PurgeCache(ctx context.Context, org string) error {
	if org == "" {
		return c.do(ctx, "POST", "/v1/cache/purge", struct{}{}, nil)
	}
	return c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cache/purge", struct{}{}, nil)
}

// WhoAmI describes the caller's token.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var w WhoAmI
	err := c.do(ctx, "GET", "/v1/whoami", nil, &w)
	return w, err
}

// ListNodes lists the orgkms nodes on the database (operators only).
func (c *Client) ListNodes(ctx context.Context) (NodeList, error) {
	var l NodeList
	err := c.do(ctx, "GET", "/v1/nodes", nil, &l)
	return l, err
}

// PlatformKeyStatus returns the platform master key's rotation status
// (operator role).
func (c *Client) PlatformKeyStatus(ctx context.Context) (PlatformKeyStatus, error) {
	var s PlatformKeyStatus
	err := c.do(ctx, "GET", "/v1/platform-key", nil, &s)
	return s, err
}

// CMKStatus returns an org's customer managed key status.
func (c *Client) CMKStatus(ctx context.Context, org string) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/cmk", nil, &s)
	return s, err
}

// CMKAuthorize starts admin consent for tenant and returns the consent URL.
func (c *Client) CMKAuthorize(ctx context.Context, org, tenant string) (CMKAuthorizeResponse, error) {
	var r CMKAuthorizeResponse
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/authorize", CMKAuthorizeRequest{TenantID: tenant}, &r)
	return r, err
}

// CMKAuthorizeIn starts authorizing orgkms in req.Cloud: the consent URL
// of a consent cloud (with req.TenantID), or the grant instructions of a
// grant cloud (Method "grant"; nothing changes).
func (c *Client) CMKAuthorizeIn(ctx context.Context, org string, req CMKAuthorizeRequest) (CMKAuthorizeResponse, error) {
	var r CMKAuthorizeResponse
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/authorize", req, &r)
	return r, err
}

// CMKConfigure sets the org's key (vault URI, name, optional version).
func (c *Client) CMKConfigure(ctx context.Context, org string, req CMKConfigureRequest) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/configure", req, &s)
	return s, err
}

// CMKClouds lists the clouds offered for the org's customer managed key,
// with their fields and authorization instructions.
func (c *Client) CMKClouds(ctx context.Context, org string) (CMKClouds, error) {
	var r CMKClouds
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/cmk/clouds", nil, &r)
	return r, err
}

// CMKTest runs Test Managed Key.
func (c *Client) CMKTest(ctx context.Context, org string) (CMKTestReport, error) {
	var r CMKTestReport
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/test", struct{}{}, &r)
	return r, err
}

// CMKEnable starts activation (or replacement) of the configured key.
func (c *Client) CMKEnable(ctx context.Context, org string) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/enable", struct{}{}, &s)
	return s, err
}

// CMKDisable moves the org back to the platform key.
func (c *Client) CMKDisable(ctx context.Context, org string) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/disable", struct{}{}, &s)
	return s, err
}

// CMKFallback gives a lost org (its customer managed key purged) a new
// platform root key; data encrypted before is lost for good.
func (c *Client) CMKFallback(ctx context.Context, org string) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/fallback", CMKFallbackRequest{ConfirmDataLoss: true}, &s)
	return s, err
}

// CreateUser creates a console user in org ("" = a platform operator user).
func (c *Client) CreateUser(ctx context.Context, org string, req CreateUserRequest) (User, error) {
	path := "/v1/users"
	if org != "" {
		path = "/v1/orgs/" + esc(org) + "/users"
	}
	var u User
	err := c.do(ctx, "POST", path, req, &u)
	return u, err
}

// ListUsers lists the console users of org ("" = platform operator users).
func (c *Client) ListUsers(ctx context.Context, org string) ([]User, error) {
	path := "/v1/users"
	if org != "" {
		path = "/v1/orgs/" + esc(org) + "/users"
	}
	var l UserList
	err := c.do(ctx, "GET", path, nil, &l)
	return l.Users, err
}
