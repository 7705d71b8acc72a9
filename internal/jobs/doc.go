// Package jobs is the durable job runner: it claims jobs from the store
// under a lease, runs them with a [Handler] that does the work (package
// cmk supplies the re-wrap jobs), retries transient failures with backoff,
// reclaims the jobs this node held before a restart, and tells a stalled
// job (its holder gone) from a running one.
//
// # Leases
//
//   - A claim leases one job to an owner NODE/TOKEN until now+Lease; the
//     token is new for each claim, so two workers never share a lease.
//   - Every write of the holder (a step, a release for retry, the finish)
//     is stored only while the holder still owns the job, checked in the
//     write's own transaction: a runner that lost its lease gets Conflict
//     and commits nothing.
//   - A job whose lease expired is claimable again: another runner resumes
//     it from its last durable step. The handler's steps are idempotent.
//
// # Observer
//
// [Config.Observer] sees every durable step ([Runner.Step]) and the outcome
// of every run: metrics and the crash tests (cmd/orgkms, build tag
// crashtest) observe jobs through it; nothing in this package acts on it.
package jobs
