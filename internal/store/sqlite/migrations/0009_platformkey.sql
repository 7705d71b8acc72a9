-- 0009_platformkey: platform jobs, the durable re-wrap of every org whose
-- root key is not wrapped by the current platform master key version.
--
-- Their own table, not cmk_jobs: the CMK job runner claims every row of
-- cmk_jobs, and a platform job belongs to no org (org_id is '_platform').
-- The columns and the lease/fence rules are those of cmk_jobs (0002, 0008).

CREATE TABLE platform_jobs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id      TEXT NOT NULL,
	kind        TEXT NOT NULL,
	target      TEXT NOT NULL,
	step        TEXT NOT NULL, -- last completed step, '' before the first
	state       TEXT NOT NULL,
	attempts    INTEGER NOT NULL,
	error       TEXT NOT NULL,
	owner       TEXT NOT NULL, -- claim holding (or last holding) the lease
	fence       INTEGER NOT NULL DEFAULT 0,
	lease_until TEXT,
	not_before  TEXT,
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
) STRICT;

CREATE INDEX platform_jobs_state_id ON platform_jobs (state, id);

-- At most one pending or running job of a kind, cluster-wide.
CREATE UNIQUE INDEX platform_jobs_one_open ON platform_jobs (kind) WHERE state IN ('pending', 'running');

-- The re-wrap walks orgs by ID, and counts wrappings by key version.
CREATE INDEX root_keys_version ON root_keys (state, provider, key_id, key_version);
