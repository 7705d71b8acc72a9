// Package gcpkms is the master-key driver for keys in Google Cloud KMS,
// through the official client (cloud.google.com/go/kms/apiv1, gRPC).
//
// # Refs
//
//	gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K
//	gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K#V
//
// The ID is the CryptoKey resource name, the version its number. On input
// the version may also be given Google's way,
// gcpkms://…/cryptoKeys/K/cryptoKeyVersions/V; refs always print in the
// first form. [ParseKeyName] parses the resource name as a customer pastes
// it from the Cloud console. Both are strict (Google's ID rules, no extra
// segments) and refuse locations outside Config.AllowedLocations, so a
// customer-entered name never sends orgkms to a location the operator did
// not allow.
//
// # Identity
//
// orgkms calls Cloud KMS as the platform's own service account
// (Config.CredentialsFile, or Application Default Credentials); customers
// grant that account roles/cloudkms.cryptoKeyEncrypterDecrypter and
// roles/cloudkms.viewer on their key, and never hand orgkms credentials.
// Config.Insecure (plaintext gRPC, no credentials) exists only for the
// in-process fake, package gcpkmsemu.
//
// # Operations
//
// Wrap is Encrypt on the key name (Google uses the primary version) with the
// associated data as additional_authenticated_data, so the driver binds AAD
// natively; the response's name gives the version recorded in the Wrapped.
// Unwrap is Decrypt on the key name, as Google requires; the service finds
// the version from the ciphertext and does not report it, so the recorded
// version serves errors and rotation tracking. Every request carries the
// CRC32C checksums Google documents; a response whose verified_* flags are
// false or whose ciphertext_crc32c or plaintext_crc32c does not match is
// discarded as Kind Unavailable (retryable).
//
// Describe reads the key: without a version its primary (a new primary is a
// rotation), with one that version. ENABLED is the only usable state;
// DISABLED and DESTROY_SCHEDULED are Kind KeyDisabled (the latter naming the
// destroy date, also reported by [Provider.DeletedKey]); DESTROYED is Kind
// KeyDestroyed. [VersionStatus] (a version's state in orgkms' terms: usable,
// revoked with a reason and destroy date, lost) and [DescribeVersion] are
// pure functions, for callers that read keys themselves (the cloud-neutral
// CMK lifecycle).
//
// # Errors
//
// classify maps the gRPC status code and its typed details, never message
// text: FAILED_PRECONDITION by its PreconditionFailure violation
// (KEY_DISABLED, KEY_DESTROY_SCHEDULED, KEY_DESTROYED); PERMISSION_DENIED →
// PermissionDenied naming the IAM permission (from ErrorInfo when sent);
// NOT_FOUND → KeyNotFound; UNAUTHENTICATED → CredentialsInvalid;
// INVALID_ARGUMENT on Decrypt → Integrity; RESOURCE_EXHAUSTED, UNAVAILABLE,
// DEADLINE_EXCEEDED and a context deadline → Unavailable. Calls are retried
// with backoff on UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED (the
// client's default omits the quota code); Config.Timeout bounds each
// operation, retries included.
//
// # Request budget
//
// With Config.Gate, every RPC attempt (a unary client interceptor, which
// the client's retries call once per attempt) waits for the budget of the
// key's project and location ([VaultOf]), shared by every org whose key is
// there; a RESOURCE_EXHAUSTED answer is reported to it with the delay of
// its google.rpc.RetryInfo (when Google sends one), which pauses that
// project and location and halves its budget. A refusal of the gate is a
// *fault.Error the retry policy does not retry.
package gcpkms
