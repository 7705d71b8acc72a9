// Package localkey is the platform master-key driver: a 256-bit key held by
// orgkms itself, in a file (created with mode 0600 on first start) or in an
// environment variable.
//
// # URIs
//
//	local:///var/lib/orgkms/master.key   a file holding 32 raw bytes
//	local:env:ORGKMS_MASTER_KEY          an environment variable holding 32 bytes, base64
//
// # Versions
//
// The version of a local key is its key check value: the first 8 bytes of
// HMAC-SHA-256(key, "orgkms/localkey/version"), in hex. It names the exact
// key material without revealing it, so a blob wrapped by one key file is
// never silently unwrapped with another.
//
// A key file holds one or more versions: 32 bytes each, oldest first; the
// last is the current version, which wraps. A file of exactly 32 bytes
// (what orgkms wrote before versions existed) is a key with one version.
// [AddVersion] (`orgkms master-key rotate`) appends a new version and
// replaces the file atomically; the older versions stay readable, so
// every blob they wrapped still unwraps until the platform re-wrap job
// has moved it to the current version. The provider reads the file again
// when its size or modification time changes: a running node sees a new
// version at its next use. A key in an environment variable has exactly
// one version; it is replaced by moving the platform to another key
// (previous_master_keys).
//
// Wrapping uses XAES-256-GCM with the associated data bound natively.
package localkey
