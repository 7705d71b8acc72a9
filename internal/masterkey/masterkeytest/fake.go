package masterkeytest

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// FakeScheme is the scheme of [Fake] refs.
const FakeScheme = "fake"

// Fake is an in-memory master-key provider with versions, enable/disable and
// permissions, for tests of callers. It does not bind AAD natively, so a
// Keeper over it exercises the prefix binding.
type Fake struct {
	mu    sync.Mutex
	keys  map[string]*fakeKey
	Calls atomic.Int64 // remote calls made (wrap, unwrap, describe)
	// Fail, when set, is returned by every call.
	Fail error
}

type fakeKey struct {
	versions []string
	material map[string][]byte
	disabled bool
	denied   map[string]bool // permission → denied
}

var _ masterkey.Provider = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{keys: map[string]*fakeKey{}} }

// Driver returns the registry entry of the fake driver.
func FakeDriver() masterkey.Driver {
	return masterkey.Driver{Scheme: FakeScheme, ParseRef: func(uri string) (masterkey.Ref, error) {
		ref, err := masterkey.ParseRef(uri)
		if err != nil || ref.Provider != FakeScheme || strings.ContainsAny(ref.ID, "/?") {
			return masterkey.Ref{}, fault.Invalidf("master_key", "%q is not a fake key URI: use fake://NAME[#VERSION]", uri)
		}
		return ref, nil
	}}
}

// CreateKey creates key id with one version and returns its ref.
func (f *Fake) CreateKey(id string) masterkey.Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := &fakeKey{material: map[string][]byte{}, denied: map[string]bool{}}
	f.keys[id] = k
	f.addVersion(k)
	return masterkey.Ref{Provider: FakeScheme, ID: id}
}

func (f *Fake) addVersion(k *fakeKey) string {
	m := make([]byte, 32)
	rand.Read(m)
	v := fmt.Sprintf("v%d", len(k.versions)+1)
	k.versions = append(k.versions, v)
	k.material[v] = m
	return v
}

// Rotate adds a version to id and returns it.
func (f *Fake) Rotate(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addVersion(f.keys[id])
}

// SetEnabled enables or disables every version of id.
func (f *Fake) SetEnabled(id string, enabled bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id].disabled = !enabled
}

// Deny removes permission ("wrapKey", "unwrapKey", "get") on id; Allow restores all.
func (f *Fake) Deny(id, permission string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id].denied[permission] = true
}

// Allow restores every permission on id.
func (f *Fake) Allow(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.keys[id].denied)
}

// Delete removes id entirely.
func (f *Fake) Delete(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, id)
}

func (f *Fake) get(ctx context.Context, key masterkey.Ref, perm string) (*fakeKey, error) {
	f.Calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.Fail != nil {
		return nil, f.Fail
	}
	k, ok := f.keys[key.ID]
	if !ok {
		return nil, &fault.Error{Kind: fault.KeyNotFound, Resource: "fake key " + key.ID}
	}
	if k.denied[perm] {
		return nil, &fault.Error{Kind: fault.PermissionDenied, Resource: "fake key " + key.ID, Permission: perm}
	}
	if k.disabled && perm != "get" {
		return nil, &fault.Error{Kind: fault.KeyDisabled, Resource: "fake key " + key.ID}
	}
	return k, nil
}

// Wrap implements masterkey.Provider.
func (f *Fake) Wrap(ctx context.Context, key masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.get(ctx, key, "wrapKey")
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	v := key.Version
	if v == "" {
		v = k.versions[len(k.versions)-1]
	}
	m, ok := k.material[v]
	if !ok {
		return masterkey.Wrapped{}, &fault.Error{Kind: fault.KeyNotFound, Resource: "fake key " + key.ID + " version " + v}
	}
	g := gcm(m)
	nonce := make([]byte, g.NonceSize())
	rand.Read(nonce)
	return masterkey.Wrapped{Ciphertext: g.Seal(nonce, nonce, dek, nil), Key: key.WithVersion(v)}, nil
}

// Unwrap implements masterkey.Provider.
func (f *Fake) Unwrap(ctx context.Context, key masterkey.Ref, ct, aad []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.get(ctx, key, "unwrapKey")
	if err != nil {
		return nil, err
	}
	m, ok := k.material[key.Version]
	if !ok {
		return nil, &fault.Error{Kind: fault.KeyNotFound, Resource: "fake key " + key.ID + " version " + key.Version}
	}
	g := gcm(m)
	if len(ct) < g.NonceSize()+g.Overhead() {
		return nil, &fault.Error{Kind: fault.Invalid, Reason: "wrapped key is too short"}
	}
	out, err := g.Open(nil, ct[:g.NonceSize()], ct[g.NonceSize():], nil)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Integrity, Reason: "wrapped key does not decrypt under this key"}
	}
	return out, nil
}

// Describe implements masterkey.Provider.
func (f *Fake) Describe(ctx context.Context, key masterkey.Ref) (masterkey.Description, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, err := f.get(ctx, key, "get")
	if err != nil {
		return masterkey.Description{}, err
	}
	return masterkey.Description{Key: key.WithVersion(k.versions[len(k.versions)-1]), Enabled: !k.disabled,
		KeyType: "AES", KeySize: 256, Algorithm: "AES-256-GCM"}, nil
}

// Close implements masterkey.Provider.
func (f *Fake) Close() error { return nil }

func gcm(k []byte) cipher.AEAD {
	b, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(b)
	return g
}

// FakeHarness returns a conformance harness over a fresh Fake.
func FakeHarness() Harness {
	f := NewFake()
	k1, k2 := f.CreateKey("k1"), f.CreateKey("k2")
	return Harness{
		Open:              func(t *testing.T) masterkey.Provider { return f },
		Keys:              func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return k1, k2 },
		Disabler:          fakeCaps{f},
		Rotator:           fakeCaps{f},
		PermissionRevoker: fakeCaps{f},
	}
}

type fakeCaps struct{ f *Fake }

func (c fakeCaps) SetEnabled(t *testing.T, key masterkey.Ref, enabled bool) {
	c.f.SetEnabled(key.ID, enabled)
}
func (c fakeCaps) Rotate(t *testing.T, key masterkey.Ref)              { c.f.Rotate(key.ID) }
func (c fakeCaps) Revoke(t *testing.T, key masterkey.Ref, perm string) { c.f.Deny(key.ID, perm) }
func (c fakeCaps) Restore(t *testing.T, key masterkey.Ref)             { c.f.Allow(key.ID) }
