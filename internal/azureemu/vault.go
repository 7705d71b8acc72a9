package azureemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vaultReq is one data-plane request being served.
type vaultReq struct {
	w      http.ResponseWriter
	r      *http.Request
	vault  string // lower-case vault name
	hsm    bool
	host   string // lower-case host without port, for kid URLs
	op     string // Op* constant
	perm   string // access-policy permission the op needs
	name   string // key name from the path
	ver    string // version from the path, "" = current
	claims tokenClaims
}

func (q *vaultReq) base() string { return "https://" + q.host }

func (q *vaultReq) kid(name, version string) string {
	if version == "" {
		return q.base() + "/keys/" + name
	}
	return q.base() + "/keys/" + name + "/" + version
}

// classify maps method and path to an operation. ok is false for paths the
// emulator does not serve.
func classify(method, path string) (op, perm, name, version string, ok bool) {
	op, perm, name, version, ok = route(method, path)
	if ok && name == "" && op != OpList && op != OpListDeleted {
		// An empty key name (/keys//wrapkey) names no key.
		return "", "", "", "", false
	}
	return op, perm, name, version, ok
}

// route maps a vault request to its operation, as classify, without
// checking the key name.
func route(method, path string) (op, perm, name, version string, ok bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if n := len(segs); n > 1 && segs[n-1] == "" {
		segs = segs[:n-1]
	}
	if len(segs) == 0 {
		return "", "", "", "", false
	}
	switch strings.ToLower(segs[0]) {
	case "keys":
		switch len(segs) {
		case 1:
			if method == http.MethodGet {
				return OpList, "list", "", "", true
			}
		case 2:
			name = segs[1]
			switch method {
			case http.MethodGet:
				return OpGet, "get", name, "", true
			case http.MethodPatch:
				return OpUpdate, "update", name, "", true
			case http.MethodDelete:
				return OpDelete, "delete", name, "", true
			}
		case 3:
			name = segs[1]
			third := strings.ToLower(segs[2])
			switch {
			case method == http.MethodPost && third == "create":
				return OpCreate, "create", name, "", true
			case method == http.MethodPost && third == "rotate":
				return OpRotate, "rotate", name, "", true
			case method == http.MethodGet && third == "versions":
				return OpVersions, "list", name, "", true
			case method == http.MethodPost && isCryptoOp(third):
				return third, cryptoPerm(third), name, "", true
			case method == http.MethodGet:
				return OpGet, "get", name, segs[2], true
			case method == http.MethodPatch:
				return OpUpdate, "update", name, segs[2], true
			}
		case 4:
			third := strings.ToLower(segs[3])
			if method == http.MethodPost && isCryptoOp(third) {
				return third, cryptoPerm(third), segs[1], segs[2], true
			}
		}
	case "deletedkeys":
		switch len(segs) {
		case 1:
			if method == http.MethodGet {
				return OpListDeleted, "list", "", "", true
			}
		case 2:
			switch method {
			case http.MethodGet:
				return OpGetDeleted, "get", segs[1], "", true
			case http.MethodDelete:
				return OpPurge, "purge", segs[1], "", true
			}
		case 3:
			if method == http.MethodPost && strings.EqualFold(segs[2], "recover") {
				return OpRecover, "recover", segs[1], "", true
			}
		}
	}
	return "", "", "", "", false
}

func isCryptoOp(s string) bool {
	return s == OpWrapKey || s == OpUnwrapKey || s == OpEncrypt || s == OpDecrypt
}

func cryptoPerm(op string) string {
	switch op {
	case OpWrapKey:
		return "wrapKey"
	case OpUnwrapKey:
		return "unwrapKey"
	}
	return op
}

// kvError writes a Key Vault error envelope.
func kvError(w http.ResponseWriter, status int, code, msg, inner string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]any{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func (e *Emulator) serveVault(w http.ResponseWriter, r *http.Request, name string, hsm bool) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	h.Set("Strict-Transport-Security", "max-age=31536000;includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("x-ms-request-id", newGUID())
	h.Set("x-ms-keyvault-service-version", "1.9.0.0")

	e.mu.Lock()
	v, ok := e.st.Vaults[name]
	var tenantID, location string
	if ok {
		tenantID, location = v.TenantID, v.Location
	}
	e.mu.Unlock()
	if !ok || v.ManagedHSM != hsm {
		// In Azure the name would not resolve; the closest the emulator can
		// do is to drop the connection.
		e.log.Debug("emulator unknown vault", "host", r.Host)
		panic(http.ErrAbortHandler)
	}
	h.Set("x-ms-keyvault-region", location)
	host := strings.ToLower(r.Host)
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	op, perm, keyName, version, known := classify(r.Method, r.URL.Path)
	counted := op
	if !known {
		counted = OpOther
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		counted = OpChallenge
	}
	e.count(name, counted)
	if keyName != "" {
		e.countKey(name, keyName, counted)
	}

	if f, ok := e.takeFault(name); ok {
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Outage {
			panic(http.ErrAbortHandler)
		}
		if f.Status != 0 {
			if f.RetryAfter > 0 {
				secs := int((f.RetryAfter + time.Second - 1) / time.Second)
				h.Set("Retry-After", strconv.Itoa(secs))
			}
			switch {
			case f.Status == http.StatusTooManyRequests:
				kvError(w, f.Status, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", "")
			case f.Status == http.StatusServiceUnavailable:
				kvError(w, f.Status, "ServiceUnavailable", "The service is temporarily unavailable. Please retry later.", "")
			default:
				kvError(w, f.Status, "InternalServerError", "The server encountered an internal error. Please retry the request.", "")
			}
			return
		}
	}

	if auth != "" {
		if after, ok := e.throttle(name, time.Now()); ok {
			writeThrottled(w, after)
			return
		}
	}

	resource := resourceVault
	if hsm {
		resource = resourceManagedHSM
	}
	challenge := fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, e.cfg.ChallengeAuthority, tenantID, resource)
	unauthorized := func(msg string) {
		h.Set("WWW-Authenticate", challenge)
		if hsm && msg == "" {
			h.Set("Content-Length", "0")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if msg == "" {
			msg = "AKV10000: Request is missing a Bearer or PoP token."
		}
		kvError(w, http.StatusUnauthorized, "Unauthorized", msg, "")
	}
	tok, isBearer := strings.CutPrefix(auth, "Bearer ")
	if !isBearer || strings.TrimSpace(tok) == "" {
		unauthorized("")
		return
	}
	claims, msg := e.checkToken(strings.TrimSpace(tok), resource, tenantID, hsm)
	if msg != "" {
		unauthorized(msg)
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		kvError(w, http.StatusBadRequest, "BadParameter", "The api-version query parameter (?api-version=) is required for all requests.", "")
		return
	}
	if !known {
		kvError(w, http.StatusBadRequest, "BadParameter", "The request URI is not supported by the emulator: "+r.Method+" "+r.URL.Path, "")
		return
	}
	q := &vaultReq{w: w, r: r, vault: name, hsm: hsm, host: host, op: op, perm: perm, name: keyName, ver: strings.ToLower(version), claims: claims}
	if !e.authorize(q) {
		return
	}
	switch op {
	case OpCreate:
		e.kvCreate(q)
	case OpGet:
		e.kvGet(q)
	case OpList:
		e.kvList(q)
	case OpVersions:
		e.kvVersions(q)
	case OpUpdate:
		e.kvUpdate(q)
	case OpDelete:
		e.kvDelete(q)
	case OpRotate:
		e.kvRotate(q)
	case OpWrapKey, OpUnwrapKey, OpEncrypt, OpDecrypt:
		e.kvCrypto(q)
	case OpGetDeleted:
		e.kvGetDeleted(q)
	case OpListDeleted:
		e.kvListDeleted(q)
	case OpRecover:
		e.kvRecover(q)
	case OpPurge:
		e.kvPurge(q)
	}
}

// checkToken validates a bearer token for a vault of tenantID. It returns
// the 401 message on failure.
func (e *Emulator) checkToken(tok, resource, tenantID string, hsm bool) (tokenClaims, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.parseTokenLocked(tok)
	if !ok {
		return c, "AKV10046: Unable to resolve the key used for signature validation."
	}
	if c.Aud != resource {
		return c, fmt.Sprintf("AKV10022: Invalid audience. Expected %s, found: %s.", resource, c.Aud)
	}
	if c.Tid != tenantID {
		return c, fmt.Sprintf("AKV10032: Invalid issuer. Expected one of %s, found %s.", issuerV1(tenantID), c.Iss)
	}
	now := e.now().Unix()
	if now >= c.Exp {
		if hsm {
			return c, "Token expired (Activity ID: " + newGUID() + ")"
		}
		return c, "Token has expired."
	}
	if now < c.Nbf {
		if hsm {
			return c, "Token not yet valid (Activity ID: " + newGUID() + ")"
		}
		return c, "Token not yet valid."
	}
	if t := e.st.Tenants[c.Tid]; t != nil && c.Gen != t.TokenGens[c.AppID] {
		return c, fmt.Sprintf("Token was revoked: the tokens of application '%s' in tenant '%s' were invalidated (emulator token revocation).", c.AppID, c.Tid)
	}
	if !e.cfg.KeepTokensAfterRevoke {
		t := e.st.Tenants[c.Tid]
		var sp *spRec
		if t != nil {
			sp = t.SPs[c.AppID]
		}
		if sp == nil || sp.ObjectID != c.Oid {
			return c, fmt.Sprintf("Token was revoked: application '%s' has no service principal with object id '%s' in tenant '%s' any more (consent revoked; emulator revokes tokens at once).", c.AppID, c.Oid, c.Tid)
		}
	}
	return c, ""
}

// mhsmActions maps permissions to Managed HSM local RBAC data actions.
var mhsmActions = map[string]string{
	"get": "read/action", "list": "read/action", "create": "create", "update": "write/action",
	"delete": "delete", "wrapKey": "wrap/action", "unwrapKey": "unwrap/action", "encrypt": "encrypt/action",
	"decrypt": "decrypt/action", "rotate": "rotate/action", "recover": "deletedKeys/recover/action",
	"purge": "deletedKeys/delete",
}

// authorize checks the access policy; it writes the 403 and returns false
// when the caller lacks q.perm.
func (e *Emulator) authorize(q *vaultReq) bool {
	e.mu.Lock()
	v := e.st.Vaults[q.vault]
	allowed := false
	for _, p := range []string{strings.ToLower(q.claims.Oid), strings.ToLower(q.claims.AppID)} {
		if p != "" && slices.Contains(v.Policies[p], q.perm) {
			allowed = true
		}
	}
	location := v.Location
	e.mu.Unlock()
	if allowed {
		return true
	}
	caller := fmt.Sprintf("appid=%s;oid=%s;iss=%s", q.claims.AppID, q.claims.Oid, issuerV1(q.claims.Tid))
	if q.hsm {
		resource := "/keys"
		if q.name != "" {
			resource = "/keys/" + q.name
		}
		kvError(q.w, http.StatusForbidden, "Forbidden", "Caller is not authorized to perform action on resource.\r\n"+
			"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
			"Caller: "+caller+"\r\n"+
			"Action: 'Microsoft.KeyVault/managedHsm/keys/"+mhsmActions[q.perm]+"'\r\n"+
			"Resource: '"+resource+"'\r\n"+
			"Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\n"+
			"Vault: "+q.vault+";location="+location+"\r\n", "ForbiddenByRbac")
		return false
	}
	kvError(q.w, http.StatusForbidden, "Forbidden", fmt.Sprintf("The user, group or application '%s' does not have keys %s permission on key vault '%s;location=%s'. "+
		"For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", caller, q.perm, q.vault, location), "ForbiddenByPolicy")
	return false
}

// keyNotFound writes 404 KeyNotFound for name (and version).
func keyNotFound(q *vaultReq, name, version string) {
	if q.hsm {
		kvError(q.w, http.StatusNotFound, "KeyNotFound", "Key not found: "+q.kid(name, version)+" (Activity ID: "+newGUID()+")", "")
		return
	}
	id := name
	if version != "" {
		id += "/" + version
	}
	kvError(q.w, http.StatusNotFound, "KeyNotFound", "A key with (name/id) "+id+" was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", "")
}

// azureMessage turns a control error into a service message: sentence
// case, no sentinel suffix, final period.
func azureMessage(err error) string {
	m := strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error())
	if m == "" {
		return m
	}
	return strings.ToUpper(m[:1]) + m[1:] + "."
}

func badParameter(w http.ResponseWriter, msg string) {
	kvError(w, http.StatusBadRequest, "BadParameter", msg, "")
}

// internalError reports a failure of the emulator itself (for example,
// persisting state).
func (e *Emulator) internalError(q *vaultReq, err error) {
	e.log.Error("emulator request failed", "op", q.op, "err", err)
	kvError(q.w, http.StatusInternalServerError, "InternalServerError", "The emulator failed to process the request.", "")
}

// decodeBody decodes a JSON request body into v; an empty body is allowed
// when emptyOK.
func decodeBody(q *vaultReq, v any, emptyOK bool) bool {
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, 1<<20))
	if err != nil {
		badParameter(q.w, "The request body is too large or unreadable.")
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if emptyOK {
			return true
		}
		badParameter(q.w, "The request body is empty.")
		return false
	}
	if err := json.Unmarshal(b, v); err != nil {
		badParameter(q.w, "The request body is not valid JSON: "+err.Error())
		return false
	}
	return true
}

// decodeB64 decodes base64url with or without padding.
func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

type jsonWebKey struct {
	KID    string   `json:"kid"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
}

type keyAttributes struct {
	Enabled         bool   `json:"enabled"`
	NBF             *int64 `json:"nbf,omitempty"`
	EXP             *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays"`
	Exportable      bool   `json:"exportable"`
	HSMPlatform     string `json:"hsmPlatform,omitempty"`
}

type keyBundle struct {
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
	Key                jsonWebKey        `json:"key"`
	Attributes         keyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
}

type keyItem struct {
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
	KID                string            `json:"kid"`
	Attributes         keyAttributes     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
}

func recoveryLevel(v *vaultState) string {
	level := "Recoverable"
	if v.SoftDeleteDays < 90 {
		level = "CustomizedRecoverable"
	}
	if !v.PurgeProtection {
		level += "+Purgeable"
	}
	return level
}

func attributes(v *vaultState, kv *keyVersion) keyAttributes {
	a := keyAttributes{
		Enabled: kv.Enabled, NBF: kv.NBF, EXP: kv.EXP, Created: kv.Created, Updated: kv.Updated,
		RecoveryLevel: recoveryLevel(v), RecoverableDays: v.SoftDeleteDays, HSMPlatform: "0",
	}
	if strings.HasSuffix(kv.Kty, "-HSM") {
		a.HSMPlatform = "2"
	}
	return a
}

// bundle builds a KeyBundle; the caller holds e.mu.
func bundle(q *vaultReq, v *vaultState, k *keyState, kv *keyVersion, d *deletedKey) keyBundle {
	b := keyBundle{
		Key:        jsonWebKey{KID: q.kid(k.Name, kv.ID), Kty: kv.Kty, KeyOps: slices.Clone(kv.KeyOps)},
		Attributes: attributes(v, kv),
		Tags:       kv.Tags,
	}
	if kv.rsa != nil {
		b.Key.N = b64url.EncodeToString(kv.rsa.N.Bytes())
		b.Key.E = b64url.EncodeToString(big.NewInt(int64(kv.rsa.E)).Bytes())
	}
	if d != nil {
		b.RecoveryID = q.base() + "/deletedkeys/" + k.Name
		dd, sp := d.DeletedDate, d.ScheduledPurgeDate
		b.DeletedDate, b.ScheduledPurgeDate = &dd, &sp
	}
	return b
}

type attrsIn struct {
	Enabled *bool  `json:"enabled"`
	NBF     *int64 `json:"nbf"`
	EXP     *int64 `json:"exp"`
}

type createIn struct {
	Kty        string            `json:"kty"`
	KeySize    int               `json:"key_size"`
	KeyOps     []string          `json:"key_ops"`
	Attributes *attrsIn          `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

func (e *Emulator) kvCreate(q *vaultReq) {
	var in createIn
	if !decodeBody(q, &in, false) {
		return
	}
	if !keyNameRE.MatchString(q.name) {
		badParameter(q.w, "The key name '"+q.name+"' is invalid: use 1-127 letters, digits and '-'.")
		return
	}
	if in.Kty == "" {
		badParameter(q.w, "The parameter kty is required.")
		return
	}
	spec, err := newKeySpec(q.hsm, in.Kty, in.KeySize, in.KeyOps)
	if err != nil {
		badParameter(q.w, azureMessage(err))
		return
	}
	var nbf, exp *int64
	enabled := true
	if in.Attributes != nil {
		nbf, exp = in.Attributes.NBF, in.Attributes.EXP
		if in.Attributes.Enabled != nil {
			enabled = *in.Attributes.Enabled
		}
	}
	kv, err := e.newVersion(spec, nbf, exp, in.Tags)
	if err != nil {
		e.internalError(q, err)
		return
	}
	kv.Enabled = enabled
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.st.Vaults[q.vault]
	if err := e.purgeExpiredLocked(v); err != nil {
		e.internalError(q, err)
		return
	}
	lk := strings.ToLower(q.name)
	if _, ok := v.Deleted[lk]; ok {
		kvError(q.w, http.StatusConflict, "Conflict", "Key "+q.name+" is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.", "ObjectIsDeletedButRecoverable")
		return
	}
	var k *keyState
	if _, ok := v.Keys[lk]; ok {
		// Creating an existing key adds a new version.
		k, err = e.rotateLocked(v, q.name, kv)
	} else {
		k, err = e.addKeyLocked(v, q.name, kv)
	}
	if err != nil {
		e.internalError(q, err)
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, k, kv, nil))
}

// liveKey finds a live key and version; it writes 404 and returns ok false
// when absent. The caller holds e.mu.
func (e *Emulator) liveKeyLocked(q *vaultReq) (*vaultState, *keyState, *keyVersion, bool) {
	v := e.st.Vaults[q.vault]
	if err := e.purgeExpiredLocked(v); err != nil {
		e.internalError(q, err)
		return nil, nil, nil, false
	}
	k, ok := v.Keys[strings.ToLower(q.name)]
	if !ok {
		keyNotFound(q, q.name, q.ver)
		return nil, nil, nil, false
	}
	kv, ok := k.version(q.ver)
	if !ok {
		keyNotFound(q, q.name, q.ver)
		return nil, nil, nil, false
	}
	return v, k, kv, true
}

func (e *Emulator) kvGet(q *vaultReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, k, kv, ok := e.liveKeyLocked(q)
	if !ok {
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, k, kv, nil))
}

func (e *Emulator) kvUpdate(q *vaultReq) {
	var in struct {
		Attributes *attrsIn          `json:"attributes"`
		KeyOps     []string          `json:"key_ops"`
		Tags       map[string]string `json:"tags"`
	}
	if !decodeBody(q, &in, true) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, k, kv, ok := e.liveKeyLocked(q)
	if !ok {
		return
	}
	old := *kv
	if in.KeyOps != nil {
		spec, err := newKeySpec(v.ManagedHSM, kv.Kty, kv.Size, in.KeyOps)
		if err != nil {
			badParameter(q.w, azureMessage(err))
			return
		}
		kv.KeyOps = spec.ops
	}
	if a := in.Attributes; a != nil {
		if a.Enabled != nil {
			kv.Enabled = *a.Enabled
		}
		if a.NBF != nil {
			kv.NBF = a.NBF
		}
		if a.EXP != nil {
			kv.EXP = a.EXP
		}
	}
	if in.Tags != nil {
		kv.Tags = in.Tags
	}
	kv.Updated = e.nowUnix()
	if err := e.persist(); err != nil {
		*kv = old
		e.internalError(q, err)
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, k, kv, nil))
}

func (e *Emulator) kvDelete(q *vaultReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, k, kv, ok := e.liveKeyLocked(q)
	if !ok {
		return
	}
	d, err := e.deleteLocked(v, k)
	if err != nil {
		e.internalError(q, err)
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, k, kv, d))
}

func (e *Emulator) kvRotate(q *vaultReq) {
	e.mu.Lock()
	_, _, cur, ok := e.liveKeyLocked(q)
	var spec keySpec
	if ok {
		spec = keySpec{kty: cur.Kty, size: cur.Size, ops: slices.Clone(cur.KeyOps)}
	}
	e.mu.Unlock()
	if !ok {
		return
	}
	kv, err := e.newVersion(spec, nil, nil, nil)
	if err != nil {
		e.internalError(q, err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v := e.st.Vaults[q.vault]
	k, err := e.rotateLocked(v, q.name, kv)
	if errors.Is(err, ErrNotFound) {
		keyNotFound(q, q.name, "")
		return
	}
	if err != nil {
		e.internalError(q, err)
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, k, kv, nil))
}

// page writes one page of a list result with Key Vault's maxresults and
// $skiptoken paging.
func page[T any](q *vaultReq, items []T) {
	query := q.r.URL.Query()
	size := 25
	if s := query.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 25 {
			badParameter(q.w, "Invalid value for parameter maxresults: '"+s+"'. The value must be between 1 and 25.")
			return
		}
		size = n
	}
	off := 0
	if s := query.Get("$skiptoken"); s != "" {
		b, err := decodeB64(s)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || n < 0 {
			badParameter(q.w, "Invalid value for parameter $skiptoken.")
			return
		}
		off = min(n, len(items))
	}
	end := min(off+size, len(items))
	var next *string
	if end < len(items) {
		tok := b64url.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
		s := q.base() + q.r.URL.Path + "?api-version=" + query.Get("api-version") + "&$skiptoken=" + tok + "&maxresults=" + strconv.Itoa(size)
		next = &s
	}
	writeJSON(q.w, http.StatusOK, map[string]any{"value": items[off:end], "nextLink": next})
}

func (e *Emulator) kvVersions(q *vaultReq) {
	e.mu.Lock()
	v, k, _, ok := e.liveKeyLocked(q)
	var items []keyItem
	if ok {
		for _, id := range slices.Sorted(maps.Keys(k.Versions)) {
			kv := k.Versions[id]
			items = append(items, keyItem{KID: q.kid(k.Name, id), Attributes: attributes(v, kv), Tags: kv.Tags})
		}
	}
	e.mu.Unlock()
	if ok {
		page(q, items)
	}
}

func (e *Emulator) kvList(q *vaultReq) {
	e.mu.Lock()
	v := e.st.Vaults[q.vault]
	items := []keyItem{}
	for _, lk := range slices.Sorted(maps.Keys(v.Keys)) {
		k := v.Keys[lk]
		kv := k.Versions[k.Current]
		items = append(items, keyItem{KID: q.kid(k.Name, ""), Attributes: attributes(v, kv), Tags: kv.Tags})
	}
	e.mu.Unlock()
	page(q, items)
}

func (e *Emulator) deletedLocked(q *vaultReq) (*vaultState, *deletedKey, bool) {
	v := e.st.Vaults[q.vault]
	if err := e.purgeExpiredLocked(v); err != nil {
		e.internalError(q, err)
		return nil, nil, false
	}
	d, ok := v.Deleted[strings.ToLower(q.name)]
	if !ok {
		kvError(q.w, http.StatusNotFound, "KeyNotFound", "Deleted Key not found: "+q.name, "")
		return nil, nil, false
	}
	return v, d, true
}

func (e *Emulator) kvGetDeleted(q *vaultReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, d, ok := e.deletedLocked(q)
	if !ok {
		return
	}
	if e.deletedHiddenLocked(v, d, true) {
		kvError(q.w, http.StatusNotFound, "KeyNotFound", "Deleted Key not found: "+q.name, "")
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, d.Key, d.Key.Versions[d.Key.Current], d))
}

func (e *Emulator) kvListDeleted(q *vaultReq) {
	e.mu.Lock()
	v := e.st.Vaults[q.vault]
	if err := e.purgeExpiredLocked(v); err != nil {
		e.mu.Unlock()
		e.internalError(q, err)
		return
	}
	items := []keyItem{}
	for _, lk := range slices.Sorted(maps.Keys(v.Deleted)) {
		d := v.Deleted[lk]
		if e.deletedHiddenLocked(v, d, false) {
			continue
		}
		kv := d.Key.Versions[d.Key.Current]
		dd, sp := d.DeletedDate, d.ScheduledPurgeDate
		items = append(items, keyItem{RecoveryID: q.base() + "/deletedkeys/" + d.Key.Name, DeletedDate: &dd, ScheduledPurgeDate: &sp,
			KID: q.kid(d.Key.Name, ""), Attributes: attributes(v, kv), Tags: kv.Tags})
	}
	e.mu.Unlock()
	page(q, items)
}

func (e *Emulator) kvRecover(q *vaultReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, _, ok := e.deletedLocked(q)
	if !ok {
		return
	}
	k, err := e.recoverLocked(v, q.name)
	if err != nil {
		e.internalError(q, err)
		return
	}
	writeJSON(q.w, http.StatusOK, bundle(q, v, k, k.Versions[k.Current], nil))
}

func (e *Emulator) kvPurge(q *vaultReq) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, _, ok := e.deletedLocked(q)
	if !ok {
		return
	}
	err := e.purgeLocked(v, q.name)
	if errors.Is(err, ErrPurgeProtected) {
		kvError(q.w, http.StatusForbidden, "Forbidden", `Operation "purge" is not allowed because purge protection is enabled for this vault. `+
			`Key Vault service will automatically purge it after the retention period has passed.`+"\r\nVault: "+v.Name+";location="+v.Location, "")
		return
	}
	if err != nil {
		e.internalError(q, err)
		return
	}
	q.w.WriteHeader(http.StatusNoContent)
}

type cryptoIn struct {
	Alg   string `json:"alg"`
	Value string `json:"value"`
	IV    string `json:"iv"`
	AAD   string `json:"aad"`
	Tag   string `json:"tag"`
}

func (e *Emulator) kvCrypto(q *vaultReq) {
	var in cryptoIn
	if !decodeBody(q, &in, false) {
		return
	}
	if in.Alg == "" {
		badParameter(q.w, "The parameter alg is required.")
		return
	}
	var p opParams
	p.alg = in.Alg
	for _, f := range []struct {
		name string
		s    string
		dst  *[]byte
	}{{"value", in.Value, &p.data}, {"iv", in.IV, &p.iv}, {"aad", in.AAD, &p.aad}, {"tag", in.Tag, &p.tag}} {
		if f.s == "" {
			continue
		}
		b, err := decodeB64(f.s)
		if err != nil {
			badParameter(q.w, "The parameter "+f.name+" is not valid base64url.")
			return
		}
		*f.dst = b
	}
	if len(p.data) == 0 {
		badParameter(q.w, "The parameter value is required.")
		return
	}
	e.mu.Lock()
	_, k, kv, ok := e.liveKeyLocked(q)
	var kid string
	if ok {
		kid = q.kid(k.Name, kv.ID)
	}
	var refusal func()
	if ok {
		refusal = e.refusalLocked(q, kv)
	}
	e.mu.Unlock()
	if !ok {
		return
	}
	if refusal != nil {
		refusal()
		return
	}
	if !algorithmFits(kv, p.alg) {
		badParameter(q.w, fmt.Sprintf("Invalid algorithm '%s' for key type %s of size %d.", p.alg, kv.Kty, kv.Size))
		return
	}
	res, err := doCrypto(kv, q.op, p)
	if err != nil {
		badParameter(q.w, "The "+q.perm+" operation failed: "+strings.TrimPrefix(err.Error(), errCrypto.Error()+": "))
		return
	}
	out := map[string]any{"kid": kid, "value": b64url.EncodeToString(res.value)}
	if q.hsm {
		out["alg"] = p.alg
	}
	if res.iv != nil {
		out["iv"] = b64url.EncodeToString(res.iv)
		out["tag"] = b64url.EncodeToString(res.tag)
		if len(res.aad) > 0 {
			out["aad"] = b64url.EncodeToString(res.aad)
		}
	}
	writeJSON(q.w, http.StatusOK, out)
}

// refusalLocked returns a writer of the 403 for a crypto op that the key
// version's state forbids, or nil.
func (e *Emulator) refusalLocked(q *vaultReq, kv *keyVersion) func() {
	protect := q.op == OpWrapKey || q.op == OpEncrypt
	if !kv.Enabled && !(protect && e.cfg.DisabledKeyAllowsWrap) {
		return func() {
			kvError(q.w, http.StatusForbidden, "Forbidden", "Operation "+q.perm+" is not allowed on a disabled key.", "KeyDisabled")
		}
	}
	if !slices.Contains(kv.KeyOps, q.perm) {
		return func() {
			kvError(q.w, http.StatusForbidden, "Forbidden", "Operation "+q.perm+" is not permitted on this key.", "KeyOperationForbidden")
		}
	}
	if protect {
		now := e.nowUnix()
		if kv.NBF != nil && now < *kv.NBF {
			return func() {
				kvError(q.w, http.StatusForbidden, "Forbidden", "Operation "+q.perm+" is not allowed on a key that is not yet valid.", "KeyNotYetValid")
			}
		}
		if kv.EXP != nil && now >= *kv.EXP {
			return func() {
				kvError(q.w, http.StatusForbidden, "Forbidden", "Operation "+q.perm+" is not allowed on an expired key.", "KeyExpired")
			}
		}
	}
	return nil
}
