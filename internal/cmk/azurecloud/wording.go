package azurecloud

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// wording is the Azure table of Test Managed Key checks and the reasons
// orgkms gives when a key is unusable, in the Azure portal's words. The
// texts name values as {name} (see cmk.Vars).
var wording = cmk.Wording{
	Checks: []cmk.CheckSpec{
		{ID: "consent", Name: "Consent granted", Verifies: "an administrator of your Entra ID tenant granted orgkms admin consent", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "granted in tenant {tenant} by {by} on {at}"},
			"fail:missing": {Detail: "orgkms is not authorized in your Entra ID tenant", Remedy: "complete Step 1: enter your tenant ID and click Authorize, then accept as an administrator of the tenant"},
			"fail":         {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "configured", Name: "Key configured", Verifies: "a Key Vault key is configured for the org", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "vault {vault_uri}, key {key}, version {configured_version}"},
			"fail": {Detail: "no key is configured", Remedy: "complete Step 2: enter the Key Vault URI, key name and (optionally) key version"},
		}},
		{ID: "token", Name: "Token obtained", Verifies: "orgkms obtains an Entra ID token in your tenant", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "orgkms obtained a token in tenant {tenant}"},
			"fail:revoked": {Detail: "no token: orgkms is not authorized in tenant {tenant}"},
			"fail":         {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "vault", Name: "Vault reachable", Verifies: "the vault answers orgkms (address, firewall)", Outcomes: map[string]cmk.Text{
			"pass":             {Detail: "vault {vault_uri} answered in {rtt}"},
			"pass:answered":    {Detail: "vault {vault_uri} answered"},
			"fail:unavailable": {Detail: "{error}", Remedy: "check the Key Vault URI, and that the vault's firewall allows orgkms"},
			"fail":             {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "key", Name: "Key exists", Verifies: "the key exists and orgkms may read it", Outcomes: map[string]cmk.Text{
			"pass":            {Detail: "key {key} exists; current version {current}"},
			"fail:not_found":  {Detail: "{error}", Remedy: "check the key name (Key Vault → Keys); if it was deleted, recover it"},
			"fail:permission": {Detail: "{error}", Remedy: "add the Get and List key permissions for orgkms in the vault's access policies"},
			"fail":            {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "version", Name: "Key version", Verifies: "the configured version exists (or the latest is followed)", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "using the current version {current}; orgkms follows rotations automatically"},
			"pass:current": {Detail: "version {version} is the current version"},
			"pass:older":   {Detail: "version {version} exists; orgkms will start with it and follow newer versions"},
			"fail":         {Detail: "{error}", Remedy: "check the key version (Key Vault → Keys → {key} → versions), or leave it empty to use the latest"},
		}},
		{ID: "enabled", Name: "Key enabled and within its dates", Verifies: "the key version is enabled, active and not expired or about to expire", Outcomes: map[string]cmk.Text{
			"pass":                {Detail: "enabled, no date restriction blocks use"},
			"warn":                {Detail: "version {version} expires on {date}", Remedy: "rotate the key or extend its expiration date before then; an expired key cannot wrap"},
			"fail:disabled":       {Detail: "version {version} is disabled", Remedy: "enable the key version in the Azure portal (Keys → {key} → version → Enabled)"},
			"fail:not_yet_active": {Detail: "version {version} is not active until {date}", Remedy: "clear or move the activation date of the key version"},
			"fail:expired":        {Detail: "version {version} expired on {date}", Remedy: "set a later expiration date, or rotate the key"},
		}},
		{ID: "type", Name: "Key type and size", Verifies: "the key can wrap keys: RSA 2048 bits or more, or AES-256 in a Managed HSM", Evaluate: keyType, Outcomes: map[string]cmk.Text{
			"pass:hsm":   {Detail: "oct-HSM AES-256 (Managed HSM), wrapped with A256KW"},
			"pass:rsa":   {Detail: "{key_type} {key_size}-bit, wrapped with RSA-OAEP-256"},
			"fail:small": {Detail: "{key_type} {key_size}-bit is too small", Remedy: "create an RSA key of 2048 bits or more"},
			"fail:type":  {Detail: "key type {key_type} cannot wrap keys", Remedy: "use an RSA (2048 bits or more) or RSA-HSM key, or an oct-HSM key in a Managed HSM"},
		}},
		{ID: "operations", Name: "Permitted operations", Verifies: "the key version permits wrapKey and unwrapKey", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "wrapKey and unwrapKey are permitted"},
			"fail": {Detail: "version {version} of key {key} does not permit {missing} (its permitted operations: {permitted})", Remedy: "add {labels} to the permitted operations of key {key} (Keys → {key} → version → Permitted operations), then test again"},
		}},
		{ID: "ownership", Name: "Key tagged for this org", Verifies: "the key version carries the tag orgkms-org naming this org", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "tag {tag} names org {org}"},
			"fail": {Detail: "version {version} of key {key} has no tag {tag} naming org {org}", Remedy: "in the Azure portal, open Keys → {key} → version {version} → Tags and add {tag} = {org} (several orgs: separate their IDs with commas)"},
		}},
		{ID: "roundtrip", Name: "Wrap and unwrap round trip", Verifies: "orgkms wraps and unwraps a test key with the key", Outcomes: map[string]cmk.Text{
			"pass":            {Detail: "wrapped and unwrapped a test key with version {version}"},
			"fail:permission": {Detail: "permission missing: {permission}", Remedy: "add the {permission_label} key permission for orgkms in the vault's access policies (or assign Key Vault Crypto Service Encryption User)"},
			"fail":            {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "deletion", Name: "Soft delete and purge protection", Verifies: "the vault keeps a deleted key recoverable and refuses its purge", Evaluate: deletion, Outcomes: map[string]cmk.Text{
			"pass":       {Detail: "soft delete ({days} days) and purge protection are on"},
			"warn:off":   {Detail: "soft delete is off: deleting the key would destroy the org's data at once", Remedy: "turn on soft delete and purge protection for the vault"},
			"warn:purge": {Detail: "soft delete keeps deleted keys for {days} days, but purge protection is off: a purge would destroy the org's data", Remedy: "turn on purge protection for the vault (Properties → Purge protection)"},
		}},
		{ID: "latency", Name: "Latency", Verifies: "a round trip to the vault is fast enough", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "a round trip took {rtt}"},
			"warn": {Detail: "a round trip took {rtt}", Remedy: "a vault in a region near orgkms keeps activation and rotation fast"},
		}},
	},
	Reasons: map[cmk.Reason]string{
		cmk.ReasonDisabled:        "key {key} in vault {vault} is disabled; enable it in the Azure portal to restore access",
		cmk.ReasonNotYetActive:    "key {key} in vault {vault} is not active until {date}",
		cmk.ReasonExpired:         "key {key} in vault {vault} expired on {date}; extend its expiration date or rotate it",
		cmk.ReasonUntagged:        "key {key} in vault {vault} has a new version {version} without the tag {tag} naming org {org}, so orgkms does not follow it and keeps using version {active}; tag version {version} with {tag}={org} (Keys → {key} → version → Tags) to follow the rotation",
		cmk.ReasonPermissionLost:  "orgkms lost the {permission} permission on key {key} in vault {vault}; restore it in the vault's access policy",
		cmk.ReasonUnauthorized:    "orgkms is no longer authorized in tenant {tenant} ({error}); an administrator must authorize it again",
		cmk.ReasonDeleted:         "key {key} was deleted from vault {vault}; recover it (Key Vault → Keys → Manage deleted keys) before {date}, or the org's data is lost",
		cmk.ReasonDeletedUnknown:  "key {key} is not in vault {vault} and orgkms cannot read the vault's deleted keys ({error}); if the key was deleted, recover it (Key Vault → Keys → Manage deleted keys)",
		cmk.ReasonDeletedUnlisted: "key {key} is not in vault {vault}: it was deleted, purge not confirmed (not yet listed among the vault's deleted keys, which Azure can take a while to show); recover it (Key Vault → Keys → Manage deleted keys) if you can",
		cmk.ReasonPurged:          "key {key} was purged from vault {vault} (absent, and not among its deleted keys, since {date}): the org's data is unrecoverable",
		cmk.ReasonNoKeyConfigured: "no key is configured: enter the Key Vault URI and key name (Step 2)",
	},
	Remedies: map[string]string{
		fault.CredentialsInvalid.Code(): "authorize orgkms again in tenant {tenant} (Step 1), as an administrator of that tenant",
		fault.CMKConsentRevoked.Code():  "authorize orgkms again in tenant {tenant} (Step 1), as an administrator of that tenant",
		fault.PermissionDenied.Code():   "grant orgkms Get, List, Wrap Key and Unwrap Key in the vault's access policies",
		fault.KeyDisabled.Code():        "enable the key in the Azure portal",
		fault.KeyNotFound.Code():        "check the key name and version; recover the key if it was deleted",
		fault.Unavailable.Code():        "retry in a moment; if it persists, check the vault's firewall and the Key Vault URI",
	},
	Permission:        permissionLabel,
	MissingOperations: missingOperations,
}

// keyType judges the key type and size of a Key Vault key.
func keyType(d masterkey.Description, _ cmk.Vars) (cmk.CheckStatus, string, cmk.Vars) {
	v := cmk.Vars{"key_type": d.KeyType, "key_size": strconv.Itoa(d.KeySize)}
	rsa := d.KeyType == "RSA" || d.KeyType == "RSA-HSM"
	switch {
	case d.KeyType == "oct-HSM" && d.KeySize >= 256:
		return cmk.Pass, "pass:hsm", v
	case rsa && d.KeySize >= 2048:
		return cmk.Pass, "pass:rsa", v
	case rsa:
		return cmk.Fail, "fail:small", v
	default:
		return cmk.Fail, "fail:type", v
	}
}

// deletion judges the vault's soft delete and purge protection.
func deletion(d masterkey.Description, _ cmk.Vars) (cmk.CheckStatus, string, cmk.Vars) {
	v := cmk.Vars{"days": fmt.Sprint(d.SoftDeleteDays)}
	switch {
	case d.SoftDeleteDays == 0:
		return cmk.Warn, "warn:off", v
	case !d.PurgeProtection:
		return cmk.Warn, "warn:purge", v
	default:
		return cmk.Pass, "pass", v
	}
}

// missingOperations returns the key operations orgkms needs that the
// key's key_ops lack; none when it has none (the vault reported no
// restriction).
func missingOperations(d masterkey.Description) []string {
	if d.Operations == nil {
		return nil
	}
	var missing []string
	for _, need := range []string{"wrapKey", "unwrapKey"} {
		if !slices.ContainsFunc(d.Operations, func(op string) bool { return strings.EqualFold(op, need) }) {
			missing = append(missing, need)
		}
	}
	return missing
}

// permissionLabel is a Key Vault key permission as the Azure portal
// labels it.
func permissionLabel(p string) string {
	switch p {
	case "wrapKey":
		return "Wrap Key"
	case "unwrapKey":
		return "Unwrap Key"
	case "get":
		return "Get"
	case "list":
		return "List"
	}
	return p
}
