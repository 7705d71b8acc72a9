package localkey

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/orgkms/orgkms/internal/envelope"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Scheme is the URI scheme of this driver.
const Scheme = "local"

// Driver returns the registry entry of this driver.
func Driver() masterkey.Driver { return masterkey.Driver{Scheme: Scheme, ParseRef: ParseRef} }

// ParseRef parses local:///ABSOLUTE/PATH and local:env:VARIABLE (also
// local://env:VARIABLE), with an optional #VERSION: masterkey.ParseRef,
// then the checks of a local ID.
func ParseRef(uri string) (masterkey.Ref, error) {
	ref, err := masterkey.ParseRef(uri)
	if err != nil {
		return masterkey.Ref{}, err
	}
	if ref.Provider != Scheme {
		return masterkey.Ref{}, fault.Invalidf("master_key", "%q is not a local key URI", uri)
	}
	switch {
	case strings.HasPrefix(ref.ID, "/"):
		ref.ID = filepath.Clean(ref.ID)
		return ref, nil
	case strings.HasPrefix(ref.ID, "env:") && len(ref.ID) > len("env:"):
		return ref, nil
	}
	return masterkey.Ref{}, fault.Invalidf("master_key", "%q is not a local key URI: use local:///absolute/path/master.key or local:env:VARIABLE", uri)
}

// URI returns the URI of ref, the inverse of ParseRef: ref.String().
func URI(ref masterkey.Ref) string { return ref.String() }

// Config configures the driver. The zero value is valid.
type Config struct {
	// Getenv reads environment variables for local:env: keys; default os.Getenv.
	Getenv func(string) string
}

// Provider implements masterkey.Provider for local keys.
type Provider struct {
	getenv func(string) string

	mu   sync.Mutex
	keys map[string]*loaded // by ref ID
}

type loaded struct {
	key     *envelope.Key
	version string
}

var _ masterkey.Provider = (*Provider)(nil)

// New returns a local key provider.
func New(cfg Config) *Provider {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	return &Provider{getenv: cfg.Getenv, keys: map[string]*loaded{}}
}

// NativeAAD reports that this driver binds associated data itself.
func (p *Provider) NativeAAD() bool { return true }

// EnsureFile creates a new random key at path with mode 0600 unless a file
// exists there. It reports whether it created one.
func EnsureFile(path string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("create master key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create master key file: %w", err)
	}
	var k [envelope.KeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		f.Close()
		return false, err
	}
	_, werr := f.Write(k[:])
	clear(k[:])
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return false, fmt.Errorf("write master key file: %w", werr)
	}
	return true, nil
}

func (p *Provider) load(key masterkey.Ref) (*loaded, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.keys[key.ID]; ok {
		return l, nil
	}
	var raw []byte
	if name, ok := strings.CutPrefix(key.ID, "env:"); ok {
		v := p.getenv(name)
		if v == "" {
			return nil, &fault.Error{Kind: fault.KeyNotFound, Resource: "local key " + key.ID, Reason: "environment variable " + name + " is not set"}
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(b) != envelope.KeySize {
			return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: "environment variable " + name + " must hold 32 bytes in base64 (openssl rand -base64 32)"}
		}
		raw = b
	} else {
		st, err := os.Stat(key.ID)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, &fault.Error{Kind: fault.KeyNotFound, Resource: "local key " + key.ID, Reason: "master key file " + key.ID + " does not exist", Err: err}
			}
			return nil, &fault.Error{Kind: fault.Unavailable, Resource: "local key " + key.ID, Err: err}
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("master key file %s is readable by others (mode %v); chmod 600 it", key.ID, st.Mode().Perm())}
		}
		b, err := os.ReadFile(key.ID)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Unavailable, Resource: "local key " + key.ID, Err: err}
		}
		if len(b) != envelope.KeySize {
			clear(b)
			return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("master key file %s must hold exactly 32 bytes", key.ID)}
		}
		raw = b
	}
	defer clear(raw)
	k, err := envelope.NewKey(raw)
	if err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Err: err}
	}
	l := &loaded{key: k, version: Version(raw)}
	p.keys[key.ID] = l
	return l, nil
}

// Version returns the key check value of raw key material.
func Version(raw []byte) string {
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("orgkms/localkey/version"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Wrap wraps dek under the local key.
func (p *Provider) Wrap(ctx context.Context, key masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	if err := ctx.Err(); err != nil {
		return masterkey.Wrapped{}, err
	}
	l, err := p.load(key)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	if key.Version != "" && key.Version != l.version {
		return masterkey.Wrapped{}, versionNotFound(key)
	}
	ct := envelope.WrapKey(l.key, dek, aad)
	return masterkey.Wrapped{Ciphertext: ct, Key: key.WithVersion(l.version)}, nil
}

// Unwrap unwraps ciphertext, which must have been wrapped by exactly key.Version.
func (p *Provider) Unwrap(ctx context.Context, key masterkey.Ref, ciphertext, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := p.load(key)
	if err != nil {
		return nil, err
	}
	if key.Version != l.version {
		return nil, versionNotFound(key)
	}
	dek, err := envelope.UnwrapKey(l.key, ciphertext, aad)
	switch {
	case errors.Is(err, envelope.ErrInvalid):
		return nil, &fault.Error{Kind: fault.Invalid, Resource: "local key " + key.ID, Reason: "wrapped key is malformed", Err: err}
	case err != nil:
		return nil, &fault.Error{Kind: fault.Integrity, Resource: "local key " + key.ID, Reason: "wrapped key was not produced by this master key for this org, or was modified", Err: err}
	}
	return dek, nil
}

// Describe reports the local key: always enabled, never expiring.
func (p *Provider) Describe(ctx context.Context, key masterkey.Ref) (masterkey.Description, error) {
	if err := ctx.Err(); err != nil {
		return masterkey.Description{}, err
	}
	l, err := p.load(key)
	if err != nil {
		return masterkey.Description{}, err
	}
	return masterkey.Description{
		Key: key.WithVersion(l.version), Enabled: true, KeyType: "AES", KeySize: 256,
		Algorithm: "XAES-256-GCM", NativeAAD: true,
	}, nil
}

// Close forgets loaded keys. It does not destroy them: a call still in
// flight may hold one; the garbage collector reclaims them.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.keys)
	return nil
}

func versionNotFound(key masterkey.Ref) error {
	return &fault.Error{Kind: fault.KeyNotFound, Resource: "local key " + key.ID + " version " + key.Version,
		Reason: "local master key " + key.ID + " does not have version " + key.Version + ": the key file was replaced; restore the original file"}
}
