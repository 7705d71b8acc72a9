package azureemu

import (
	"errors"
	"fmt"
	"slices"
)

// Names used by SeedDemo.
const (
	DemoPlatformTenant = "orgkms-platform"
	DemoAppName        = "orgkms"
	DemoCustomerTenant = "contoso"
	DemoVault          = "contoso-kv"
	DemoKey            = "orgkms-cmk"
)

// DemoPermissions are the access-policy permissions SeedDemo grants the
// orgkms app on the demo vault.
var DemoPermissions = []string{"get", "list", "wrapKey", "unwrapKey", "encrypt", "decrypt"}

// Demo describes the demo set-up made by SeedDemo.
type Demo struct {
	PlatformTenantID string `json:"platform_tenant_id"`
	TenantID         string `json:"tenant_id"` // the customer tenant (contoso)
	ClientID         string `json:"client_id"`
	Secret           string `json:"secret"`
	VaultURI         string `json:"vault_uri"` // https://contoso-kv.vault.azure.net/
	KeyName          string `json:"key_name"`
	KeyVersion       string `json:"key_version"` // current version
}

// SeedDemo idempotently creates the demo world: the platform's home tenant
// with the orgkms multi-tenant app (its redirect URIs extended by
// appRedirectURIs), the customer tenant "contoso", the vault contoso-kv
// (soft delete 90 days, purge protection), the RSA 2048 key orgkms-cmk and an
// access policy for the orgkms app (keyed by its client id, so it applies as
// soon as the customer grants admin consent) with get, list, wrapKey,
// unwrapKey, encrypt and decrypt. Consent itself is left to the customer.
func SeedDemo(e *Emulator, appRedirectURIs []string) (Demo, error) {
	e.seedMu.Lock()
	defer e.seedMu.Unlock()
	home, err := e.EnsureTenant(DemoPlatformTenant)
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo: %w", err)
	}
	app, err := e.demoApp(home.ID, appRedirectURIs)
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo: %w", err)
	}
	cust, err := e.EnsureTenant(DemoCustomerTenant)
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo: %w", err)
	}
	v, err := e.Vault(DemoVault)
	if errors.Is(err, ErrNotFound) {
		v, err = e.CreateVault(cust.ID, DemoVault, VaultOptions{SoftDeleteDays: 90, PurgeProtection: true})
	}
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo: %w", err)
	}
	k, err := e.GetKey(DemoVault, DemoKey)
	if errors.Is(err, ErrNotFound) {
		k, err = e.CreateKey(DemoVault, DemoKey, KeyOptions{Kty: "RSA", Size: 2048})
		if err == nil {
			// The customer's proof that the key is meant for orgkms org
			// "demo" (orgkms' Test Managed Key checks it).
			k, err = e.SetKeyTags(DemoVault, DemoKey, "", map[string]string{"orgkms-org": "demo"})
		}
	}
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo: %w", err)
	}
	pols, err := e.Policies(DemoVault)
	if err != nil {
		return Demo{}, fmt.Errorf("seed demo: %w", err)
	}
	if _, ok := pols[app.ClientID]; !ok {
		if err := e.SetPolicy(DemoVault, app.ClientID, DemoPermissions); err != nil {
			return Demo{}, fmt.Errorf("seed demo: %w", err)
		}
	}
	return Demo{
		PlatformTenantID: home.ID, TenantID: cust.ID, ClientID: app.ClientID, Secret: app.Secret,
		VaultURI: v.URI, KeyName: k.Name, KeyVersion: k.Version,
	}, nil
}

// demoApp finds the orgkms app in the home tenant or registers it, and makes
// sure every wanted redirect URI is registered.
func (e *Emulator) demoApp(homeID string, redirects []string) (App, error) {
	e.mu.Lock()
	var found *appRec
	for _, a := range e.st.Apps {
		if a.HomeTenantID == homeID && a.Name == DemoAppName {
			found = a
			break
		}
	}
	var app App
	if found != nil {
		app = found.public()
	}
	e.mu.Unlock()
	if found == nil {
		return e.RegisterApp(homeID, AppRegistration{Name: DemoAppName, RedirectURIs: redirects})
	}
	uris := slices.Clone(app.RedirectURIs)
	for _, u := range redirects {
		if !slices.Contains(uris, u) {
			uris = append(uris, u)
		}
	}
	if len(uris) != len(app.RedirectURIs) {
		if err := e.SetRedirectURIs(app.ClientID, uris); err != nil {
			return App{}, err
		}
		app.RedirectURIs = uris
	}
	return app, nil
}
