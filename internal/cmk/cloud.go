package cmk

import (
	"net/url"
	"strings"

	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

// Cloud is the customer-facing side of one cloud's key service: how a
// customer authorizes orgkms and names a key.
type Cloud interface {
	// Name is the cloud's name, e.g. "azure".
	Name() string
	// ConsentURL is the page where the customer's administrator authorizes
	// orgkms in tenant; it redirects to redirectURI with state.
	ConsentURL(tenant, state, redirectURI string) string
	// ParseKey validates a key as the customer enters it and returns its
	// master-key ref (unversioned when version is "").
	ParseKey(vaultURI, name, version, tenant string) (masterkey.Ref, error)
	// KeyURI renders ref as a master-key URI.
	KeyURI(ref masterkey.Ref) string
	// VaultURI is the canonical spelling of the vault of ref (a ref from
	// ParseKey): two spellings of one vault give the same string.
	VaultURI(ref masterkey.Ref) string
}

// Azure is the Cloud of Azure Key Vault with Entra ID admin consent.
type Azure struct {
	Provider      *azurekv.Provider
	ClientID      string // the platform's multi-tenant application
	AuthorityHost string // e.g. https://login.microsoftonline.com/
	// ConsentHost is where browsers are sent for admin consent; default
	// AuthorityHost (development may use the emulator's plain-HTTP page).
	ConsentHost string
}

// Name returns "azure".
func (a Azure) Name() string { return "azure" }

// ConsentURL returns the Entra ID admin-consent URL for tenant.
func (a Azure) ConsentURL(tenant, state, redirectURI string) string {
	q := url.Values{}
	q.Set("client_id", a.ClientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	host := a.ConsentHost
	if host == "" {
		host = a.AuthorityHost
	}
	return strings.TrimRight(host, "/") + "/" + url.PathEscape(tenant) + "/adminconsent?" + q.Encode()
}

// ParseKey validates an Azure key reference.
func (a Azure) ParseKey(vaultURI, name, version, tenant string) (masterkey.Ref, error) {
	k, err := a.Provider.ParseKey(vaultURI, name, version, tenant)
	if err != nil {
		return masterkey.Ref{}, err
	}
	return k.Ref(), nil
}

// KeyURI renders an azurekv ref.
func (a Azure) KeyURI(ref masterkey.Ref) string { return ref.Unversioned().String() }

// VaultURI returns the canonical https://HOST/ of an azurekv ref's vault.
func (a Azure) VaultURI(ref masterkey.Ref) string {
	k, err := a.Provider.Key(ref)
	if err != nil {
		return ""
	}
	return k.VaultURL()
}

// keyLocation is where a customer's key lives, as the customer names it.
type keyLocation struct {
	VaultURI string // https://contoso-kv.vault.azure.net/
	Vault    string // contoso-kv
	Name     string // orgkms-cmk
	Tenant   string
}

// locateKey splits a master-key URI of a customer key
// (scheme://HOST/keys/NAME[/VERSION]?tenant=T) into its vault and key name.
func locateKey(uri string) (keyLocation, bool) {
	u, err := url.Parse(uri)
	if err != nil || uri == "" || u.Host == "" {
		return keyLocation{}, false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "keys" || parts[1] == "" {
		return keyLocation{}, false
	}
	vault, _, _ := strings.Cut(u.Host, ".")
	return keyLocation{VaultURI: "https://" + u.Host + "/", Vault: vault, Name: parts[1], Tenant: u.Query().Get("tenant")}, true
}
