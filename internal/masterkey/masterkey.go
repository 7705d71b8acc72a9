package masterkey

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/orgkms/orgkms/internal/fault"
)

// Ref names a master key, and optionally one version of it.
//
// Its one text form, written by [Ref.String] and read by [ParseRef], is
//
//	PROVIDER://ID[#VERSION]
//
// e.g. azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=TENANT#0123abcd,
// local:///var/lib/orgkms/master.key, or PROVIDER:ID[#VERSION] for an
// opaque ID (one with a ":" and no "/"), e.g. local:env:ORGKMS_MASTER_KEY.
// ParseRef reads either form for any ID. Drivers may accept more on
// input (azurekv: a version as the last path segment) but their refs always
// print in this form, which is how refs are stored (job targets, a CMK
// record's key).
type Ref struct {
	Provider string // registered scheme: "local", "azurekv", ...
	ID       string // provider-native ID, e.g. "contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=..."
	Version  string // provider-native version; "" on Wrap means current
}

// String returns the text form of r, PROVIDER://ID[#VERSION] (or
// PROVIDER:ID[#VERSION] for an opaque ID); "" for the zero Ref. [ParseRef]
// is its inverse.
func (r Ref) String() string {
	if r == (Ref{}) {
		return ""
	}
	s := r.Provider + "://" + r.ID
	if !strings.Contains(r.ID, "/") && strings.Contains(r.ID, ":") {
		s = r.Provider + ":" + r.ID // an opaque ID: local:env:NAME
	}
	if r.Version != "" {
		s += "#" + r.Version
	}
	return s
}

var (
	schemeRe  = regexp.MustCompile(`^[a-z][a-z0-9+.-]{0,31}$`)
	versionRe = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// maxRefLen bounds the text form of a ref.
const maxRefLen = 2048

// ParseRef parses the text form of a ref (see [Ref]): the provider scheme
// (lowercase letters, digits, "+", ".", "-"), then "://ID" or ":ID", then
// optionally "#VERSION" (letters, digits, ".", "_", "-"). The ID must not be
// empty and holds no control characters and no "#". It checks the syntax
// only; [Registry.ParseRef] also has the provider's driver check the ID.
// It returns Kind Invalid (field master_key) and a zero Ref on error.
func ParseRef(s string) (Ref, error) {
	invalid := func(reason string) (Ref, error) {
		return Ref{}, fault.Invalidf("master_key", "%s: %s; expected PROVIDER://ID[#VERSION], e.g. azurekv://VAULT.vault.azure.net/keys/NAME?tenant=TENANT_ID or local:///path/master.key", quoteRef(s), reason)
	}
	if len(s) > maxRefLen {
		return invalid(fmt.Sprintf("longer than %d bytes", maxRefLen))
	}
	if !utf8.ValidString(s) {
		return invalid("not valid UTF-8")
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || !schemeRe.MatchString(scheme) {
		return invalid("no provider scheme")
	}
	rest = strings.TrimPrefix(rest, "//")
	id, version, hasVersion := strings.Cut(rest, "#")
	if id == "" {
		return invalid("the key ID is empty")
	}
	if strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return invalid("the key ID holds a control character")
	}
	if hasVersion && !versionRe.MatchString(version) {
		return invalid("the version after # must be 1-128 letters, digits, '.', '_' or '-'")
	}
	return Ref{Provider: scheme, ID: id, Version: version}, nil
}

// quoteRef quotes s for an error message, shortened.
func quoteRef(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
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

	// Automatic rotation, where the provider reports it (AWS KMS
	// GetKeyRotationStatus): RotationKnown is set when it was read.
	RotationKnown  bool
	AutoRotation   bool
	RotationPeriod time.Duration // 0 when not reported
	NextRotation   time.Time     // zero when not reported
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
	// ParseRef parses the text form of a ref of this scheme: [ParseRef],
	// then the driver's own checks of the ID. It returns Kind Invalid with a
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

// ParseRef parses the text form of a ref (see [ParseRef]) and has the
// driver of its scheme check and normalize it. It returns Kind Invalid when
// the form is wrong or no driver serves the scheme.
func (r *Registry) ParseRef(uri string) (Ref, error) {
	ref, err := ParseRef(uri)
	if err != nil {
		return Ref{}, err
	}
	d, ok := r.drivers[ref.Provider]
	if !ok {
		return Ref{}, fault.Invalidf("master_key", "provider %q is not available in this orgkms (available: %s)", ref.Provider, strings.Join(r.Schemes(), ", "))
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
