-- 0003_users: console users and their browser sessions.

-- org_id is NULL for platform users (auth.User.OrgID ""), so an org user's
-- org is a real foreign key while platform users name no org; the CHECK
-- keeps '' from standing in for NULL. Emails are stored as given (the
-- service lowercases them) and compared exactly.
CREATE TABLE users (
	id            text COLLATE "C" NOT NULL PRIMARY KEY,
	org_id        text COLLATE "C" REFERENCES orgs (id) CHECK (org_id <> ''),
	email         text COLLATE "C" NOT NULL,
	name          text NOT NULL,
	roles         text NOT NULL, -- comma-separated, in the order given
	password_hash text NOT NULL, -- argon2id, PHC string format
	created_at    timestamptz NOT NULL,
	disabled      boolean NOT NULL,
	CONSTRAINT users_email_key UNIQUE (email)
);

-- Listing an org's users by email.
CREATE INDEX users_org_email ON users (org_id, email);

-- id is the hex SHA-256 of the cookie secret; the secret is never stored.
CREATE TABLE sessions (
	id         text COLLATE "C" NOT NULL PRIMARY KEY,
	user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	csrf       text NOT NULL,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);

-- Signing a user out everywhere, and the cascade.
CREATE INDEX sessions_user ON sessions (user_id);

-- Purging expired sessions.
CREATE INDEX sessions_expiry ON sessions (expires_at);
