package client

// Code is a stable error code of the API: the "code" of an error body,
// [Error.Code]. A Code is also an error value, so that
//
//	if errors.Is(err, client.CodeCiphertextInvalid) { ... }
//
// tells whether err (or an error it wraps) is an API [Error] with that
// code. That is the one way to branch on an API error; [ErrorCode]
// returns the code as a string, for logs.
type Code string

// Error returns the code itself.
func (c Code) Error() string { return string(c) }

// The codes the API sends, with the HTTP status that carries each.
const (
	CodeInternal                    Code = "internal"                       // 500: a failure of orgkms itself; quote the request ID
	CodeInvalidArgument             Code = "invalid_argument"               // 400: a field is missing or malformed (Error.Field)
	CodeCiphertextInvalid           Code = "ciphertext_invalid"             // 400: not produced by this org, key and context, or modified
	CodeNotFound                    Code = "not_found"                      // 404: an org, key, token or user does not exist
	CodeConflict                    Code = "conflict"                       // 409: exists already, or its state forbids the action
	CodePayloadTooLarge             Code = "payload_too_large"              // 413: a payload or batch exceeds a limit
	CodeUnauthenticated             Code = "unauthenticated"                // 401: no valid API token
	CodePermissionDenied            Code = "permission_denied"              // 403: the token's roles or org scope do not allow it
	CodeMethodNotAllowed            Code = "method_not_allowed"             // 405: the route exists, not for this HTTP method (see Allow)
	CodeMasterKeyNotFound           Code = "master_key_not_found"           // 424: the master key does not exist
	CodeMasterKeyDisabled           Code = "master_key_disabled"            // 424: the master key is disabled or outside its dates
	CodeMasterKeyDestroyed          Code = "master_key_destroyed"           // 424: the master key was purged
	CodeMasterKeyPermissionMissing  Code = "master_key_permission_missing"  // 424: orgkms lacks a permission on the master key
	CodeMasterKeyCredentialsInvalid Code = "master_key_credentials_invalid" // 424: orgkms' credentials for the key's provider fail
	CodeUnavailable                 Code = "unavailable"                    // 503: transient; retry after Error.RetryAfter
	CodeRateLimited                 Code = "rate_limited"                   // 429: refused; retry after Error.RetryAfter
	CodeKeyVersionRetired           Code = "key_version_retired"            // 400: the ciphertext's version is below min_decryption_version
	CodeCMKKeyDisabled              Code = "cmk_key_disabled"               // 424: the org's customer managed key is disabled
	CodeCMKPermissionMissing        Code = "cmk_permission_missing"         // 424: orgkms lost access to the org's customer managed key
	CodeCMKKeyDeleted               Code = "cmk_key_deleted"                // 424: the org's customer managed key is soft-deleted
	CodeCMKKeyDestroyed             Code = "cmk_key_destroyed"              // 424: the org's customer managed key was purged
	CodeCMKConsentRevoked           Code = "cmk_consent_revoked"            // 424: the customer withdrew admin consent for orgkms

	CodeWebhookURLInsecure      Code = "webhook_url_insecure"      // 400: a webhook URL is http:// where https:// is required
	CodeWebhookAddressForbidden Code = "webhook_address_forbidden" // 400: a webhook URL's host is not a public address
	// Staged revocation: the org's key administrators restricted the org.
	CodeOrgDecryptOnly Code = "org_decrypt_only" // 424: decrypt-only mode: encrypt, rewrap and datakey are refused
	CodeOrgRevoked     Code = "org_revoked"      // 424: the org's keys were revoked in orgkms by its key administrators
	// Org deletion and the data-key lifecycle.
	CodeOrgPendingDeletion Code = "org_pending_deletion" // 409: the org is scheduled for deletion; cancel it to restore service
	CodeOrgDeleted         Code = "org_deleted"          // 410: the org was deleted and crypto-shredded
	CodeKeyDisabled        Code = "key_disabled"         // 409: the data key is disabled
	CodeKeyPendingDeletion Code = "key_pending_deletion" // 409: the data key is scheduled for deletion
	CodeKeyDeleted         Code = "key_deleted"          // 410: the data key was deleted and crypto-shredded
)

// Codes returns every code the API sends.
func Codes() []Code {
	return []Code{
		CodeInternal, CodeInvalidArgument, CodeCiphertextInvalid, CodeNotFound, CodeConflict, CodePayloadTooLarge,
		CodeUnauthenticated, CodePermissionDenied, CodeMethodNotAllowed, CodeMasterKeyNotFound, CodeMasterKeyDisabled, CodeMasterKeyDestroyed,
		CodeMasterKeyPermissionMissing, CodeMasterKeyCredentialsInvalid, CodeUnavailable, CodeRateLimited,
		CodeKeyVersionRetired, CodeCMKKeyDisabled, CodeCMKPermissionMissing, CodeCMKKeyDeleted, CodeCMKKeyDestroyed,
		CodeCMKConsentRevoked,
		CodeWebhookURLInsecure, CodeWebhookAddressForbidden,
		CodeOrgDecryptOnly, CodeOrgRevoked,
		CodeOrgPendingDeletion, CodeOrgDeleted, CodeKeyDisabled, CodeKeyPendingDeletion, CodeKeyDeleted,
	}
}
