-- 0010_usage (issue #11 "usage"; the coordinator may renumber it): key-use
-- transparency. A usage record per org, key, op,
-- principal, outcome and minute, with the times of the first and last call
-- in the minute. outcome is 'ok' or the stable error code of a refused or
-- failed call. It replaces usage_counters (0001), whose rows are copied as
-- outcome 'ok'; usage_counters is no longer written.
--
-- usage_cleanup: the cluster-wide retention cleanup claim (one row), as
-- cmk_orgs.probe_due_at (0008): a node claims the cleanup by moving due_at
-- one interval ahead.

CREATE TABLE usage_records (
	org_id    text COLLATE "C" NOT NULL,
	minute    timestamptz NOT NULL,
	key_name  text COLLATE "C" NOT NULL,
	op        text COLLATE "C" NOT NULL,
	principal text COLLATE "C" NOT NULL,
	outcome   text COLLATE "C" NOT NULL,
	count     bigint NOT NULL,
	first_at  timestamptz NOT NULL,
	last_at   timestamptz NOT NULL,
	PRIMARY KEY (org_id, minute, key_name, op, principal, outcome)
);

CREATE INDEX usage_records_minute ON usage_records (minute);

INSERT INTO usage_records (org_id, minute, key_name, op, principal, outcome, count, first_at, last_at)
	SELECT org_id, minute, key_name, op, principal, 'ok', count, minute, minute FROM usage_counters;

CREATE TABLE usage_cleanup (
	id     integer PRIMARY KEY CHECK (id = 1),
	due_at timestamptz,
	owner  text NOT NULL DEFAULT ''
);

INSERT INTO usage_cleanup (id) VALUES (1);
