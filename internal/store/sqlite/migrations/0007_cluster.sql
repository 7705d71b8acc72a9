-- 0007_cluster: what several orgkms nodes share about each other.
--
-- nodes: one row per node (its ID is kept in DATA_DIR/node-id), written at
-- start and on every heartbeat; stopped_at is set by a clean shutdown. A
-- node whose heartbeat is older than a few heartbeat intervals is gone.
--
-- org_generations: the org's key-state generation, raised in the same
-- transaction as every change that must drop the org's unwrapped keys from
-- every node's memory (revoked, restored, lost, rotated, replaced, fell
-- back, deactivated, purged by an operator); reason says which. A node that
-- holds an older generation of an org reloads the org's state and drops its
-- keys.
--
-- purge_receipts: the latest generation of an org that each node applied
-- (dropped its keys and reloaded the org's state), and when.
CREATE TABLE nodes (
	id           TEXT NOT NULL PRIMARY KEY,
	address      TEXT NOT NULL,
	version      TEXT NOT NULL,
	started_at   TEXT NOT NULL,
	heartbeat_at TEXT NOT NULL,
	stopped_at   TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE org_generations (
	org_id     TEXT NOT NULL PRIMARY KEY REFERENCES orgs (id),
	generation INTEGER NOT NULL,
	reason     TEXT NOT NULL,
	changed_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE purge_receipts (
	org_id     TEXT NOT NULL REFERENCES orgs (id),
	node_id    TEXT NOT NULL,
	generation INTEGER NOT NULL,
	purged_at  TEXT NOT NULL,
	PRIMARY KEY (org_id, node_id)
) STRICT, WITHOUT ROWID;
