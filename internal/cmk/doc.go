// Package cmk implements customer managed keys: the per-org lifecycle
// (authorize, configure, test, enable, rotate, revoke, disable, replace),
// the Test Managed Key checks, the probe that follows the customer's key,
// and the logic of the durable re-wrap jobs.
//
// The lifecycle knows no cloud: each cloud implements [Cloud] in a package
// of its own (internal/cmk/azurecloud, internal/cmk/awscloud), supplying how
// a customer authorizes orgkms, the fields that name a key and their
// validation, the table of Test Managed Key checks ([Wording]) and the
// revocation reasons in the customer's console's words, and how a new key
// version is detected. A cloud whose key refs name the org (AWS: the org's
// external ID) is an [OrgBoundCloud], proving ownership without the
// orgkms-org tag; one whose keys stay described while their deletion is
// scheduled is a [PendingDeletionCloud]. This package imports no masterkey
// driver.
//
// [Service.Impact] previews a destructive step (disable, replace, fall back,
// decrypt-only, revocation, org or data-key deletion) from the org's usage
// records, its record and the vault budget, and changes nothing.
//
// # Invariants
//
//   - Every re-wrap is copy → verify → switch → drop, durable at each step:
//     the root key is first wrapped by the target key and stored as a
//     pending wrapping, then unwrapped again and compared, then made the
//     only wrapping in one transaction. A crash at any point leaves the
//     active wrapping untouched until the switch, so an org is never lost by
//     orgkms itself.
//   - Once a CMK is active for an org, no wrapping by the platform key
//     remains (the switch deletes every other wrapping).
//   - When the CMK becomes unusable, the org's unwrapped keys are purged
//     from memory and every data-plane call fails fast with a cmk_* code
//     until the key is usable again.
//   - The re-wrap jobs run under the [jobs.Runner]: every step write carries
//     the job's owner and fencing token (AddJobWrapping, SwitchWrapping's
//     done job, FinishJob), so a run that lost its lease commits nothing.
//   - Probes are leased (Store.ClaimProbes): the cluster probes each org
//     once per probe interval, whatever the number of nodes; a switch to a
//     new key makes the org due at once, and a node that stops mid-round
//     hands the leases of its unfinished probes back (Store.ReleaseProbes),
//     and a restarted node releases those of its previous run, so a
//     rolling restart does not delay any org's probe by an interval.
//   - Staged revocation (staged.go) is the org administrators' own control:
//     decrypt-only mode refuses the operations that produce ciphertext
//     ([Service.ProduceGuard]: encrypt, rewrap, datakey) and a revocation in
//     effect refuses every call ([Service.Guard], org_revoked), on every
//     node from memory, each change raising the generation. A scheduled
//     revocation is applied by a leased job of its own table
//     ([StagedStore.StagedJobs]), once, in one fenced transaction.
package cmk
