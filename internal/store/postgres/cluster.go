package postgres

import (
	"context"
	"database/sql"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

func nodeRes(id string) string { return "node " + id }

func genRes(orgID string) string { return "generation of org " + orgID }

// RegisterNode inserts n or, for a known ID, replaces its address,
// version, start and heartbeat and clears its stop. Invalid without an ID.
func (s *Store) RegisterNode(ctx context.Context, n cmk.Node) error {
	const op = "register node"
	if n.ID == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "node.id", Reason: "node has no ID"}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO nodes (id, address, version, started_at, heartbeat_at, stopped_at)
		VALUES ($1, $2, $3, $4, $5, NULL)
		ON CONFLICT (id) DO UPDATE SET address = excluded.address, version = excluded.version,
			started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL`,
		n.ID, n.Address, n.Version, timeArg(n.StartedAt), timeArg(n.HeartbeatAt))
	return classify(ctx, op, nodeRes(n.ID), err)
}

// HeartbeatNode sets the node's heartbeat and clears its stop. NotFound when
// its row is gone.
func (s *Store) HeartbeatNode(ctx context.Context, id string, at time.Time) error {
	const op = "heartbeat node"
	res, err := s.db.ExecContext(ctx, `UPDATE nodes SET heartbeat_at = $2, stopped_at = NULL WHERE id = $1`, id, timeArg(at))
	return rowsOrNotFound(ctx, op, nodeRes(id), res, err)
}

// StopNode records the node's clean shutdown. NotFound for an unknown ID.
func (s *Store) StopNode(ctx context.Context, id string, at time.Time) error {
	const op = "stop node"
	res, err := s.db.ExecContext(ctx, `UPDATE nodes SET stopped_at = $2 WHERE id = $1`, id, timeArg(at))
	return rowsOrNotFound(ctx, op, nodeRes(id), res, err)
}

func rowsOrNotFound(ctx context.Context, op, resource string, res sql.Result, err error) error {
	if err != nil {
		return classify(ctx, op, resource, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return classify(ctx, op, resource, err)
	}
	if n == 0 {
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: resource}
	}
	return nil
}

// ListNodes returns every registered node, by ID.
func (s *Store) ListNodes(ctx context.Context) ([]cmk.Node, error) {
	const op = "list nodes"
	rows, err := s.db.QueryContext(ctx, `SELECT id, address, version, started_at, heartbeat_at, stopped_at FROM nodes ORDER BY id`)
	if err != nil {
		return nil, classify(ctx, op, "nodes", err)
	}
	ns, err := collect(rows, func(rows *sql.Rows) (cmk.Node, error) {
		var n cmk.Node
		err := rows.Scan(&n.ID, &n.Address, &n.Version, scanTime(&n.StartedAt), scanTime(&n.HeartbeatAt), scanTime(&n.StoppedAt))
		return n, err
	})
	return ns, classify(ctx, op, "nodes", err)
}

// bumpGeneration raises the org's generation in tx and returns it. The
// table's trigger notifies channel orgkms_generation at commit.
func bumpGeneration(ctx context.Context, tx *sql.Tx, op, orgID, reason string, at time.Time) (cmk.Generation, error) {
	if at.IsZero() {
		at = time.Now()
	}
	g := cmk.Generation{OrgID: orgID, Reason: reason, ChangedAt: timeArg(at)}
	err := tx.QueryRowContext(ctx, `INSERT INTO org_generations (org_id, generation, reason, changed_at) VALUES ($1, 1, $2, $3)
		ON CONFLICT (org_id) DO UPDATE SET generation = org_generations.generation + 1, reason = excluded.reason, changed_at = excluded.changed_at
		RETURNING generation`, orgID, reason, timeArg(at)).Scan(&g.Generation)
	return g, classify(ctx, op, genRes(orgID), err)
}

// BumpGeneration raises the org's generation and appends ev, in one
// transaction. NotFound when the org does not exist; Invalid without a
// reason.
func (s *Store) BumpGeneration(ctx context.Context, orgID, reason string, at time.Time, ev *audit.Event) (cmk.Generation, error) {
	const op = "raise generation"
	if reason == "" {
		return cmk.Generation{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "reason", Reason: "a generation needs a reason"}
	}
	var e audit.Event
	if ev != nil {
		var err error
		if e, err = eventFor(op, orgID, *ev); err != nil {
			return cmk.Generation{}, err
		}
	}
	var g cmk.Generation
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := orgMissing(ctx, tx, op, orgID); err != nil {
			return err
		}
		var err error
		if g, err = bumpGeneration(ctx, tx, op, orgID, reason, at); err != nil {
			return err
		}
		if ev != nil {
			_, err = s.appendAudit(ctx, tx, op, e)
		}
		return err
	})
	if err != nil {
		return cmk.Generation{}, err
	}
	return g, nil
}

// BumpAllGenerations raises every org's generation in one transaction.
func (s *Store) BumpAllGenerations(ctx context.Context, reason string, at time.Time) (int, error) {
	const op = "raise every generation"
	if reason == "" {
		return 0, &fault.Error{Kind: fault.Invalid, Op: op, Field: "reason", Reason: "a generation needs a reason"}
	}
	n := 0
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO org_generations (org_id, generation, reason, changed_at)
			SELECT id, 1, $1, $2 FROM orgs WHERE true
			ON CONFLICT (org_id) DO UPDATE SET generation = org_generations.generation + 1, reason = excluded.reason, changed_at = excluded.changed_at`,
			reason, timeArg(at))
		if err != nil {
			return classify(ctx, op, "generations", err)
		}
		c, err := res.RowsAffected()
		n = int(c)
		return classify(ctx, op, "generations", err)
	})
	return n, err
}

func scanGeneration(row interface{ Scan(...any) error }) (cmk.Generation, error) {
	var g cmk.Generation
	err := row.Scan(&g.OrgID, &g.Generation, &g.Reason, scanTime(&g.ChangedAt))
	return g, err
}

// OrgGeneration returns the org's generation; NotFound when never raised.
func (s *Store) OrgGeneration(ctx context.Context, orgID string) (cmk.Generation, error) {
	const op = "get generation"
	g, err := scanGeneration(s.db.QueryRowContext(ctx, `SELECT org_id, generation, reason, changed_at FROM org_generations WHERE org_id = $1`, orgID))
	if err != nil {
		return cmk.Generation{}, classify(ctx, op, genRes(orgID), err)
	}
	return g, nil
}

// Generations returns every org's generation, by org ID.
func (s *Store) Generations(ctx context.Context) ([]cmk.Generation, error) {
	const op = "list generations"
	rows, err := s.db.QueryContext(ctx, `SELECT org_id, generation, reason, changed_at FROM org_generations ORDER BY org_id`)
	if err != nil {
		return nil, classify(ctx, op, "generations", err)
	}
	gs, err := collect(rows, func(rows *sql.Rows) (cmk.Generation, error) { return scanGeneration(rows) })
	return gs, classify(ctx, op, "generations", err)
}

// PutReceipt stores the node's receipt for the org (an older generation
// than the stored one is ignored) and appends ev, in one transaction.
// NotFound when the org does not exist; Invalid without a node.
func (s *Store) PutReceipt(ctx context.Context, r cmk.Receipt, ev *audit.Event) error {
	const op = "put purge receipt"
	if r.NodeID == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "receipt.node_id", Reason: "receipt has no node ID"}
	}
	var e audit.Event
	if ev != nil {
		var err error
		if e, err = eventFor(op, r.OrgID, *ev); err != nil {
			return err
		}
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if err := orgMissing(ctx, tx, op, r.OrgID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO purge_receipts (org_id, node_id, generation, purged_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_id, node_id) DO UPDATE SET generation = excluded.generation, purged_at = excluded.purged_at
			WHERE purge_receipts.generation <= excluded.generation`, r.OrgID, r.NodeID, r.Generation, timeArg(r.PurgedAt))
		if err != nil {
			return classify(ctx, op, "receipt of org "+r.OrgID, err)
		}
		if ev != nil {
			_, err = s.appendAudit(ctx, tx, op, e)
		}
		return err
	})
}

// Receipts returns the org's receipts, by node ID.
func (s *Store) Receipts(ctx context.Context, orgID string) ([]cmk.Receipt, error) {
	const op = "list purge receipts"
	rows, err := s.db.QueryContext(ctx, `SELECT org_id, node_id, generation, purged_at FROM purge_receipts WHERE org_id = $1 ORDER BY node_id`, orgID)
	if err != nil {
		return nil, classify(ctx, op, "receipts of org "+orgID, err)
	}
	rs, err := collect(rows, func(rows *sql.Rows) (cmk.Receipt, error) {
		var r cmk.Receipt
		err := rows.Scan(&r.OrgID, &r.NodeID, &r.Generation, scanTime(&r.PurgedAt))
		return r, err
	})
	return rs, classify(ctx, op, "receipts of org "+orgID, err)
}
