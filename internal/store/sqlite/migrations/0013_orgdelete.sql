-- 0010_orgdelete: org deletion with crypto-shred, and the data-key
-- lifecycle (disable, enable, scheduled deletion).
--
-- org_lifecycle: an org scheduled for deletion ('pending_deletion', with
-- its deletion date) or deleted ('deleted': its root key wrappings and data
-- key versions were erased). No row = a usable org. The org row stays
-- after the shred, as a tombstone: its ID is never reused, so every
-- ciphertext of the deleted org names an org that answers org_deleted.
--
-- key_lifecycle: the same for one data key, plus 'disabled'.
--
-- shred_jobs: the durable shreds, one per scheduled deletion (kind
-- 'org_shred' with target '', or 'key_shred' with the key name as target),
-- claimable from not_before = the deletion date. Columns and the
-- lease/fence rules are those of platform_jobs (0009).

CREATE TABLE org_lifecycle (
	org_id        TEXT NOT NULL PRIMARY KEY REFERENCES orgs (id),
	state         TEXT NOT NULL,
	deletion_date TEXT,
	changed_by    TEXT NOT NULL,
	changed_at    TEXT NOT NULL,
	shredded_at   TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE key_lifecycle (
	org_id        TEXT NOT NULL,
	name          TEXT NOT NULL,
	state         TEXT NOT NULL,
	deletion_date TEXT,
	changed_by    TEXT NOT NULL,
	changed_at    TEXT NOT NULL,
	shredded_at   TEXT,
	PRIMARY KEY (org_id, name),
	FOREIGN KEY (org_id, name) REFERENCES data_keys (org_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE shred_jobs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id      TEXT NOT NULL REFERENCES orgs (id),
	kind        TEXT NOT NULL,
	target      TEXT NOT NULL,
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

CREATE INDEX shred_jobs_state_id ON shred_jobs (state, id);

-- At most one open shred of an org or key.
CREATE UNIQUE INDEX shred_jobs_one_open ON shred_jobs (org_id, kind, target) WHERE state IN ('pending', 'running');
