// Package keys is the data-plane domain of orgkms: orgs, their root keys,
// their named and versioned data keys, and the operations on them (encrypt,
// decrypt, rewrap, datakey), with the in-memory cache of unwrapped keys.
//
// # Hierarchy
//
//	master key (platform key or customer managed key, via masterkey.Keeper)
//	  └─ wraps ─ org root key (one per org, 256-bit)
//	               └─ wraps ─ org data keys (named, versioned, 256-bit)
//	                            └─ encrypt ─ data (envelope ciphertext format)
//
// # Invariants
//
//   - Key material is stored only wrapped: data key versions by the org root
//     key, the root key by the master key, each binding org, key and version
//     as associated data.
//   - Unwrapped root keys and data keys live only in the [Cache], for at most
//     its TTL, and are dropped at once by Purge.
//   - Every ciphertext binds org ID, key name, key version and the caller's
//     context: it never decrypts under another org, key or context.
//   - Every admin change is stored together with its audit event.
//   - The platform master key is one key (Config.PlatformKey, which wraps)
//     plus the previous platform keys (Config.PreviousPlatformKeys, which
//     only unwrap): a root key wrapped by any of them is platform-wrapped,
//     and its failures and audit details are worded as "the platform
//     master key", never its location (see [PlatformKeyFault]).
package keys
