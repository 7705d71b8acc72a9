-- 0003_users: console users and their browser sessions.
--
-- Times follow 0001: fixed-width UTC text at microsecond precision.

-- org_id is NULL for platform users (auth.User.OrgID ""), so an org user's
-- org is a real foreign key while platform users name no org; the CHECK
-- keeps '' from standing in for NULL. Emails are stored as given (the
-- service lowercases them) and compared exactly.
CREATE TABLE users (
	id            TEXT NOT NULL PRIMARY KEY,
	org_id        TEXT REFERENCES orgs (id) CHECK (org_id <> ''),
	email         TEXT NOT NULL UNIQUE,
	name          TEXT NOT NULL,
	roles         TEXT NOT NULL, -- comma-separated, in the order given
	password_hash TEXT NOT NULL, -- argon2id, PHC string format
	created_at    TEXT NOT NULL,
	disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1))
) STRICT, WITHOUT ROWID;

-- Listing an org's users by email.
CREATE INDEX users_org_email ON users (org_id, email);

-- id is the hex SHA-256 of the cookie secret; the secret is never stored.
CREATE TABLE sessions (
	id         TEXT NOT NULL PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf       TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL
) STRICT, WITHOUT ROWID;

-- Signing a user out everywhere, and the cascade.
CREATE INDEX sessions_user ON sessions (user_id);

-- Purging expired sessions.
CREATE INDEX sessions_expiry ON sessions (expires_at);
