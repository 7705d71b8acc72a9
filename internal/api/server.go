package api

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/metrics"
	"github.com/orgkms/orgkms/internal/notify"
	"github.com/orgkms/orgkms/internal/platformkey"
	"github.com/orgkms/orgkms/internal/shred"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 8 << 20

// Config configures a [Handler].
type Config struct {
	Keys        *keys.Service
	Tokens      *auth.Service
	CMK         *cmk.Service
	Users       *auth.Users      // console users; nil disables the users routes
	Metrics     *metrics.Metrics // optional
	Logger      *slog.Logger
	Ready       func(ctx context.Context) error // optional readiness check (database reachable, ...)
	LogRequests bool                            // log every request, not only failures
	// Nodes lists the cluster's nodes (GET /v1/nodes); nil: none listed.
	Nodes Nodes
	// PlatformKey reports the platform key's rotation (GET
	// /v1/platform-key); nil: the route answers not_found.
	PlatformKey PlatformKey

	// Webhooks manages the orgs' webhooks; nil: the webhook routes answer
	// not_found.
	Webhooks *notify.Service
	// VaultBudgets lists this node's shared-vault budgets (GET
	// /v1/vault-budgets); nil: none listed.
	VaultBudgets func() []budget.State
	// Shred schedules and cancels deletions (org and data key
	// lifecycle); nil: those routes answer not_found.
	Shred *shred.Service
	// SelfDelete lets an org's admin+key_admin delete their own org
	// (config orgs.self_delete); otherwise only the operator may.
	SelfDelete bool
}

// PlatformKey is what the API needs of the platform key rotation.
type PlatformKey interface {
	Status(ctx context.Context) (platformkey.Status, error)
}

// Nodes is what the API needs of the node registry (cluster.Node).
type Nodes interface {
	ListNodes(ctx context.Context) ([]cmk.Node, error)
	NodeState(n cmk.Node) cmk.NodeState
}

// Handler serves the API.
type Handler struct {
	keys    *keys.Service
	tokens  *auth.Service
	cmk     *cmk.Service
	users   *auth.Users
	metrics *metrics.Metrics
	log     *slog.Logger
	ready   func(ctx context.Context) error
	nodes   Nodes
	pk      PlatformKey
	budgets func() []budget.State
	shred   *shred.Service
	selfDel bool
	logAll  bool
	mux     *http.ServeMux

	webhooks *notify.Service
}

// New returns the API handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{keys: cfg.Keys, tokens: cfg.Tokens, cmk: cfg.CMK, users: cfg.Users, metrics: cfg.Metrics, log: cfg.Logger, ready: cfg.Ready, nodes: cfg.Nodes, pk: cfg.PlatformKey, webhooks: cfg.Webhooks, budgets: cfg.VaultBudgets, logAll: cfg.LogRequests, mux: http.NewServeMux(),
		shred: cfg.Shred, selfDel: cfg.SelfDelete}
	for _, rt := range routes {
		h.mux.Handle(rt.Pattern, h.adapt(rt))
	}
	h.mux.HandleFunc(transitPrefix, h.transitFallback) // Transit paths without a route (transit_handlers.go)
	if cfg.Metrics != nil {
		h.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics.Registry, promhttp.HandlerOpts{}))
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r, requestID: requestID(r), route: "unmatched"}
		w.Header().Set("X-Request-Id", c.requestID)
		if allow := h.allowedMethods(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			h.writeError(c, &fault.Error{Kind: fault.MethodNotAllowed,
				Reason: r.URL.Path + " does not accept " + r.Method + "; it accepts " + strings.Join(allow, ", ") + " (see /v1/openapi.json)"})
			return
		}
		h.writeError(c, &fault.Error{Kind: fault.NotFound, Reason: "no such API route: " + r.Method + " " + r.URL.Path + "; see /v1/openapi.json"})
	})
	return h
}

// routeMethods are the methods the API's routes use (HEAD comes with GET).
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods returns the methods for which r's path has a route, for a
// 405's Allow header; none when the path has no route at all.
func (h *Handler) allowedMethods(r *http.Request) []string {
	var allow []string
	for _, m := range routeMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return allow
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !cleanPath(r.URL.EscapedPath()) {
		h.refuseUncleanPath(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// RefuseUncleanPaths serves next, but answers a request whose path has an
// empty, "." or ".." segment with invalid_argument itself, except under
// the prefixes exempt (another handler's pages). An http.ServeMux would
// answer 307 to the cleaned path, and clients follow a 307 with the same
// method and body: DELETE /v1/orgs/acme/keys/.. would delete org acme.
func (h *Handler) RefuseUncleanPaths(next http.Handler, exempt ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if !cleanPath(p) && !slices.ContainsFunc(exempt, func(e string) bool { return strings.HasPrefix(p, e) }) {
			h.refuseUncleanPath(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) refuseUncleanPath(w http.ResponseWriter, r *http.Request) {
	c := &call{w: w, r: r, requestID: requestID(r), route: "unclean path"}
	w.Header().Set("X-Request-Id", c.requestID)
	h.writeError(c, &fault.Error{Kind: fault.Invalid, Field: "path",
		Reason: "has an empty, \".\" or \"..\" segment, which orgkms does not resolve: no org ID or key name is empty, . or ..; percent-encode the names you put in a path"})
}

// cleanPath reports whether the escaped path p has no empty, "." or ".."
// segment, escaped or not (a trailing slash aside).
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return true // "*" (OPTIONS), CONNECT's authority: the mux's business
	}
	segs := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		return true // "/"
	}
	for _, s := range segs {
		if u, err := url.PathUnescape(s); err == nil {
			s = u // %2E%2E too: a proxy in front may resolve it
		}
		if s == "" || s == "." || s == ".." {
			return false
		}
	}
	return true
}

// call is the state of one request.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	p         auth.Principal
	org       string
	requestID string
	route     string
	status    int
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	principalKey
)

// RequestID returns the request ID carried by ctx, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && isToken(id) {
		return id
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func isToken(s string) bool {
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func (h *Handler) adapt(rt route) http.Handler {
	if isTransitRoute(rt.Pattern) {
		return h.adaptTransit(rt)
	}
	routeLabel := rt.Pattern
	// Per-route metric children, resolved once (label hashing per request
	// is measurable on the hot path).
	var duration prometheus.Observer
	var okCount prometheus.Counter
	if h.metrics != nil {
		duration = h.metrics.HTTPDuration.WithLabelValues(routeLabel)
		okCount = h.metrics.HTTPRequests.WithLabelValues(routeLabel, "200")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{w: w, r: r, requestID: requestID(r), route: routeLabel, org: r.PathValue("org")}
		w.Header().Set("X-Request-Id", c.requestID)
		err := h.authorize(c, rt.Action)
		if err != nil && rt.Action == auth.ActCrypto {
			h.recordRefused(c, rt.Pattern, err) // key-use transparency (usage.go)
		}
		if err == nil {
			if r.Body != nil {
				c.r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			}
			err = rt.Handler(h, c)
		}
		if err != nil {
			h.writeError(c, err)
		}
		if h.metrics != nil {
			if c.status == http.StatusOK {
				okCount.Inc()
			} else {
				h.metrics.HTTPRequests.WithLabelValues(routeLabel, strconv.Itoa(c.status)).Inc()
			}
			duration.Observe(time.Since(start).Seconds())
		}
		if h.logAll {
			h.log.LogAttrs(c.r.Context(), slog.LevelInfo, "request", slog.String("request_id", c.requestID), slog.String("route", routeLabel),
				slog.Int("status", c.status), slog.String("principal", c.p.Name), slog.Duration("duration", time.Since(start)))
		}
	})
}

func (h *Handler) authorize(c *call, act auth.Action) error {
	if act == "" {
		return nil
	}
	// The auth scheme is case-insensitive (RFC 9110 §11.1): "bearer" and
	// "BEARER" are "Bearer".
	scheme, secret, ok := strings.Cut(strings.TrimSpace(c.r.Header.Get("Authorization")), " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return &fault.Error{Kind: fault.Unauthenticated}
	}
	p, err := h.tokens.Authenticate(c.r.Context(), secret)
	if err != nil {
		return err
	}
	c.p = p
	c.r = c.r.WithContext(context.WithValue(context.WithValue(c.r.Context(), requestIDKey, c.requestID), principalKey, p))
	// orgs.self_delete lets the org's admin+key_admin delete their org.
	selfDelete := act == auth.ActOrgDelete && h.selfDel && auth.Allowed(p, auth.ActCMKManage, c.org)
	if !auth.Allowed(p, act, c.org) && !selfDelete {
		reason := "this token's roles (" + rolesString(p.Roles) + ") do not allow " + string(act)
		if needs := actionNeeds(act); needs != "" {
			reason += ": it needs " + needs
		}
		switch {
		// Another org's token: its roles are beside the point.
		case p.OrgID != "" && c.org != "" && c.org != p.OrgID:
			reason = "this token is limited to org " + p.OrgID
		case p.OrgID != "" && c.org == "":
			reason = "this action is platform-wide: it needs a token without an org scope and with the operator role"
		case act == auth.ActOrgDelete:
			reason = "deleting an org needs the platform operator, or both the admin and key_admin roles on the org where the operator allows it (orgs.self_delete)"
		case act == auth.ActCMKManage:
			reason = "customer managed key changes need both the admin and key_admin roles on the org"
		}
		return &fault.Error{Kind: fault.Forbidden, Reason: reason}
	}
	return nil
}

// actionNeeds names, for a refusal's message, the roles that allow act
// (as [auth.Allowed] decides); "" for an action explained elsewhere.
func actionNeeds(act auth.Action) string {
	switch act {
	case auth.ActOrgCreate, auth.ActOrgList, auth.ActTokenManage, auth.ActCacheManage, auth.ActPlatformRead:
		return "the operator role on a token without an org scope"
	case auth.ActOrgRead, auth.ActKeyRead:
		return "a role on the org (service, member, admin or key_admin), or the operator"
	case auth.ActKeyManage:
		return "the key_admin role on the org, or the operator"
	case auth.ActCrypto:
		return "the service role on the org"
	case auth.ActAuditRead:
		return "the admin or key_admin role on the org, or the operator"
	case auth.ActUsersManage, auth.ActWebhookManage:
		return "the admin role on the org, or the operator"
	}
	return ""
}

func rolesString(rs []auth.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// actor names the principal in audit records.
func (c *call) actor() string { return c.p.Name }

// decode reads a JSON body into v, strictly: unknown or duplicate members,
// trailing data and wrong types are refused with a message naming the field.
func (c *call) decode(v any) error {
	var buf bytes.Buffer
	if n := c.r.ContentLength; n > 0 && n <= MaxBodyBytes {
		buf.Grow(int(n) + 1) // one allocation for the whole body
	}
	_, err := buf.ReadFrom(c.r.Body)
	body := buf.Bytes()
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return &fault.Error{Kind: fault.TooLarge, Reason: "request body exceeds " + strconv.Itoa(MaxBodyBytes>>20) + " MiB; split it into smaller requests or batches"}
		}
		return &fault.Error{Kind: fault.Invalid, Reason: "request body could not be read", Err: err}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return &fault.Error{Kind: fault.Invalid, Reason: "request body is empty: send a JSON object"}
	}
	if err := jsonv2.Unmarshal(body, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return decodeError(err)
	}
	return nil
}

func decodeError(err error) error {
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &sem):
		field := strings.TrimPrefix(string(sem.JSONPointer), "/")
		if errors.Is(err, jsonv2.ErrUnknownName) {
			return &fault.Error{Kind: fault.Invalid, Reason: "unknown field " + strconv.Quote(field) + "; see /v1/openapi.json"}
		}
		if field == "" {
			field = "body"
		}
		var b64 base64.CorruptInputError
		if errors.As(err, &b64) || (sem.GoType != nil && sem.GoType.String() == "[]uint8" && sem.JSONKind == '"') {
			return &fault.Error{Kind: fault.Invalid, Field: field, Reason: "must be base64 (standard alphabet, with padding)"}
		}
		if sem.GoType != nil {
			return &fault.Error{Kind: fault.Invalid, Field: field, Reason: "must be a JSON " + jsonType(sem.GoType.String())}
		}
		return &fault.Error{Kind: fault.Invalid, Field: field, Reason: "has an invalid value"}
	case errors.As(err, &syn):
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &fault.Error{Kind: fault.Invalid, Reason: "request body is truncated JSON"}
		}
		return &fault.Error{Kind: fault.Invalid, Reason: "request body is not valid JSON (at byte " + strconv.FormatInt(syn.ByteOffset, 10) + ")"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &fault.Error{Kind: fault.Invalid, Reason: "request body is truncated JSON"}
	}
	return &fault.Error{Kind: fault.Invalid, Reason: "request body could not be decoded"}
}

func jsonType(goType string) string {
	switch {
	case goType == "[]uint8":
		return "base64 string"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "string":
		return "string"
	case goType == "bool":
		return "boolean"
	}
	return "object"
}

// reply writes v as JSON with status.
func (c *call) reply(status int, v any) error {
	c.status = status
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(status)
	return json.NewEncoder(c.w).Encode(v)
}

func (h *Handler) healthz(c *call) error {
	return c.reply(http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) readyz(c *call) error {
	if h.ready != nil {
		ctx, cancel := context.WithTimeout(c.r.Context(), 2*time.Second)
		defer cancel()
		if err := h.ready(ctx); err != nil {
			// The check's own reason (disk full, read-only, ...) says why;
			// it never names a path.
			if fe := fault.As(err); fe != nil && fe.Kind == fault.Unavailable {
				return &fault.Error{Kind: fault.Unavailable, Op: "not ready", Resource: "the database", Reason: fe.Reason, RetryAfter: fe.RetryAfter, Err: err}
			}
			return &fault.Error{Kind: fault.Unavailable, Op: "not ready", Resource: "the database", Err: err}
		}
	}
	return c.reply(http.StatusOK, map[string]string{"status": "ready"})
}

//go:embed openapi.json
var openapiDoc []byte

func (h *Handler) openapi(c *call) error {
	c.status = http.StatusOK
	c.w.Header().Set("Content-Type", "application/json")
	_, err := c.w.Write(openapiDoc)
	return err
}
