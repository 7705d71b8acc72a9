package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

func userRes(id string) string { return "user " + id }

// sessionRes names sessions in errors; a session's ID is a credential hash
// and never appears in an error.
const sessionRes = "session"

const userColumns = `id, org_id, email, name, roles, password_hash, created_at, disabled`

const sessionColumns = `id, user_id, csrf, created_at, expires_at`

func scanUser(row interface{ Scan(...any) error }) (auth.User, error) {
	var u auth.User
	var org sql.NullString
	var roles string
	err := row.Scan(&u.ID, &org, &u.Email, &u.Name, &roles, &u.PasswordHash, scanTime(&u.CreatedAt), &u.Disabled)
	u.OrgID, u.Roles = org.String, parseRoles(roles)
	return u, err
}

func scanSession(row interface{ Scan(...any) error }) (auth.Session, error) {
	var s auth.Session
	err := row.Scan(&s.ID, &s.UserID, &s.CSRF, scanTime(&s.CreatedAt), scanTime(&s.ExpiresAt))
	return s, err
}

// userOrgArg stores a user's org: NULL for a platform user (OrgID ""), so
// that org users' org_id can be a foreign key.
func userOrgArg(orgID string) any {
	if orgID == "" {
		return nil
	}
	return orgID
}

// userChain is the audit chain of changes to the users of orgID: the org's
// own, or [audit.Platform] for platform users.
func userChain(orgID string) string {
	if orgID == "" {
		return audit.Platform
	}
	return orgID
}

// CreateUser stores u and appends ev to the audit chain of u's org, or of
// the platform ([audit.Platform]) for a platform user, in one transaction.
// An empty ev.OrgID is set to that chain. It returns Conflict if a user
// with u's ID or email exists (emails are compared exactly: callers
// normalize them), and Invalid if u's ID or email is empty, if u.OrgID
// names an org that does not exist, or if ev belongs to another chain.
func (s *Store) CreateUser(ctx context.Context, u auth.User, ev audit.Event) error {
	const op = "create user"
	switch {
	case u.ID == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "id", Reason: "user ID is empty"}
	case u.Email == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "email", Reason: "user email is empty"}
	}
	ev, err := eventFor(op, userChain(u.OrgID), ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		if u.OrgID != "" {
			if err := orgMissing(ctx, tx, op, u.OrgID); err != nil {
				if fault.KindOf(err) == fault.NotFound {
					return &fault.Error{Kind: fault.Invalid, Op: op, Field: "org_id", Reason: fmt.Sprintf("org %s does not exist", u.OrgID)}
				}
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			u.ID, userOrgArg(u.OrgID), u.Email, u.Name, rolesArg(u.Roles), u.PasswordHash, timeArg(u.CreatedAt), u.Disabled)
		if pgCode(err) == codeUniqueViolation && constraint(err) == "users_email_key" { // not the primary key: the ID
			return &fault.Error{Kind: fault.Conflict, Op: op, Resource: userRes(u.Email),
				Reason: fmt.Sprintf("a user with email %s already exists", u.Email), Err: err}
		}
		if err != nil {
			return classify(ctx, op, userRes(u.ID), err)
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// GetUser returns the user with ID id. NotFound ("user <id>") if there is
// none.
func (s *Store) GetUser(ctx context.Context, id string) (auth.User, error) {
	const op = "get user"
	u, err := scanUser(s.db.QueryRowContext(ctx, qGetUser, id))
	if err != nil {
		return auth.User{}, classify(ctx, op, userRes(id), err)
	}
	return u, nil
}

// UserByEmail returns the user whose email is exactly email (callers
// normalize it). NotFound ("user <email>") if there is none.
func (s *Store) UserByEmail(ctx context.Context, email string) (auth.User, error) {
	const op = "look up user"
	u, err := scanUser(s.db.QueryRowContext(ctx, qUserByEmail, email))
	if err != nil {
		return auth.User{}, classify(ctx, op, userRes(email), err)
	}
	return u, nil
}

// ListUsers returns the users of the org orgID, or the platform users for
// orgID "", ordered by email. NotFound if orgID names an org that does not
// exist.
func (s *Store) ListUsers(ctx context.Context, orgID string) ([]auth.User, error) {
	const op = "list users"
	res := "users of org " + orgID
	if orgID == "" {
		res = "platform users"
	}
	q, args := `SELECT `+userColumns+` FROM users WHERE org_id = $1 ORDER BY email`, []any{orgID}
	if orgID == "" {
		q, args = `SELECT `+userColumns+` FROM users WHERE org_id IS NULL ORDER BY email`, nil
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	us, err := collect(rows, func(rows *sql.Rows) (auth.User, error) { return scanUser(rows) })
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	if len(us) == 0 && orgID != "" {
		if err := orgMissing(ctx, s.db, op, orgID); err != nil {
			return nil, err
		}
	}
	return us, nil
}

// UpdateUser replaces the Name, Roles, PasswordHash and Disabled of the
// user u.ID, and appends ev to the audit chain of the user's org (as
// stored; u.OrgID, Email and CreatedAt are ignored), in one transaction. An
// empty ev.OrgID is set to that chain. NotFound if there is no such user;
// Invalid if ev belongs to another chain.
func (s *Store) UpdateUser(ctx context.Context, u auth.User, ev audit.Event) error {
	const op = "update user"
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		var org sql.NullString
		err := tx.QueryRowContext(ctx, `UPDATE users SET name = $1, roles = $2, password_hash = $3, disabled = $4 WHERE id = $5 RETURNING org_id`,
			u.Name, rolesArg(u.Roles), u.PasswordHash, u.Disabled, u.ID).Scan(&org)
		if err != nil {
			return classify(ctx, op, userRes(u.ID), err)
		}
		ev, err := eventFor(op, userChain(org.String), ev)
		if err != nil {
			return err // rolls the update back
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// CreateSession stores sess. It returns NotFound if its user does not
// exist, Conflict if a session with its ID exists, and Invalid if its ID or
// expiry is missing.
func (s *Store) CreateSession(ctx context.Context, sess auth.Session) error {
	const op = "create session"
	switch {
	case sess.ID == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "id", Reason: "session ID is empty"}
	case sess.ExpiresAt.IsZero():
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "expires_at", Reason: "session has no expiry"}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		sess.ID, sess.UserID, sess.CSRF, timeArg(sess.CreatedAt), timeArg(sess.ExpiresAt))
	if pgCode(err) == codeForeignKeyViolation {
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: userRes(sess.UserID), Err: err}
	}
	return classify(ctx, op, sessionRes, err)
}

// GetSession returns the session with ID id, expired or not: the caller
// compares ExpiresAt with its clock. NotFound ("session") if there is none.
func (s *Store) GetSession(ctx context.Context, id string) (auth.Session, error) {
	const op = "get session"
	sess, err := scanSession(s.db.QueryRowContext(ctx, qGetSession, id))
	if err != nil {
		return auth.Session{}, classify(ctx, op, sessionRes, err)
	}
	return sess, nil
}

// DeleteSession deletes the session with ID id. Deleting a session that
// does not exist is not an error: signing out twice, or after the session
// was purged, succeeds.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	const op = "delete session"
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	return classify(ctx, op, sessionRes, err)
}

// DeleteUserSessions deletes every session of the user userID (signs them
// out everywhere). A user without sessions, or an unknown user, is not an
// error.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	const op = "delete user sessions"
	_, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	return classify(ctx, op, "sessions of "+userRes(userID), err)
}

// DeleteExpiredSessions deletes the sessions that expired at or before now
// (a session is live while now is before its ExpiresAt) and returns how
// many it deleted. It is not part of [auth.UserStore]: call it
// periodically to keep the table small.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	const op = "delete expired sessions"
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, timeArg(now))
	if err != nil {
		return 0, classify(ctx, op, "sessions", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, classify(ctx, op, "sessions", err)
	}
	return int(n), nil
}
