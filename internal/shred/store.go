package shred

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
)

// Job kinds of the shred runner: an org's shred (Target "") and one data
// key's shred (Target the key name).
const (
	JobOrg jobs.Kind = "org_shred"
	JobKey jobs.Kind = "key_shred"
)

// Generation reasons raised by lifecycle changes: every node drops the
// org's cached keys and reloads its lifecycle.
const (
	BumpLifecycle = "lifecycle" // an org or key was disabled, enabled, scheduled for deletion or cancelled
	BumpShredded  = "shredded"  // an org's or key's wrapped keys were erased
)

// Inventory is what a shred erases: the IDs of the root key wrappings and
// the data key versions (never their bytes).
type Inventory struct {
	RootKeys []int64             // root key wrapping IDs (org shred only)
	Versions map[string][]uint32 // data key name → its stored versions
}

// Store is what the shred service needs from storage. Errors are
// *fault.Error: NotFound, Conflict (a state that forbids the change, a lost
// lease), Unavailable.
type Store interface {
	keys.Store
	keys.LifecycleStore

	// ShredJobs is the job store of the shred jobs (their own table), for
	// a [jobs.Runner]: ClaimJob raises the fence; UpdateJob (which also
	// stores a done job) and RenewJob are fenced.
	ShredJobs() jobs.Store
	// SetLifecycle changes the lifecycle of the org (keyName "") or of
	// its data key keyName to l, in one transaction: NotFound if the org
	// or key does not exist; Conflict unless its current state is one of
	// from. A State of LifecycleEnabled removes the lifecycle. When job is
	// set it is created (state pending, claimable from job.NotBefore);
	// when l is not pending deletion, an open shred job of the org or key
	// is closed (state failed, error "cancelled"), and Conflict if it is
	// running already. The org's generation is raised (reason
	// BumpLifecycle) and ev appended to its chain.
	SetLifecycle(ctx context.Context, orgID, keyName string, from []keys.LifecycleState, l keys.Lifecycle, job *jobs.Job, ev audit.Event) error
	// ShredInventory returns what the shred of the org (keyName "") or of
	// its key keyName would erase.
	ShredInventory(ctx context.Context, orgID, keyName string) (Inventory, error)
	// Shred erases, in one transaction, only while j.Owner holds j under
	// j.Fence (Conflict otherwise): for an org shred every root key
	// wrapping and every data key version of the org, the org's CMK
	// record (and its consent requests; its open CMK jobs fail), for a key
	// shred the versions of that key. The org or key becomes
	// LifecycleDeleted (ShreddedAt at), the generation is raised (reason
	// BumpShredded), ev appended, and j's Step stored.
	Shred(ctx context.Context, j jobs.Job, at time.Time, ev audit.Event) error
	// ScrubShredded makes erased rows unrecoverable from the database
	// files (SQLite: secure_delete plus a truncating WAL checkpoint;
	// PostgreSQL: VACUUM FULL of the key tables). Unavailable when the
	// scrub could not complete (SQLite: a reader held the WAL;
	// PostgreSQL: a table's lock was not granted within a few seconds, or
	// the role may not vacuum the tables): retry. docs/crypto-shred.md
	// says what remains outside the files.
	ScrubShredded(ctx context.Context) error
	// FinishShredJob stores j (done or failed) and appends ev, fenced like
	// Shred.
	FinishShredJob(ctx context.Context, j jobs.Job, ev *audit.Event) error
	// ShredJobsOf returns the org's shred jobs, newest first.
	ShredJobsOf(ctx context.Context, orgID string) ([]jobs.Job, error)
}
