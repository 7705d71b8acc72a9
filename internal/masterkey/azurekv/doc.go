// Package azurekv is the master-key driver for customer managed keys in
// Azure Key Vault and Azure Managed HSM, through the official Azure SDK for
// Go (azkeys, azidentity).
//
// # URIs
//
//	azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=TENANT_ID
//	azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk/VERSION?tenant=TENANT_ID
//	azurekv://contoso-hsm.managedhsm.azure.net/keys/orgkms-cmk?tenant=TENANT_ID
//
// The tenant is the customer's Entra ID tenant: orgkms authenticates as its
// own multi-tenant application in exactly that tenant (one credential per
// tenant, never a wildcard of allowed tenants), so a vault of any other
// tenant is refused before a token is minted.
//
// # Safety of customer input
//
// Vault hosts must end in a Key Vault or Managed HSM DNS suffix of a public
// or sovereign Azure cloud (or an operator-configured test suffix): a
// customer-supplied URI never sends orgkms anywhere else. Every SDK call
// runs under recover(), because the SDK panics on some malformed auth
// challenges.
//
// # Tokens and consent
//
// A credential caches its token until it expires (about an hour). When a
// vault refuses a token (401) the driver drops the tenant's cached token
// and tries once more with a fresh one: a token can be refused long before
// it expires, and only the token endpoint's answer says why. Its AADSTS
// code classifies the cause: 65001, 700016 (no service principal) and
// 7000112 (application disabled in the tenant) mean the customer withdrew
// (or never granted) admin consent, Kind CMKConsentRevoked; 7000215,
// 7000222 and 700027 mean the platform's own application credentials are
// invalid, Kind CredentialsInvalid. The token check of Test Managed Key
// ([Provider.CheckCredentials]) always asks for a fresh token, since a vault
// honours a cached one until it expires even after consent was withdrawn.
//
// # Operations
//
// Wrap checks the key's enabled, nbf and exp attributes itself (the service
// does not always refuse), wraps with RSA-OAEP-256 (A256KW for Managed HSM
// oct-HSM keys) and records the versioned kid the service returns. Unwrap
// uses exactly the recorded version. Failures are classified by HTTP status
// and innererror.code into fault kinds. Every operation is bounded by
// Config.Timeout (retries included) and each attempt by Config.TryTimeout,
// with at most Config.MaxRetries retries (azcore, honouring a Retry-After up
// to Config.MaxRetryDelay; a longer one is passed to the caller at once), so
// an outage is Unavailable with a RetryAfter quickly. A per-vault rate
// limit is shared by every org using that vault.
package azurekv
