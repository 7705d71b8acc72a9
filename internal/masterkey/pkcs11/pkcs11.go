package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	p11 "github.com/miekg/pkcs11"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// DefaultPoolSize is the number of sessions per token when Config.PoolSize
// is 0.
const DefaultPoolSize = 4

// Blob format: formatV1 ‖ IV (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16
// bytes). The format byte is authenticated too: the GCM associated data is
// formatV1 ‖ aad.
const (
	formatV1 = 0x01
	ivSize   = 12
	tagSize  = 16
)

// Config configures the driver. The zero value is valid when every URI
// names its module-path and pin-source.
type Config struct {
	ModulePath string              // the module of URIs without module-path (pkcs11.module_path)
	PINSource  string              // the PIN source of URIs without pin-source (pkcs11.pin_source): file:PATH or env:VARIABLE
	PoolSize   int                 // sessions per token (pkcs11.pool_size); default DefaultPoolSize
	Getenv     func(string) string // reads env: PIN sources; default os.Getenv
}

// Provider implements masterkey.Provider on PKCS#11 tokens. It is safe for
// concurrent use. It loads a module and logs in to a token on the first
// call that needs it.
type Provider struct {
	cfg Config

	mu     sync.Mutex
	tokens map[tokenKey]*token
	closed bool
	genMu  sync.Mutex // serializes NewVersion in this process
}

var _ masterkey.Provider = (*Provider)(nil)

// New returns a provider. It checks the configured defaults but touches no
// module yet.
func New(cfg Config) (*Provider, error) {
	if cfg.PoolSize < 0 {
		return nil, fault.Invalidf("pkcs11.pool_size", "pkcs11.pool_size must be positive")
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = DefaultPoolSize
	}
	if cfg.ModulePath != "" && !strings.HasPrefix(cfg.ModulePath, "/") {
		return nil, fault.Invalidf("pkcs11.module_path", "pkcs11.module_path must be an absolute path to the PKCS#11 module (.so)")
	}
	if cfg.PINSource != "" {
		src, err := ParsePINSource(cfg.PINSource)
		if err != nil {
			return nil, fault.Invalidf("pkcs11.pin_source", "pkcs11.pin_source must be file:/ABSOLUTE/PATH or env:VARIABLE")
		}
		cfg.PINSource = src
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	return &Provider{cfg: cfg, tokens: map[tokenKey]*token{}}, nil
}

// NativeAAD reports that this driver binds associated data itself (AES-GCM).
func (p *Provider) NativeAAD() bool { return true }

type tokenKey struct{ module, label, pinSource string }

// resolve returns the key attributes of ref and the token connection that
// serves them.
func (p *Provider) resolve(ref masterkey.Ref) (Attrs, *token, error) {
	a, err := ParseID(ref.ID)
	if err != nil {
		return Attrs{}, nil, err
	}
	k := tokenKey{module: a.ModulePath, label: a.Token, pinSource: a.PINSource}
	if k.module == "" {
		k.module = p.cfg.ModulePath
	}
	if k.pinSource == "" {
		k.pinSource = p.cfg.PINSource
	}
	if k.module == "" {
		return Attrs{}, nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: "no PKCS#11 module: add module-path=/path/to/module.so to the pkcs11: URI or set pkcs11.module_path"}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return Attrs{}, nil, &fault.Error{Kind: fault.Unavailable, Reason: "the PKCS#11 provider is closed"}
	}
	t, ok := p.tokens[k]
	if !ok {
		t = &token{key: k, getenv: p.cfg.Getenv, sem: make(chan struct{}, p.cfg.PoolSize), idle: make(chan session, p.cfg.PoolSize)}
		p.tokens[k] = t
	}
	return a, t, nil
}

func resourceOf(a Attrs, version string) string {
	s := "pkcs11 key " + a.Object + " on token " + a.Token
	if version != "" {
		s += " version " + version
	}
	return s
}

// keyObject is one version of a key: a secret key object with the key's
// label and the version, in decimal, as its CKA_ID.
type keyObject struct {
	version int
	handle  p11.ObjectHandle
}

// versions lists the versions of the key labelled label, lowest first.
func versions(ctx *p11.Ctx, s p11.SessionHandle, label string, onlyVersion string) ([]keyObject, error) {
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_LABEL, label),
	}
	if onlyVersion != "" {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, []byte(onlyVersion)))
	}
	if err := ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, err
	}
	var hs []p11.ObjectHandle
	for {
		batch, _, err := ctx.FindObjects(s, 64)
		if err != nil {
			ctx.FindObjectsFinal(s)
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		hs = append(hs, batch...)
	}
	if err := ctx.FindObjectsFinal(s); err != nil {
		return nil, err
	}
	var out []keyObject
	for _, h := range hs {
		attrs, err := ctx.GetAttributeValue(s, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_ID, nil)})
		if err != nil {
			return nil, err
		}
		v, ok := parseVersion(string(attrs[0].Value))
		if !ok {
			continue // not an orgkms version (its CKA_ID is not a decimal number)
		}
		out = append(out, keyObject{version: v, handle: h})
	}
	slices.SortFunc(out, func(a, b keyObject) int { return a.version - b.version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("two key objects labelled %s have version (CKA_ID) %d: destroy the duplicate", label, out[i].version)}
		}
	}
	return out, nil
}

// currentTTL is how long Wrap trusts the current version it found last:
// a version generated by another process is used by Wrap at most this
// long after it appeared (Describe always looks).
const currentTTL = time.Second

type cacheKey struct{ label, version string }

type currentEntry struct {
	obj keyObject
	at  time.Time
}

// handles caches object handles: exact versions until a handle fails, the
// current version for currentTTL.
type handles struct {
	mu      sync.Mutex
	exact   map[cacheKey]keyObject
	current map[string]currentEntry
}

func (h *handles) clear() {
	h.mu.Lock()
	h.exact, h.current = nil, nil
	h.mu.Unlock()
}

func (h *handles) lookup(label, version string) (keyObject, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if version == "" {
		e, ok := h.current[label]
		return e.obj, ok && time.Since(e.at) < currentTTL
	}
	o, ok := h.exact[cacheKey{label, version}]
	return o, ok
}

func (h *handles) store(label, version string, o keyObject) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.exact == nil {
		h.exact, h.current = map[cacheKey]keyObject{}, map[string]currentEntry{}
	}
	h.exact[cacheKey{label, strconv.Itoa(o.version)}] = o
	if version == "" {
		h.current[label] = currentEntry{obj: o, at: time.Now()}
	}
}

// findCached is find through t's handle cache.
func (t *token) findCached(ctx *p11.Ctx, s p11.SessionHandle, a Attrs, version string) (keyObject, error) {
	if o, ok := t.handles.lookup(a.Object, version); ok {
		return o, nil
	}
	o, err := find(ctx, s, a, version)
	if err == nil {
		t.handles.store(a.Object, version, o)
	}
	return o, err
}

// find returns the object of version (or the current one for "").
func find(ctx *p11.Ctx, s p11.SessionHandle, a Attrs, version string) (keyObject, error) {
	vs, err := versions(ctx, s, a.Object, version)
	if err != nil {
		return keyObject{}, err
	}
	if len(vs) == 0 {
		// A session that is no longer logged in finds no private object:
		// that is a lost login (log in again), not a missing key.
		if info, err := ctx.GetSessionInfo(s); err != nil {
			return keyObject{}, err
		} else if info.State != p11.CKS_RW_USER_FUNCTIONS && info.State != p11.CKS_RO_USER_FUNCTIONS {
			return keyObject{}, p11.Error(p11.CKR_USER_NOT_LOGGED_IN)
		}
		reason := "no AES key labelled " + a.Object + " on token " + a.Token
		if version != "" {
			reason = "no version " + version + " (CKA_ID) of the key labelled " + a.Object + " on token " + a.Token
		}
		return keyObject{}, &fault.Error{Kind: fault.KeyNotFound, Resource: resourceOf(a, version),
			Reason: reason + "; create one with orgkms hsm new-version"}
	}
	return vs[len(vs)-1], nil
}

// Wrap encrypts dek with AES-256-GCM under the current version of key (or
// exactly key.Version), binding aad.
func (p *Provider) Wrap(ctx context.Context, key masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	if err := ctx.Err(); err != nil {
		return masterkey.Wrapped{}, classify("wrap", err, "")
	}
	a, t, err := p.resolve(key)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	var out masterkey.Wrapped
	err = t.do(ctx, func(c *p11.Ctx, s p11.SessionHandle) error {
		obj, err := t.findCached(c, s, a, key.Version)
		if err != nil {
			return err
		}
		iv := make([]byte, ivSize)
		if _, err := rand.Read(iv); err != nil {
			return err
		}
		params := p11.NewGCMParams(iv, gcmAAD(aad), tagSize*8)
		defer params.Free()
		if err := c.EncryptInit(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, obj.handle); err != nil {
			return err
		}
		ct, err := c.Encrypt(s, dek)
		if err != nil {
			return err
		}
		if got := params.IV(); len(got) == ivSize {
			iv = got // an HSM may choose the IV itself
		}
		blob := make([]byte, 0, 1+ivSize+len(ct))
		blob = append(append(append(blob, formatV1), iv...), ct...)
		out = masterkey.Wrapped{Ciphertext: blob, Key: key.WithVersion(strconv.Itoa(obj.version))}
		return nil
	})
	if err != nil {
		return masterkey.Wrapped{}, classify("wrap", err, resourceOf(a, key.Version))
	}
	return out, nil
}

func gcmAAD(aad []byte) []byte {
	return append([]byte{formatV1}, aad...)
}

// Unwrap decrypts a blob of Wrap with exactly key.Version.
func (p *Provider) Unwrap(ctx context.Context, key masterkey.Ref, ciphertext, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, classify("unwrap", err, "")
	}
	a, t, err := p.resolve(key)
	if err != nil {
		return nil, err
	}
	res := resourceOf(a, key.Version)
	if key.Version == "" {
		return nil, &fault.Error{Kind: fault.Internal, Op: "unwrap", Resource: res, Provider: Scheme, Reason: "unwrap needs the key version"}
	}
	if len(ciphertext) < 1+ivSize+tagSize || ciphertext[0] != formatV1 {
		return nil, &fault.Error{Kind: fault.Invalid, Op: "unwrap", Resource: res, Provider: Scheme, Reason: "wrapped key is malformed (not a pkcs11 AES-GCM blob of format 1)"}
	}
	iv, ct := ciphertext[1:1+ivSize], ciphertext[1+ivSize:]
	var out []byte
	err = t.do(ctx, func(c *p11.Ctx, s p11.SessionHandle) error {
		obj, err := t.findCached(c, s, a, key.Version)
		if err != nil {
			return err
		}
		params := p11.NewGCMParams(append([]byte(nil), iv...), gcmAAD(aad), tagSize*8)
		defer params.Free()
		if err := c.DecryptInit(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}, obj.handle); err != nil {
			return err
		}
		pt, err := c.Decrypt(s, ct)
		if err != nil {
			if rv, ok := err.(p11.Error); ok && rv == p11.CKR_GENERAL_ERROR {
				// SoftHSM2 reports a failed GCM tag check as
				// CKR_GENERAL_ERROR. It means Integrity only while the
				// session still answers; otherwise the device failed.
				if _, serr := c.GetSessionInfo(s); serr == nil {
					return &fault.Error{Kind: fault.Integrity, Resource: res, Provider: Scheme,
						Reason: "wrapped key was not produced by this HSM key for this org, or was modified", Err: err}
				}
			}
			return err
		}
		out = pt
		return nil
	})
	if err != nil {
		return nil, classify("unwrap", err, res)
	}
	return out, nil
}

// Describe reports the current version of key (the highest CKA_ID among the
// objects labelled with its object label), or key.Version when set. A
// version is enabled while it allows both CKA_ENCRYPT and CKA_DECRYPT. It
// refuses (Kind Invalid) a key that is extractable or not sensitive.
func (p *Provider) Describe(ctx context.Context, key masterkey.Ref) (masterkey.Description, error) {
	if err := ctx.Err(); err != nil {
		return masterkey.Description{}, classify("describe", err, "")
	}
	a, t, err := p.resolve(key)
	if err != nil {
		return masterkey.Description{}, err
	}
	var d masterkey.Description
	err = t.do(ctx, func(c *p11.Ctx, s p11.SessionHandle) error {
		obj, err := find(c, s, a, key.Version)
		if err != nil {
			return err
		}
		t.handles.store(a.Object, key.Version, obj)
		attrs, err := c.GetAttributeValue(s, obj.handle, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_KEY_TYPE, nil), p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
			p11.NewAttribute(p11.CKA_ENCRYPT, nil), p11.NewAttribute(p11.CKA_DECRYPT, nil),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, nil), p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		})
		if err != nil {
			return err
		}
		v := map[uint][]byte{}
		for _, at := range attrs {
			v[at.Type] = at.Value
		}
		version := strconv.Itoa(obj.version)
		if ulong(v[p11.CKA_KEY_TYPE]) != p11.CKK_AES || ulong(v[p11.CKA_VALUE_LEN]) != 32 {
			return &fault.Error{Kind: fault.Invalid, Field: "master_key", Resource: resourceOf(a, version), Reason: "the key object is not an AES-256 secret key"}
		}
		if boolean(v[p11.CKA_EXTRACTABLE]) || !boolean(v[p11.CKA_SENSITIVE]) {
			return &fault.Error{Kind: fault.Invalid, Field: "master_key", Resource: resourceOf(a, version),
				Reason: "the key object may leave the HSM (CKA_EXTRACTABLE true or CKA_SENSITIVE false): generate a new version with orgkms hsm new-version"}
		}
		d = masterkey.Description{Key: key.WithVersion(version),
			Enabled: boolean(v[p11.CKA_ENCRYPT]) && boolean(v[p11.CKA_DECRYPT]),
			KeyType: "AES", KeySize: 256, Algorithm: "AES-256-GCM", NativeAAD: true,
			Operations: []string{"encrypt", "decrypt"}}
		return nil
	})
	if err != nil {
		return masterkey.Description{}, classify("describe", err, resourceOf(a, key.Version))
	}
	return d, nil
}

// NewVersion generates the next version of key inside the HSM (C_GenerateKey:
// an AES-256 token object, sensitive, never extractable, labelled with the
// key's object label, CKA_ID the version) and returns its ref. The key's
// first version is 1. Describe reports it as current from then on.
func (p *Provider) NewVersion(ctx context.Context, key masterkey.Ref) (masterkey.Ref, error) {
	a, t, err := p.resolve(key)
	if err != nil {
		return masterkey.Ref{}, err
	}
	p.genMu.Lock()
	defer p.genMu.Unlock()
	var out masterkey.Ref
	err = t.do(ctx, func(c *p11.Ctx, s p11.SessionHandle) error {
		vs, err := versions(c, s, a.Object, "")
		if err != nil {
			return err
		}
		next := 1
		if len(vs) > 0 {
			next = vs[len(vs)-1].version + 1
		}
		id := strconv.Itoa(next)
		h, err := c.GenerateKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_WRAP, false),
			p11.NewAttribute(p11.CKA_UNWRAP, false),
			p11.NewAttribute(p11.CKA_LABEL, a.Object),
			p11.NewAttribute(p11.CKA_ID, []byte(id)),
		})
		if err != nil {
			return err
		}
		t.handles.store(a.Object, "", keyObject{version: next, handle: h})
		out = key.WithVersion(id)
		return nil
	})
	if err != nil {
		return masterkey.Ref{}, classify("new version", err, resourceOf(a, ""))
	}
	return out, nil
}

// SetEnabled enables or disables one version of key (CKA_ENCRYPT and
// CKA_DECRYPT both true or both false), where the token allows changing them.
func (p *Provider) SetEnabled(ctx context.Context, key masterkey.Ref, enabled bool) error {
	a, t, err := p.resolve(key)
	if err != nil {
		return err
	}
	if key.Version == "" {
		return &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: "name the version to enable or disable (#N)"}
	}
	err = t.do(ctx, func(c *p11.Ctx, s p11.SessionHandle) error {
		obj, err := find(c, s, a, key.Version)
		if err != nil {
			return err
		}
		return c.SetAttributeValue(s, obj.handle, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_ENCRYPT, enabled), p11.NewAttribute(p11.CKA_DECRYPT, enabled)})
	})
	return classify("set enabled", err, resourceOf(a, key.Version))
}

// Close closes every session of the provider and releases the modules (the
// last release of a module calls C_Finalize). Closing twice is not an error.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	ts := p.tokens
	p.tokens = nil
	p.mu.Unlock()
	for _, t := range ts {
		t.close()
	}
	return nil
}

// ulong reads a CK_ULONG attribute value (native byte order and size).
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return 0
}

func boolean(b []byte) bool { return len(b) == 1 && b[0] != 0 }
