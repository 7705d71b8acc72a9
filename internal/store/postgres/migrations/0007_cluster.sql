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
-- keys. Every insert or update notifies channel orgkms_generation with the
-- payload "GENERATION ORG_ID", delivered when the transaction commits.
--
-- purge_receipts: the latest generation of an org that each node applied
-- (dropped its keys and reloaded the org's state), and when.
CREATE TABLE nodes (
	id           text COLLATE "C" NOT NULL PRIMARY KEY,
	address      text NOT NULL,
	version      text NOT NULL,
	started_at   timestamptz NOT NULL,
	heartbeat_at timestamptz NOT NULL,
	stopped_at   timestamptz
);

CREATE TABLE org_generations (
	org_id     text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES orgs (id),
	generation bigint NOT NULL,
	reason     text NOT NULL,
	changed_at timestamptz NOT NULL
);

CREATE FUNCTION orgkms_notify_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('orgkms_generation', NEW.generation::text || ' ' || NEW.org_id);
	RETURN NULL;
END
$$;

CREATE TRIGGER org_generations_notify AFTER INSERT OR UPDATE ON org_generations
	FOR EACH ROW EXECUTE FUNCTION orgkms_notify_generation();

CREATE TABLE purge_receipts (
	org_id     text COLLATE "C" NOT NULL REFERENCES orgs (id),
	node_id    text COLLATE "C" NOT NULL,
	generation bigint NOT NULL,
	purged_at  timestamptz NOT NULL,
	PRIMARY KEY (org_id, node_id)
);
