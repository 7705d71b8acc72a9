package keys

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
)

// Outcomes of a usage record besides the error codes of refused calls.
const (
	// OutcomeOK counts calls that succeeded.
	OutcomeOK = "ok"
	// OutcomeDenied is a filter value only: every outcome but OutcomeOK.
	OutcomeDenied = "denied"
)

// UsageOps are the data-plane operations usage records count.
var UsageOps = []string{"encrypt", "decrypt", "rewrap", "datakey"}

// UsageFilter selects an org's usage records. Zero fields select all.
type UsageFilter struct {
	Since, Until time.Time // Since <= Minute < Until (Until zero: no bound)
	Key          string
	Caller       string // the principal, exactly
	Op           string
	Outcome      string // OutcomeOK, OutcomeDenied, or one error code
	// After continues a listing after this record (its Minute, KeyName,
	// Op, Principal and Outcome); records are ordered newest minute first,
	// then by key, op, principal and outcome, all descending.
	After *UsageCount
	Limit int // 0 = all
}

// UsageStore is the part of [Store] that keeps usage records.
type UsageStore interface {
	// QueryUsage returns the org's records matching f, ordered as
	// described on [UsageFilter.After].
	QueryUsage(ctx context.Context, orgID string, f UsageFilter) ([]UsageCount, error)
	// DeleteUsageBefore deletes at most limit records (of every org) whose
	// Minute is before t and returns how many it deleted; when it deleted
	// any, it appends ev in the same transaction with Details["records"]
	// set to that number.
	DeleteUsageBefore(ctx context.Context, t time.Time, limit int, ev audit.Event) (int64, error)
	// ClaimUsageCleanup claims the cluster-wide retention cleanup for owner
	// when it is due at now, and makes it due again at now+every; false
	// when another claim holds it until later.
	ClaimUsageCleanup(ctx context.Context, owner string, now time.Time, every time.Duration) (bool, error)
}
