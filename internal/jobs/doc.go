// Package jobs is the durable job runner: it claims jobs from the store
// under a lease, runs them with a [Handler] that does the work (package
// cmk supplies the re-wrap jobs), retries transient failures with backoff,
// reclaims the jobs this node held before a restart, and tells a stalled
// job (its holder gone) from a running one.
//
// # Leases
//
//   - A claim leases one job to an owner NODE/TOKEN until now+Lease; the
//     token is new for each claim. With a [BatchStore] one claim write
//     leases several jobs to one such owner, each under its own fence and
//     run by its own worker: a lease is (job, owner, fence), never shared
//     by two workers. At most the Run's worker count of jobs run at once.
//   - Every claim raises the job's fencing token ([Job.Fence]). Every
//     write of the holder (a step, a renewal, a release for retry, the
//     finish) is stored only while the job is running under the same owner
//     AND the same fence, checked in the write's own transaction: a runner
//     that lost its lease gets Conflict and can never commit a step.
//   - While a job runs, the runner renews its lease every Lease/3. When a
//     renewal is refused (the fence moved: another runner claimed the job),
//     or the lease ran out unrenewed (the store unreachable), the job's
//     context is cancelled at once; the run ends with outcome lost.
//   - A job whose lease expired is claimable again: another runner resumes
//     it from its last durable step. The handler's steps are idempotent.
//
// # Observer
//
// [Config.Observer] sees every durable step ([Runner.Step]) and the outcome
// of every run: metrics and the crash tests (cmd/orgkms, build tag
// crashtest) observe jobs through it; nothing in this package acts on it.
package jobs
