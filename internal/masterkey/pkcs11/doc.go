// Package pkcs11 is the master-key driver for a platform master key held in
// a PKCS#11 HSM (github.com/miekg/pkcs11, cgo). It is tested on SoftHSM2.
//
// # URIs
//
// A key is named in the style of RFC 7512:
//
//	pkcs11:token=orgkms;object=platform-kek
//	pkcs11:token=orgkms;object=platform-kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/orgkms/hsm.pin
//
// token is the token label and object the key's CKA_LABEL (both required;
// type=secret-key is accepted). The query attributes module-path and
// pin-source (file:/ABSOLUTE/PATH or env:VARIABLE) default to the
// configuration (pkcs11.module_path, pkcs11.pin_source); prefer the
// configuration, so the stored reference names only the token and the key.
// The PIN itself is never in a URI (pin-value is refused), the
// configuration, a log line, an error or a metric. [ParseRef] normalizes a
// URI to one canonical ID (path attributes token, object; query attributes
// module-path, pin-source; percent-encoding where needed) and refuses
// anything else with Kind Invalid naming the expected form.
//
// # Versions
//
// A version of a key is one AES-256 secret key object on the token with the
// key's label and the version, a positive decimal number, as its CKA_ID
// ("1", "2", ...). The highest is current: [Provider.Describe] reports it,
// Wrap uses it, and Unwrap uses exactly the version a blob names. Adding a
// version ([Provider.NewVersion], orgkms hsm new-version: C_GenerateKey with
// CKA_SENSITIVE true and CKA_EXTRACTABLE false) is a rotation of the
// platform key; the platform key rotation job sees it through Describe and
// re-wraps every org. Old versions stay on the token to unwrap what they
// wrapped. Describe refuses (Kind Invalid) a version that is not AES-256,
// is extractable or is not sensitive; a version is disabled while its
// CKA_ENCRYPT or CKA_DECRYPT is false ([Provider.SetEnabled]).
//
// Wrap finds the current version at most once a second (a version another
// process generated is used within a second; Describe always looks); exact
// versions' object handles are cached until a handle fails.
//
// # Wrapping
//
// AES-256-GCM inside the HSM (C_Encrypt/C_Decrypt, CKM_AES_GCM, a random
// 12-byte IV from crypto/rand, or the one the HSM chose, and a 128-bit tag),
// binding the associated data natively. The blob is
//
//	0x01 ‖ IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes)
//
// and the GCM associated data is 0x01 ‖ aad, so the format byte is
// authenticated too. CKM_AES_KEY_WRAP_PAD was not chosen: it has no
// associated data, and SoftHSM2 applies it only to key objects.
//
// A blob that fails the tag check is Kind Integrity. SoftHSM2 answers that
// with CKR_GENERAL_ERROR (not CKR_ENCRYPTED_DATA_INVALID), so during a GCM
// decryption CKR_GENERAL_ERROR means Integrity only while the session still
// answers C_GetSessionInfo; otherwise, and everywhere else, it is
// Unavailable.
//
// # Sessions
//
// Each token (module, token label, PIN source) has a bounded pool of
// read-write sessions (pkcs11.pool_size, default 4). A caller waits for a
// place, or gives up when its context ends (Kind Unavailable). The user
// logs in once per token: PKCS#11 logs in the application, not a session,
// until its last session closes; a fresh session that finds itself logged
// out logs in again. A session that fails with CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED or a lost token (CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN) is dropped and the call is
// tried once more on a fresh one; a lost token also makes the pool find the
// slot by label and log in again.
//
// A module may be initialized once per process and C_Finalize ends every
// session in it, so providers share one initialized module per path,
// counted: Close finalizes it when its last provider closes.
//
// # Errors
//
// Every failure is a *fault.Error with Provider "pkcs11" (the table is in
// classify.go and TestClassify): a refused, expired or locked PIN, an unset
// PIN variable or an unreadable PIN file is CredentialsInvalid with the
// remedy and the PIN source (never the PIN); device errors, a removed token
// and lost sessions are Unavailable (retryable); a missing key, version or
// token label is KeyNotFound; CKR_KEY_FUNCTION_NOT_PERMITTED is
// KeyDisabled; a wrong key type or a missing mechanism is Invalid.
package pkcs11
