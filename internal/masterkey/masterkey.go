package masterkey

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// Ref names a master key, and optionally one version of it.
type Ref struct {
	Provider string // registered scheme: "local", "azurekv", ...
	ID       string // provider-native ID, e.g. "contoso-kv.vault.azure.net/keys/orgkms-cmk"
	Version  string // provider-native version; "" on Wrap means current
}

// String returns the URI form of r: provider://ID[/version] for hierarchical
// IDs as parsed by the driver. It is for display and storage; ParseRef of
// the registry is its inverse.
func (r Ref) String() string {
	s := r.Provider + "://" + r.ID
	if r.Version != "" {
		s += "#" + r.Version
	}
	return s
}

// WithVersion returns r naming version v.
func (r Ref) WithVersion(v string) Ref { r.Version = v; return r }

// Unversioned returns r without a version.
func (r Ref) Unversioned() Ref { r.Version = ""; return r }

// Wrapped is a key wrapped by a master key.
type Wrapped struct {
	Ciphertext []byte
	Key        Ref // Version always set: the version that actually wrapped
}

// Description describes the current state of a master key.
type Description struct {
	Key        Ref // Version is the current (latest) version
	Enabled    bool
	NotBefore  time.Time         // zero when unset
	Expires    time.Time         // zero when unset
	KeyType    string            // e.g. "AES-256", "RSA", "RSA-HSM", "oct-HSM"
	KeySize    int               // bits
	Algorithm  string            // wrap algorithm orgkms uses with this key, e.g. "RSA-OAEP-256"
	Operations []string          // operations the key allows, provider's names; nil when unrestricted
	NativeAAD  bool              // the provider binds associated data itself
	Tags       map[string]string // the version's tags, where the provider has them

	// Deletion protection, where the provider has it.
	SoftDeleteDays  int  // 0 when the provider has no soft delete
	PurgeProtection bool // deletion cannot be made final before SoftDeleteDays
}

// UsableAt reports whether the key may wrap at t: enabled and within its
// validity window.
func (d Description) UsableAt(t time.Time) bool {
	if !d.Enabled {
		return false
	}
	if !d.NotBefore.IsZero() && t.Before(d.NotBefore) {
		return false
	}
	if !d.Expires.IsZero() && !t.Before(d.Expires) {
		return false
	}
	return true
}

// Provider is implemented by each driver package. Methods are safe for
// concurrent use and return a *fault.Error for every failure the provider
// reports.
type Provider interface {
	// Wrap wraps dek under key (Version "" = current) binding aad when the
	// driver supports it natively. The result names the exact version used.
	Wrap(ctx context.Context, key Ref, dek, aad []byte) (Wrapped, error)
	// Unwrap unwraps ciphertext with exactly key.Version. It returns Kind
	// Integrity if the ciphertext was not produced by that key and aad.
	Unwrap(ctx context.Context, key Ref, ciphertext, aad []byte) (dek []byte, err error)
	// Describe reports the state of key.Version, or of the current version
	// when key.Version is "" (Description.Key.Version names it).
	Describe(ctx context.Context, key Ref) (Description, error)
	Close() error
}

// CredentialChecker is implemented by drivers that can check their
// credentials for a key without touching it (e.g. obtain a token in the
// key's tenant).
type CredentialChecker interface {
	CheckCredentials(ctx context.Context, key Ref) error
}

// DeletedKey describes a soft-deleted key.
type DeletedKey struct {
	DeletedAt      time.Time
	ScheduledPurge time.Time // when the key will be purged for good; zero if unknown
}

// DeletionInspector is implemented by drivers of providers with soft delete.
// DeletedKey returns Kind KeyNotFound when the key is not in the deleted
// state (it exists, or it was purged).
type DeletionInspector interface {
	DeletedKey(ctx context.Context, key Ref) (DeletedKey, error)
}

// NativeAADer is implemented by drivers that bind associated data natively.
type NativeAADer interface{ NativeAAD() bool }

// Driver is one registered provider implementation.
type Driver struct {
	Scheme string
	// ParseRef parses a URI of this scheme. It returns Kind Invalid with a
	// reason naming the expected form.
	ParseRef func(uri string) (Ref, error)
}

// Registry maps URI schemes to drivers. It is built explicitly in main.
type Registry struct {
	drivers   map[string]Driver
	providers map[string]*Keeper
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{drivers: map[string]Driver{}, providers: map[string]*Keeper{}}
}

// Register adds a driver and the keeper serving its scheme.
func (r *Registry) Register(d Driver, k *Keeper) {
	r.drivers[d.Scheme] = d
	r.providers[d.Scheme] = k
}

// ParseRef parses a master-key URI such as local:///var/lib/orgkms/master.key
// or azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk.
func (r *Registry) ParseRef(uri string) (Ref, error) {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok || scheme == "" {
		return Ref{}, fault.Invalidf("master_key", "%q is not a master-key URI: expected scheme:..., e.g. azurekv://VAULT.vault.azure.net/keys/NAME", uri)
	}
	d, ok := r.drivers[scheme]
	if !ok {
		return Ref{}, fault.Invalidf("master_key", "provider %q is not available in this orgkms (available: %s)", scheme, strings.Join(r.Schemes(), ", "))
	}
	return d.ParseRef(uri)
}

// Keeper returns the keeper of ref's provider.
func (r *Registry) Keeper(ref Ref) (*Keeper, error) {
	k, ok := r.providers[ref.Provider]
	if !ok {
		return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: fmt.Sprintf("provider %q is not available in this orgkms", ref.Provider)}
	}
	return k, nil
}

// Schemes lists registered schemes.
func (r *Registry) Schemes() []string {
	var s []string
	for k := range r.drivers {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Close closes every keeper.
func (r *Registry) Close() error {
	var first error
	for _, k := range r.providers {
		if err := k.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// ParseHierarchical splits scheme://host/path URIs, for drivers.
func ParseHierarchical(uri string) (*url.URL, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fault.Invalidf("master_key", "%q is not a valid URI", uri)
	}
	return u, nil
}
