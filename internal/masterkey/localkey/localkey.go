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
	"time"

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
	versions map[string]*envelope.Key // by version (key check value)
	current  string                   // the newest version: Wrap uses it
	order    []string                 // versions, oldest first
	size     int64                    // the file's size and modification time when loaded
	mtime    time.Time                // (zero for environment keys)
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

// MaxVersions is the most versions a key file holds.
const MaxVersions = 1024

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

// AddVersion adds a new random version to the key file at path and makes
// it the current one; the older versions stay in the file, readable for
// unwrapping. The file is replaced atomically (a new file renamed over
// it, mode 0600), so a crash leaves either the old or the new file. It
// returns the new version. Run it on one node at a time.
//
// AddVersion returns Kind KeyNotFound if the file does not exist and
// Invalid if it is not a key file (see [Provider]).
func AddVersion(path string) (string, error) {
	path = filepath.Clean(path)
	raw, _, err := readKeyFile(path)
	if err != nil {
		return "", err
	}
	defer clear(raw)
	if len(raw)/envelope.KeySize >= MaxVersions {
		return "", &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("master key file %s already holds %d versions, the most it may", path, MaxVersions)}
	}
	next := make([]byte, len(raw)+envelope.KeySize)
	defer clear(next)
	copy(next, raw)
	if _, err := rand.Read(next[len(raw):]); err != nil {
		return "", &fault.Error{Kind: fault.Internal, Op: "add master key version", Err: err}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".master-key-*")
	if err != nil {
		return "", &fault.Error{Kind: fault.Unavailable, Op: "add master key version", Resource: "local key " + path, Err: err}
	}
	defer os.Remove(tmp.Name())
	werr := tmp.Chmod(0o600)
	if werr == nil {
		_, werr = tmp.Write(next)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		return "", &fault.Error{Kind: fault.Unavailable, Op: "add master key version", Resource: "local key " + path, Err: werr}
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return Version(next[len(raw):]), nil
}

// readKeyFile reads and checks a key file: mode 0600 (not readable by
// others), a positive multiple of 32 bytes.
func readKeyFile(path string) ([]byte, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &fault.Error{Kind: fault.KeyNotFound, Resource: "local key " + path, Reason: "master key file " + path + " does not exist", Err: err}
		}
		return nil, nil, &fault.Error{Kind: fault.Unavailable, Resource: "local key " + path, Err: err}
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("master key file %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &fault.Error{Kind: fault.Unavailable, Resource: "local key " + path, Err: err}
	}
	if len(b) == 0 || len(b)%envelope.KeySize != 0 || len(b) > MaxVersions*envelope.KeySize {
		clear(b)
		return nil, nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("master key file %s must hold 32 bytes per version (exactly 32 for a single key)", path)}
	}
	return b, st, nil
}

// load returns the key of ref, reading the file again when it changed
// (a version was added by [AddVersion], on this node or another one).
func (p *Provider) load(key masterkey.Ref) (*loaded, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.keys[key.ID]
	env := strings.HasPrefix(key.ID, "env:")
	if ok && env {
		return l, nil
	}
	if ok {
		st, err := os.Stat(key.ID)
		if err == nil && st.Size() == l.size && st.ModTime().Equal(l.mtime) {
			return l, nil
		}
	}
	var raw []byte
	var st fs.FileInfo
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
		b, info, err := readKeyFile(key.ID)
		if err != nil {
			return nil, err
		}
		raw, st = b, info
	}
	defer clear(raw)
	nl := &loaded{versions: map[string]*envelope.Key{}}
	for off := 0; off < len(raw); off += envelope.KeySize {
		part := raw[off : off+envelope.KeySize]
		k, err := envelope.NewKey(part)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Internal, Err: err}
		}
		v := Version(part)
		if _, dup := nl.versions[v]; dup {
			return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("master key file %s holds version %s twice", key.ID, v)}
		}
		nl.versions[v], nl.current = k, v
		nl.order = append(nl.order, v)
	}
	if st != nil {
		nl.size, nl.mtime = st.Size(), st.ModTime()
	}
	p.keys[key.ID] = nl
	return nl, nil
}

// Version returns the key check value of raw key material.
func Version(raw []byte) string {
	m := hmac.New(sha256.New, raw)
	m.Write([]byte("orgkms/localkey/version"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Wrap wraps dek under the local key: under its current (newest) version
// when key.Version is empty, else under exactly that version.
func (p *Provider) Wrap(ctx context.Context, key masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	if err := ctx.Err(); err != nil {
		return masterkey.Wrapped{}, err
	}
	l, err := p.load(key)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	v := l.current
	if key.Version != "" {
		v = key.Version
	}
	k, ok := l.versions[v]
	if !ok {
		return masterkey.Wrapped{}, versionNotFound(key)
	}
	ct := envelope.WrapKey(k, dek, aad)
	return masterkey.Wrapped{Ciphertext: ct, Key: key.WithVersion(v)}, nil
}

// Unwrap unwraps ciphertext, which must have been wrapped by exactly
// key.Version, one of the versions in the key file.
func (p *Provider) Unwrap(ctx context.Context, key masterkey.Ref, ciphertext, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := p.load(key)
	if err != nil {
		return nil, err
	}
	k, ok := l.versions[key.Version]
	if !ok {
		return nil, versionNotFound(key)
	}
	dek, err := envelope.UnwrapKey(k, ciphertext, aad)
	switch {
	case errors.Is(err, envelope.ErrInvalid):
		return nil, &fault.Error{Kind: fault.Invalid, Resource: "local key " + key.ID, Reason: "wrapped key is malformed", Err: err}
	case err != nil:
		return nil, &fault.Error{Kind: fault.Integrity, Resource: "local key " + key.ID, Reason: "wrapped key was not produced by this master key for this org, or was modified", Err: err}
	}
	return dek, nil
}

// Describe reports the local key: always enabled, never expiring; its
// version is the current (newest) one of the key file.
func (p *Provider) Describe(ctx context.Context, key masterkey.Ref) (masterkey.Description, error) {
	if err := ctx.Err(); err != nil {
		return masterkey.Description{}, err
	}
	l, err := p.load(key)
	if err != nil {
		return masterkey.Description{}, err
	}
	return masterkey.Description{
		Key: key.WithVersion(l.current), Enabled: true, KeyType: "AES", KeySize: 256,
		Algorithm: "XAES-256-GCM", NativeAAD: true,
	}, nil
}

// Versions returns the versions of the key, oldest first; the last is the
// current one.
func (p *Provider) Versions(ctx context.Context, key masterkey.Ref) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l, err := p.load(key)
	if err != nil {
		return nil, err
	}
	return append([]string(nil), l.order...), nil
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
		Reason: "local master key " + key.ID + " does not have version " + key.Version + ": the key file was replaced or lost versions; restore the file that holds it"}
}
