// Package audit defines the append-only, hash-chained audit log of orgkms.
//
// # Chain
//
// Events form one chain per org (and one for the platform, under org ID
// [Platform]). Each event records the SHA-256 hash of its predecessor and its
// own hash over a canonical encoding of every field, so changing, removing or
// reordering any event breaks [Verify] at that event.
//
// # Invariants
//
//   - Events never contain key material or plaintext; Details hold IDs,
//     versions, states and reasons only.
//   - The store appends an event in the same transaction as the change it
//     describes, so an action is never reported done without its record.
package audit
