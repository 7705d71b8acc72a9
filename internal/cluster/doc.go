// Package cluster makes one orgkms process a node of a cluster on one
// store: it registers the node and heartbeats ([Config.Heartbeat]), and it
// applies every raised generation of an org (a change that must drop the
// org's unwrapped keys from every node: revoked, restored, lost, a re-wrap
// switched, fell back, an operator's purge) on this node and writes the
// node's receipt.
//
// # Delivery
//
// On PostgreSQL the node LISTENs on channel orgkms_generation over a
// dedicated connection ([Listener]), reconnecting with backoff; after every
// (re)connect it checks every org's generation, since notifications sent
// while it was disconnected are lost. Every node also checks every
// generation each [Config.GenerationCheck] as the fallback. The node that
// stored a change applies it at once ([Node.Changed]). SQLite is one node:
// no listener, the same code path and receipts.
//
// # Invariants
//
//   - A node applies a generation (reloads the org's CMK state, drops its
//     cached keys) before it writes the receipt for it.
//   - Stale node rule: while the node's last successful generation check is
//     older than [Config.StaleAfter], [Node.Fresh] fails and data-plane
//     calls for orgs on a customer key are refused with Unavailable (503,
//     retryable) instead of serving possibly revoked keys.
//   - [Node.Ready] is false until the first generation check succeeded,
//     while the node is stale, and while its node record is lost (it
//     registers again on the next heartbeat).
//   - Receipts of revocation-type generations (revoked, lost, fell_back,
//     purged; see [cmk.RevocationReason]) are also audit events
//     (cmk.purge_receipt, details node and generation) in the org's chain.
//   - A purge of every org (orgkms cache purge) raises every org's
//     generation.
package cluster
