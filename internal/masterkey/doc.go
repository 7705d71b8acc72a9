// Package masterkey defines the contract between orgkms and the services that
// hold master keys (the platform's local key, Azure Key Vault, ...), and the
// portable type every caller uses, [Keeper].
//
// # Drivers
//
// A driver implements [Provider] in its own package (localkey, azurekv, ...)
// and is registered explicitly in cmd/orgkms. Drivers classify every failure
// into a *fault.Error with a master-key Kind (KeyDisabled, KeyNotFound,
// PermissionDenied, Unavailable, ...). Every driver passes the shared
// conformance suite in masterkeytest.
//
// # Invariants
//
//   - A [Wrapped] always records the exact key version that wrapped it, and
//     Unwrap is always called with that version.
//   - Every wrap binds associated data naming the tenant. When the driver
//     cannot bind it natively, [Keeper] binds it by wrapping
//     salt‖SHA-256(aad)‖dek (16 random bytes of salt) and checking the digest
//     on unwrap, so a blob of one org never unwraps as another's, and two
//     wraps of one key differ even under deterministic AES key wrap.
//   - Unwrapped keys are returned to the caller and never logged or kept.
package masterkey
