-- webhooks: signed notifications. An org's webhooks, the durable
-- outbox of their deliveries and the history of every delivery attempt.
--
-- A webhook's signing secret is stored wrapped by the platform master key
-- (provider, key ID, version and ciphertext, as root_keys stores a
-- wrapping); previous_* is the secret a rotation replaced, still signing
-- beside the new one until previous_until.
--
-- webhook_deliveries is the outbox: the store inserts one row per
-- subscribed webhook in the transaction that appends the audit event the
-- notification reports. A node claims due rows under a lease (owner,
-- fence, lease_until, as cmk_jobs); every write of the holder is fenced.
-- No foreign key to orgs: an org's deletion must not be blocked by them.

CREATE TABLE webhooks (
	org_id                   TEXT NOT NULL,
	id                       TEXT NOT NULL,
	url                      TEXT NOT NULL,
	description              TEXT NOT NULL,
	events                   TEXT NOT NULL, -- comma-separated types; '' = every type
	secret_provider          TEXT NOT NULL,
	secret_key_id            TEXT NOT NULL,
	secret_key_version       TEXT NOT NULL,
	secret_ciphertext        BLOB NOT NULL,
	previous_provider        TEXT NOT NULL DEFAULT '',
	previous_key_id          TEXT NOT NULL DEFAULT '',
	previous_key_version     TEXT NOT NULL DEFAULT '',
	previous_ciphertext      BLOB,
	previous_until           TEXT,
	created_at               TEXT NOT NULL,
	created_by               TEXT NOT NULL,
	PRIMARY KEY (org_id, id)
) STRICT;

CREATE TABLE webhook_deliveries (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id          TEXT NOT NULL,
	webhook_id      TEXT NOT NULL,
	event_id        TEXT NOT NULL,
	event_type      TEXT NOT NULL,
	body            BLOB NOT NULL,
	created_at      TEXT NOT NULL,
	state           TEXT NOT NULL, -- pending, delivered, failed
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at TEXT NOT NULL,
	owner           TEXT NOT NULL DEFAULT '',
	fence           INTEGER NOT NULL DEFAULT 0,
	lease_until     TEXT,
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	updated_at      TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, org_id, event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (org_id, webhook_id, id);

CREATE TABLE webhook_attempts (
	delivery_id   INTEGER NOT NULL,
	attempt       INTEGER NOT NULL,
	time          TEXT NOT NULL,
	status_code   INTEGER NOT NULL, -- 0 when no response
	latency_us    INTEGER NOT NULL,
	error         TEXT NOT NULL,
	excerpt       TEXT NOT NULL, -- the response body's first bytes, at most 256
	next_retry_at TEXT,
	PRIMARY KEY (delivery_id, attempt)
) STRICT;
