package postgres

// Queries used in more than one place, or hot. pgx prepares every query
// once per connection and reuses it (its statement cache), so nothing is
// prepared by hand here.
const (
	qGetOrg     = `SELECT name, created_at, master_provider, master_key_id FROM orgs WHERE id = $1`
	qGetDataKey = `SELECT k.created_at, k.latest_version, k.min_decryption_version, v.version, v.created_at, v.wrapped
		FROM data_keys k LEFT JOIN data_key_versions v ON v.org_id = k.org_id AND v.name = k.name
		WHERE k.org_id = $1 AND k.name = $2 ORDER BY v.version`
	qRootKeys = `SELECT id, provider, key_id, key_version, ciphertext, state, created_at
		FROM root_keys WHERE org_id = $1 ORDER BY state = 'active' DESC, id`
	qTokenByHash = `SELECT ` + tokenColumns + ` FROM tokens WHERE hash = $1`
	qGetCMK      = `SELECT ` + cmkColumns + ` FROM cmk_orgs WHERE org_id = $1`
	qGetSession  = `SELECT ` + sessionColumns + ` FROM sessions WHERE id = $1`
	qGetUser     = `SELECT ` + userColumns + ` FROM users WHERE id = $1`
	qUserByEmail = `SELECT ` + userColumns + ` FROM users WHERE email = $1`
	qAddUsage    = `INSERT INTO usage_records (org_id, minute, key_name, op, principal, outcome, count, first_at, last_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (org_id, minute, key_name, op, principal, outcome) DO UPDATE SET count = usage_records.count + excluded.count,
			first_at = LEAST(usage_records.first_at, excluded.first_at), last_at = GREATEST(usage_records.last_at, excluded.last_at)`

	// qClaimJob leases the oldest claimable job in one statement. Polled by
	// every node's job runner: it walks the open jobs in id order (the
	// partial index cmk_jobs_open_id) and skips rows another claim has
	// locked, so concurrent claims never wait for each other and never
	// lease one job twice. A row that changed after the statement's
	// snapshot is re-checked against the WHERE clause once locked.
	qClaimJob = `UPDATE cmk_jobs SET state = 'running', owner = $2, lease_until = $3, attempts = attempts + 1, fence = fence + 1, updated_at = $1
		WHERE id = (SELECT id FROM cmk_jobs
			WHERE state IN ('pending', 'running')
				AND ((state = 'pending' AND (not_before IS NULL OR not_before <= $1))
					OR (state = 'running' AND (lease_until IS NULL OR lease_until <= $1)))
			ORDER BY id LIMIT 1
			FOR UPDATE SKIP LOCKED)
		RETURNING ` + jobColumns

	// qClaimJobs is qClaimJob for up to $4 jobs.
	qClaimJobs = `UPDATE cmk_jobs SET state = 'running', owner = $2, lease_until = $3, attempts = attempts + 1, fence = fence + 1, updated_at = $1
		WHERE id IN (SELECT id FROM cmk_jobs
			WHERE state IN ('pending', 'running')
				AND ((state = 'pending' AND (not_before IS NULL OR not_before <= $1))
					OR (state = 'running' AND (lease_until IS NULL OR lease_until <= $1)))
			ORDER BY id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING ` + jobColumns
)
