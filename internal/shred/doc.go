// Package shred deletes orgs and data keys by crypto-shredding: an org
// (or one of its data keys) is first scheduled for deletion with a
// waiting period, during which it is refused on the data plane and the
// deletion can be cancelled; at the deletion date a durable job erases
// every wrapped root key and data key version it had, so that no
// ciphertext of it can ever be decrypted again. It also disables and
// enables data keys.
//
// # Invariants
//
//   - Every lifecycle change is stored with its audit event and a raised
//     generation of the org, in one transaction: every node drops the
//     org's cached keys and reloads its lifecycle ([keys.OrgRefusal],
//     [keys.KeyRefusal] then refuse it).
//   - The shred is a job of the [jobs] runner: leased and fenced, claimable
//     only from the deletion date, resumable after a crash. Its steps are
//     erase (one transaction: the rows, the lifecycle "deleted", the event
//     org.shredded or key.shredded, the step) and scrub (the database
//     files keep no copy of the erased rows); both are idempotent.
//   - The events record what was destroyed (counts, root key wrapping IDs,
//     key names and versions), never key bytes. The audit chain of a
//     deleted org stays and verifies.
//   - A deleted org's ID stays taken (its row is a tombstone): every
//     ciphertext of the org keeps failing with org_deleted, and a new org
//     is a new identity with a new ID.
package shred
