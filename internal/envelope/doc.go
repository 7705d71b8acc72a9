// Package envelope implements the orgkms ciphertext format and the
// XAES-256-GCM AEAD it is built on. It is pure: no I/O, no global state,
// no logging. Randomness comes only from crypto/rand.
//
// # Primitive
//
// Every message is encrypted with XAES-256-GCM (c2sp.org/XAES-256-GCM): a
// 256-bit [Key] and a fresh 192-bit random nonce per message. The first half of
// the nonce derives a single-use AES-256-GCM key (NIST SP 800-108r1 counter KDF
// with CMAC-AES-256); the second half is the AES-GCM nonce. Random nonces are
// therefore safe for any number of messages a deployment will ever produce,
// without coordinating counters across nodes. See docs/format.md for the bound.
//
// # Layers
//
//   - [Key.Seal] and [Key.Open] are the raw AEAD: nonce || ciphertext || tag.
//   - [Encrypt] and [Decrypt] produce and consume the orgkms ciphertext format:
//     a 32-byte header (magic "okm", format, key version, nonce) followed by the
//     AEAD output. The header and a [Binding] (org ID, key name, optional caller
//     context) are authenticated as associated data, so a ciphertext never
//     decrypts under another org, another key name, another key version or
//     another context.
//   - [WrapKey] and [UnwrapKey] protect key material at rest (data key versions
//     under the org root key, the root key under a local master key). Their
//     associated data is domain-separated from ciphertext associated data.
//
// docs/format.md specifies every byte; testdata/vectors holds the test vectors.
//
// # Errors
//
// Every failure caused by input is one of two sentinels, tested with
// [errors.Is]: [ErrInvalid] for malformed input (wrong length, unknown format,
// key version 0, oversized fields) and [ErrAuth] for input that is well formed
// but does not authenticate (wrong key, wrong binding, tampered bytes).
// Use of a destroyed [Key] returns [ErrDestroyed] (or panics, for the methods
// without an error result). Errors never contain key bytes or plaintext.
//
// # Invariants
//
//   - A [Key] never exposes its bytes: it formats and logs as "[redacted]".
//   - Functions that return an error return zero values with it (nil slices,
//     the zero [Header]); a failed open leaves no plaintext in dst's spare
//     capacity.
//   - Output is appended to dst; output never aliases plaintext or ciphertext
//     inputs (overlap is a programming error and panics, as in crypto/cipher).
package envelope
