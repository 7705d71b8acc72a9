package cmk

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
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

// RevocationReason reports whether a generation of reason takes keys away:
// revoked, lost, fell back, or purged by an operator. Each node's receipt of
// such a generation is also an audit event (cmk.purge_receipt).
func RevocationReason(reason string) bool {
	switch reason {
	case BumpRevoked, BumpLost, BumpFellBack, BumpPurged, BumpStagedRevoked:
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

var switchBump = map[JobKind]string{JobActivate: BumpActivated, JobRotate: BumpRotated, JobReplace: BumpReplaced, JobDeactivate: BumpDeactivated}

// Revocation is how far an org's current generation reached the nodes:
// "revocation honoured by Honoured of Live nodes at LatestReceipt".
type Revocation struct {
	Generation    int64
	Reason        string // a Bump* reason
	ChangedAt     time.Time
	Honoured      int       // live nodes whose receipt is for this generation or a newer one
	Live          int       // live nodes
	LatestReceipt time.Time // latest receipt of this generation; zero when none
	Pending       []string  // live nodes that have not confirmed it, by ID
}

// changed tells Config.Changed that this node stored a raised generation
// of org.
func (s *Service) changed(orgID string) {
	if s.cfg.Changed != nil {
		s.cfg.Changed(orgID)
	}
}

// revocation returns the org's generation and its receipts by live nodes;
// nil while its generation was never raised.
func (s *Service) revocation(ctx context.Context, orgID string) (*Revocation, error) {
	g, err := s.st.OrgGeneration(ctx, orgID)
	if fault.KindOf(err) == fault.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	nodes, err := s.st.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	receipts, err := s.st.Receipts(ctx, orgID)
	if err != nil {
		return nil, err
	}
	got := map[string]Receipt{}
	for _, r := range receipts {
		got[r.NodeID] = r
	}
	rv := &Revocation{Generation: g.Generation, Reason: g.Reason, ChangedAt: g.ChangedAt}
	now := s.now()
	for _, n := range nodes {
		if n.State(now, s.cfg.NodeTimeout) != NodeLive {
			continue
		}
		rv.Live++
		r, ok := got[n.ID]
		if !ok || r.Generation < g.Generation {
			rv.Pending = append(rv.Pending, n.ID)
			continue
		}
		rv.Honoured++
		if r.PurgedAt.After(rv.LatestReceipt) {
			rv.LatestReceipt = r.PurgedAt
		}
	}
	return rv, nil
}

// Reload applies a raised generation of org on this node: it reads the
// org's record, blocks the org (revoked, lost) or unblocks it, and drops
// the org's unwrapped keys. Package cluster calls it for every newer
// generation it sees, then writes the node's receipt.
func (s *Service) Reload(ctx context.Context, orgID string) error {
	rec, err := s.record(ctx, orgID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if rec.ActiveKeyURI != "" {
		s.onCMK[orgID] = true
	} else {
		delete(s.onCMK, orgID)
	}
	if !rec.DataLostAt.IsZero() {
		if s.dataLost == nil {
			s.dataLost = map[string]time.Time{}
		}
		s.dataLost[orgID] = rec.DataLostAt
	}
	s.mu.Unlock()
	if rec.State == StateRevoked || rec.State == StateLost {
		s.block(orgID, blockError(rec))
	} else {
		s.block(orgID, nil)
	}
	if err := s.reloadStaged(ctx, orgID); err != nil {
		return err
	}
	s.cfg.Keys.Cache().Purge(orgID)
	return nil
}

// NodeID is this node's identity (Config.NodeID).
func (s *Service) NodeID() string { return s.cfg.NodeID }

// Purge is an operator's purge of the org's unwrapped keys on every node:
// it raises the org's generation (reason purged), drops the keys here at
// once, and every other node drops them when it sees the generation.
// NotFound when the org does not exist.
func (s *Service) Purge(ctx context.Context, orgID string) error {
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return err
	}
	if _, err := s.st.BumpGeneration(ctx, orgID, BumpPurged, s.now().UTC(), nil); err != nil {
		return err
	}
	s.cfg.Keys.Cache().Purge(orgID)
	s.changed(orgID)
	return nil
}

// PurgeAll purges every org's unwrapped keys on every node: it raises every
// org's generation (reason purged).
func (s *Service) PurgeAll(ctx context.Context) error {
	if _, err := s.st.BumpAllGenerations(ctx, BumpPurged, s.now().UTC()); err != nil {
		return err
	}
	s.cfg.Keys.Cache().PurgeAll()
	s.changed("")
	return nil
}
