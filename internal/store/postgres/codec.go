package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
)

// timeArg returns t as stored: UTC, truncated to the microsecond (the
// precision of timestamptz, which would otherwise round).
func timeArg(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// nullTimeArg is timeArg with the zero time stored as NULL.
func nullTimeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return timeArg(t)
}

// timeDest scans a stored time (or NULL, as the zero time) into *t, in UTC.
type timeDest struct{ t *time.Time }

func scanTime(t *time.Time) timeDest { return timeDest{t} }

func (d timeDest) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case time.Time:
		*d.t = v.UTC()
	default:
		return fmt.Errorf("scan time: unexpected %T", src)
	}
	return nil
}

// rolesArg stores roles comma-separated.
func rolesArg(roles []auth.Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func parseRoles(s string) []auth.Role {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	roles := make([]auth.Role, len(parts))
	for i, p := range parts {
		roles[i] = auth.Role(p)
	}
	return roles
}

// detailsArg stores audit details as a JSON object ("{}" when empty).
func detailsArg(d map[string]string) (string, error) {
	if len(d) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// parseDetails is the inverse of detailsArg; an empty object gives nil.
func parseDetails(s string) (map[string]string, error) {
	var d map[string]string
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("parse audit details: %w", err)
	}
	if len(d) == 0 {
		return nil, nil
	}
	return d, nil
}

// nonNil returns b, or an empty slice for nil: the bytea columns are NOT
// NULL, and an empty wrapping is stored as an empty value.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// collect scans every row with scan, closes rows and reports the first of
// scan, iteration and close errors.
func collect[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) (out []T, err error) {
	defer func() {
		if cerr := rows.Close(); err == nil && cerr != nil {
			out, err = nil, cerr
		}
	}()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
