package keys

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Org is a customer organization.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
	// MasterKey is the master key (unversioned) that protects the org's root
	// key: the platform key, or the org's customer managed key.
	MasterKey masterkey.Ref
}

// RootKeyWrapping is one wrapping of an org's root key by a master key. An
// org has exactly one active wrapping; during a re-wrap a pending copy
// exists beside it (copy → verify → switch → drop).
type RootKeyWrapping struct {
	ID        int64
	OrgID     string
	Wrapped   masterkey.Wrapped // Key.Version always set
	State     WrappingState
	CreatedAt time.Time
}

// WrappingState is the state of a [RootKeyWrapping].
type WrappingState string

const (
	WrappingActive  WrappingState = "active"
	WrappingPending WrappingState = "pending" // copied, not yet switched to
)

// DataKey is a named, versioned org data key. Its versions' material is
// stored wrapped by the org root key.
type DataKey struct {
	OrgID                string
	Name                 string
	CreatedAt            time.Time
	LatestVersion        uint32
	MinDecryptionVersion uint32
	Versions             []DataKeyVersion // ascending
}

// DataKeyVersion is one version of a data key.
type DataKeyVersion struct {
	Version   uint32
	CreatedAt time.Time
	Wrapped   []byte // the key material wrapped by the org root key (envelope.WrapKey)
}

// UsageCount is an aggregated data-plane counter: how many times principal
// performed op with org's key during minute, with one outcome (see
// usage_store.go).
type UsageCount struct {
	OrgID     string
	KeyName   string
	Op        string
	Principal string
	Minute    time.Time
	Count     int64
	// Outcome is OutcomeOK, or the stable error code of a refused or
	// failed call ("forbidden", "ciphertext_invalid", "cmk_revoked", ...);
	// "" is stored as OutcomeOK.
	Outcome string
	// First and Last are the times of the first and last call counted in
	// the minute; zero is stored as Minute.
	First, Last time.Time
}

// ListOptions pages through lists ordered by ID.
type ListOptions struct {
	After string // return items whose ID sorts after this
	Limit int    // 0 = default (100); at most 1000
}

// Store is what package keys needs from storage. Every method that changes
// state takes the audit event describing the change and appends it to the
// org's hash-chained audit log in the same transaction. Errors are
// *fault.Error: NotFound for missing objects, Conflict for duplicates and
// lost races, Unavailable when the database cannot be reached.
type Store interface {
	// CreateOrg stores org with its root key wrapping (state active) and its
	// first data key (with version 1). Conflict if the org exists.
	CreateOrg(ctx context.Context, org Org, root RootKeyWrapping, first DataKey, ev audit.Event) error
	GetOrg(ctx context.Context, id string) (Org, error)
	ListOrgs(ctx context.Context, opts ListOptions) ([]Org, error)

	// RootKeys returns every wrapping of the org's root key, active first.
	RootKeys(ctx context.Context, orgID string) ([]RootKeyWrapping, error)

	// CreateDataKey stores k (with its Versions). Conflict if it exists.
	CreateDataKey(ctx context.Context, orgID string, k DataKey, ev audit.Event) error
	// GetDataKey returns the key with all its versions.
	GetDataKey(ctx context.Context, orgID, name string) (DataKey, error)
	// ListDataKeys returns the org's keys, without versions' material.
	ListDataKeys(ctx context.Context, orgID string) ([]DataKey, error)
	// AddDataKeyVersion adds v, which must be LatestVersion+1 (Conflict
	// otherwise), and makes it the latest.
	AddDataKeyVersion(ctx context.Context, orgID, name string, v DataKeyVersion, ev audit.Event) error
	// SetMinDecryptionVersion sets the minimum version allowed to decrypt.
	SetMinDecryptionVersion(ctx context.Context, orgID, name string, min uint32, ev audit.Event) error

	// AppendAudit appends ev (Seq, PrevHash and Hash are filled by chaining
	// to the org's last event) and returns it as stored.
	AppendAudit(ctx context.Context, ev audit.Event) (audit.Event, error)
	// AuditEvents returns the org's events with Seq > afterSeq, ascending, at
	// most limit (0 = all).
	AuditEvents(ctx context.Context, orgID string, afterSeq int64, limit int) ([]audit.Event, error)
	// AuditOrgs lists the org IDs that have an audit chain.
	AuditOrgs(ctx context.Context) ([]string, error)

	// AddUsage adds counts to the aggregated usage counters (additive upsert).
	AddUsage(ctx context.Context, counts []UsageCount) error
	// Usage returns the org's counters with Minute >= since.
	Usage(ctx context.Context, orgID string, since time.Time) ([]UsageCount, error)

	UsageStore
}
