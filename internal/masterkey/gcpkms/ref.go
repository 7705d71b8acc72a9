package gcpkms

import (
	"regexp"
	"slices"
	"strings"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Scheme is the URI scheme of this driver.
const Scheme = "gcpkms"

// Google's resource ID rules (cloud.google.com/kms/docs/resource-hierarchy,
// resource-manager project IDs): a project ID is 6-30 lowercase letters,
// digits and hyphens starting with a letter and not ending with a hyphen (a
// project number is accepted too); a location is lowercase letters, digits
// and hyphens ("global", "us-east1", "europe-west4", "nam-eur-asia1"); key
// ring and key IDs are 1-63 of [a-zA-Z0-9_-]; version IDs are positive
// integers assigned by the service.
var (
	projectRe  = regexp.MustCompile(`^(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[1-9][0-9]{0,19})$`)
	locationRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	idRe       = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)
	versionRe  = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
)

// KeyName is a parsed Cloud KMS CryptoKey resource name, optionally with a
// version.
type KeyName struct {
	Project   string
	Location  string
	KeyRing   string
	CryptoKey string
	Version   string // "" = the primary version
}

// Name returns the CryptoKey resource name,
// projects/P/locations/L/keyRings/R/cryptoKeys/K.
func (k KeyName) Name() string {
	return "projects/" + k.Project + "/locations/" + k.Location + "/keyRings/" + k.KeyRing + "/cryptoKeys/" + k.CryptoKey
}

// VersionName returns the CryptoKeyVersion resource name of k's version
// (Name()/cryptoKeyVersions/V), or Name() when k has no version.
func (k KeyName) VersionName() string {
	if k.Version == "" {
		return k.Name()
	}
	return k.Name() + "/cryptoKeyVersions/" + k.Version
}

// Ref returns the masterkey.Ref of k: ID the CryptoKey resource name,
// Version the version ID.
func (k KeyName) Ref() masterkey.Ref {
	return masterkey.Ref{Provider: Scheme, ID: k.Name(), Version: k.Version}
}

// URI returns the text form of k's ref:
// gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[#V].
func (k KeyName) URI() string { return k.Ref().String() }

// resource names k for messages: "key K in key ring R (project P, location L)".
func (k KeyName) resource() string {
	v := ""
	if k.Version != "" {
		v = " version " + k.Version
	}
	return "key " + k.CryptoKey + v + " in key ring " + k.KeyRing + " (project " + k.Project + ", location " + k.Location + ")"
}

// maxNameLen bounds a resource name; Google's are far shorter.
const maxNameLen = 512

func invalid(field, reason string) error {
	return &fault.Error{Kind: fault.Invalid, Field: field, Reason: reason}
}

const expectedForm = "expected projects/PROJECT/locations/LOCATION/keyRings/KEY_RING/cryptoKeys/KEY[/cryptoKeyVersions/VERSION] (copy the resource name from the key's ⋮ menu, Copy resource name, in the Cloud console)"

// ParseKeyName parses a key resource name as a customer enters it,
//
//	projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/V]
//
// Surrounding space and one leading "/" are ignored; anything else that is
// not exactly that form is refused (no "//cloudkms.googleapis.com/" prefix,
// query, empty or extra segments). The location must be one of allowed
// (compared in lowercase), unless allowed is empty. It returns Kind Invalid
// (field key_name, or location) and the zero KeyName on error.
func ParseKeyName(s string, allowed []string) (KeyName, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "/")
	if len(s) > maxNameLen {
		return KeyName{}, invalid("key_name", "the key resource name is too long; "+expectedForm)
	}
	parts := strings.Split(s, "/")
	if (len(parts) != 8 && len(parts) != 10) || parts[0] != "projects" || parts[2] != "locations" || parts[4] != "keyRings" || parts[6] != "cryptoKeys" ||
		(len(parts) == 10 && parts[8] != "cryptoKeyVersions") {
		return KeyName{}, invalid("key_name", expectedForm)
	}
	k := KeyName{Project: parts[1], Location: parts[3], KeyRing: parts[5], CryptoKey: parts[7]}
	if len(parts) == 10 {
		if parts[9] == "" {
			return KeyName{}, invalid("key_version", "the version after cryptoKeyVersions/ is empty")
		}
		k.Version = parts[9]
	}
	if err := k.check(allowed); err != nil {
		return KeyName{}, err
	}
	return k, nil
}

func (k KeyName) check(allowed []string) error {
	switch {
	case !projectRe.MatchString(k.Project):
		return invalid("key_name", "project must be a project ID (6-30 lowercase letters, digits and hyphens, starting with a letter) or a project number")
	case !locationRe.MatchString(k.Location):
		return invalid("key_name", "location must be a Cloud KMS location such as global, us-east1 or europe-west4")
	case !idRe.MatchString(k.KeyRing):
		return invalid("key_name", "key ring ID must be 1-63 letters, digits, '_' or '-'")
	case !idRe.MatchString(k.CryptoKey):
		return invalid("key_name", "key ID must be 1-63 letters, digits, '_' or '-'")
	case k.Version != "" && !versionRe.MatchString(k.Version):
		return invalid("key_version", "key version must be the version number shown in the Cloud console (1, 2, ...), or empty to follow the primary version")
	}
	if len(allowed) > 0 && !slices.ContainsFunc(allowed, func(l string) bool { return strings.EqualFold(strings.TrimSpace(l), k.Location) }) {
		return invalid("key_name", "location "+k.Location+" is not allowed in this orgkms (allowed: "+strings.Join(allowed, ", ")+"): use a key ring in an allowed location")
	}
	return nil
}

// ParseRef parses the text form of a gcpkms ref,
//
//	gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[#V]
//
// and, on input only, gcpkms://…/cryptoKeys/K/cryptoKeyVersions/V (never
// both with different versions). The result is normalized: its ID is the
// CryptoKey resource name and its Version the version ID, so every
// spelling of one key version gives one Ref. allowed are the allowed
// locations (empty: any). It returns Kind Invalid on error.
func ParseRef(uri string, allowed []string) (masterkey.Ref, error) {
	k, err := parseURI(uri, allowed)
	if err != nil {
		return masterkey.Ref{}, err
	}
	return k.Ref(), nil
}

func parseURI(uri string, allowed []string) (KeyName, error) {
	ref, err := masterkey.ParseRef(uri)
	if err != nil {
		return KeyName{}, err
	}
	if ref.Provider != Scheme || !strings.HasPrefix(uri, Scheme+"://") {
		return KeyName{}, invalid("master_key", "expected gcpkms://projects/PROJECT/locations/LOCATION/keyRings/KEY_RING/cryptoKeys/KEY[#VERSION]")
	}
	if strings.HasPrefix(ref.ID, "/") {
		return KeyName{}, invalid("master_key", "expected gcpkms://projects/... (two slashes, then the resource name)")
	}
	k, err := ParseKeyName(ref.ID, allowed)
	if err != nil {
		return KeyName{}, err
	}
	if ref.Version != "" {
		if k.Version != "" && k.Version != ref.Version {
			return KeyName{}, invalid("master_key", "the key version is given twice, differently: in the path and after #")
		}
		k.Version = ref.Version
		if err := k.check(allowed); err != nil {
			return KeyName{}, err
		}
	}
	return k, nil
}

// KeyOf parses a Ref of this driver (as [KeyName.Ref] makes them, or any
// spelling ParseRef accepts). It returns Kind Invalid if ref is not one, or
// names a location outside allowed.
func KeyOf(ref masterkey.Ref, allowed []string) (KeyName, error) {
	if ref.Provider != Scheme {
		return KeyName{}, invalid("master_key", "not a gcpkms key: "+ref.Provider)
	}
	return parseURI(ref.String(), allowed)
}

// parseVersionName parses a CryptoKeyVersion name the service returned and
// checks that it names a version of key k. On error it returns "".
func parseVersionName(k KeyName, name string) (string, bool) {
	prefix := k.Name() + "/cryptoKeyVersions/"
	v, ok := strings.CutPrefix(name, prefix)
	if !ok || !versionRe.MatchString(v) {
		return "", false
	}
	return v, true
}
