package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/orgkms/orgkms/internal/fault"

	sqlite3 "modernc.org/sqlite/lib"
)

// coded is an error carrying an SQLite result code, as *sqlite.Error does.
type coded interface {
	error
	Code() int
}

// classify is the one function that turns an error of database/sql or the
// SQLite driver into a *fault.Error for op on resource (e.g. "org acme"):
//
//   - no rows → NotFound;
//   - a unique or primary-key violation → Conflict ("<resource> already
//     exists");
//   - a condition of the database itself that passes, or that the operator
//     fixes without a restart, → Unavailable with a Retry-After and a reason
//     that names the condition (never a path): SQLITE_BUSY, SQLITE_LOCKED
//     (busy), SQLITE_FULL (disk full), SQLITE_READONLY (read-only),
//     SQLITE_IOERR (I/O error), SQLITE_CANTOPEN and SQLITE_NOTADB (the file
//     cannot be opened or is not a database), a connection lost, a done ctx;
//   - anything else (SQLITE_CORRUPT, a misuse: a bug) → Internal.
//
// A *fault.Error is returned unchanged; nil stays nil.
func classify(ctx context.Context, op, resource string, err error) error {
	if err == nil {
		return nil
	}
	if fe, ok := err.(*fault.Error); ok {
		return fe
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &fault.Error{Kind: fault.NotFound, Op: op, Resource: resource}
	}
	unavailable := func(reason string, retry time.Duration) error {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "the database", Reason: reason, RetryAfter: retry, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return unavailable("", 0)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) {
		return unavailable("the database connection was lost; retry", time.Second)
	}
	var ce coded
	if errors.As(err, &ce) {
		code := ce.Code()
		switch code & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			if code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
				return &fault.Error{Kind: fault.Conflict, Op: op, Resource: resource, Reason: resource + " already exists", Err: err}
			}
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return unavailable("the database is busy; retry", time.Second)
		case sqlite3.SQLITE_FULL:
			return unavailable("the database is temporarily unavailable (its disk is full); retry later", 5*time.Second)
		case sqlite3.SQLITE_READONLY:
			return unavailable("the database is temporarily unavailable (its file system is read-only); retry later", 5*time.Second)
		case sqlite3.SQLITE_IOERR:
			return unavailable("the database is temporarily unavailable (an I/O error); retry later", 5*time.Second)
		case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOTADB:
			return unavailable("the database is temporarily unavailable (its file cannot be opened); retry later", 5*time.Second)
		}
	}
	return &fault.Error{Kind: fault.Internal, Op: op, Resource: resource, Err: err}
}

// sqliteCode returns the extended result code of err, or 0.
func sqliteCode(err error) int {
	var ce coded
	if errors.As(err, &ce) {
		return ce.Code()
	}
	return 0
}
