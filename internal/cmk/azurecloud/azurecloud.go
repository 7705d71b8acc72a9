// Package azurecloud is the Azure cloud of customer managed keys: Azure Key
// Vault and Managed HSM keys (driver internal/masterkey/azurekv), authorized
// by Entra ID admin consent in the customer's tenant. It supplies package
// cmk with the fields a customer enters, the checks of Test Managed Key and
// the revocation reasons, all in the Azure portal's words.
package azurecloud

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

// Name is the cloud's name in cmk.clouds and the API.
const Name = "azure"

// Cloud is the [cmk.Cloud] of Azure Key Vault with Entra ID admin consent.
type Cloud struct {
	Provider      *azurekv.Provider
	ClientID      string // the platform's multi-tenant application
	AuthorityHost string // e.g. https://login.microsoftonline.com/
	// ConsentHost is where browsers are sent for admin consent; default
	// AuthorityHost (development may use the emulator's plain-HTTP page).
	ConsentHost string
}

var _ cmk.Cloud = Cloud{}

// Name returns "azure".
func (Cloud) Name() string { return Name }

// DisplayName returns "Azure Key Vault".
func (Cloud) DisplayName() string { return "Azure Key Vault" }

// Scheme returns the azurekv master-key scheme.
func (Cloud) Scheme() string { return azurekv.Scheme }

// Authorization is admin consent in the customer's Entra ID tenant.
func (Cloud) Authorization(string) cmk.Authorization {
	return cmk.Authorization{Method: cmk.AuthConsent, Service: "Azure Key Vault or Managed HSM",
		TenantLabel:   "Tenant ID",
		TenantHelp:    "Azure portal → Microsoft Entra ID → Overview → Tenant ID, e.g. 72f988bf-86f1-41af-91ab-2d7cd011db47.",
		TenantMissing: "enter your Directory (tenant) ID: Azure portal → Microsoft Entra ID → Overview → Tenant ID",
		Instructions:  "An administrator of your Microsoft Entra ID tenant grants orgkms' multi-tenant application admin consent. You are sent to Microsoft's consent page and come back here.",
		Access:        "Then, in your key vault, give the orgkms application these key permissions: Get, List, Wrap Key, Unwrap Key (access policy), or the Key Vault Crypto Service Encryption User role (Azure RBAC)."}
}

// NormalizeTenant validates an Entra ID tenant ID (a GUID).
func (Cloud) NormalizeTenant(tenant string) (string, error) {
	tenant = strings.ToLower(strings.TrimSpace(tenant))
	if _, err := azurekv.ParseKeyID("https://check.vault.azure.net/", "check", "", tenant, azurekv.DefaultHostSuffixes); err != nil {
		if fe := fault.As(err); fe != nil && fe.Field == "tenant_id" {
			return "", err
		}
	}
	return tenant, nil
}

// ConsentURL returns the Entra ID admin-consent URL for tenant.
func (c Cloud) ConsentURL(tenant, state, redirectURI string) string {
	q := url.Values{}
	q.Set("client_id", c.ClientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	host := c.ConsentHost
	if host == "" {
		host = c.AuthorityHost
	}
	return strings.TrimRight(host, "/") + "/" + url.PathEscape(tenant) + "/adminconsent?" + q.Encode()
}

// The fields a customer enters.
const (
	FieldVaultURI   = "vault_uri"
	FieldKeyName    = "key_name"
	FieldKeyVersion = "key_version"
)

// Fields are the vault URI, key name and optional key version.
func (Cloud) Fields() []cmk.Field {
	return []cmk.Field{
		{Name: FieldVaultURI, Label: "Key Vault URI", Required: true, URL: true, Size: 50, Example: "https://contoso-kv.vault.azure.net/",
			Help: "The vault's Overview page → Vault URI, e.g. https://contoso-kv.vault.azure.net/ (or a Managed HSM URI)."},
		{Name: FieldKeyName, Label: "Key name", Required: true, Example: "orgkms-cmk",
			Help: "An RSA key of at least 2048 bits (RSA-HSM recommended), or an oct-HSM key in a Managed HSM. Tag the key version `orgkms-org = {org}` (Keys → key → version → Tags): it proves the key is meant for this org."},
		{Name: FieldKeyVersion, Label: "Key version", Version: true, Size: 40, Example: "0123456789abcdef0123456789abcdef",
			Help: "Leave empty to follow the latest version: when you rotate the key, orgkms moves to the new version by itself. A given version is where orgkms starts; it then follows newer versions."},
	}
}

// ParseKey validates an Azure key reference.
func (c Cloud) ParseKey(fields map[string]string, tenant string) (masterkey.Ref, cmk.KeyLocation, error) {
	for name := range fields {
		if name != FieldVaultURI && name != FieldKeyName && name != FieldKeyVersion {
			return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: name, Reason: fmt.Sprintf("an Azure key has no field %q: give vault_uri, key_name and optionally key_version", name)}
		}
	}
	k, err := c.Provider.ParseKey(fields[FieldVaultURI], fields[FieldKeyName], fields[FieldKeyVersion], tenant)
	if err != nil {
		return masterkey.Ref{}, cmk.KeyLocation{}, err
	}
	return k.Ref(), cmk.KeyLocation{Container: k.VaultURL(), Short: k.Vault(), Name: strings.TrimSpace(fields[FieldKeyName]), Tenant: k.Tenant}, nil
}

// KeyFields returns the fields of a configured key.
func (Cloud) KeyFields(loc cmk.KeyLocation, version string) map[string]string {
	return map[string]string{FieldVaultURI: loc.Container, FieldKeyName: loc.Name, FieldKeyVersion: version}
}

// KeyURI renders an azurekv ref.
func (Cloud) KeyURI(ref masterkey.Ref) string { return ref.Unversioned().String() }

// Locate splits a master-key URI of a customer key
// (azurekv://HOST/keys/NAME[/VERSION]?tenant=T) into its vault and key name.
func (Cloud) Locate(uri string) (cmk.KeyLocation, bool) {
	u, err := url.Parse(uri)
	if err != nil || uri == "" || u.Host == "" {
		return cmk.KeyLocation{}, false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "keys" || parts[1] == "" {
		return cmk.KeyLocation{}, false
	}
	vault, _, _ := strings.Cut(u.Host, ".")
	return cmk.KeyLocation{Container: "https://" + u.Host + "/", Short: vault, Name: parts[1], Tenant: u.Query().Get("tenant")}, true
}

// Rotated: Key Vault names each new version of a key; the current version
// (Describe of the unversioned key) differs after a rotation.
func (Cloud) Rotated(active string, desc masterkey.Description) bool {
	return !strings.EqualFold(desc.Key.Version, active)
}

// Wording returns the Azure table of checks and reasons.
func (Cloud) Wording() *cmk.Wording { return &wording }
