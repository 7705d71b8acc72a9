-- 0011_staged_revocation: an org's staged revocation state (decrypt-only
-- mode, a revocation in effect by the org's own decision, a scheduled
-- revocation) and the durable jobs that apply scheduled revocations.
--
-- One row per org that ever used it; no foreign key, like tokens, so the
-- row never blocks a change to the orgs table. Booleans are 0/1.

CREATE TABLE cmk_staged (
	org_id              TEXT NOT NULL PRIMARY KEY,
	decrypt_only        INTEGER NOT NULL,
	decrypt_only_reason TEXT NOT NULL,
	decrypt_only_by     TEXT NOT NULL,
	decrypt_only_since  TEXT,
	revoked             INTEGER NOT NULL,
	revoked_reason      TEXT NOT NULL,
	revoked_by          TEXT NOT NULL,
	revoked_since       TEXT,
	mode                TEXT NOT NULL, -- scheduled mode, '' when none
	due_at              TEXT,          -- when the scheduled revocation applies
	reason              TEXT NOT NULL,
	scheduled_by        TEXT NOT NULL,
	scheduled_at        TEXT,
	job_id              INTEGER NOT NULL, -- the staged job that applies it, 0 when none
	revision            INTEGER NOT NULL,
	updated_at          TEXT NOT NULL
) STRICT;

-- Their own table, not cmk_jobs: the re-wrap runner claims every row of
-- cmk_jobs, and a scheduled revocation must not hold the org's one open
-- re-wrap job for weeks. Columns and lease/fence rules are those of
-- cmk_jobs (0002, 0008).
CREATE TABLE cmk_staged_jobs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id      TEXT NOT NULL,
	kind        TEXT NOT NULL,
	target      TEXT NOT NULL, -- the mode it applies
	step        TEXT NOT NULL,
	state       TEXT NOT NULL,
	attempts    INTEGER NOT NULL,
	error       TEXT NOT NULL,
	owner       TEXT NOT NULL,
	fence       INTEGER NOT NULL DEFAULT 0,
	lease_until TEXT,
	not_before  TEXT,
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
) STRICT;

CREATE INDEX cmk_staged_jobs_state_id ON cmk_staged_jobs (state, id);

-- At most one pending or running staged job per org.
CREATE UNIQUE INDEX cmk_staged_jobs_one_open ON cmk_staged_jobs (org_id) WHERE state IN ('pending', 'running');
