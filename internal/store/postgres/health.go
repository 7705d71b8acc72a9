package postgres

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// Health reports whether the database takes writes now: it answers, and it
// is not read-only (a standby, or a server in recovery, refuses every
// write). An unreachable or read-only database is Kind Unavailable with a
// reason naming the condition, never a host; Health recovers by itself
// when the condition is gone.
func (s *Store) Health(ctx context.Context) error {
	const op = "check the database"
	var writable bool
	err := s.db.QueryRowContext(ctx, `SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'`).Scan(&writable)
	if err != nil {
		return classify(ctx, op, "database", err)
	}
	if !writable {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "the database",
			Reason: "the database is temporarily unavailable (it is read-only: a standby, or in recovery); retry later", RetryAfter: 5 * time.Second}
	}
	return nil
}

// ScrubDeleted rewrites the table of root key wrappings (VACUUM FULL), so
// that the row versions of deleted wrappings, which PostgreSQL keeps in the
// table's files until a vacuum, are gone from them. orgkms calls it after
// moving an org between the platform key and a customer managed key (no
// copy of the old wrapping may remain in the table). The table is locked
// for the rewrite: it is one small row per org. Copies in the write-ahead
// log, backups and archived WAL are the operator's to protect.
func (s *Store) ScrubDeleted(ctx context.Context) error {
	return s.vacuumFull(ctx, "scrub deleted rows", "root_keys")
}
