package gcpcloud

import (
	"slices"
	"strconv"
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// versions is where a key's versions are managed in the Cloud console,
// for reasons ({vault} is the key ring); checkVersions the same for Test
// Managed Key, whose texts have no {vault}.
const (
	versions      = "Security → Key Management → key ring {vault} → key {key} → Versions"
	checkVersions = "Security → Key Management → key ring → key {key} → Versions"
)

// wording is the Google Cloud table of Test Managed Key checks and the
// reasons orgkms gives when a key is unusable, in the Cloud console's
// words. The texts name values as {name} (see cmk.Vars). In Test Managed
// Key, {vault_uri} is the key ring's resource name and {tenant} the
// project.
var wording = cmk.Wording{
	Checks: []cmk.CheckSpec{
		{ID: "consent", Name: "Access recorded", Verifies: "the key's project is recorded as the account that grants orgkms' service account access", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "project {tenant}, recorded by {by} on {at}; the checks below prove the grant"},
			"fail:missing": {Detail: "no key is configured, so no grant is recorded", Remedy: "enter the key's resource name (Step 2), after granting orgkms' service account access to the key (Step 1)"},
			"fail":         {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "configured", Name: "Key configured", Verifies: "a Cloud KMS key is configured for the org", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "key ring {vault_uri}, key {key}, version {configured_version}"},
			"fail": {Detail: "no key is configured", Remedy: "enter the key's resource name (Security → Key Management → key ring → key → ⋮ → Copy resource name)"},
		}},
		{ID: "token", Name: "Service account credentials", Verifies: "orgkms obtains a Google access token as its service account", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "orgkms obtained an access token as its service account"},
			"fail": {Detail: "{error}", Remedy: "this is a fault of the orgkms platform, not of your key: ask the platform operator to check its Google credentials"},
		}},
		{ID: "vault", Name: "Cloud KMS reachable", Verifies: "Cloud KMS answers orgkms for the key's location", Outcomes: map[string]cmk.Text{
			"pass":             {Detail: "Cloud KMS answered for key ring {vault_uri} in {rtt}"},
			"pass:answered":    {Detail: "Cloud KMS answered for key ring {vault_uri}"},
			"fail:unavailable": {Detail: "{error}", Remedy: "retry in a moment; if it persists, check the key's resource name and that Cloud KMS is available in the key's location"},
			"fail":             {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "key", Name: "Key exists and is readable", Verifies: "the key exists and orgkms' service account may read it (Cloud KMS Viewer)", Outcomes: map[string]cmk.Text{
			"pass":            {Detail: "key {key} exists; primary version {current}"},
			"fail:not_found":  {Detail: "{error}", Remedy: "check the key's resource name: copy it from Security → Key Management → key ring → key → ⋮ → Copy resource name"},
			"fail:permission": {Detail: "{error}", Remedy: "grant orgkms' service account the role Cloud KMS Viewer (" + RoleViewer + ") on key {key}: key → Permissions → Grant access"},
			"fail":            {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "version", Name: "Key version", Verifies: "the configured version exists (or the primary version is followed)", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "using the primary version {current}; orgkms follows rotations automatically"},
			"pass:current": {Detail: "version {version} is the primary version"},
			"pass:older":   {Detail: "version {version} exists; orgkms will start with it and follow newer primary versions"},
			"fail":         {Detail: "{error}", Remedy: "check the version number (" + checkVersions + "), or leave it empty to follow the primary version"},
		}},
		{ID: "enabled", Name: "Version enabled", Verifies: "the version is Enabled: not disabled, not scheduled for destruction", Outcomes: map[string]cmk.Text{
			"pass":          {Detail: "version {version} is Enabled"},
			"fail:disabled": {Detail: "version {version} of key {key} is not Enabled (disabled, or scheduled for destruction)", Remedy: "in " + checkVersions + ": if version {version} is scheduled for destruction, Restore it; then Enable it"},
			"fail":          {Detail: "version {version} cannot be used", Remedy: "enable version {version} (" + checkVersions + " → Enable)"},
		}},
		{ID: "type", Name: "Key purpose and algorithm", Verifies: "the key is a symmetric encrypt/decrypt key (Google symmetric encryption, AES-256-GCM)", Evaluate: keyType, Outcomes: map[string]cmk.Text{
			"pass":      {Detail: "symmetric encrypt/decrypt, {key_type}, protection level {protection}"},
			"fail:type": {Detail: "version {version} has algorithm {algorithm}, which orgkms cannot use", Remedy: "create a key with purpose Symmetric encrypt/decrypt (algorithm Google symmetric key)"},
		}},
		{ID: "operations", Name: "Encrypt and decrypt", Verifies: "the key's purpose permits Encrypt and Decrypt", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "Encrypt and Decrypt are permitted"},
			"fail": {Detail: "version {version} of key {key} does not permit {missing}", Remedy: "use a key with purpose Symmetric encrypt/decrypt"},
		}},
		{ID: "ownership", Name: "Key labeled for this org", Verifies: "the key carries the label orgkms-org naming this org", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "label {tag} names org {org}"},
			"fail": {Detail: "key {key} has no label {tag} naming org {org}", Remedy: "in Security → Key Management → key ring → key {key}, choose Edit labels and add the label {tag} with the value {org}"},
		}},
		{ID: "roundtrip", Name: "Encrypt and decrypt round trip", Verifies: "orgkms encrypts and decrypts a test key with the key, with additional authenticated data naming the org", Outcomes: map[string]cmk.Text{
			"pass":            {Detail: "encrypted and decrypted a test key with version {version}"},
			"fail:permission": {Detail: "permission missing: {permission}", Remedy: "grant orgkms' service account the role {permission_label} on key {key} (key → Permissions → Grant access)"},
			"fail":            {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "destruction", Name: "Destruction schedule", Verifies: "a destroyed version stays restorable long enough to notice (Scheduled for destruction duration)", Evaluate: destruction, Outcomes: map[string]cmk.Text{
			"pass": {Detail: "a version scheduled for destruction stays restorable for {days} days"},
			"warn": {Detail: "a version scheduled for destruction stays restorable for only {days} days: destroying it by mistake would soon make the org's data unrecoverable", Remedy: "new keys can have a longer duration (Create key → Additional settings → Duration of 'scheduled for destruction' state); 30 days is Google's default"},
		}},
		{ID: "latency", Name: "Latency", Verifies: "a round trip to Cloud KMS is fast enough", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "a round trip took {rtt}"},
			"warn": {Detail: "a round trip took {rtt}", Remedy: "a key ring in a location near orgkms keeps activation and rotation fast"},
		}},
	},
	Reasons: map[cmk.Reason]string{
		cmk.ReasonDisabled:        "version {version} of key {key} in key ring {vault} is not Enabled in Cloud KMS: enable version {version} (" + versions + " → Enable); if it is scheduled for destruction, restore it first (Versions → Restore), then enable it",
		cmk.ReasonNotYetActive:    "version {version} of key {key} in key ring {vault} is not usable until {date}",
		cmk.ReasonExpired:         "version {version} of key {key} in key ring {vault} is not usable since {date}",
		cmk.ReasonUntagged:        "key {key} in key ring {vault} has a new primary version {version}, but the key has no label {tag} naming org {org}, so orgkms does not follow it and keeps using version {active}; add the label {tag} = {org} to the key (key → Edit labels) to follow the rotation",
		cmk.ReasonPermissionLost:  "orgkms' service account lost the permission {permission} on key {key} in key ring {vault}; grant it Cloud KMS CryptoKey Encrypter/Decrypter and Cloud KMS Viewer on the key again (key → Permissions → Grant access)",
		cmk.ReasonUnauthorized:    "orgkms could not authenticate to Google Cloud as its service account ({error}); this is a platform fault: the platform operator must fix orgkms' credentials",
		cmk.ReasonDeleted:         "the version of key {key} in key ring {vault} is scheduled for destruction on {date}: restore it before then (" + versions + " → Restore), then enable it, or the org's data is lost",
		cmk.ReasonDeletedUnknown:  "key {key} in key ring {vault} is not usable and orgkms cannot read its versions ({error}); if a version is scheduled for destruction, restore it (" + versions + " → Restore), then enable it",
		cmk.ReasonDeletedUnlisted: "key {key} in key ring {vault} or its version was not found or was destroyed in Cloud KMS, not yet confirmed: check the key's resource name and its versions (" + versions + ")",
		cmk.ReasonPurged:          "the version of key {key} in key ring {vault} that wraps the org's key was destroyed in Cloud KMS (unusable since {date}): the org's data is unrecoverable",
		cmk.ReasonNoKeyConfigured: "no key is configured: enter the key's resource name (Step 2)",
	},
	Remedies: map[string]string{
		fault.CredentialsInvalid.Code(): "ask the platform operator to check orgkms' Google service account credentials",
		fault.PermissionDenied.Code():   "grant orgkms' service account Cloud KMS CryptoKey Encrypter/Decrypter and Cloud KMS Viewer on the key (key → Permissions → Grant access)",
		fault.KeyDisabled.Code():        "enable the key version (Security → Key Management → key ring → key → Versions → Enable)",
		fault.KeyNotFound.Code():        "check the key's resource name (key → ⋮ → Copy resource name)",
		fault.KeyDestroyed.Code():       "the version was destroyed: configure another key; data wrapped by the destroyed version is unrecoverable",
		fault.Invalid.Code():            "use a key with purpose Symmetric encrypt/decrypt (algorithm Google symmetric key)",
		fault.Unavailable.Code():        "retry in a moment; if it persists, check that Cloud KMS is available in the key's location",
	},
	Permission:        permissionLabel,
	MissingOperations: missingOperations,
}

// keyType judges the purpose and algorithm of a Cloud KMS key version.
func keyType(d masterkey.Description, _ cmk.Vars) (cmk.CheckStatus, string, cmk.Vars) {
	protection := "SOFTWARE"
	if _, pl, ok := strings.Cut(d.KeyType, "AES-256-"); ok {
		protection = pl
	}
	v := cmk.Vars{"key_type": d.KeyType, "algorithm": d.Algorithm, "protection": protection}
	if d.Algorithm != "GOOGLE_SYMMETRIC_ENCRYPTION" || d.KeySize < 256 {
		return cmk.Fail, "fail:type", v
	}
	return cmk.Pass, "pass", v
}

// minDestroyDays is the destruction schedule below which Test Managed Key
// warns.
const minDestroyDays = 7

// destruction judges the key's "scheduled for destruction" duration.
func destruction(d masterkey.Description, _ cmk.Vars) (cmk.CheckStatus, string, cmk.Vars) {
	v := cmk.Vars{"days": strconv.Itoa(d.SoftDeleteDays)}
	if d.SoftDeleteDays < minDestroyDays {
		return cmk.Warn, "warn", v
	}
	return cmk.Pass, "pass", v
}

// missingOperations returns the operations orgkms needs that the key's
// description does not permit.
func missingOperations(d masterkey.Description) []string {
	var missing []string
	for _, need := range []string{"encrypt", "decrypt"} {
		if !slices.Contains(d.Operations, need) {
			missing = append(missing, need)
		}
	}
	return missing
}

// permissionLabel names the role that holds a Cloud KMS IAM permission,
// as the Cloud console labels it.
func permissionLabel(p string) string {
	switch p {
	case "cloudkms.cryptoKeyVersions.useToEncrypt", "cloudkms.cryptoKeyVersions.useToDecrypt":
		return "Cloud KMS CryptoKey Encrypter/Decrypter (" + RoleEncrypterDecrypter + ")"
	case "cloudkms.cryptoKeys.get", "cloudkms.cryptoKeyVersions.get", "cloudkms.cryptoKeyVersions.list":
		return "Cloud KMS Viewer (" + RoleViewer + ")"
	}
	return p
}
