// Package platformkey rotates the platform master key for the orgs it
// protects: it detects that their root keys are not wrapped by the current
// platform key version, and re-wraps them in a durable, leased job.
//
// # Detection
//
// Every node checks every Config.Check (and at start): it asks the
// platform key's provider for its current version ([Service.Current]:
// a new version of a local key file, a new PKCS#11 key object, a new
// vault key version) and counts the orgs whose active wrapping is a
// platform key (master_key or one of previous_master_keys) at another
// version. When there are any, it starts the re-wrap job; the store
// allows one pending or running job, so of all nodes one starts it, and
// the job runner's lease makes one node run it.
//
// # The job
//
// One job ([JobKind], in its own table so the CMK runner never claims it)
// walks the orgs by ID, a page (Config.Batch) at a time. For a page:
// copy (the root key from the node's cache when the org is in use, else
// an unwrap with the old version; a wrap with the current one; at most
// Config.Workers calls at once) → verify (each copy unwraps to the same
// root key; one store write adds every checked copy as a pending
// wrapping) →
// switch and drop (one store write: the copy becomes the only, active
// wrapping, the org's generation is raised so every node drops its cached
// state, and the org's chain gets a platform.rewrap event). Every write is
// fenced: a runner that lost its lease commits nothing. A resumed run
// starts over, skips the orgs already on the current version and verifies
// the copies an interrupted run left, so a crash at any step loses no org
// and wraps none twice. The platform chain records the job's start and
// its end (platform.rewrap.start, .done, .failed), never key bytes nor
// where the key lives.
//
// A job that failed for good is followed by another only after a back-off
// (5 minutes, doubling with each failure in a row up to 6 hours; at once
// after a restart), not at every check.
//
// Orgs on a customer managed key, or moving to or from one (a CMK job
// owns them), are left alone. An org whose root key is wrapped by a key
// orgkms is not configured with is never skipped silently: [Service.Status]
// names it and the key, and says to add it to previous_master_keys.
package platformkey
