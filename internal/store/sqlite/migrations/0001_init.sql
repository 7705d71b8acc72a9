-- 0001_init: orgs, root key wrappings, data keys, tokens, audit log, usage.
--
-- Times are TEXT in UTC, fixed width at microsecond precision
-- ("2006-01-02T15:04:05.000000Z"), so they sort and compare as text.
-- States are TEXT without CHECK constraints so later migrations can add
-- states without rebuilding tables; the Go code validates them.

CREATE TABLE orgs (
	id              TEXT NOT NULL PRIMARY KEY,
	name            TEXT NOT NULL,
	created_at      TEXT NOT NULL,
	master_provider TEXT NOT NULL,
	master_key_id   TEXT NOT NULL
) STRICT;

CREATE TABLE root_keys (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id      TEXT NOT NULL REFERENCES orgs (id),
	provider    TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	key_version TEXT NOT NULL,
	ciphertext  BLOB NOT NULL,
	state       TEXT NOT NULL,
	created_at  TEXT NOT NULL
) STRICT;

CREATE INDEX root_keys_org ON root_keys (org_id, id);

-- At most one active wrapping per org.
CREATE UNIQUE INDEX root_keys_one_active ON root_keys (org_id) WHERE state = 'active';

CREATE TABLE data_keys (
	org_id                 TEXT NOT NULL REFERENCES orgs (id),
	name                   TEXT NOT NULL,
	created_at             TEXT NOT NULL,
	latest_version         INTEGER NOT NULL,
	min_decryption_version INTEGER NOT NULL,
	PRIMARY KEY (org_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE data_key_versions (
	org_id     TEXT NOT NULL,
	name       TEXT NOT NULL,
	version    INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	PRIMARY KEY (org_id, name, version),
	FOREIGN KEY (org_id, name) REFERENCES data_keys (org_id, name)
) STRICT, WITHOUT ROWID;

-- org_id is '' for platform-scoped tokens; no foreign key, so a token names
-- its org even if the org table changes shape later.
CREATE TABLE tokens (
	id          TEXT NOT NULL PRIMARY KEY,
	hash        BLOB NOT NULL UNIQUE,
	principal   TEXT NOT NULL,
	org_id      TEXT NOT NULL,
	roles       TEXT NOT NULL, -- comma-separated
	description TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	expires_at  TEXT,          -- NULL = never
	revoked_at  TEXT           -- NULL = active
) STRICT;

-- One chain per org ID, and one for the platform ('_platform'), which is not
-- an org: no foreign key.
CREATE TABLE audit_events (
	org_id    TEXT NOT NULL,
	seq       INTEGER NOT NULL,
	time      TEXT NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	details   TEXT NOT NULL, -- JSON object of strings
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL,
	PRIMARY KEY (org_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE usage_counters (
	org_id    TEXT NOT NULL,
	key_name  TEXT NOT NULL,
	op        TEXT NOT NULL,
	principal TEXT NOT NULL,
	minute    TEXT NOT NULL,
	count     INTEGER NOT NULL,
	PRIMARY KEY (org_id, key_name, op, principal, minute)
) STRICT, WITHOUT ROWID;

CREATE INDEX usage_counters_org_minute ON usage_counters (org_id, minute);
