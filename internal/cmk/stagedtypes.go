package cmk

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/jobs"
)

// StagedMode is what a scheduled revocation does when its time comes.
type StagedMode string

const (
	// StagedRevoke: orgkms stops using the org's keys as if the customer
	// had disabled their key in the vault: every data-plane call of the
	// org is refused (org_revoked) until the org's key administrators
	// lift it.
	StagedRevoke StagedMode = "revoke"
	// StagedDecryptOnly: the org enters decrypt-only mode.
	StagedDecryptOnly StagedMode = "decrypt_only"
)

// JobStaged is the kind of the job that applies a scheduled revocation.
const JobStaged JobKind = "staged_revocation"

// Reasons of a generation raised by staged revocation ([Generation.Reason]).
const (
	BumpDecryptOnly    = "decrypt_only"     // the org entered decrypt-only mode
	BumpDecryptOnlyOff = "decrypt_only_off" // the org left decrypt-only mode
	BumpStagedRevoked  = "staged_revoked"   // a scheduled revocation took effect: the org is refused
	BumpStagedLifted   = "staged_lifted"    // the org's key administrators lifted that revocation
)

// Staged is an org's staged revocation state: decrypt-only mode, a
// revocation in effect by the org's own decision, and a scheduled
// revocation. The zero value (with OrgID) is an org with none of them.
type Staged struct {
	OrgID string

	// DecryptOnly: existing data is readable, new encryptions, rewraps and
	// data keys are refused (org_decrypt_only).
	DecryptOnly       bool
	DecryptOnlyReason string
	DecryptOnlyBy     string
	DecryptOnlySince  time.Time

	// Revoked: a scheduled revocation of mode revoke took effect; every
	// data-plane call is refused (org_revoked) until it is lifted.
	Revoked       bool
	RevokedReason string
	RevokedBy     string // who scheduled it
	RevokedSince  time.Time

	// The scheduled revocation: Mode "" when none. JobID is the durable
	// job that applies it at At.
	Mode        StagedMode
	At          time.Time
	Reason      string
	ScheduledBy string
	ScheduledAt time.Time
	JobID       int64

	UpdatedAt time.Time
	// Revision is the stored revision this state was read at (0: never
	// stored). A write of a state read at an older revision fails with
	// Conflict wrapping [ErrStale].
	Revision int64
}

// Active reports whether anything is on: a mode, a revocation or a
// schedule.
func (s Staged) Active() bool { return s.DecryptOnly || s.Revoked || s.Mode != "" }

// StagedWrite is one write of an org's staged state ([StagedStore.PutStaged]).
type StagedWrite struct {
	State Staged
	// Schedule, when not nil, is created (state pending, NotBefore the
	// scheduled time, Kind JobStaged) in the same transaction, and its ID
	// stored as State.JobID.
	Schedule *jobs.Job
	// Cancel, when not 0, is the ID of the org's pending staged job that
	// this write cancels (it ends failed, error "cancelled"); Conflict when
	// it is no longer pending (it is running: the revocation is being
	// applied).
	Cancel int64
	// Bump, when not "", raises the org's generation with this reason.
	Bump  string
	Event audit.Event
}

// StagedStore is what staged revocation needs from storage. Errors are
// *fault.Error: NotFound, Conflict (lost races, wrapping [ErrStale] for a
// stale revision; a lost lease), Unavailable.
type StagedStore interface {
	// GetStaged returns the org's staged state; the zero Staged (OrgID
	// set, Revision 0) when none was stored. NotFound when the org does
	// not exist.
	GetStaged(ctx context.Context, orgID string) (Staged, error)
	// ListStaged returns the stored states that have anything on
	// ([Staged.Active]), by org ID.
	ListStaged(ctx context.Context) ([]Staged, error)
	// PutStaged stores w.State (Revision as read: 0 inserts; Conflict
	// wrapping ErrStale when it changed meanwhile), creates w.Schedule,
	// cancels w.Cancel, raises the generation (w.Bump) and appends
	// w.Event, all in one transaction, and returns the state as stored.
	// NotFound when the org does not exist.
	PutStaged(ctx context.Context, w StagedWrite) (Staged, error)
	// StagedJobs is the job store of the staged jobs (their own table, so
	// the re-wrap runner never claims them), for a [jobs.Runner]: ClaimJob
	// raises the fence, UpdateJob and RenewJob are fenced.
	StagedJobs() jobs.Store
	// GetStagedJob returns a staged job; NotFound if none.
	GetStagedJob(ctx context.Context, id int64) (jobs.Job, error)
	// FinishStagedJob stores j (done or failed) while j.Owner holds it
	// under j.Fence (Conflict otherwise) and, when w is not nil, does w's
	// write (as PutStaged; w.Schedule and w.Cancel must be unset), in one
	// transaction.
	FinishStagedJob(ctx context.Context, j jobs.Job, w *StagedWrite) error
}
