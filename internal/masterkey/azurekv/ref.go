package azurekv

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Scheme is the URI scheme of this driver.
const Scheme = "azurekv"

// DefaultHostSuffixes are the DNS suffixes of Key Vault and Managed HSM in
// the public and sovereign Azure clouds.
var DefaultHostSuffixes = []string{
	".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net", ".vault.microsoftazure.de",
	".managedhsm.azure.net", ".managedhsm.azure.cn", ".managedhsm.usgovcloudapi.net",
}

var (
	vaultNameRe = regexp.MustCompile(`^[a-zA-Z0-9](?:-?[a-zA-Z0-9]){2,23}$`)
	keyNameRe   = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)
	versionRe   = regexp.MustCompile(`^[a-zA-Z0-9]{1,64}$`)
	tenantRe    = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// KeyID is a parsed Azure key reference.
type KeyID struct {
	Host    string // e.g. contoso-kv.vault.azure.net
	Name    string
	Version string
	Tenant  string
}

// VaultURL returns https://HOST/.
func (k KeyID) VaultURL() string { return "https://" + k.Host + "/" }

// ManagedHSM reports whether the host is a Managed HSM.
func (k KeyID) ManagedHSM() bool { return strings.Contains(k.Host, ".managedhsm.") }

// Vault returns the vault (or HSM) name, the first label of the host.
func (k KeyID) Vault() string { name, _, _ := strings.Cut(k.Host, "."); return name }

// Ref returns the masterkey.Ref of k.
func (k KeyID) Ref() masterkey.Ref {
	return masterkey.Ref{Provider: Scheme, ID: k.Host + "/keys/" + k.Name + "?tenant=" + k.Tenant, Version: k.Version}
}

// URI returns the text form of k's ref (masterkey.Ref.String):
// azurekv://HOST/keys/NAME?tenant=TENANT[#VERSION].
func (k KeyID) URI() string { return k.Ref().String() }

func invalid(reason string) error {
	return &fault.Error{Kind: fault.Invalid, Field: "key_uri", Reason: reason}
}

// ParseKeyID parses a key from its parts as a customer enters them: the
// vault URI (https://NAME.vault.azure.net/), key name, optional version, and
// tenant ID. suffixes are the allowed host suffixes.
//
// The vault URI is normalized: surrounding space, the case of scheme and
// host, a trailing slash (or none), the default port 443 and a trailing dot
// of the host do not matter, so every spelling of one vault gives the same
// KeyID ([KeyID.VaultURL] is the canonical spelling). Any other port, a
// path, query, fragment or user info is refused.
func ParseKeyID(vaultURI, name, version, tenant string, suffixes []string) (KeyID, error) {
	u, err := url.Parse(strings.TrimSpace(vaultURI))
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return KeyID{}, &fault.Error{Kind: fault.Invalid, Field: "vault_uri", Reason: "Key Vault URI must look like https://NAME.vault.azure.net/ (copy it from the vault's Overview page in the Azure portal)"}
	}
	if p := u.Port(); p != "" && p != "443" {
		return KeyID{}, &fault.Error{Kind: fault.Invalid, Field: "vault_uri", Reason: "Key Vault URI must not have a port other than 443"}
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if err := checkHost(host, suffixes); err != nil {
		return KeyID{}, err
	}
	k := KeyID{Host: host, Name: strings.TrimSpace(name), Version: strings.ToLower(strings.TrimSpace(version)), Tenant: strings.ToLower(strings.TrimSpace(tenant))}
	if err := k.check(); err != nil {
		return KeyID{}, err
	}
	return k, nil
}

func checkHost(host string, suffixes []string) error {
	for _, s := range suffixes {
		if name, ok := strings.CutSuffix(host, s); ok {
			if !vaultNameRe.MatchString(name) {
				return &fault.Error{Kind: fault.Invalid, Field: "vault_uri", Reason: "vault name must be 3-24 letters, digits and single hyphens"}
			}
			return nil
		}
	}
	return &fault.Error{Kind: fault.Invalid, Field: "vault_uri", Reason: "Key Vault URI must be a Key Vault (*.vault.azure.net) or Managed HSM (*.managedhsm.azure.net) address, or of a sovereign Azure cloud"}
}

func (k KeyID) check() error {
	if !keyNameRe.MatchString(k.Name) {
		return &fault.Error{Kind: fault.Invalid, Field: "key_name", Reason: "key name must be 1-127 letters, digits or hyphens"}
	}
	if k.Version != "" && !versionRe.MatchString(k.Version) {
		return &fault.Error{Kind: fault.Invalid, Field: "key_version", Reason: "key version must be the 32-character version ID shown in the Azure portal, or empty to follow the latest version"}
	}
	if !tenantRe.MatchString(k.Tenant) {
		return &fault.Error{Kind: fault.Invalid, Field: "tenant_id", Reason: "tenant ID must be a GUID (Entra ID → Overview → Tenant ID)"}
	}
	return nil
}

// parseRef parses an azurekv ref against the allowed suffixes (see
// parseURI).
func parseRef(uri string, suffixes []string) (masterkey.Ref, error) {
	k, err := parseURI(uri, suffixes)
	if err != nil {
		return masterkey.Ref{}, err
	}
	return k.Ref(), nil
}

// parseURI parses the text form of an azurekv ref (masterkey.ParseRef):
// azurekv://HOST/keys/NAME?tenant=T[#VERSION]. On input the version may
// also be the last path segment (azurekv://HOST/keys/NAME/VERSION?tenant=T,
// as Key Vault names a key version), never both with different values.
func parseURI(uri string, suffixes []string) (KeyID, error) {
	ref, err := masterkey.ParseRef(uri)
	if err != nil {
		return KeyID{}, err
	}
	if ref.Provider != Scheme {
		return KeyID{}, invalid("expected azurekv://VAULT.vault.azure.net/keys/NAME?tenant=TENANT_ID[#VERSION]")
	}
	k, err := parsePath(Scheme+"://"+ref.ID, suffixes)
	if err != nil {
		return KeyID{}, err
	}
	if v := strings.ToLower(ref.Version); v != "" {
		if k.Version != "" && k.Version != v {
			return KeyID{}, invalid("the key version is given twice, differently: in the path and after #")
		}
		k.Version = v
		if err := k.check(); err != nil {
			return KeyID{}, err
		}
	}
	return k, nil
}

// parsePath parses azurekv://HOST/keys/NAME[/VERSION]?tenant=T.
func parsePath(uri string, suffixes []string) (KeyID, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != Scheme || u.Host == "" || u.Port() != "" || u.User != nil {
		return KeyID{}, invalid("expected azurekv://VAULT.vault.azure.net/keys/NAME[/VERSION]?tenant=TENANT_ID")
	}
	host := strings.ToLower(u.Host)
	if err := checkHost(host, suffixes); err != nil {
		return KeyID{}, err
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "keys" {
		return KeyID{}, invalid("expected azurekv://VAULT.vault.azure.net/keys/NAME[/VERSION]?tenant=TENANT_ID")
	}
	k := KeyID{Host: host, Name: parts[1], Tenant: strings.ToLower(u.Query().Get("tenant"))}
	if len(parts) == 3 {
		k.Version = strings.ToLower(parts[2])
	}
	if err := k.check(); err != nil {
		return KeyID{}, err
	}
	return k, nil
}

// keyIDOf parses a Ref produced by [KeyID.Ref].
func keyIDOf(ref masterkey.Ref, suffixes []string) (KeyID, error) {
	k, err := parsePath(Scheme+"://"+ref.ID, suffixes)
	if err != nil {
		return KeyID{}, err
	}
	k.Version = strings.ToLower(ref.Version)
	return k, nil
}

// KID returns the key identifier of k as Key Vault spells it:
// https://HOST/keys/NAME[/VERSION].
func (k KeyID) KID() string {
	v := ""
	if k.Version != "" {
		v = "/" + k.Version
	}
	return "https://" + k.Host + "/keys/" + k.Name + v
}

// parseKID parses a key identifier (kid) a vault returned,
// https://HOST/keys/NAME[/VERSION], by the rule of azkeys' ID.Name and
// ID.Version (path element 1 is the name, element 2 the version), and
// checks each part as a customer-entered key is checked. The result has no
// tenant. On error it returns the zero KeyID.
func parseKID(kid string, suffixes []string) (KeyID, error) {
	bad := func(why string) (KeyID, error) {
		return KeyID{}, &fault.Error{Kind: fault.Internal, Provider: Scheme, Reason: "the vault returned a malformed key identifier: " + why}
	}
	if len(kid) > 512 {
		return bad("too long")
	}
	u, err := url.Parse(kid)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.RawPath != "" {
		return bad("not https://HOST/keys/NAME/VERSION")
	}
	if p := u.Port(); p != "" && p != "443" {
		return bad("unexpected port")
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if err := checkHost(host, suffixes); err != nil {
		return bad("not a vault host")
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || !strings.EqualFold(parts[0], "keys") {
		return bad("not a key path")
	}
	k := KeyID{Host: host, Name: parts[1]}
	if len(parts) == 3 {
		k.Version = strings.ToLower(parts[2])
		if k.Version == "" {
			return bad("empty version")
		}
	}
	if !keyNameRe.MatchString(k.Name) || k.Version != "" && !versionRe.MatchString(k.Version) {
		return bad("bad key name or version")
	}
	return k, nil
}

// sameKey reports whether a kid the vault returned names key k (any
// version): the same host and, case-insensitively as in Key Vault, name.
func (k KeyID) sameKey(kid KeyID) bool {
	return kid.Host == k.Host && strings.EqualFold(kid.Name, k.Name)
}
