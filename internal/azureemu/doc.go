// Package azureemu is an emulator of Azure Key Vault (keys data plane),
// Azure Managed HSM and the pieces of Microsoft Entra ID that a
// customer-managed-key integration uses: admin consent, the OpenID
// configuration and the client-credentials token endpoint.
//
// orgkms' production Azure driver (the official azkeys and azidentity SDKs)
// talks to the emulator exactly as it talks to Azure: same URLs, same 401
// challenge, same JSON shapes, status codes and error codes. Only the network
// is different: every connection goes to the emulator, whose TLS certificate
// is signed by a CA the client trusts.
//
// # Addressing
//
// The emulator is one TLS server that routes by the request Host:
//
//   - {vault}.vault.azure.net (and the sovereign suffixes .vault.azure.cn and
//     .vault.usgovcloudapi.net) is the data plane of the Key Vault named vault;
//   - {hsm}.managedhsm.azure.net is the data plane of the Managed HSM named hsm;
//   - any other host (127.0.0.1:PORT, localhost:PORT,
//     login.microsoftonline.com) serves the Entra ID endpoints and the
//     emulator control API under /_emulator/.
//
// Clients reach vault hosts through [Transport] (or [DialContext]), which sends
// every connection to the emulator's address, like an /etc/hosts entry, and
// verifies the server certificate against the emulator CA using the original
// host name. The certificate carries the SANs *.vault.azure.net,
// *.vault.azure.cn, *.vault.usgovcloudapi.net, *.managedhsm.azure.net,
// login.microsoftonline.com, localhost, 127.0.0.1 and ::1. The Entra
// authority host is configured to [Emulator.URL] (https://127.0.0.1:PORT/).
//
// # State
//
// With [Config.Dir] set, the state (tenants, apps, service principals,
// vaults, keys with their private material, access policies) is written to
// Dir/state.json (mode 0600, temp file + rename) after every mutation and
// loaded by [Open]. The CA (ca.pem, ca-key.pem), the TLS leaf (tls.pem,
// tls-key.pem) and the control API token (admin-token) are kept beside it, so
// a restarted emulator is trusted by the same clients. Faults, counters and
// pending consent pages live in memory only. Private keys in state.json are
// acceptable because this is an emulator: never point it at real secrets.
//
// # Entra ID
//
// Tenants are GUIDs (a verified domain name, "{name}.onmicrosoft.com", is
// accepted wherever a tenant is). Apps are multi-tenant registrations in a
// home tenant with a client secret and a list of redirect URIs. A registered
// redirect URI of the form http://127.0.0.1:*, http://localhost:* or
// http://[::1]:* (optionally followed by a path) matches any port on that
// loopback host, for development; every other URI must match exactly.
// Registering an app creates its service principal in the home tenant; admin
// consent (the HTML page at /{tenant}/adminconsent, or [Emulator.GrantConsent])
// creates one in the customer tenant, with its own object id.
//
// Access tokens are HS256 JWTs signed with a key kept in the state, with the
// claims of a v1 Key Vault token (iss https://sts.windows.net/{tid}/, aud,
// appid, oid, tid). Revoking consent deletes the service principal; by
// default the emulator then rejects the app's existing tokens for that
// tenant at once (the real service honours them until they expire; set
// [Config.KeepTokensAfterRevoke] for that behaviour).
// [Emulator.RevokeTokens] (CLI: orgkms emulator consent revoke-tokens)
// invalidates the tokens issued so far to an app in a tenant, with or
// without consent, as a token revocation does: vaults answer them with 401
// and a challenge, so a client must drop its cached token and ask again.
//
// # Key Vault data plane
//
// Supported: the 401 challenge (AKV10000; Managed HSM: empty body), token
// checks (AKV10022 audience, AKV10032 issuer/tenant), api-version,
// case-insensitive paths, create, get (latest and by version), list keys,
// list versions (maxresults ≤ 25, nextLink, items sorted by version id, as
// recorded), update attributes, rotate, create on an existing name (adds a
// version, as in Azure; a soft-deleted name is 409 Conflict),
// wrapkey/unwrapkey/encrypt/decrypt (RSA-OAEP-256, RSA-OAEP, RSA1_5; on
// Managed HSM oct-HSM keys A128KW/A192KW/A256KW, CKM_AES_KEY_WRAP,
// CKM_AES_KEY_WRAP_PAD and A128GCM/A192GCM/A256GCM), soft delete, deleted
// keys, recover and purge (refused under purge protection until the
// retention is over; deleted keys are purged automatically after it).
//
// Authorization uses vault access policies keyed by principal: the service
// principal object id (as in Azure) or, as an emulator extension, the app's
// client id (so a policy can be set before consent exists). Permission names
// are the real ones (get, list, update, create, delete, recover, purge,
// encrypt, decrypt, wrapKey, unwrapKey, rotate), compared case-insensitively.
// A missing permission is 403 Forbidden/ForbiddenByPolicy on a vault and
// 403 Forbidden/ForbiddenByRbac on a Managed HSM, with the real message
// patterns.
//
// Key state: GET of a disabled key is 200 with enabled false. Every crypto
// operation on a disabled version is 403 Forbidden/KeyDisabled; a live
// report says Azure still allows encrypt and wrapKey on a disabled key, and
// [Config.DisabledKeyAllowsWrap] reproduces that. Outside nbf/exp, only
// encrypt and wrapKey are refused (403); decrypt and unwrapKey still work. An
// operation missing from key_ops is 403 KeyOperationForbidden. A missing or
// deleted key or version is 404 KeyNotFound.
//
// # Faults and counters
//
// [Emulator.SetFault] makes a vault add latency, answer 429 Throttled (with or
// without Retry-After) or a 5xx, or drop connections (outage), for every
// request or for the next Count requests. [Emulator.Counters] counts requests
// per vault and operation ([OpWrapKey], [OpGet], ...) so tests can assert how
// many remote calls a client made; unauthenticated requests that only elicit
// the challenge are counted as [OpChallenge]. [Emulator.KeyCounters] counts
// the requests naming one key (any version): with a key per org, a test
// counts each org's calls.
//
// # Speed
//
// The emulator remembers (in memory, bounded) the plaintext of each RSA
// ciphertext it produced, so decrypting or unwrapping that ciphertext again
// skips the private-key operation (about 2 ms of CPU for RSA-2048, most of
// its cost in a mass re-wrap, where every copy wrapped is unwrapped at
// once to verify it). The answer is the one RSA decryption gives; any other
// ciphertext takes the real operation, and every check before the
// cryptography (state, permissions, faults, counters) runs as before.
//
// # Approximations
//
// Where no authoritative sample exists the emulator picks a plausible shape:
// the missing api-version error, the nbf/exp refusal inner codes
// (KeyNotYetValid, KeyExpired), algorithm/key-type mismatches (400
// BadParameter), malformed ciphertexts (400 BadParameter), invalid token
// signatures (AKV10046), expired tokens and revoked tokens. Deletion,
// recovery and consent take effect at once (Azure can take seconds); the
// delay before a deleted key shows up under /deletedkeys, during which Azure
// answers 404 "Deleted Key not found", is reproduced on request by
// [Config.DeletedKeyLag] and [Config.DeletedKeyLagCalls].
// Throttling happens through faults, or by rate when a vault has a service
// limit ([Emulator.SetThrottle]: Key Vault's sliding window of requests
// per 10 s, 429 Throttled with a Retry-After, throttled requests not
// counted). A host naming a
// vault that does not exist gets its connection dropped (in Azure the name
// would not resolve). Entra error pages answer 400 so scripts can tell them
// from the consent page. Not implemented: certificate and federated client
// credentials (a client_assertion gets AADSTS700027), Azure RBAC on vaults
// (access policies only; Managed HSM local RBAC is modelled by the same
// per-principal permission lists), rotation policies, import, backup and
// restore, sign and verify, EC keys. In the control surface (methods, control
// API, CLI) a tenant may also be named by its short name; the Entra
// endpoints accept only the GUID or the verified domain, as Entra does.
package azureemu
