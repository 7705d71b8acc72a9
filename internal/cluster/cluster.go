package cluster

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// Listener delivers generation notifications (postgres.Store): it calls
// connected once listening and fn per notification, until ctx is cancelled
// or the connection fails.
type Listener interface {
	ListenGenerations(ctx context.Context, connected func(), fn func(orgID string, generation int64)) error
}

// Config configures a [Node].
type Config struct {
	Store    cmk.ClusterStore
	CMK      *cmk.Service
	Listener Listener // nil: no notifications (SQLite), the periodic check only

	NodeID  string
	Address string
	Version string

	Heartbeat       time.Duration // cluster.heartbeat_interval, default 2s
	NodeTimeout     time.Duration // cluster.node_timeout, default 10s
	GenerationCheck time.Duration // cluster.generation_check, default 2s
	StaleAfter      time.Duration // cluster.stale_after, default 30s (the probe interval)

	Now    func() time.Time
	Logger *slog.Logger
}

// Node is this process as a cluster node. Safe for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	kick chan string

	started   time.Time
	checked   atomic.Bool  // the first generation check succeeded
	lastGood  atomic.Int64 // unix nanoseconds of the last successful check
	lostNode  atomic.Bool  // the node record was found missing
	listening atomic.Bool

	mu      sync.Mutex
	applied map[string]int64 // org → generation applied on this node
}

// New returns a node; call Run to register it and start its loops.
func New(cfg Config) *Node {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = 10 * time.Second
	}
	if cfg.GenerationCheck <= 0 {
		cfg.GenerationCheck = 2 * time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Node{cfg: cfg, log: cfg.Logger, kick: make(chan string, 1024), applied: map[string]int64{}, started: cfg.Now().UTC()}
}

// Changed is cmk.Config.Changed: this node stored a raised generation of
// org; it is applied (and its receipt written) at once, without waiting
// for the notification.
func (n *Node) Changed(orgID string) {
	select {
	case n.kick <- orgID:
	default: // full: the next full check applies it
	}
}

// errStale is the reason of the stale node rule.
var errStale = errors.New("node is stale")

// Fresh is cmk.Config.Fresh: Unavailable while this node's last successful
// generation check is older than StaleAfter.
func (n *Node) Fresh() error {
	last := n.lastGood.Load()
	if last != 0 && n.cfg.Now().Sub(time.Unix(0, last)) <= n.cfg.StaleAfter {
		return nil
	}
	return &fault.Error{Kind: fault.Unavailable, Op: "check key state", RetryAfter: n.cfg.GenerationCheck,
		Reason: "this orgkms node cannot confirm the state of the org's customer managed key with the database; retry (another node may answer)", Err: errStale}
}

// Ready reports why the node must not get traffic: its first generation
// check has not succeeded yet, it is stale, or its node record was lost.
func (n *Node) Ready() error {
	reason := ""
	switch {
	case !n.checked.Load():
		reason = "this node has not checked the orgs' key state generations yet"
	case n.lostNode.Load():
		reason = "this node's record in the database is gone; it registers again on the next heartbeat"
	case n.Fresh() != nil:
		reason = "this node's last successful generation check is older than cluster.stale_after"
	default:
		return nil
	}
	return &fault.Error{Kind: fault.Unavailable, Op: "ready", RetryAfter: n.cfg.GenerationCheck, Reason: reason}
}

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// Listening reports whether the node's notification listener is connected.
func (n *Node) Listening() bool { return n.listening.Load() }

// Register registers the node. Run calls it; it is exported for callers
// that need the node listed before Run (start-up).
func (n *Node) Register(ctx context.Context) error {
	now := n.cfg.Now().UTC()
	err := n.cfg.Store.RegisterNode(ctx, cmk.Node{ID: n.cfg.NodeID, Address: n.cfg.Address, Version: n.cfg.Version, StartedAt: n.started, HeartbeatAt: now})
	if err == nil {
		n.lostNode.Store(false)
	}
	return err
}

// Run registers the node and runs the heartbeat, the generation check and
// the listener until ctx is cancelled; it then records a clean stop.
func (n *Node) Run(ctx context.Context) {
	if err := n.Register(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("register node failed", slog.String("error", err.Error()))
	}
	if err := n.CheckAll(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("generation check failed", slog.String("error", err.Error()))
	}
	var wg sync.WaitGroup
	wg.Go(func() { n.heartbeatLoop(ctx) })
	wg.Go(func() { n.checkLoop(ctx) })
	if n.cfg.Listener != nil {
		wg.Go(func() { n.listenLoop(ctx) })
	}
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := n.cfg.Store.StopNode(sctx, n.cfg.NodeID, n.cfg.Now().UTC()); err != nil {
		n.log.Warn("record node stop failed", slog.String("error", err.Error()))
	}
}

func (n *Node) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := n.cfg.Store.HeartbeatNode(ctx, n.cfg.NodeID, n.cfg.Now().UTC())
		if fault.KindOf(err) == fault.NotFound {
			n.lostNode.Store(true)
			n.log.Warn("node record lost; registering again", slog.String("node", n.cfg.NodeID))
			err = n.Register(ctx)
		}
		if err != nil && ctx.Err() == nil {
			n.log.Warn("heartbeat failed", slog.String("error", err.Error()))
		}
	}
}

func (n *Node) checkLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.GenerationCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case org := <-n.kick:
			if err := n.CheckOrg(ctx, org); err != nil && ctx.Err() == nil {
				n.log.Warn("generation check failed", slog.String("org_id", org), slog.String("error", err.Error()))
			}
			continue
		case <-t.C:
		}
		if err := n.CheckAll(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("generation check failed", slog.String("error", err.Error()))
		}
	}
}

func (n *Node) listenLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := n.cfg.Listener.ListenGenerations(ctx, func() {
			n.listening.Store(true)
			backoff = 100 * time.Millisecond
			n.Changed("") // a full check: notifications sent while disconnected are lost
		}, func(org string, _ int64) { n.Changed(org) })
		n.listening.Store(false)
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("generation listener disconnected; reconnecting", slog.Duration("duration", backoff), slog.String("error", errText(err)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// CheckAll reads every org's generation and applies each newer one. The
// first successful check of a node takes the generations as its baseline:
// the CMK state was loaded at start (cmk.Service.LoadBlocks, again right
// after the read), so it only writes the receipts.
func (n *Node) CheckAll(ctx context.Context) error {
	start := n.cfg.Now()
	gs, err := n.cfg.Store.Generations(ctx)
	if err != nil {
		return err
	}
	if !n.checked.Load() {
		if err := n.cfg.CMK.LoadBlocks(ctx); err != nil {
			return err
		}
		n.mu.Lock()
		for _, g := range gs {
			n.applied[g.OrgID] = g.Generation
		}
		n.mu.Unlock()
		for _, g := range gs {
			if err := n.cfg.Store.PutReceipt(ctx, cmk.Receipt{OrgID: g.OrgID, NodeID: n.cfg.NodeID, Generation: g.Generation, PurgedAt: n.cfg.Now().UTC()}, nil); err != nil && fault.KindOf(err) != fault.NotFound {
				return err
			}
		}
		n.good(start)
		n.checked.Store(true)
		return nil
	}
	for _, g := range gs {
		if err := n.apply(ctx, g); err != nil {
			return err
		}
	}
	n.good(start)
	return nil
}

// good records a successful check that started at start.
func (n *Node) good(start time.Time) {
	for {
		old := n.lastGood.Load()
		if old >= start.UnixNano() || n.lastGood.CompareAndSwap(old, start.UnixNano()) {
			return
		}
	}
}

// CheckOrg applies the org's generation if newer; "" checks every org.
func (n *Node) CheckOrg(ctx context.Context, orgID string) error {
	if orgID == "" || !n.checked.Load() {
		return n.CheckAll(ctx)
	}
	g, err := n.cfg.Store.OrgGeneration(ctx, orgID)
	if fault.KindOf(err) == fault.NotFound {
		return nil // another schema's org, or an org without changes
	}
	if err != nil {
		return err
	}
	return n.apply(ctx, g)
}

// apply reloads the org's state and writes the receipt, when g is newer
// than what this node applied.
func (n *Node) apply(ctx context.Context, g cmk.Generation) error {
	n.mu.Lock()
	have := n.applied[g.OrgID]
	n.mu.Unlock()
	if g.Generation <= have {
		return nil
	}
	if err := n.cfg.CMK.Reload(ctx, g.OrgID); err != nil {
		return err
	}
	now := n.cfg.Now().UTC()
	var ev *audit.Event
	if cmk.RevocationReason(g.Reason) {
		ev = &audit.Event{OrgID: g.OrgID, Time: now, Actor: "orgkms", Action: "cmk.purge_receipt", Target: "cmk",
			Details: map[string]string{"node": n.cfg.NodeID, "generation": strconv.FormatInt(g.Generation, 10), "reason": g.Reason}}
	}
	if err := n.cfg.Store.PutReceipt(ctx, cmk.Receipt{OrgID: g.OrgID, NodeID: n.cfg.NodeID, Generation: g.Generation, PurgedAt: now}, ev); err != nil {
		return err
	}
	n.mu.Lock()
	if n.applied[g.OrgID] < g.Generation {
		n.applied[g.OrgID] = g.Generation
	}
	n.mu.Unlock()
	n.log.Info("generation applied", slog.String("org_id", g.OrgID), slog.Int64("generation", g.Generation), slog.String("reason", g.Reason),
		slog.Duration("duration", now.Sub(g.ChangedAt)))
	return nil
}

// LiveNodes returns how many registered nodes are live now.
func (n *Node) LiveNodes(ctx context.Context) (int, error) {
	ns, err := n.cfg.Store.ListNodes(ctx)
	if err != nil {
		return 0, err
	}
	live := 0
	for _, x := range ns {
		if x.State(n.cfg.Now(), n.cfg.NodeTimeout) == cmk.NodeLive {
			live++
		}
	}
	return live, nil
}

// ListNodes lists every registered node (api.Nodes).
func (n *Node) ListNodes(ctx context.Context) ([]cmk.Node, error) { return n.cfg.Store.ListNodes(ctx) }

// NodeState is x's state now (api.Nodes).
func (n *Node) NodeState(x cmk.Node) cmk.NodeState { return x.State(n.cfg.Now(), n.cfg.NodeTimeout) }
