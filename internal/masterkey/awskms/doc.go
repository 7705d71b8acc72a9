// Package awskms is the master-key driver of AWS KMS: a customer's
// symmetric KMS key, reached by assuming a role in the customer's account,
// wraps the org's root key.
//
// A key is named by its key ARN, the role orgkms assumes and the org's
// external ID ([Key], [ParseKey], [ParseURI]):
//
//	awskms://arn:aws:kms:REGION:ACCOUNT:key/KEY-ID?external_id=ID&role=ROLE-ARN#MATERIAL-ID
//
// Aliases and bare key IDs are refused (an alias can be repointed), and so
// are Regions outside Config.AllowedRegions. Without role and external_id
// the platform's own credentials call KMS (a platform master key).
//
// Credentials: the platform's AWS credentials call STS AssumeRole for the
// role, with the org's external ID (the confused-deputy defence: orgkms
// generates it, one per org, and the customer's trust policy requires it)
// and a session name derived from it; the session credentials are cached
// per Region, role and external ID until Config.ExpiryWindow before they
// expire. An STS refusal is PermissionDenied sts:AssumeRole with the
// trust-policy remedy ([Classify]).
//
// Wrap is KMS Encrypt with KeyId = the key ARN and the encryption context
// {"orgkms:aad": aad}; Unwrap is Decrypt with the same KeyId and context.
// The version is the key's current key material ID: AWS keeps the key ID
// across automatic and on-demand rotations and changes the backing
// material, which DescribeKey reports as CurrentKeyMaterialId (and
// ListKeyRotations as each rotation's KeyMaterialId); a new material ID is a
// rotation ([Provider.MaterialID]). Old material keeps decrypting.
//
// Key states: Enabled is usable; Disabled is KeyDisabled; PendingDeletion
// is KeyDisabled with the deletion date and "cancel it with
// CancelKeyDeletion" (and [Provider.DeletedKey] reports the date); a
// deleted key (NotFoundException) is KeyNotFound. Errors are classified by
// their API error code ([Classify]); throttling and outages are
// Unavailable (retryable).
//
// # Request budget
//
// With Config.Gate, every HTTP attempt to KMS (the SDK's retries included:
// a middleware right after the retry step admits each attempt once) waits
// for the budget of the key's account and Region ([VaultOf]), shared by
// every org whose key is there; a throttled answer (ThrottlingException
// and the SDK's other throttling codes, or HTTP 429) is reported to it,
// which pauses that account and Region (AWS names no Retry-After) and
// halves its budget. A refusal of the gate is never retried by the SDK.
//
// The tests run the driver, through the official SDK over HTTP, against
// local-kms behind the awsemu proxy (which adds key material IDs,
// ListKeyRotations and RotateKeyOnDemand) and the awsemu STS stand-in.
package awskms
