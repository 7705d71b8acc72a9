package awscloud

import (
	"strconv"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

// trustRemedy says how to fix the role's trust policy.
const trustRemedy = "in the IAM console open Roles → the role {tenant} → Trust relationships → Edit trust policy: the trusted entity must be orgkms' AWS account, with the condition sts:ExternalId equal to this org's external ID (both are shown under Authorize orgkms); then test again"

// keyPolicyRemedy says how to grant the role the key's actions.
const keyPolicyRemedy = "in the AWS KMS console open Customer managed keys → {key} → Key policy → Edit and allow the role {tenant} kms:Encrypt, kms:Decrypt, kms:DescribeKey and kms:ListKeyRotations, and optionally kms:GetKeyRotationStatus (or grant them in an IAM policy of the role on the key ARN)"

// wording is the table of Test Managed Key checks and the reasons, in the
// AWS console's words. {vault} is the key's account and Region, {vault_uri}
// its key ARN, {key} its key ID, {tenant} the role ARN, {version} and
// {current} key material IDs.
var wording = cmk.Wording{
	Checks: []cmk.CheckSpec{
		{ID: "consent", Name: "Role recorded", Verifies: "a role in your AWS account is recorded for orgkms to assume", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "role {tenant}, entered by {by} on {at}"},
			"fail:missing": {Detail: "no role is recorded for this org", Remedy: "create the role (Step 1) and enter its Role ARN with the Key ARN (Step 2)"},
			"fail:revoked": {Detail: "orgkms may no longer assume role {tenant}", Remedy: trustRemedy},
			"fail":         {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "configured", Name: "Key configured", Verifies: "an AWS KMS key and role are configured for the org", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "key {vault_uri}, role {tenant}"},
			"fail": {Detail: "no key is configured", Remedy: "complete Step 2: enter the Key ARN and the Role ARN"},
		}},
		{ID: "token", Name: "Role assumed", Verifies: "orgkms assumes your role with this org's external ID (STS AssumeRole)", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "orgkms assumed role {tenant} with this org's external ID"},
			"fail:revoked": {Detail: "orgkms may not assume role {tenant}: {error}", Remedy: trustRemedy},
			"fail":         {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "vault", Name: "AWS KMS reachable", Verifies: "AWS KMS answers orgkms in the key's Region", Outcomes: map[string]cmk.Text{
			"pass":             {Detail: "AWS KMS answered for account {vault} in {rtt}"},
			"pass:answered":    {Detail: "AWS KMS answered for account {vault}"},
			"fail:unavailable": {Detail: "{error}", Remedy: "retry in a moment; check that the Region in the Key ARN is the key's Region"},
			"fail":             {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "key", Name: "Key exists", Verifies: "the key exists and the role may describe it (kms:DescribeKey)", Outcomes: map[string]cmk.Text{
			"pass":            {Detail: "key {key} exists; current key material {current}"},
			"fail:not_found":  {Detail: "{error}", Remedy: "check the Key ARN (AWS KMS console → Customer managed keys → the key → ARN): the account and Region must be the key's"},
			"fail:permission": {Detail: "{error}", Remedy: keyPolicyRemedy},
			"fail":            {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "version", Name: "Key material", Verifies: "orgkms reads the key's current key material ID, by which it follows rotations", Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "current key material {current}; orgkms follows rotations automatically"},
			"pass:current": {Detail: "key material {version} is current"},
			"pass:older":   {Detail: "key material {version} exists; orgkms follows newer material"},
			"fail":         {Detail: "{error}", Remedy: "allow the role kms:ListKeyRotations on the key (Key policy → Edit)"},
		}},
		{ID: "enabled", Name: "Key enabled", Verifies: "the key's status is Enabled (not Disabled, not Pending deletion)", Outcomes: map[string]cmk.Text{
			"pass":          {Detail: "key status Enabled"},
			"fail:disabled": {Detail: "key {key} is not Enabled (Disabled, or Pending deletion)", Remedy: "in the AWS KMS console open Customer managed keys → {key}: if its status is Pending deletion, choose Key actions → Cancel key deletion (CancelKeyDeletion); then Key actions → Enable"},
			"fail":          {Detail: "key {key} is not usable now", Remedy: "check the key's status in the AWS KMS console (Customer managed keys → {key})"},
		}},
		{ID: "type", Name: "Key spec and usage", Verifies: "the key is a symmetric encryption key (key spec SYMMETRIC_DEFAULT)", Evaluate: keySpec, Outcomes: map[string]cmk.Text{
			"pass": {Detail: "key spec SYMMETRIC_DEFAULT (AES-256-GCM inside AWS KMS)"},
			"fail": {Detail: "key spec {key_type} cannot encrypt orgkms' keys", Remedy: "create a key with key type Symmetric and key usage Encrypt and decrypt (AWS KMS console → Create key), and enter its ARN"},
		}},
		{ID: "operations", Name: "Key usage", Verifies: "the key's usage is Encrypt and decrypt", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "key usage ENCRYPT_DECRYPT"},
			"fail": {Detail: "key {key} has key usage {permitted}, not {missing}", Remedy: "use a key whose key usage is Encrypt and decrypt: AWS KMS cannot change a key's usage, create a new symmetric key"},
		}},
		{ID: "ownership", Name: "Role bound to this org", Verifies: "orgkms assumes the role with this org's own external ID, so the key is meant for this org", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "the role is assumed with the external ID of org {org}"},
			"fail": {Detail: "the configured key is not assumed with the external ID of org {org}", Remedy: "enter the Key ARN and Role ARN again (Step 2), and make the role's trust policy require this org's external ID"},
		}},
		{ID: "roundtrip", Name: "Encrypt and decrypt round trip", Verifies: "orgkms encrypts and decrypts a test key with the key (kms:Encrypt, kms:Decrypt), with an encryption context naming the org", Outcomes: map[string]cmk.Text{
			"pass":            {Detail: "encrypted and decrypted a test key with key material {version}"},
			"fail:permission": {Detail: "permission missing: {permission}", Remedy: keyPolicyRemedy},
			"fail":            {Detail: "{error}", Remedy: "{remedy}"},
		}},
		{ID: "rotation", Name: "Key rotation", Verifies: "automatic key rotation is on (GetKeyRotationStatus), and AWS reports the key's rotations (a key material ID, or ListKeyRotations), by which orgkms follows them", Evaluate: rotation, Outcomes: map[string]cmk.Text{
			"pass":         {Detail: "current key material {current}; orgkms follows each rotation"},
			"pass:auto":    {Detail: "automatic key rotation every {period_days} days, next on {next}; orgkms follows each rotation (current key material {current})"},
			"pass:unknown": {Detail: "current key material {current}; orgkms follows each rotation (it may not read the rotation schedule: kms:GetKeyRotationStatus is not allowed, which is optional)"},
			"warn":         {Detail: "AWS reports no key material ID and no rotation of the key", Remedy: rotationRemedy},
			"warn:off":     {Detail: "automatic key rotation is off for key {key}: its key material never changes unless rotated on demand", Remedy: rotationRemedy},
		}},
		{ID: "latency", Name: "Latency", Verifies: "a round trip to AWS KMS is fast enough", Outcomes: map[string]cmk.Text{
			"pass": {Detail: "a round trip took {rtt}"},
			"warn": {Detail: "a round trip took {rtt}", Remedy: "a key in a Region near orgkms keeps activation and rotation fast"},
		}},
	},
	Reasons: map[cmk.Reason]string{
		cmk.ReasonDisabled:        "key {key} in AWS account {vault} is disabled or scheduled for deletion; enable the key in the AWS KMS console (Customer managed keys → key → Key actions → Enable), after Key actions → Cancel key deletion if it is Pending deletion",
		cmk.ReasonNotYetActive:    "key {key} in AWS account {vault} is not usable until {date}",
		cmk.ReasonExpired:         "key {key} in AWS account {vault} expired on {date} (its imported key material expired): import the key material again",
		cmk.ReasonUntagged:        "key {key} in AWS account {vault} has new key material {version}, but the configured role is not bound to org {org}, so orgkms keeps using key material {active}; enter the Key ARN and Role ARN again (Step 2)",
		cmk.ReasonPermissionLost:  "role {tenant} lost {permission} on key {key} in AWS account {vault}; allow it again in the key policy (Customer managed keys → key → Key policy)",
		cmk.ReasonUnauthorized:    "orgkms may no longer assume role {tenant} ({error}); let orgkms' AWS account assume it again with this org's external ID (IAM → Roles → the role → Trust relationships)",
		cmk.ReasonDeleted:         "key {key} in AWS account {vault} is scheduled for deletion on {date}: cancel it with CancelKeyDeletion (Key actions → Cancel key deletion), then enable it, or the org's data is lost",
		cmk.ReasonDeletedUnknown:  "key {key} is not found in AWS account {vault} ({error}); if it is scheduled for deletion, cancel it with CancelKeyDeletion (Key actions → Cancel key deletion)",
		cmk.ReasonDeletedUnlisted: "key {key} is not found in AWS account {vault}: it was deleted, or the role may no longer see it; if it is Pending deletion, cancel it with CancelKeyDeletion (Key actions → Cancel key deletion)",
		cmk.ReasonPurged:          "key {key} was deleted from AWS account {vault} (absent since {date}): AWS KMS cannot restore a deleted key, the org's data is unrecoverable",
		cmk.ReasonNoKeyConfigured: "no key is configured: enter the Key ARN and Role ARN (Step 2)",
	},
	Remedies: map[string]string{
		fault.CredentialsInvalid.Code(): "the platform's own AWS credentials were refused: ask the platform operator",
		fault.CMKConsentRevoked.Code():  trustRemedyTenant,
		fault.PermissionDenied.Code():   "check the role's trust policy (IAM → Roles → {tenant} → Trust relationships: orgkms' AWS account with sts:ExternalId = this org's external ID) and the key policy (kms:Encrypt, kms:Decrypt, kms:DescribeKey, kms:ListKeyRotations for the role)",
		fault.KeyDisabled.Code():        "enable the key in the AWS KMS console (Customer managed keys → key → Key actions → Enable); if it is Pending deletion, first Key actions → Cancel key deletion",
		fault.KeyNotFound.Code():        "check the Key ARN; if the key is Pending deletion, cancel it with CancelKeyDeletion",
		fault.Invalid.Code():            "check the Key ARN and Role ARN",
		fault.Unavailable.Code():        "retry in a moment; if it persists, check the Region in the Key ARN",
	},
	Permission:        permissionLabel,
	MissingOperations: missingOperations,
}

// trustRemedyTenant is trustRemedy for Remedies, which know {tenant} only.
const trustRemedyTenant = "let orgkms' AWS account assume role {tenant} again with this org's external ID (IAM → Roles → the role → Trust relationships)"

// keySpec judges the key spec of an AWS KMS key.
func keySpec(d masterkey.Description, _ cmk.Vars) (cmk.CheckStatus, string, cmk.Vars) {
	v := cmk.Vars{"key_type": d.KeyType, "key_size": strconv.Itoa(d.KeySize)}
	if d.KeyType == "SYMMETRIC_DEFAULT" {
		return cmk.Pass, "pass", v
	}
	return cmk.Fail, "fail", v
}

// rotationRemedy says how to turn on automatic rotation.
const rotationRemedy = "turn on automatic key rotation (Customer managed keys → {key} → Key rotation → Automatically rotate this KMS key, or EnableKeyRotation); orgkms re-encrypts the org's keys under each new key material"

// rotation warns when automatic rotation is off (GetKeyRotationStatus), or,
// when that is not readable, when AWS reports neither a key material ID nor
// a rotation of the key (the driver then reports OriginalMaterial).
func rotation(d masterkey.Description, _ cmk.Vars) (cmk.CheckStatus, string, cmk.Vars) {
	switch {
	case d.RotationKnown && !d.AutoRotation:
		return cmk.Warn, "warn:off", nil
	case d.RotationKnown:
		v := cmk.Vars{"period_days": "365", "next": "its next scheduled date"}
		if d.RotationPeriod > 0 {
			v["period_days"] = strconv.Itoa(int(d.RotationPeriod / (24 * time.Hour)))
		}
		if !d.NextRotation.IsZero() {
			v["next"] = d.NextRotation.UTC().Format("2006-01-02")
		}
		return cmk.Pass, "pass:auto", v
	case d.Key.Version == awskms.OriginalMaterial:
		return cmk.Warn, "warn", nil
	}
	return cmk.Pass, "pass:unknown", nil
}

// missingOperations returns ENCRYPT_DECRYPT when the key's usage is
// another.
func missingOperations(d masterkey.Description) []string {
	for _, op := range d.Operations {
		if op == "ENCRYPT_DECRYPT" {
			return nil
		}
	}
	return []string{"ENCRYPT_DECRYPT"}
}

// permissionLabel is an IAM action as the key policy names it.
func permissionLabel(p string) string {
	if p == "" {
		return "kms:Encrypt and kms:Decrypt"
	}
	return p
}
