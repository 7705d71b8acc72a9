package api

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/envelope"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// transitType is the Transit key type every orgkms data key reports: a
// 256-bit AES key used with an AEAD. (orgkms' ciphertexts are XAES-256-GCM,
// docs/format.md; Vault and orgkms ciphertexts are not interchangeable.)
const transitType = "aes256-gcm96"

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// transitCiphertext renders an orgkms ciphertext as Transit does:
// "vault:v<N>:" and the standard base64 of the bytes.
func transitCiphertext(ct []byte, version uint32) string {
	b := make([]byte, 0, 20+base64.StdEncoding.EncodedLen(len(ct)))
	b = append(b, "vault:v"...)
	b = strconv.AppendUint(b, uint64(version), 10)
	b = append(b, ':')
	return string(base64.StdEncoding.AppendEncode(b, ct))
}

// parseTransitCiphertext reverses transitCiphertext, with Transit's errors.
func parseTransitCiphertext(field, s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, "vault:")
	if !ok {
		return nil, fault.Invalidf(field, "invalid ciphertext: no prefix")
	}
	ver, payload, ok := strings.Cut(rest, ":")
	if !ok || strings.Contains(payload, ":") {
		return nil, fault.Invalidf(field, "invalid ciphertext: wrong number of fields")
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(ver, "v"), 10, 32)
	if err != nil || !strings.HasPrefix(ver, "v") {
		return nil, fault.Invalidf(field, "invalid ciphertext: version number could not be decoded")
	}
	ct, err := decodeBase64(payload)
	if err != nil {
		return nil, fault.Invalidf(field, "invalid ciphertext: could not decode base64")
	}
	if h, err := envelope.ParseHeader(ct); err == nil && uint64(h.KeyVersion) != n {
		return nil, &fault.Error{Kind: fault.Integrity, Op: "decrypt",
			Reason: "invalid ciphertext: its prefix says version " + strconv.FormatUint(n, 10) + " but it was encrypted with version " + strconv.FormatUint(uint64(h.KeyVersion), 10)}
	}
	return ct, nil
}

// transitKey is Transit's key read (formatKeyPolicy) for an orgkms data key.
type transitKey struct {
	Name                 string           `json:"name"`
	Type                 string           `json:"type"`
	Derived              bool             `json:"derived"`
	DeletionAllowed      bool             `json:"deletion_allowed"`
	Exportable           bool             `json:"exportable"`
	AllowPlaintextBackup bool             `json:"allow_plaintext_backup"`
	Keys                 map[string]int64 `json:"keys"`
	LatestVersion        uint32           `json:"latest_version"`
	MinAvailableVersion  uint32           `json:"min_available_version"`
	MinDecryptionVersion uint32           `json:"min_decryption_version"`
	MinEncryptionVersion uint32           `json:"min_encryption_version"`
	SupportsEncryption   bool             `json:"supports_encryption"`
	SupportsDecryption   bool             `json:"supports_decryption"`
	SupportsDerivation   bool             `json:"supports_derivation"`
	SupportsSigning      bool             `json:"supports_signing"`
	AutoRotatePeriod     int64            `json:"auto_rotate_period"`
	ImportedKey          bool             `json:"imported_key"`
}

func transitKeyJSON(k keys.DataKey) transitKey {
	out := transitKey{Name: k.Name, Type: transitType, Keys: map[string]int64{}, LatestVersion: k.LatestVersion,
		MinDecryptionVersion: max(k.MinDecryptionVersion, 1), SupportsEncryption: true, SupportsDecryption: true}
	for _, v := range k.Versions {
		out.Keys[strconv.FormatUint(uint64(v.Version), 10)] = v.CreatedAt.Unix()
	}
	return out
}

var transitCreateParams = []string{"type", "derived", "convergent_encryption", "exportable", "allow_plaintext_backup", "auto_rotate_period",
	"key_size", "managed_key_name", "managed_key_id", "parameter_set", "hybrid_key_type_pqc", "hybrid_key_type_ec", "context"}

func (h *Handler) transitCreateKey(c *call) error {
	f, err := c.transitDecode()
	if err != nil {
		return err
	}
	if err := f.refuseFeatures(); err != nil {
		return err
	}
	warnings := f.unknown(transitCreateParams...)
	name := c.r.PathValue("name")
	k, err := h.keys.CreateDataKey(c.r.Context(), c.actor(), c.org, name)
	if fault.KindOf(err) == fault.Conflict {
		warnings = append(warnings, "key "+name+" already existed")
		k, err = h.keys.GetDataKey(c.r.Context(), c.org, name)
	}
	if err != nil {
		return err
	}
	return c.transitReply(http.StatusOK, transitKeyJSON(k), warnings)
}

func (h *Handler) transitReadKey(c *call) error {
	k, err := h.keys.GetDataKey(c.r.Context(), c.org, c.r.PathValue("name"))
	if err != nil {
		return transitNotFound{err}
	}
	return c.transitReply(http.StatusOK, transitKeyJSON(k), nil)
}

func (h *Handler) transitListKeys(c *call) error {
	if l := c.r.URL.Query().Get("list"); l != "true" && l != "1" {
		return &fault.Error{Kind: fault.MethodNotAllowed, Reason: "unsupported operation: list keys with LIST or GET ?list=true"}
	}
	ks, err := h.keys.ListDataKeys(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	if len(ks) == 0 {
		return transitNotFound{&fault.Error{Kind: fault.NotFound, Resource: "keys in org " + c.org}}
	}
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return c.transitReply(http.StatusOK, map[string][]string{"keys": names}, nil)
}

func (h *Handler) transitRotateKey(c *call) error {
	f, err := c.transitDecode()
	if err != nil {
		return err
	}
	if err := f.refuseFeatures(); err != nil {
		return err
	}
	k, err := h.keys.RotateDataKey(c.r.Context(), c.actor(), c.org, c.r.PathValue("name"))
	if err != nil {
		return err
	}
	return c.transitReply(http.StatusOK, transitKeyJSON(k), f.unknown("managed_key_name", "managed_key_id"))
}

func (h *Handler) transitConfigKey(c *call) error {
	f, err := c.transitDecode()
	if err != nil {
		return err
	}
	if err := f.refuseFeatures(); err != nil {
		return err
	}
	warnings := f.unknown("min_decryption_version", "min_encryption_version", "deletion_allowed", "exportable", "allow_plaintext_backup", "auto_rotate_period")
	name := c.r.PathValue("name")
	var k keys.DataKey
	if f.has("min_decryption_version") {
		n, err := f.num("min_decryption_version")
		if err != nil {
			return err
		}
		if n < 0 {
			return fault.Invalidf("min_decryption_version", "min decryption version cannot be negative")
		}
		if n == 0 {
			n = 1
			warnings = append(warnings, "since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1")
		}
		if n > 1<<32-1 {
			return fault.Invalidf("min_decryption_version", "cannot set min decryption version of %d: it exceeds the latest key version", n)
		}
		k, err = h.keys.SetMinDecryptionVersion(c.r.Context(), c.actor(), c.org, name, uint32(n))
		if err != nil {
			return err
		}
	} else if k, err = h.keys.GetDataKey(c.r.Context(), c.org, name); err != nil {
		return err
	}
	return c.transitReply(http.StatusOK, transitKeyJSON(k), warnings)
}

// transitItem is one prepared item of an encrypt, decrypt or rewrap
// request, or its error.
type transitItem struct {
	item      keys.Item
	reference string
	version   int64 // key_version asked for; 0 = latest
	err       error
}

// transitResult is one element of batch_results.
type transitResult struct {
	Ciphertext string  `json:"ciphertext,omitempty"`
	Plaintext  *string `json:"plaintext,omitempty"`
	KeyVersion uint32  `json:"key_version,omitempty"`
	Reference  string  `json:"reference"`
	Error      string  `json:"error,omitempty"`
}

// transitContext returns the associated data of an item: context, or
// associated_data (Transit's AAD for AEAD keys); orgkms binds either one
// to the ciphertext, so sending both is refused.
func transitContext(f tfields) ([]byte, error) {
	ctx, err := f.b64("context")
	if err != nil {
		return nil, err
	}
	ad, err := f.b64("associated_data")
	if err != nil {
		return nil, err
	}
	if ctx != nil && ad != nil {
		return nil, notSupported("associated_data", "sending both context and associated_data (orgkms binds one of them to the ciphertext as associated data)")
	}
	if ad != nil {
		return ad, nil
	}
	return ctx, nil
}

// transitOp is encrypt, decrypt or rewrap.
type transitOp struct {
	name   string   // "encrypt", "decrypt", "rewrap"
	input  string   // "plaintext" or "ciphertext"
	params []string // the known parameters of one item
	run    batchFunc
}

var (
	transitEncryptOp = transitOp{name: "encrypt", input: "plaintext",
		params: []string{"plaintext", "context", "associated_data", "key_version", "reference", "nonce", "padding_scheme", "iv", "type", "convergent_encryption"}}
	transitDecryptOp = transitOp{name: "decrypt", input: "ciphertext",
		params: []string{"ciphertext", "context", "associated_data", "reference", "nonce", "padding_scheme"}}
	transitRewrapOp = transitOp{name: "rewrap", input: "ciphertext",
		params: []string{"ciphertext", "context", "associated_data", "key_version", "reference", "nonce", "encrypt_padding_scheme", "decrypt_padding_scheme"}}
)

// prepare reads one item's parameters.
func (op transitOp) prepare(f tfields) transitItem {
	var it transitItem
	it.reference, _ = f.str("reference")
	if err := f.refuseFeatures(); err != nil {
		it.err = err
		return it
	}
	if !f.has(op.input) {
		it.err = fault.Invalidf(op.input, "missing %s to %s", op.input, op.name)
		return it
	}
	ctx, err := transitContext(f)
	if err != nil {
		it.err = err
		return it
	}
	it.item.Context = ctx
	if it.version, err = f.num("key_version"); err != nil {
		it.err = err
		return it
	}
	if op.input == "plaintext" {
		pt, err := f.b64("plaintext")
		if err != nil {
			it.err = err
			return it
		}
		if pt == nil {
			pt = []byte{}
		}
		it.item.Plaintext = pt
		return it
	}
	s, err := f.str("ciphertext")
	if err != nil {
		it.err = err
		return it
	}
	it.item.Ciphertext, it.err = parseTransitCiphertext("ciphertext", s)
	return it
}

// checkVersions refuses, per item, a key_version other than 0 or the
// latest: orgkms encrypts with the latest version only.
func (h *Handler) checkVersions(c *call, name string, its []transitItem) error {
	var latest uint32
	for i := range its {
		v := its[i].version
		if its[i].err != nil || v == 0 {
			continue
		}
		if latest == 0 {
			k, err := h.keys.GetDataKey(c.r.Context(), c.org, name)
			if err != nil {
				return err
			}
			latest = k.LatestVersion
		}
		switch {
		case v < 0:
			its[i].err = fault.Invalidf("key_version", "requested version for encryption is negative")
		case v > int64(latest):
			its[i].err = fault.Invalidf("key_version", "requested version for encryption is higher than the latest key version")
		case v < int64(latest):
			its[i].err = notSupported("key_version", "encrypting with a key version other than the latest (key_version "+strconv.FormatInt(v, 10)+"; the latest is "+strconv.FormatUint(uint64(latest), 10)+")")
		}
	}
	return nil
}

// upsertKey creates a missing key on encrypt, as Transit does, when the
// caller may also manage keys (Transit's create capability); it reports
// whether it created the key.
func (h *Handler) upsertKey(c *call, name string, err error) bool {
	fe := fault.As(err)
	if fe == nil || fe.Kind != fault.NotFound || !strings.HasPrefix(fe.Resource, "key ") || !auth.Allowed(c.p, auth.ActKeyManage, c.org) {
		return false
	}
	_, cerr := h.keys.CreateDataKey(c.r.Context(), c.actor(), c.org, name)
	return cerr == nil || fault.KindOf(cerr) == fault.Conflict
}

// serveTransit answers encrypt, decrypt and rewrap: a single item, or
// batch_input with per-item results and Transit's batch status.
func (h *Handler) serveTransit(c *call, op transitOp) error {
	f, err := c.transitDecode()
	if err != nil {
		return err
	}
	name := c.r.PathValue("name")
	batch, err := f.items()
	if err != nil {
		return err
	}
	single := batch == nil
	var warnings []string
	var pfrc int64
	if single {
		batch = []tfields{f}
		warnings = f.unknown(op.params...)
	} else {
		if len(batch) > keys.MaxBatch {
			return &fault.Error{Kind: fault.TooLarge, Field: "batch_input", Reason: "has " + strconv.Itoa(len(batch)) + " items; at most " + strconv.Itoa(keys.MaxBatch) + " are allowed per request"}
		}
		warnings = f.unknown("batch_input", "partial_failure_response_code", "type", "convergent_encryption")
		if op.name == "encrypt" {
			// Upsert-only parameters of the request itself.
			top := tfields{}
			for _, k := range []string{"type", "convergent_encryption"} {
				if v, ok := f[k]; ok {
					top[k] = v
				}
			}
			if err := top.refuseFeatures(); err != nil {
				return err
			}
		}
		if f.has("partial_failure_response_code") {
			n, err := f.num("partial_failure_response_code")
			if err != nil || n < 1 || n > 599 {
				warnings = append(warnings, "partial_failure_response_code must be an HTTP status between 1 and 599; ignored")
			} else {
				pfrc = n
			}
		}
	}
	its := make([]transitItem, len(batch))
	for i, b := range batch {
		its[i] = op.prepare(b)
	}
	if op.name != "decrypt" {
		err := h.checkVersions(c, name, its)
		if err != nil && op.name == "encrypt" && h.upsertKey(c, name, err) {
			err = h.checkVersions(c, name, its)
		}
		if err != nil {
			return err
		}
	}
	var ready []keys.Item
	for _, it := range its {
		if it.err == nil {
			ready = append(ready, it.item)
		}
	}
	if len(ready) > 0 {
		res, err := op.run(c.r.Context(), c.actor(), c.org, name, ready)
		if err != nil && op.name == "encrypt" && h.upsertKey(c, name, err) {
			res, err = op.run(c.r.Context(), c.actor(), c.org, name, ready)
		}
		if err != nil {
			return err
		}
		j := 0
		for i := range its {
			if its[i].err != nil {
				continue
			}
			r := res[j]
			j++
			if r.Err != nil {
				its[i].err = r.Err
				continue
			}
			its[i].item = keys.Item{Plaintext: r.Plaintext, Ciphertext: r.Ciphertext}
			its[i].version = int64(r.KeyVersion)
		}
	}
	out := make([]transitResult, len(its))
	var ok, userErr int
	for i, it := range its {
		out[i].Reference = it.reference
		if it.err != nil {
			out[i].Error = h.transitMessage(it.err, c.requestID)
			if fault.KindOf(it.err) != fault.Internal {
				userErr++
			}
			continue
		}
		ok++
		if op.name == "decrypt" {
			pt := base64.StdEncoding.EncodeToString(it.item.Plaintext)
			out[i].Plaintext = &pt
			clear(it.item.Plaintext)
			continue
		}
		out[i].Ciphertext = transitCiphertext(it.item.Ciphertext, uint32(it.version))
		out[i].KeyVersion = uint32(it.version)
	}
	if single {
		if its[0].err != nil {
			return its[0].err
		}
		if op.name == "decrypt" {
			return c.transitReply(http.StatusOK, map[string]string{"plaintext": *out[0].Plaintext}, warnings)
		}
		return c.transitReply(http.StatusOK, transitCiphertextData{Ciphertext: out[0].Ciphertext, KeyVersion: out[0].KeyVersion}, warnings)
	}
	status := http.StatusOK
	// Transit: encrypt and decrypt answer a batch with a failed item with
	// 400 (500 when only internal errors failed), or with
	// partial_failure_response_code when some item succeeded; rewrap
	// answers 200 with the per-item errors.
	if op.name != "rewrap" && ok < len(its) {
		status = http.StatusBadRequest
		if userErr == 0 {
			status = http.StatusInternalServerError
		}
		if pfrc != 0 && ok > 0 {
			status = int(pfrc)
		}
	}
	return c.transitReply(status, map[string][]transitResult{"batch_results": out}, warnings)
}

type transitCiphertextData struct {
	Ciphertext string `json:"ciphertext"`
	KeyVersion uint32 `json:"key_version"`
}

func (h *Handler) transitEncrypt(c *call) error {
	op := transitEncryptOp
	op.run = h.keys.EncryptBatch
	return h.serveTransit(c, op)
}

func (h *Handler) transitDecrypt(c *call) error {
	op := transitDecryptOp
	op.run = h.keys.DecryptBatch
	return h.serveTransit(c, op)
}

func (h *Handler) transitRewrap(c *call) error {
	op := transitRewrapOp
	op.run = h.keys.RewrapBatch
	return h.serveTransit(c, op)
}

func (h *Handler) transitDataKey(c *call) error {
	var wrapped bool
	switch c.r.PathValue("type") {
	case "plaintext":
	case "wrapped":
		wrapped = true
	default:
		return fault.Invalidf("type", "Invalid path, must be 'plaintext' or 'wrapped'")
	}
	f, err := c.transitDecode()
	if err != nil {
		return err
	}
	if err := f.refuseFeatures(); err != nil {
		return err
	}
	warnings := f.unknown("context", "nonce", "bits", "key_version", "padding_scheme")
	ctx, err := f.b64("context")
	if err != nil {
		return err
	}
	bits := int64(256)
	if f.has("bits") {
		if bits, err = f.num("bits"); err != nil {
			return err
		}
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return fault.Invalidf("bits", "invalid bits length: must be 128, 256 or 512")
	}
	name := c.r.PathValue("name")
	its := []transitItem{{}}
	if its[0].version, err = f.num("key_version"); err != nil {
		return err
	}
	if err := h.checkVersions(c, name, its); err != nil {
		return err
	}
	if its[0].err != nil {
		return its[0].err
	}
	dk, err := h.keys.GenerateDataKey(c.r.Context(), c.actor(), c.org, name, int(bits), wrapped, ctx)
	if err != nil {
		return err
	}
	data := transitDataKeyData{Ciphertext: transitCiphertext(dk.Ciphertext, dk.KeyVersion), KeyVersion: dk.KeyVersion}
	if !wrapped {
		data.Plaintext = base64.StdEncoding.EncodeToString(dk.Plaintext)
		clear(dk.Plaintext)
	}
	return c.transitReply(http.StatusOK, data, warnings)
}

type transitDataKeyData struct {
	Plaintext  string `json:"plaintext,omitempty"`
	Ciphertext string `json:"ciphertext"`
	KeyVersion uint32 `json:"key_version"`
}

// transitUnsupported are the Transit endpoints orgkms does not have, by
// their first path segment after /v1/transit/, with the feature in words.
var transitUnsupported = map[string]string{
	"sign":           "signing (sign)",
	"verify":         "signature and HMAC verification (verify)",
	"hmac":           "HMAC (hmac)",
	"hash":           "hashing (hash)",
	"random":         "random bytes (random)",
	"export":         "key export (export)",
	"backup":         "key backup (backup)",
	"restore":        "key restore (restore)",
	"import":         "key import (import)",
	"wrapping_key":   "key import (wrapping_key)",
	"cache-config":   "the Transit cache configuration (cache-config)",
	"config":         "the Transit mount configuration (config/keys, config/auto-rotate)",
	"byok-export":    "bring-your-own-key export (byok-export)",
	"sign-csr":       "certificate signing requests (keys/NAME/csr)",
	"set-cert":       "certificate chains (keys/NAME/set-certificate)",
	"trim":           "trimming key versions (keys/NAME/trim)",
	"import_version": "key import (keys/NAME/import_version)",
	"delete":         "deleting keys (DELETE keys/NAME)",
}

// transitFallback answers every /v1/transit/ request no Transit route
// matches: 400 naming a Transit feature orgkms does not have, 405 for a
// method a Transit path does not take, else Vault's 404 unsupported path.
// It needs a valid token, like Vault. A LIST request is served as GET
// ?list=true.
func (h *Handler) transitFallback(w http.ResponseWriter, r *http.Request) {
	if r.Method == "LIST" {
		// Vault's LIST method is GET ?list=true (what vault/api sends).
		r = r.Clone(r.Context())
		r.Method = http.MethodGet
		q := r.URL.Query()
		q.Set("list", "true")
		r.URL.RawQuery = q.Encode()
		if _, pattern := h.mux.Handler(r); pattern != transitPrefix {
			h.mux.ServeHTTP(w, r)
			return
		}
	}
	c := &call{w: w, r: r, requestID: requestID(r), route: "transit unmatched"}
	w.Header().Set("X-Request-Id", c.requestID)
	secret := transitToken(r)
	if secret == "" {
		h.writeTransitError(c, &fault.Error{Kind: fault.Unauthenticated, Reason: "missing token: send an orgkms API token as X-Vault-Token (VAULT_TOKEN) or as Authorization: Bearer"})
		return
	}
	p, err := h.tokens.Authenticate(r.Context(), secret)
	if err != nil {
		h.writeTransitError(c, err)
		return
	}
	c.p = p
	segs := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, transitPrefix), "/"), "/")
	feature := transitUnsupported[segs[0]]
	switch {
	case segs[0] == "keys" && len(segs) == 3:
		switch segs[2] {
		case "trim", "import_version", "import":
			feature = transitUnsupported[segs[2]]
		case "csr":
			feature = transitUnsupported["sign-csr"]
		case "set-certificate":
			feature = transitUnsupported["set-cert"]
		}
	case segs[0] == "keys" && len(segs) == 2 && r.Method == http.MethodDelete:
		feature = transitUnsupported["delete"]
	case segs[0] == "keys" && len(segs) == 2 && segs[1] != "" && r.Method != http.MethodGet && r.Method != http.MethodHead:
		feature = "" // a method keys/NAME does not take: 405 below
	}
	if feature != "" {
		h.writeTransitError(c, notSupported("", feature))
		return
	}
	var allow []string
	for _, m := range routeMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/" && pattern != transitPrefix {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.writeTransitError(c, &fault.Error{Kind: fault.MethodNotAllowed, Reason: "unsupported operation: " + r.URL.Path + " accepts " + strings.Join(allow, ", ")})
		return
	}
	h.writeTransitError(c, transitNotFound{&fault.Error{Kind: fault.NotFound, Reason: "unsupported path: " + r.URL.Path + " (docs/transit.md lists the Transit paths orgkms serves)"}})
}
