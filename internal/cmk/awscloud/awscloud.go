// Package awscloud is the AWS cloud of customer managed keys: AWS KMS keys
// (driver internal/masterkey/awskms) that orgkms uses by assuming an IAM
// role in the customer's account with an external ID unique to the org (the
// confused-deputy defence). It supplies package cmk with the fields a
// customer enters, the checks of Test Managed Key and the revocation
// reasons, all in the AWS console's words.
//
// The external ID of an org is derived, not stored: "orgkms-" and the first
// 128 bits, hex, of HMAC-SHA256(org ID) under the platform's secret
// (cmk.aws.external_id_secret). It is stable (the same org always gets the
// same ID, on every node, with no migration), unique per org, and cannot be
// computed from the org ID without the secret, so a customer cannot make
// orgkms assume another org's role. The secret must therefore never change:
// a new secret gives every org a new external ID, which their trust
// policies do not name.
package awscloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

// Name is the cloud's name in cmk.clouds and the API.
const Name = "aws"

// MinSecret is the least length of the external-ID secret, in bytes.
const MinSecret = 32

// Cloud is the [cmk.Cloud] of AWS KMS with a cross-account IAM role.
type Cloud struct {
	// AllowedRegions, when not empty, are the only Regions whose keys are
	// accepted (cmk.aws.allowed_regions, as the driver's).
	AllowedRegions []string
	// AccountID is orgkms' AWS account, the trusted entity of the
	// customer's role; PrincipalARN, when set, is orgkms' own principal in
	// it (for a trust policy narrower than the account).
	AccountID    string
	PrincipalARN string
	// Secret derives the orgs' external IDs (see the package doc).
	Secret []byte
}

var (
	_ cmk.Cloud                = Cloud{}
	_ cmk.OrgBoundCloud        = Cloud{}
	_ cmk.PendingDeletionCloud = Cloud{}
)

// Name returns "aws".
func (Cloud) Name() string { return Name }

// DisplayName returns "AWS KMS".
func (Cloud) DisplayName() string { return "AWS KMS" }

// Scheme returns the awskms master-key scheme.
func (Cloud) Scheme() string { return awskms.Scheme }

// ExternalID returns the org's external ID (see the package doc).
func (c Cloud) ExternalID(orgID string) string {
	m := hmac.New(sha256.New, c.Secret)
	m.Write([]byte("orgkms aws external id\x00"))
	m.Write([]byte(orgID))
	return "orgkms-" + hex.EncodeToString(m.Sum(nil)[:16])
}

// Authorization is a role in the customer's account that trusts orgkms'
// account with the org's external ID.
func (c Cloud) Authorization(orgID string) cmk.Authorization {
	values := []cmk.Value{
		{Name: "account_id", Label: "orgkms' AWS account ID (Account ID of the trusted entity)", Value: c.AccountID},
		{Name: "external_id", Label: "External ID (Require external ID)", Value: c.ExternalID(orgID)},
	}
	if c.PrincipalARN != "" {
		values = append(values, cmk.Value{Name: "principal_arn", Label: "orgkms' principal ARN (for a trust policy naming the principal)", Value: c.PrincipalARN})
	}
	return cmk.Authorization{Method: cmk.AuthGrant, Service: "AWS KMS",
		TenantLabel: "Role ARN",
		TenantHelp:  "IAM console → Roles → the role → ARN, e.g. arn:aws:iam::111122223333:role/orgkms-cmk.",
		Instructions: "In the IAM console of the account that holds your key, open Roles → Create role. As trusted entity type choose \"AWS account\" → \"Another AWS account\", enter orgkms' AWS account ID below, tick \"Require external ID\" and enter the external ID below (it is this org's own: never reuse it for another org). " +
			"Name the role (e.g. `orgkms-cmk`) and create it; then copy its ARN into Role ARN.",
		Access: "Then allow the role kms:Encrypt, kms:Decrypt, kms:DescribeKey and kms:ListKeyRotations on the key (and kms:GetKeyRotationStatus, optional, so Test Managed Key can check automatic rotation): in the AWS KMS console, Customer managed keys → the key → Key policy → Edit, add a statement with the role as Principal and these actions (or give the role an IAM policy with them on the key ARN, if the key policy lets IAM policies grant access).",
		Values: values}
}

// NormalizeTenant validates a role ARN, the account AWS customers
// authorize orgkms in.
func (Cloud) NormalizeTenant(tenant string) (string, error) {
	return awskms.ParseRoleARN(tenant)
}

// ConsentURL is never called: AWS has no consent round trip.
func (Cloud) ConsentURL(string, string, string) string { return "" }

// The fields a customer enters.
const (
	FieldKeyARN  = "key_arn"
	FieldRoleARN = "role_arn"
)

// Fields are the key ARN and the role ARN.
func (Cloud) Fields() []cmk.Field {
	return []cmk.Field{
		{Name: FieldKeyARN, Label: "Key ARN", Required: true, Size: 80, Example: "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			Help: "AWS KMS console → Customer managed keys → the key → General configuration → ARN. A symmetric encryption key (key spec SYMMETRIC_DEFAULT, key usage Encrypt and decrypt); not an alias. Turn on automatic key rotation (Key rotation tab): orgkms follows each rotation by itself."},
		{Name: FieldRoleARN, Label: "Role ARN", Required: true, Size: 70, Example: "arn:aws:iam::111122223333:role/orgkms-cmk",
			Help: "IAM console → Roles → the role you created for orgkms → ARN. Its trust policy must require this org's external ID."},
	}
}

// ParseKey cannot bind a key to an org; orgkms calls ParseOrgKey.
func (c Cloud) ParseKey(map[string]string, string) (masterkey.Ref, cmk.KeyLocation, error) {
	return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: FieldKeyARN, Reason: "an AWS key is configured for an org (its role is assumed with the org's external ID)"}
}

// ParseOrgKey validates the key and role ARNs for orgID: the ref names the
// org's external ID.
func (c Cloud) ParseOrgKey(orgID string, fields map[string]string, _ string) (masterkey.Ref, cmk.KeyLocation, error) {
	for name := range fields {
		if name != FieldKeyARN && name != FieldRoleARN {
			return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: name, Reason: fmt.Sprintf("an AWS KMS key has no field %q: give key_arn and role_arn", name)}
		}
	}
	if strings.TrimSpace(fields[FieldRoleARN]) == "" {
		return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: FieldRoleARN, Reason: "give the ARN of the IAM role orgkms assumes (IAM console → Roles → the role → ARN)"}
	}
	k, err := awskms.ParseKey(fields[FieldKeyARN], fields[FieldRoleARN], c.ExternalID(orgID), c.AllowedRegions)
	if err != nil {
		return masterkey.Ref{}, cmk.KeyLocation{}, err
	}
	return k.Ref(), location(k), nil
}

// location is where k lives: the key ARN, the key's account, its key ID,
// and the role authorized.
func location(k awskms.Key) cmk.KeyLocation {
	return cmk.KeyLocation{Container: k.ARN.String(), Short: k.ARN.Account + " (" + k.ARN.Region + ")", Name: k.ARN.KeyID, Tenant: k.RoleARN}
}

// OwnsKey reports whether key is assumed with orgID's external ID.
func (c Cloud) OwnsKey(orgID string, key masterkey.Ref) bool {
	k, err := awskms.KeyOf(key, nil)
	return err == nil && k.RoleARN != "" && hmac.Equal([]byte(k.ExternalID), []byte(c.ExternalID(orgID)))
}

// KeyFields returns the fields of a configured key. AWS keeps one key ARN
// across rotations: there is no version field.
func (Cloud) KeyFields(loc cmk.KeyLocation, _ string) map[string]string {
	return map[string]string{FieldKeyARN: loc.Container, FieldRoleARN: loc.Tenant}
}

// KeyURI renders an awskms ref, unversioned.
func (Cloud) KeyURI(ref masterkey.Ref) string { return ref.Unversioned().String() }

// Locate splits a master-key URI of a customer key
// (awskms://KEY-ARN?external_id=E&role=ROLE-ARN[#MATERIAL]).
func (Cloud) Locate(uri string) (cmk.KeyLocation, bool) {
	k, err := awskms.ParseURI(uri, nil)
	if err != nil {
		return cmk.KeyLocation{}, false
	}
	return location(k), true
}

// Rotated: rotation keeps the key ARN and changes its key material; the
// current material ID (Describe of the unversioned key) differs after one.
func (Cloud) Rotated(active string, desc masterkey.Description) bool {
	return desc.Key.Version != active
}

// PendingDeletion: AWS reports a key's pending deletion window only while
// its deletion is scheduled (state PendingDeletion, not Enabled).
func (Cloud) PendingDeletion(d masterkey.Description) bool {
	return !d.Enabled && d.SoftDeleteDays > 0
}

// Wording returns the AWS table of checks and reasons.
func (Cloud) Wording() *cmk.Wording { return &wording }

// Where names a key as the AWS console does: its key ID in its account
// and Region.
func (Cloud) Where(loc cmk.KeyLocation) string {
	return "AWS KMS key " + loc.Name + " in AWS account " + loc.Short
}

// VersionLabel: an AWS KMS key keeps its ARN across rotations; its key
// material changes.
func (Cloud) VersionLabel() string { return "Current key material" }
