package platformkey

import (
	"context"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// JobKind is the kind of the platform re-wrap job.
const JobKind jobs.Kind = "platform_rewrap"

// BumpRewrapped is the generation reason of an org whose root key the
// platform re-wrap job moved to the current platform key version.
const BumpRewrapped = "platform_rewrapped"

// Switch is one org's switch in [Store.SwitchPlatformWrappings]: its
// pending copy To becomes its only, active wrapping, if its active
// wrapping is still From.
type Switch struct {
	OrgID  string
	From   int64         // the active wrapping the job unwrapped
	To     int64         // the pending copy the job wrapped and verified
	Master masterkey.Ref // the org's master key afterwards, unversioned
	Event  audit.Event   // appended to the org's chain
}

// WrappingCount is how many orgs have a wrapping of one master key
// version in one state.
type WrappingCount struct {
	Key   masterkey.Ref // with its version
	State keys.WrappingState
	Orgs  int
}

// Store is what the platform re-wrap needs from storage. Errors are
// *fault.Error: NotFound, Conflict (a lost lease, a lost race),
// Unavailable.
type Store interface {
	cmk.Store

	// PlatformJobs is the job store of platform jobs (their own table, so
	// the CMK runner never claims them), for a [jobs.Runner]: ClaimJob
	// raises the fence, UpdateJob and RenewJob are fenced.
	PlatformJobs() jobs.Store
	// StartPlatformJob creates j (state pending, OrgID audit.Platform) and
	// appends ev to the platform chain, in one transaction. Conflict if a
	// job of j.Kind is pending or running.
	StartPlatformJob(ctx context.Context, j jobs.Job, ev audit.Event) (jobs.Job, error)
	// LatestPlatformJob returns the newest platform job; NotFound if none.
	LatestPlatformJob(ctx context.Context) (jobs.Job, error)
	// RootKeyPage returns every root key wrapping (active and pending) of
	// the first limit orgs whose ID sorts after after, ordered by org ID,
	// each org's active wrapping first.
	RootKeyPage(ctx context.Context, after string, limit int) ([]keys.RootKeyWrapping, error)
	// WrappingCounts counts the orgs by the master key version and state
	// of their wrappings.
	WrappingCounts(ctx context.Context) ([]WrappingCount, error)
	// AddPlatformCopies stores each of ws (state pending) as its org's
	// pending wrapping, replacing an older pending copy to the same key,
	// and stores j's Step, in one transaction, only while j.Owner holds j
	// under j.Fence (Conflict otherwise). It returns the new wrappings'
	// IDs, in order; 0 for an org that has a pending wrapping of another
	// key (a CMK job is moving it), which is left alone.
	AddPlatformCopies(ctx context.Context, j jobs.Job, ws []keys.RootKeyWrapping) ([]int64, error)
	// SwitchPlatformWrappings, in one transaction fenced like
	// AddPlatformCopies (and storing j's Step): for each switch whose
	// org's active wrapping is still From and whose To is a pending
	// wrapping of the org, makes To the only, active wrapping, sets the
	// org's master key, raises the org's generation (BumpRewrapped) and
	// appends the switch's event. A switch whose org changed meanwhile is
	// left alone with Conflict at its index (NotFound if the org is gone).
	SwitchPlatformWrappings(ctx context.Context, j jobs.Job, sw []Switch) ([]error, error)
	// FinishPlatformJob stores j (state done or failed, Step, Error) and
	// appends ev to the platform chain, in one transaction fenced like
	// AddPlatformCopies.
	FinishPlatformJob(ctx context.Context, j jobs.Job, ev audit.Event) error
}
