package api

// The Vault-Transit-compatible API: /v1/transit/... with Transit's request
// and response shapes, so that Vault and OpenBao clients (the vault/api Go
// package, `vault write transit/...`) work against orgkms unchanged. See
// docs/transit.md for what is and is not supported.
//
// A Transit key name is an orgkms data key of the caller's org: the org of
// an org-bound token, or, for a platform token, the org named by the
// X-Vault-Namespace header. Authorization is orgkms' own (the same
// auth.Action as the native routes), and so are audit and usage.

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

// transitPrefix starts every Transit-compatible path.
const transitPrefix = "/v1/transit/"

// transitMount is the mount_type of every Transit response.
const transitMount = "transit"

// isTransitRoute reports whether a route pattern is a Transit-compatible
// route, served by adaptTransit.
func isTransitRoute(pattern string) bool {
	_, path, _ := strings.Cut(pattern, " ")
	return strings.HasPrefix(path, transitPrefix)
}

// adaptTransit is adapt for a Transit-compatible route: the token comes
// from X-Vault-Token (or Authorization: Bearer), the org from the token (or
// X-Vault-Namespace), and errors are Vault's {"errors":[...]}.
func (h *Handler) adaptTransit(rt route) http.Handler {
	routeLabel := rt.Pattern
	var duration prometheus.Observer
	if h.metrics != nil {
		duration = h.metrics.HTTPDuration.WithLabelValues(routeLabel)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := &call{w: w, r: r, requestID: requestID(r), route: routeLabel}
		w.Header().Set("X-Request-Id", c.requestID)
		err := h.transitAuthorize(c, rt.Action)
		if err == nil {
			if r.Body != nil {
				c.r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
			}
			err = rt.Handler(h, c)
		}
		if err != nil {
			h.writeTransitError(c, err)
		}
		if h.metrics != nil {
			h.metrics.HTTPRequests.WithLabelValues(routeLabel, strconv.Itoa(c.status)).Inc()
			duration.Observe(time.Since(start).Seconds())
		}
		if h.logAll {
			h.log.LogAttrs(c.r.Context(), slog.LevelInfo, "request", slog.String("request_id", c.requestID), slog.String("route", routeLabel),
				slog.Int("status", c.status), slog.String("principal", c.p.Name), slog.Duration("duration", time.Since(start)))
		}
	})
}

// transitToken returns the token of a Transit request: X-Vault-Token, as
// Vault clients send it, or an Authorization: Bearer header.
func transitToken(r *http.Request) string {
	if t := strings.TrimSpace(r.Header.Get("X-Vault-Token")); t != "" {
		return t
	}
	scheme, secret, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(secret)
	}
	return ""
}

func (h *Handler) transitAuthorize(c *call, act auth.Action) error {
	secret := transitToken(c.r)
	if secret == "" {
		return &fault.Error{Kind: fault.Unauthenticated, Reason: "missing token: send an orgkms API token as X-Vault-Token (VAULT_TOKEN) or as Authorization: Bearer"}
	}
	p, err := h.tokens.Authenticate(c.r.Context(), secret)
	if err != nil {
		return err
	}
	c.p = p
	c.r = c.r.WithContext(context.WithValue(context.WithValue(c.r.Context(), requestIDKey, c.requestID), principalKey, p))
	ns := strings.Trim(strings.TrimSpace(c.r.Header.Get("X-Vault-Namespace")), "/")
	switch {
	case ns != "" && p.OrgID != "" && ns != p.OrgID:
		return &fault.Error{Kind: fault.Forbidden, Reason: "this token is limited to org " + p.OrgID + "; X-Vault-Namespace names org " + ns}
	case ns != "":
		c.org = ns
	case p.OrgID != "":
		c.org = p.OrgID
	case !auth.Allowed(p, act, "-"):
		// A platform token is allowed an action on every org or on none.
		return &fault.Error{Kind: fault.Forbidden, Reason: "permission denied: this token's roles (" + rolesString(p.Roles) + ") do not allow " + string(act)}
	default:
		return &fault.Error{Kind: fault.Invalid, Field: "X-Vault-Namespace",
			Reason: "the Transit API acts on the keys of one org, and this token is not bound to one: use a token of the org (orgkms token create --org ORG), or name the org in the X-Vault-Namespace header (VAULT_NAMESPACE=ORG)"}
	}
	if !auth.Allowed(p, act, c.org) {
		reason := "permission denied: this token's roles (" + rolesString(p.Roles) + ") do not allow " + string(act) + " on org " + c.org
		return &fault.Error{Kind: fault.Forbidden, Reason: reason}
	}
	return nil
}

// transitErrors is Vault's error body.
type transitErrors struct {
	Errors []string `json:"errors"`
}

// transitSecret is Vault's response envelope (a logical.Response as the
// HTTP layer renders it).
type transitSecret struct {
	RequestID     string   `json:"request_id"`
	LeaseID       string   `json:"lease_id"`
	Renewable     bool     `json:"renewable"`
	LeaseDuration int      `json:"lease_duration"`
	Data          any      `json:"data"`
	WrapInfo      any      `json:"wrap_info"`
	Warnings      []string `json:"warnings"`
	Auth          any      `json:"auth"`
	MountType     string   `json:"mount_type"`
}

// transitReply writes data in Vault's envelope with status.
func (c *call) transitReply(status int, data any, warnings []string) error {
	return c.reply(status, transitSecret{RequestID: c.requestID, Data: data, Warnings: warnings, MountType: transitMount})
}

// transitNotFound marks a read of something missing: Vault answers 404 to
// a read, and 400 to an operation on a missing key.
type transitNotFound struct{ err error }

func (e transitNotFound) Error() string { return e.err.Error() }
func (e transitNotFound) Unwrap() error { return e.err }

// transitStatus is the HTTP status Transit gives an error of kind k: every
// user error is 400 (Vault's logical.ErrorResponse); authentication,
// authorization, an unusable customer key, a transient failure and an
// internal one keep orgkms' status.
func transitStatus(err error) int {
	var nf transitNotFound
	if errors.As(err, &nf) && fault.KindOf(err) == fault.NotFound {
		return http.StatusNotFound
	}
	switch k := fault.KindOf(err); k {
	case fault.Invalid, fault.Integrity, fault.NotFound, fault.Conflict, fault.VersionRetired:
		return http.StatusBadRequest
	default:
		return k.HTTPStatus()
	}
}

// transitMessage is the text of err in a Transit error: Transit's own words
// where clients are known to look for them, else orgkms' message.
func (h *Handler) transitMessage(err error, requestID string) string {
	switch fault.KindOf(err) {
	case fault.VersionRetired:
		// Transit's ErrTooOld, verbatim, then orgkms' explanation.
		return "ciphertext or signature version is disallowed by policy (too old): " + h.redact(fault.Message(err))
	case fault.NotFound:
		if fe := fault.As(err); fe != nil && strings.HasPrefix(fe.Resource, "key ") {
			return "encryption key not found: " + fe.Resource
		}
	case fault.Internal:
		return "internal error; reference " + requestID + " when reporting it"
	}
	return h.redact(fault.Message(err))
}

// writeTransitError is writeError for the Transit routes: Vault's status
// and body, the same logging.
func (h *Handler) writeTransitError(c *call, err error) {
	status := transitStatus(err)
	kind := fault.KindOf(err)
	c.status = status
	if fe := fault.As(err); fe != nil && fe.RetryAfter > 0 {
		c.w.Header().Set("Retry-After", strconv.Itoa(int((fe.RetryAfter+time.Second-1)/time.Second)))
	} else if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		c.w.Header().Set("Retry-After", "1")
	}
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	h.log.LogAttrs(c.r.Context(), level, "request failed",
		slog.String("request_id", c.requestID), slog.String("route", c.route), slog.Int("status", status),
		slog.String("kind", kind.Code()), slog.String("principal", c.p.Name), slog.String("org_id", c.org),
		slog.String("error", err.Error()))
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(status)
	json.NewEncoder(c.w).Encode(transitErrors{Errors: []string{h.transitMessage(err, c.requestID)}})
}

// tfields are the parameters of a Transit request (or of one batch item),
// undecoded. Vault coerces strings to numbers and booleans; so do these.
type tfields map[string]jsontext.Value

// transitDecode reads the request body as a JSON object of parameters. An
// empty body is no parameters (`vault write -f`).
func (c *call) transitDecode() (tfields, error) {
	var buf bytes.Buffer
	if n := c.r.ContentLength; n > 0 && n <= MaxBodyBytes {
		buf.Grow(int(n) + 1) // one allocation for the whole body
	}
	_, err := buf.ReadFrom(c.r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, &fault.Error{Kind: fault.TooLarge, Reason: "request body exceeds " + strconv.Itoa(MaxBodyBytes>>20) + " MiB; split it into smaller requests or batches"}
		}
		return nil, &fault.Error{Kind: fault.Invalid, Reason: "request body could not be read", Err: err}
	}
	f := tfields{}
	if len(bytes.TrimSpace(buf.Bytes())) == 0 {
		return f, nil
	}
	if err := jsonv2.Unmarshal(buf.Bytes(), &f); err != nil {
		return nil, &fault.Error{Kind: fault.Invalid, Reason: "request body is not a JSON object of parameters", Err: err}
	}
	if f == nil { // the body was null
		f = tfields{}
	}
	return f, nil
}

func (f tfields) has(name string) bool {
	v, ok := f[name]
	return ok && v.Kind() != 'n'
}

func (f tfields) str(name string) (string, error) {
	if !f.has(name) {
		return "", nil
	}
	var s string
	if err := jsonv2.Unmarshal(f[name], &s); err != nil {
		return "", fault.Invalidf(name, "must be a string")
	}
	return s, nil
}

// b64 decodes a base64 parameter; nil when it is absent.
func (f tfields) b64(name string) ([]byte, error) {
	if !f.has(name) {
		return nil, nil
	}
	if f[name].Kind() != '"' {
		return nil, fault.Invalidf(name, "must be a base64 string")
	}
	var b []byte // encoding/json/v2 decodes standard base64 into []byte
	if err := jsonv2.Unmarshal(f[name], &b); err != nil {
		return nil, fault.Invalidf(name, "failed to base64-decode %s", name)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func (f tfields) num(name string) (int64, error) {
	if !f.has(name) {
		return 0, nil
	}
	v := f[name]
	if v.Kind() == '"' {
		var s string
		jsonv2.Unmarshal(v, &s)
		v = jsontext.Value(s)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
	if err != nil {
		return 0, fault.Invalidf(name, "must be an integer")
	}
	return n, nil
}

func (f tfields) flag(name string) (bool, error) {
	if !f.has(name) {
		return false, nil
	}
	v := f[name]
	if v.Kind() == '"' {
		var s string
		jsonv2.Unmarshal(v, &s)
		v = jsontext.Value(s)
	}
	b, err := strconv.ParseBool(strings.TrimSpace(string(v)))
	if err != nil {
		return false, fault.Invalidf(name, "must be a boolean")
	}
	return b, nil
}

// items returns batch_input's items; nil when batch_input is absent.
func (f tfields) items() ([]tfields, error) {
	if !f.has("batch_input") {
		return nil, nil
	}
	var out []tfields
	if err := jsonv2.Unmarshal(f["batch_input"], &out); err != nil {
		return nil, fault.Invalidf("batch_input", "must be a list of objects")
	}
	if len(out) == 0 {
		return nil, fault.Invalidf("batch_input", "missing batch input to process")
	}
	for i := range out {
		if out[i] == nil {
			out[i] = tfields{}
		}
	}
	return out, nil
}

// unknown returns Vault's warning for the parameters not in known.
func (f tfields) unknown(known ...string) []string {
	var extra []string
	for k := range f {
		found := false
		for _, n := range known {
			if k == n {
				found = true
				break
			}
		}
		if !found {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra)
	return []string{"Endpoint ignored these unrecognized parameters: [" + strings.Join(extra, " ") + "]"}
}

// notSupported is the 400 for a Transit feature orgkms does not have.
func notSupported(field, feature string) error {
	return &fault.Error{Kind: fault.Invalid, Field: field, Reason: feature + " is not supported by orgkms (see docs/transit.md)"}
}

// refuseFeatures refuses the parameters that ask for a Transit feature
// orgkms does not have: a parameter set to anything but its neutral value.
func (f tfields) refuseFeatures() error {
	for _, chk := range []struct {
		field, feature string
	}{
		{"convergent_encryption", "convergent encryption (convergent_encryption)"},
		{"exportable", "exportable keys (exportable)"},
		{"allow_plaintext_backup", "plaintext key backup (allow_plaintext_backup)"},
		{"derived", "derived keys (derived); orgkms binds context to each ciphertext as associated data instead, on every key"},
		{"deletion_allowed", "deleting keys (deletion_allowed)"},
	} {
		b, err := f.flag(chk.field)
		if err != nil {
			return err
		}
		if b {
			return notSupported(chk.field, chk.feature)
		}
	}
	if t, err := f.str("type"); err != nil {
		return err
	} else if t != "" && t != "aes256-gcm96" {
		return notSupported("type", "key type "+strconv.Quote(t)+" (orgkms keys are 256-bit AES keys, type aes256-gcm96)")
	}
	for _, chk := range []struct {
		field, feature string
	}{
		{"auto_rotate_period", "automatic rotation (auto_rotate_period); rotate with keys/NAME/rotate"},
		{"min_encryption_version", "encrypting with an older key version (min_encryption_version)"},
	} {
		if !f.has(chk.field) {
			continue
		}
		if s, err := f.str(chk.field); err == nil && (s == "" || s == "0" || s == "0s") {
			continue
		}
		if n, err := f.num(chk.field); err == nil && n == 0 {
			continue
		}
		return notSupported(chk.field, chk.feature)
	}
	for _, chk := range []struct {
		field, feature string
	}{
		{"nonce", "a caller-chosen nonce (nonce; convergent encryption)"},
		{"padding_scheme", "RSA padding schemes (padding_scheme)"},
		{"encrypt_padding_scheme", "RSA padding schemes (encrypt_padding_scheme)"},
		{"decrypt_padding_scheme", "RSA padding schemes (decrypt_padding_scheme)"},
		{"iv", "caller-chosen IVs (iv; CBC key types)"},
		{"key_size", "HMAC key sizes (key_size)"},
		{"managed_key_name", "managed keys (managed_key_name)"},
		{"managed_key_id", "managed keys (managed_key_id)"},
		{"parameter_set", "post-quantum key types (parameter_set)"},
		{"hybrid_key_type_pqc", "hybrid key types (hybrid_key_type_pqc)"},
		{"hybrid_key_type_ec", "hybrid key types (hybrid_key_type_ec)"},
	} {
		if s, _ := f.str(chk.field); s != "" || (f.has(chk.field) && f[chk.field].Kind() != '"') {
			return notSupported(chk.field, chk.feature)
		}
	}
	return nil
}
