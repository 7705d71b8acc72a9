package api

import "github.com/orgkms/orgkms/internal/auth"

// route is one API route. Pattern uses Go 1.22 method patterns; {org} names
// the org the action applies to.
type route struct {
	Pattern string
	Action  auth.Action // "" = public, no authentication
	Handler func(h *Handler, c *call) error
}

// routes is every route of the API, in one table.
var routes = []route{
	{"GET /healthz", "", (*Handler).healthz},
	{"GET /readyz", "", (*Handler).readyz},
	{"GET /v1/openapi.json", "", (*Handler).openapi},

	{"POST /v1/orgs", auth.ActOrgCreate, (*Handler).createOrg},
	{"GET /v1/orgs", auth.ActOrgList, (*Handler).listOrgs},
	{"GET /v1/orgs/{org}", auth.ActOrgRead, (*Handler).getOrg},

	{"GET /v1/orgs/{org}/keys", auth.ActKeyRead, (*Handler).listKeys},
	{"POST /v1/orgs/{org}/keys", auth.ActKeyManage, (*Handler).createKey},
	{"GET /v1/orgs/{org}/keys/{key}", auth.ActKeyRead, (*Handler).getKey},
	{"POST /v1/orgs/{org}/keys/{key}/rotate", auth.ActKeyManage, (*Handler).rotateKey},
	{"POST /v1/orgs/{org}/keys/{key}/config", auth.ActKeyManage, (*Handler).configKey},

	{"POST /v1/orgs/{org}/keys/{key}/encrypt", auth.ActCrypto, (*Handler).encrypt},
	{"POST /v1/orgs/{org}/keys/{key}/decrypt", auth.ActCrypto, (*Handler).decrypt},
	{"POST /v1/orgs/{org}/keys/{key}/rewrap", auth.ActCrypto, (*Handler).rewrap},
	{"POST /v1/orgs/{org}/keys/{key}/datakey", auth.ActCrypto, (*Handler).datakey},

	{"GET /v1/orgs/{org}/cmk", auth.ActOrgRead, (*Handler).cmkStatus},
	{"GET /v1/orgs/{org}/cmk/clouds", auth.ActOrgRead, (*Handler).cmkClouds},
	{"POST /v1/orgs/{org}/cmk/authorize", auth.ActCMKManage, (*Handler).cmkAuthorize},
	{"POST /v1/orgs/{org}/cmk/configure", auth.ActCMKManage, (*Handler).cmkConfigure},
	{"POST /v1/orgs/{org}/cmk/test", auth.ActCMKManage, (*Handler).cmkTest},
	{"POST /v1/orgs/{org}/cmk/enable", auth.ActCMKManage, (*Handler).cmkEnable},
	{"POST /v1/orgs/{org}/cmk/disable", auth.ActCMKManage, (*Handler).cmkDisable},
	{"POST /v1/orgs/{org}/cmk/fallback", auth.ActCMKManage, (*Handler).cmkFallback},
	{"GET /v1/cmk/callback", "", (*Handler).cmkCallback},
	{"POST /v1/orgs/{org}/cmk/decrypt-only", auth.ActCMKManage, (*Handler).cmkDecryptOnly},      // cmk_staged.go
	{"POST /v1/orgs/{org}/cmk/revocation", auth.ActCMKManage, (*Handler).cmkScheduleRevocation}, // cmk_staged.go
	{"DELETE /v1/orgs/{org}/cmk/revocation", auth.ActCMKManage, (*Handler).cmkCancelRevocation}, // cmk_staged.go
	// The impact preview of a destructive step (impact.go): audit.read, and
	// the step's own action on top.
	{"GET /v1/orgs/{org}/cmk/impact", auth.ActAuditRead, (*Handler).cmkImpact},

	{"GET /v1/orgs/{org}/users", auth.ActUsersManage, (*Handler).listUsers},
	{"POST /v1/orgs/{org}/users", auth.ActUsersManage, (*Handler).createUser},

	{"GET /v1/orgs/{org}/audit", auth.ActAuditRead, (*Handler).auditEvents},
	{"GET /v1/orgs/{org}/audit/verify", auth.ActAuditRead, (*Handler).auditVerify},
	{"GET /v1/orgs/{org}/usage", auth.ActAuditRead, (*Handler).usage},
	{"GET /v1/orgs/{org}/usage/export", auth.ActAuditRead, (*Handler).usageExport},
	{"POST /v1/orgs/{org}/cache/purge", auth.ActCacheManage, (*Handler).purgeOrgCache},

	{"POST /v1/orgs/{org}/webhooks", auth.ActWebhookManage, (*Handler).createWebhook},
	{"GET /v1/orgs/{org}/webhooks", auth.ActWebhookManage, (*Handler).listWebhooks},
	{"GET /v1/orgs/{org}/webhooks/{id}", auth.ActWebhookManage, (*Handler).getWebhook},
	{"DELETE /v1/orgs/{org}/webhooks/{id}", auth.ActWebhookManage, (*Handler).deleteWebhook},
	{"POST /v1/orgs/{org}/webhooks/{id}/test", auth.ActWebhookManage, (*Handler).testWebhook},
	{"POST /v1/orgs/{org}/webhooks/{id}/rotate-secret", auth.ActWebhookManage, (*Handler).rotateWebhookSecret},
	{"GET /v1/orgs/{org}/webhooks/{id}/deliveries", auth.ActWebhookManage, (*Handler).webhookDeliveries},

	{"POST /v1/cache/purge", auth.ActCacheManage, (*Handler).purgeAllCache},
	{"POST /v1/tokens", auth.ActTokenManage, (*Handler).createToken},
	{"GET /v1/tokens", auth.ActTokenManage, (*Handler).listTokens},
	{"DELETE /v1/tokens/{id}", auth.ActTokenManage, (*Handler).revokeToken},
	{"GET /v1/users", auth.ActTokenManage, (*Handler).listPlatformUsers},
	{"POST /v1/users", auth.ActTokenManage, (*Handler).createPlatformUser},
	{"GET /v1/nodes", auth.ActPlatformRead, (*Handler).listNodes},
	{"GET /v1/platform-key", auth.ActPlatformRead, (*Handler).platformKeyStatus},
	{"GET /v1/vault-budgets", auth.ActPlatformRead, (*Handler).vaultBudgets},
	{"GET /v1/whoami", auth.ActWhoAmI, (*Handler).whoami},

	// The Vault-Transit-compatible API (transit*.go; docs/transit.md): the
	// org is the token's (or X-Vault-Namespace's), the key is {name}. Vault
	// clients send PUT, Transit takes POST too.
	{"PUT /v1/transit/keys/{name}", auth.ActKeyManage, (*Handler).transitCreateKey},
	{"POST /v1/transit/keys/{name}", auth.ActKeyManage, (*Handler).transitCreateKey},
	{"GET /v1/transit/keys/{name}", auth.ActKeyRead, (*Handler).transitReadKey},
	{"GET /v1/transit/keys", auth.ActKeyRead, (*Handler).transitListKeys},
	{"PUT /v1/transit/keys/{name}/rotate", auth.ActKeyManage, (*Handler).transitRotateKey},
	{"POST /v1/transit/keys/{name}/rotate", auth.ActKeyManage, (*Handler).transitRotateKey},
	{"PUT /v1/transit/keys/{name}/config", auth.ActKeyManage, (*Handler).transitConfigKey},
	{"POST /v1/transit/keys/{name}/config", auth.ActKeyManage, (*Handler).transitConfigKey},
	{"PUT /v1/transit/encrypt/{name}", auth.ActCrypto, (*Handler).transitEncrypt},
	{"POST /v1/transit/encrypt/{name}", auth.ActCrypto, (*Handler).transitEncrypt},
	{"PUT /v1/transit/decrypt/{name}", auth.ActCrypto, (*Handler).transitDecrypt},
	{"POST /v1/transit/decrypt/{name}", auth.ActCrypto, (*Handler).transitDecrypt},
	{"PUT /v1/transit/rewrap/{name}", auth.ActCrypto, (*Handler).transitRewrap},
	{"POST /v1/transit/rewrap/{name}", auth.ActCrypto, (*Handler).transitRewrap},
	{"PUT /v1/transit/datakey/{type}/{name}", auth.ActCrypto, (*Handler).transitDataKey},
	{"POST /v1/transit/datakey/{type}/{name}", auth.ActCrypto, (*Handler).transitDataKey},
	// Org deletion and the data-key lifecycle (orgs_delete.go).
	{"DELETE /v1/orgs/{org}", auth.ActOrgDelete, (*Handler).deleteOrg},
	{"POST /v1/orgs/{org}/cancel-deletion", auth.ActOrgDelete, (*Handler).cancelOrgDeletion},
	{"POST /v1/orgs/{org}/keys/{key}/disable", auth.ActKeyManage, (*Handler).disableKey},
	{"POST /v1/orgs/{org}/keys/{key}/enable", auth.ActKeyManage, (*Handler).enableKey},
	{"DELETE /v1/orgs/{org}/keys/{key}", auth.ActKeyManage, (*Handler).deleteKey},
	{"POST /v1/orgs/{org}/keys/{key}/cancel-deletion", auth.ActKeyManage, (*Handler).cancelKeyDeletion},
}
