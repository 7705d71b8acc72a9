package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/orgkms/orgkms/internal/fault"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// classify turns an error of database/sql or the driver into a *fault.Error
// for op on resource (e.g. "org acme"): no rows → NotFound, a unique or
// primary-key violation → Conflict ("<resource> already exists"), a busy,
// locked or unopenable database or a done ctx → Unavailable, anything else
// → Internal. A *fault.Error is returned unchanged; nil stays nil.
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
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "database", Err: err}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		switch {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return &fault.Error{Kind: fault.Conflict, Op: op, Resource: resource, Reason: resource + " already exists", Err: err}
		case code&0xff == sqlite3.SQLITE_BUSY, code&0xff == sqlite3.SQLITE_LOCKED, code&0xff == sqlite3.SQLITE_CANTOPEN:
			return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "database", Err: err}
		}
	}
	return &fault.Error{Kind: fault.Internal, Op: op, Resource: resource, Err: err}
}

// sqliteCode returns the extended result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}
