-- 0002_cmk: customer managed keys: per-org CMK records, admin-consent
-- requests and durable re-wrap jobs; at most one pending root key wrapping
-- per org.
--
-- Times follow 0001: fixed-width UTC text at microsecond precision. An
-- optional time is NULL when unset (the zero time.Time).

-- One row per org that started the CMK flow; an org without a row is on the
-- platform key.
CREATE TABLE cmk_orgs (
	org_id            TEXT NOT NULL PRIMARY KEY REFERENCES orgs (id),
	state             TEXT NOT NULL,
	tenant_id         TEXT NOT NULL,
	consented_at      TEXT,
	consented_by      TEXT NOT NULL,
	vault_uri         TEXT NOT NULL,
	key_name          TEXT NOT NULL,
	key_version       TEXT NOT NULL, -- '' = follow the latest version
	key_uri           TEXT NOT NULL,
	active_key_uri    TEXT NOT NULL, -- '' while on the platform key
	active_version    TEXT NOT NULL,
	reason_code       TEXT NOT NULL,
	reason            TEXT NOT NULL,
	recoverable_until TEXT,
	revoked_since     TEXT,
	last_probe_at     TEXT,
	last_probe_error  TEXT NOT NULL,
	degraded          INTEGER NOT NULL CHECK (degraded IN (0, 1)),
	updated_at        TEXT
) STRICT, WITHOUT ROWID;

CREATE INDEX cmk_orgs_state ON cmk_orgs (state, org_id);

-- Single use: taking a request deletes it. state is the random OAuth state.
CREATE TABLE cmk_consent_requests (
	state      TEXT NOT NULL PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES orgs (id),
	actor      TEXT NOT NULL,
	tenant_id  TEXT NOT NULL,
	expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX cmk_consent_requests_expiry ON cmk_consent_requests (expires_at);

CREATE TABLE cmk_jobs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id      TEXT NOT NULL REFERENCES orgs (id),
	kind        TEXT NOT NULL,
	target      TEXT NOT NULL,
	step        TEXT NOT NULL, -- last completed step, '' before the first
	state       TEXT NOT NULL,
	attempts    INTEGER NOT NULL,
	error       TEXT NOT NULL,
	owner       TEXT NOT NULL, -- node holding (or last holding) the lease
	lease_until TEXT,
	not_before  TEXT,
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
) STRICT;

-- Claiming: pending jobs by not_before, running ones by lease, oldest first.
CREATE INDEX cmk_jobs_claim ON cmk_jobs (state, not_before, id);

-- An org's latest job.
CREATE INDEX cmk_jobs_org ON cmk_jobs (org_id, id);

-- At most one pending or running job per org.
CREATE UNIQUE INDEX cmk_jobs_one_open ON cmk_jobs (org_id) WHERE state IN ('pending', 'running');

-- At most one pending root key wrapping per org (0001 allows one active).
CREATE UNIQUE INDEX root_keys_one_pending ON root_keys (org_id) WHERE state = 'pending';
