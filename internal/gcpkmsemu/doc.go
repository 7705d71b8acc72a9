// Package gcpkmsemu is an in-process fake of Google Cloud KMS's
// KeyManagementService gRPC API, for tests and development: the official
// client (cloud.google.com/go/kms/apiv1) reaches it over a real gRPC
// connection on a loopback listener, exactly as it reaches Google:
// [Server.Start] in plaintext (the client without credentials), or
// [Server.StartTLS] with a self-signed certificate, over which the client
// sends its credentials' bearer token as it does to Google.
//
// # What it implements
//
// GetCryptoKey, GetCryptoKeyVersion, ListCryptoKeyVersions, CreateCryptoKey,
// CreateCryptoKeyVersion, UpdateCryptoKeyVersion (state only),
// UpdateCryptoKeyPrimaryVersion, DestroyCryptoKeyVersion,
// RestoreCryptoKeyVersion, Encrypt and Decrypt, following Google's
// documented semantics:
//
//   - A key has one primary version; Encrypt on the key name uses it and
//     answers with the version's name; Decrypt takes the key name only (a
//     version name is INVALID_ARGUMENT) and finds the version from the
//     ciphertext, which names it.
//   - Only ENABLED versions encrypt or decrypt; others answer
//     FAILED_PRECONDITION with a google.rpc.PreconditionFailure violation
//     (KEY_DISABLED, KEY_DESTROY_SCHEDULED, KEY_DESTROYED) whose subject is
//     the version. Destroy schedules destruction after the key's
//     destroy_scheduled_duration (default 30 days); once the fake's clock
//     passes destroy_time the version is DESTROYED and its material gone.
//     Restore gives DISABLED.
//   - The additional authenticated data is bound by AES-256-GCM: a wrong
//     AAD, another key's ciphertext or a modified one is INVALID_ARGUMENT.
//   - CRC32C (Castagnoli) fields: a request checksum that does not match is
//     INVALID_ARGUMENT; a matching one sets the response's verified_* flag;
//     responses carry ciphertext_crc32c / plaintext_crc32c.
//   - IAM: each key has an allow list of principals per permission
//     (cloudkms.cryptoKeyVersions.useToEncrypt, ...). A caller without the
//     permission gets PERMISSION_DENIED with Google's message shape and an
//     ErrorInfo{reason: IAM_PERMISSION_DENIED, metadata: permission}. The
//     principal is the bearer token's mapped name ([Server.MapToken]), or
//     [Anonymous] for a caller without credentials.
//   - An unknown key or version is NOT_FOUND.
//
// # Fault injection
//
// [Server.SetLatency] delays every call (honouring the caller's deadline);
// [Server.FailNext] and [Server.SetOutage] answer UNAVAILABLE;
// [Server.ExhaustNext] answers RESOURCE_EXHAUSTED (a quota), and
// [Server.ExhaustNextRetry] with Google's ErrorInfo and a RetryInfo;
// [Server.SetRateLimit] models a request quota (RESOURCE_EXHAUSTED beyond
// it); [Server.Requests] lists every call with its resource name and time;
// [Server.CorruptResponses] sends wrong response checksums, as a
// corruption in transit would.
//
// # Not modelled, or not verified against Google
//
// Key rings as objects, asymmetric and MAC keys, import jobs, automatic
// rotation by schedule, real quotas (only injected answers and one rate limit for all keys), the HSM 8 KiB
// limit, the delay Google may take to apply a disable (seconds to hours),
// and list filters other than state=ENABLED. Google's ciphertext format is
// opaque; the fake's (tag, version ID, nonce, AES-256-GCM) is its own, and
// only this fake's callers may rely on it. Whether Cloud KMS attaches
// ErrorInfo to PERMISSION_DENIED is unverified (other Google APIs do); the
// gcpkms driver falls back to the permission of the operation. The message
// texts follow public logs and are not part of any contract.
package gcpkmsemu
