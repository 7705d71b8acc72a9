package cmk

import (
	"context"
	"errors"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// State is the CMK lifecycle state of an org.
type State string

const (
	StatePlatform     State = "platform"     // no CMK: the root key is wrapped by the platform master key
	StateAuthorized   State = "authorized"   // consent recorded for a tenant; key may be configured; not yet enabled
	StateActivating   State = "activating"   // job: platform → CMK
	StateActive       State = "active"       // the root key is wrapped only by the CMK
	StateRotating     State = "rotating"     // job: old CMK version → new version
	StateReplacing    State = "replacing"    // job: old CMK → new CMK
	StateRevoked      State = "revoked"      // the CMK is unusable (disabled, deleted, permission or consent gone); data plane refused
	StateDeactivating State = "deactivating" // job: CMK → platform
	StateLost         State = "lost"         // the CMK was purged: data unrecoverable
)

// Record is an org's CMK configuration and state.
type Record struct {
	OrgID       string
	State       State
	TenantID    string // the customer's Entra ID tenant
	ConsentedAt time.Time
	ConsentedBy string

	// The key as configured by the customer.
	VaultURI   string
	KeyName    string
	KeyVersion string // "" = follow the latest version
	KeyURI     string // master key URI (unversioned) of the configured key

	// ActiveKeyURI is the master key URI (unversioned) that wraps the root
	// key now, "" while on the platform key; ActiveVersion its version.
	ActiveKeyURI  string
	ActiveVersion string

	ReasonCode       string    // fault code while revoked, lost or degraded
	Reason           string    // customer-readable reason and remedy
	RecoverableUntil time.Time // for a soft-deleted key
	RevokedSince     time.Time

	LastProbeAt    time.Time
	LastProbeError string // "" when the last probe passed
	Degraded       bool   // provider throttled or unreachable: serving from cache

	// PurgeSuspectedSince is when the probe first found the key and its
	// deleted entry both absent, PurgeChecks on how many consecutive
	// probes: the org is lost only when they prove a purge (see
	// [Config.PurgeConfirmChecks]). Zero while the key or its deleted entry
	// is seen.
	PurgeSuspectedSince time.Time
	PurgeChecks         int
	// Warning is a customer-readable condition with its remedy that does
	// not stop the org, e.g. a newer key version orgkms does not follow
	// because it lacks the ownership tag; "" when none.
	Warning string
	// DataLostAt is when the org, its key purged, fell back to a new
	// platform root key: data encrypted before then is unrecoverable.
	DataLostAt time.Time

	UpdatedAt time.Time
	// Bump, on a write, raises the org's generation ([Generation]) in the
	// same transaction, with Bump as its reason (one of the Bump* reasons):
	// every node then drops the org's unwrapped keys and reloads its state.
	// It is never read back ("" on every record a store returns).
	Bump string
	// Revision is the stored revision this record was read at (0 for a
	// record never stored). A write of a record read at an older revision
	// fails with Conflict: nothing is overwritten by a stale copy.
	Revision int64
}

// ErrStale is wrapped by the Conflict a store returns for a record written
// at an outdated Revision.
var ErrStale = errors.New("CMK record changed since it was read")

// ConsentRequest binds an admin-consent round trip to an org, a user and a
// tenant. It is single use and expires.
type ConsentRequest struct {
	State     string // random, 256 bits, base64url
	OrgID     string
	Actor     string
	TenantID  string
	ExpiresAt time.Time
}

// JobKind names a re-wrap job.
type JobKind = jobs.Kind

const (
	JobActivate   JobKind = "activate"   // platform → CMK
	JobRotate     JobKind = "rotate"     // CMK old version → current version
	JobReplace    JobKind = "replace"    // old CMK → new CMK
	JobDeactivate JobKind = "deactivate" // CMK → platform
)

// JobState is the state of a job.
type JobState = jobs.State

const (
	JobPending = jobs.Pending
	JobRunning = jobs.Running
	JobDone    = jobs.Done
	JobFailed  = jobs.Failed
	// JobStalled is never stored: [Service.Status] shows a running job as
	// stalled when its lease holder is gone (see [jobs.Runner.Stalled]).
	JobStalled = jobs.Stalled
)

// Job is a durable re-wrap of one org's root key to Target, run by the
// [jobs.Runner]. Its steps are copy → verify → switch → drop, each
// durable; running it again from any point is safe.
type Job = jobs.Job

// Store is what package cmk needs from storage. Errors are *fault.Error:
// NotFound, Conflict (lost races), Unavailable.
type Store interface {
	keys.Store
	ClusterStore
	StagedStore

	// GetCMK returns the org's record; NotFound when the org never started
	// the CMK flow (its state is then StatePlatform).
	GetCMK(ctx context.Context, orgID string) (Record, error)
	// PutCMK inserts the org's record (Revision 0) or replaces it (Revision
	// as read; Conflict when it changed meanwhile), appending ev (when not
	// nil) to the org's audit chain in the same transaction. StartJob,
	// SwitchWrapping and FinishJob store their record the same way.
	PutCMK(ctx context.Context, r Record, ev *audit.Event) error
	// GetCMKs returns the records of orgIDs that have one, ordered by org
	// ID, in one read; an org without a record is left out.
	GetCMKs(ctx context.Context, orgIDs []string) ([]Record, error)
	// RootKeysOf returns the root key wrappings of orgIDs, in one read:
	// ordered by org ID, then each org's as [keys.Store.RootKeys] orders
	// them (active first); an org without any (or unknown) is left out.
	RootKeysOf(ctx context.Context, orgIDs []string) ([]keys.RootKeyWrapping, error)
	// ListCMK returns the records in any of states (all when none given).
	ListCMK(ctx context.Context, states ...State) ([]Record, error)

	// ClaimProbes leases up to limit orgs due for a probe (state active,
	// revoked or lost; due when their probe lease is unset or not after
	// now) to owner by moving their next due time to now+interval, and
	// returns their IDs: of concurrent claims on any number of nodes, one
	// gets each org per interval. Record writes leave the lease alone;
	// SwitchWrapping to another key (not a new version of the same key)
	// makes the org due at once.
	ClaimProbes(ctx context.Context, owner string, now time.Time, interval time.Duration, limit int) ([]string, error)
	// ReleaseProbes makes the orgs of orgIDs whose probe lease owner holds
	// due again at now: the probes owner claimed but abandoned (its node is
	// stopping) are taken up by the next claim, on any node, instead of
	// one probe interval later. No orgIDs means every org owner holds (a
	// node that restarted under the same ID). Orgs leased to another owner
	// are left alone.
	ReleaseProbes(ctx context.Context, owner string, orgIDs []string, now time.Time) error

	// PutConsentRequest stores a consent request.
	PutConsentRequest(ctx context.Context, c ConsentRequest) error
	// TakeConsentRequest deletes and returns the request with state;
	// NotFound when it does not exist or expired before now.
	TakeConsentRequest(ctx context.Context, state string, now time.Time) (ConsentRequest, error)

	// AddPendingWrapping stores a copy of the org's root key wrapped by
	// another master key, in state pending, and returns its ID. An org has
	// at most one pending wrapping: an older pending one is replaced.
	AddPendingWrapping(ctx context.Context, orgID string, w keys.RootKeyWrapping) (int64, error)
	// AddJobWrapping is AddPendingWrapping for the org of job j, and stores
	// j's Step like UpdateJob, in one transaction, only while j.Owner holds
	// the job under j.Fence (Conflict otherwise).
	AddJobWrapping(ctx context.Context, j Job, w keys.RootKeyWrapping) (int64, error)
	// AddJobWrappings is AddJobWrapping for many jobs' copies in one
	// transaction: each is judged on its own under a savepoint (its job's
	// fence checked there), with its own outcome (the new wrapping's ID,
	// or Conflict, NotFound, Invalid as AddJobWrapping) at its index, and
	// the copies that succeed commit together. An error return
	// (Unavailable) means none was stored.
	AddJobWrappings(ctx context.Context, steps []CopyStep) ([]Copied, error)
	// SwitchWrapping, in one transaction: makes pending wrapping id the
	// active one, deletes every other wrapping of the org, sets the org's
	// master key to master (unversioned), stores rec and appends ev; when
	// done is not nil, also stores it like UpdateJob/FinishJob (its State
	// done), so a job's switch and completion are one write.
	// NotFound if wrapping id is not a wrapping of the org.
	SwitchWrapping(ctx context.Context, orgID string, id int64, master masterkey.Ref, rec Record, ev audit.Event, done *Job) error
	// SwitchWrappings is SwitchWrapping for many jobs' switches in one
	// transaction: each is judged on its own under a savepoint (its job's
	// fence checked there), with its own outcome (Conflict, NotFound,
	// Invalid as SwitchWrapping) at its index, and the switches that
	// succeed commit together. An error return (Unavailable) means none
	// was stored.
	SwitchWrappings(ctx context.Context, steps []SwitchStep) ([]error, error)

	// StartJob, in one transaction: creates j (state pending), stores rec
	// and appends ev. Conflict if the org has a job that is pending or
	// running.
	StartJob(ctx context.Context, j Job, rec Record, ev audit.Event) (Job, error)
	// StartJobs is StartJob for many orgs in one transaction (a probe
	// round's rotations): each start is judged on its own, with its own
	// outcome (Conflict, NotFound, Invalid as StartJob) in the result at
	// its index, and the starts that succeed commit together. An error
	// return (Unavailable) means none was stored.
	StartJobs(ctx context.Context, starts []JobStart) ([]JobStarted, error)
	// GetJob returns a job; OrgJob the org's latest job (NotFound if none).
	GetJob(ctx context.Context, id int64) (Job, error)
	OrgJob(ctx context.Context, orgID string) (Job, error)
	// jobs.BatchStore: ClaimJob and ClaimJobs (raise the fence), UpdateJob
	// and RenewJob (fenced); SwitchWrapping's done job, AddJobWrapping and
	// FinishJob are fenced the same way.
	jobs.BatchStore
	// FinishJob, in one transaction: stores j (done or failed, if j.Owner
	// still holds it), stores rec and appends ev; a failed job's pending
	// wrappings are deleted.
	FinishJob(ctx context.Context, j Job, rec Record, ev audit.Event) error
}

// JobStart is one start of [Store.StartJobs]: the arguments of StartJob.
type JobStart struct {
	Job    Job
	Record Record
	Event  audit.Event
}

// JobStarted is the outcome of one [JobStart]: the job as stored, or why
// it was not started.
type JobStarted struct {
	Job Job
	Err error
}
