package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orgkms/orgkms/internal/fault"
)

// SQLSTATE codes orgkms acts on
// (https://www.postgresql.org/docs/15/errcodes-appendix.html).
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeQueryCanceled        = "57014" // statement_timeout, or a cancel request
	codeLockNotAvailable     = "55P03"
	codeReadOnlyTransaction  = "25006"
	codeInvalidPassword      = "28P01"
	codeInvalidAuthorization = "28000"
	codeUnknownDatabase      = "3D000"
	codeBadEncoding          = "22021" // e.g. a NUL character in text
	codeUntranslatable       = "22P05"
)

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// constraint returns the constraint a PostgreSQL error names, or "".
func constraint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}

// retryable reports whether a transaction that failed with err may be run
// again from the start: the server aborted it to keep transactions
// serializable, or to break a deadlock.
func retryable(err error) bool {
	c := pgCode(err)
	return c == codeSerializationFailure || c == codeDeadlockDetected
}

// classify is the one function that turns an error of database/sql, pgx or
// PostgreSQL into a *fault.Error for op on resource (e.g. "org acme"):
//
//   - no rows → NotFound;
//   - a unique violation → Conflict ("<resource> already exists");
//   - text the database cannot store (a NUL character) → Invalid;
//   - a condition of the database that passes, or that the operator fixes
//     without restarting orgkms, → Unavailable with a Retry-After and a
//     reason that names the condition, never a host: a connection refused,
//     lost or timed out, the server shutting down or starting, too many
//     connections, a serialization failure or deadlock (after inTx's
//     retries), a statement timeout, a lock timeout, a read-only server
//     (a standby), credentials or a database refused, a done ctx;
//   - anything else (a syntax error, a constraint orgkms does not expect:
//     a bug) → Internal.
//
// A *fault.Error is returned unchanged; nil stays nil.
func classify(ctx context.Context, op, resource string, err error) error {
	if err == nil {
		return nil
	}
	if fe, ok := err.(*fault.Error); ok {
		return fe
	}
	if errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows) {
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: resource}
	}
	unavailable := func(reason string, retry time.Duration) error {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "the database", Reason: reason, RetryAfter: retry, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return unavailable("", 0)
	}
	switch code := pgCode(err); {
	case code == codeUniqueViolation:
		return &fault.Error{Kind: fault.Conflict, Op: op, Resource: resource, Reason: resource + " already exists", Err: err}
	case code == codeBadEncoding || code == codeUntranslatable:
		return &fault.Error{Kind: fault.Invalid, Op: op, Resource: resource, Reason: "text must be valid UTF-8 without NUL characters", Err: err}
	case code == codeSerializationFailure || code == codeDeadlockDetected:
		return unavailable("the database is busy with concurrent changes; retry", time.Second)
	case code == codeQueryCanceled:
		return unavailable("the database took too long to answer (statement timeout); retry later", 5*time.Second)
	case code == codeLockNotAvailable:
		return unavailable("the database is busy; retry", time.Second)
	case code == codeReadOnlyTransaction:
		return unavailable("the database is temporarily unavailable (it is read-only: a standby, or in recovery); retry later", 5*time.Second)
	case code == codeInvalidPassword || code == codeInvalidAuthorization:
		return unavailable("the database refused orgkms' credentials: check the user and password of the database URL", 5*time.Second)
	case code == codeUnknownDatabase:
		return unavailable("the database named in the database URL does not exist: create it, or fix the URL", 5*time.Second)
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "57P"), strings.HasPrefix(code, "53"):
		// Connection exceptions, the server shutting down or starting up,
		// insufficient resources (too many connections, disk full).
		return unavailable("the database is temporarily unavailable; retry later", 5*time.Second)
	case code != "":
		return &fault.Error{Kind: fault.Internal, Op: op, Resource: resource, Err: err}
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return unavailable("cannot connect to the database; retry later", 5*time.Second)
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &ne), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return unavailable("the database connection was lost; retry", time.Second)
	}
	return &fault.Error{Kind: fault.Internal, Op: op, Resource: resource, Err: err}
}
