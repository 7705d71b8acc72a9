package cmk

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
)

// Node is one orgkms process on the store, as it registered itself.
type Node struct {
	ID          string
	Address     string // where other nodes and operators reach it (cluster.advertise_address)
	Version     string // the orgkms version it runs
	StartedAt   time.Time
	HeartbeatAt time.Time
	StoppedAt   time.Time // set by a clean shutdown; zero while running
}

// NodeState is how a node looks to the others.
type NodeState string

const (
	NodeLive    NodeState = "live"    // heartbeat within the node timeout
	NodeGone    NodeState = "gone"    // heartbeat older than the node timeout, no clean shutdown
	NodeStopped NodeState = "stopped" // shut down cleanly
)

// State returns the node's state at now, given the node timeout.
func (n Node) State(now time.Time, timeout time.Duration) NodeState {
	switch {
	case !n.StoppedAt.IsZero():
		return NodeStopped
	case now.Sub(n.HeartbeatAt) > timeout:
		return NodeGone
	default:
		return NodeLive
	}
}

// Reasons of a raised generation (Record.Bump, [Generation.Reason]).
const (
	BumpRevoked     = "revoked"     // the customer's key became unusable
	BumpLost        = "lost"        // the customer's key was purged
	BumpRestored    = "restored"    // the key works again: the org is served again
	BumpActivated   = "activated"   // the root key moved to the customer's key
	BumpRotated     = "rotated"     // the root key moved to a new version of the key
	BumpReplaced    = "replaced"    // the root key moved to another customer key
	BumpDeactivated = "deactivated" // the root key moved back to the platform key
	BumpFellBack    = "fell_back"   // a lost org fell back to a new platform root key
	BumpPurged      = "purged"      // an operator purged the org's cached keys
)

// Revocation reports whether a generation of reason takes keys away:
// revoked, lost, fell back, or purged by an operator. Each node's receipt of
// such a generation is also an audit event (cmk.purge_receipt).
func Revocation(reason string) bool {
	switch reason {
	case BumpRevoked, BumpLost, BumpFellBack, BumpPurged:
		return true
	}
	return false
}

// Generation is an org's key-state generation: raised, in the same
// transaction, by every change that must drop the org's unwrapped keys
// from every node's memory.
type Generation struct {
	OrgID      string
	Generation int64 // 1 for the first change, then +1 per change
	Reason     string
	ChangedAt  time.Time
}

// Receipt is a node's record that it applied generation Generation of an
// org: dropped the org's unwrapped keys and reloaded its state.
type Receipt struct {
	OrgID      string
	NodeID     string
	Generation int64
	PurgedAt   time.Time
}

// ClusterStore is what the nodes sharing a store know of each other: the
// node registry, the orgs' generations and the nodes' receipts. Errors are
// *fault.Error.
type ClusterStore interface {
	// RegisterNode inserts the node or, for a known ID (a restart), replaces
	// its address, version, start and heartbeat and clears its stop.
	RegisterNode(ctx context.Context, n Node) error
	// HeartbeatNode sets the node's heartbeat to at and clears its stop;
	// NotFound when its row is gone (the node must register again).
	HeartbeatNode(ctx context.Context, id string, at time.Time) error
	// StopNode records a clean shutdown at at; NotFound for an unknown ID.
	StopNode(ctx context.Context, id string, at time.Time) error
	// ListNodes returns every registered node, by ID.
	ListNodes(ctx context.Context) ([]Node, error)

	// BumpGeneration raises the org's generation with reason at at,
	// appending ev (when not nil) in the same transaction, and returns the
	// new generation. NotFound when the org does not exist.
	BumpGeneration(ctx context.Context, orgID, reason string, at time.Time, ev *audit.Event) (Generation, error)
	// BumpAllGenerations raises the generation of every org, in one
	// transaction, and returns how many orgs it raised.
	BumpAllGenerations(ctx context.Context, reason string, at time.Time) (int, error)
	// OrgGeneration returns the org's current generation; NotFound when it
	// was never raised.
	OrgGeneration(ctx context.Context, orgID string) (Generation, error)
	// Generations returns every org's current generation, by org ID.
	Generations(ctx context.Context) ([]Generation, error)

	// PutReceipt stores r as the node's receipt for the org (replacing an
	// older one; a receipt for an older generation than the stored one is
	// ignored), appending ev (when not nil) in the same transaction.
	// NotFound when the org does not exist.
	PutReceipt(ctx context.Context, r Receipt, ev *audit.Event) error
	// Receipts returns the org's receipts, one per node, by node ID.
	Receipts(ctx context.Context, orgID string) ([]Receipt, error)
}
