package postgres

import (
	"context"
	"database/sql"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

const tokenColumns = `id, hash, principal, org_id, roles, description, created_at, expires_at, revoked_at`

func scanToken(rows interface{ Scan(...any) error }) (auth.Token, error) {
	var t auth.Token
	var roles string
	err := rows.Scan(&t.ID, &t.Hash, &t.Principal, &t.OrgID, &roles, &t.Description,
		scanTime(&t.CreatedAt), scanTime(&t.ExpiresAt), scanTime(&t.RevokedAt))
	t.Roles = parseRoles(roles)
	return t, err
}

// CreateToken stores t. Conflict if a token with its ID or its hash exists;
// Invalid if either is empty.
func (s *Store) CreateToken(ctx context.Context, t auth.Token) error {
	const op = "create token"
	switch {
	case t.ID == "":
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "id", Reason: "token ID is empty"}
	case len(t.Hash) == 0:
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "hash", Reason: "token hash is empty"}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, t.Hash, t.Principal, t.OrgID, rolesArg(t.Roles), t.Description,
		timeArg(t.CreatedAt), nullTimeArg(t.ExpiresAt), nullTimeArg(t.RevokedAt))
	if pgCode(err) == codeUniqueViolation && constraint(err) == "tokens_hash_key" { // not the primary key: the ID
		return &fault.Error{Kind: fault.Conflict, Op: op, Resource: "token " + t.ID, Reason: "a token with the same secret exists", Err: err}
	}
	return classify(ctx, op, "token "+t.ID, err)
}

// TokenByHash returns the token whose secret hashes to hash, revoked or
// expired ones included. NotFound if there is none.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (auth.Token, error) {
	const op = "look up token"
	t, err := scanToken(s.db.QueryRowContext(ctx, qTokenByHash, hash))
	if err != nil {
		return auth.Token{}, classify(ctx, op, "token", err)
	}
	return t, nil
}

// ListTokens returns every token, revoked and expired ones included,
// ordered by creation time and ID.
func (s *Store) ListTokens(ctx context.Context) ([]auth.Token, error) {
	const op = "list tokens"
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenColumns+` FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, classify(ctx, op, "tokens", err)
	}
	ts, err := collect(rows, func(rows *sql.Rows) (auth.Token, error) { return scanToken(rows) })
	return ts, classify(ctx, op, "tokens", err)
}

// RevokeToken marks the token revoked at at. Revoking a revoked token keeps
// the first revocation time. NotFound if there is no such token; Invalid if
// at is zero.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	const op = "revoke token"
	if at.IsZero() {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "revoked_at", Reason: "revocation time is zero"}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2`, timeArg(at), id)
	if err != nil {
		return classify(ctx, op, "token "+id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return classify(ctx, op, "token "+id, err)
	}
	if n == 0 {
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: "token " + id}
	}
	return nil
}

// CountTokens returns the number of stored tokens, revoked and expired ones
// included.
func (s *Store) CountTokens(ctx context.Context) (int, error) {
	const op = "count tokens"
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n); err != nil {
		return 0, classify(ctx, op, "tokens", err)
	}
	return n, nil
}
