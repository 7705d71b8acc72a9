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
// Wrapping uses XAES-256-GCM with the associated data bound natively.
package localkey
