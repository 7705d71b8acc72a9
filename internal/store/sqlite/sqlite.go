package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Memory is the [Config.Path] of a private in-memory database, for tests.
const Memory = ":memory:"

// readers is the size of the reader pool of a file database.
const readers = 4

// Connection parameters. The writer takes the write lock at BEGIN
// (_txlock=immediate), so a transaction never fails half-way with
// SQLITE_BUSY when it upgrades from reading to writing. Readers are
// query_only: a write through the reader pool is a bug and fails. The
// writer keeps its temporary files in memory (temp_store=MEMORY): a batch
// runs each item under a savepoint, and the statement journal of a
// savepoint, past 64 KiB, was a temporary file written page by page (a
// tenth of a mass re-wrap's CPU went into those writes); it holds copies
// of pages being changed, root key rows among them, which are better not
// written to a file at all.
const (
	writerParams = "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(ON)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	readerParams = "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=query_only(1)"
	memoryParams = "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=secure_delete(ON)&_txlock=immediate"
)

// Config configures [Open]. The zero value of every field except Path is a
// valid default.
type Config struct {
	// Path is the database file, created with mode 0600 when absent, or
	// [Memory] for a private in-memory database.
	Path string
	// Logger receives migration and file-permission notices; nil discards.
	Logger *slog.Logger
	// NoMigrate makes Open check the schema version instead of applying
	// migrations (orgkms serve): an outdated or newer schema is a Conflict.
	NoMigrate bool
}

// Store is the SQLite implementation of [keys.Store], [auth.Store],
// [auth.UserStore] and [cmk.Store]. It is safe for concurrent use.
//
// Writes go through one connection (SQLite has one writer at a time, and
// queueing in Go is cheaper than spinning on SQLITE_BUSY); reads go through a
// pool of connections that, in WAL mode, never wait for the writer.
type Store struct {
	w     *sql.DB // the single writer connection
	r     *sql.DB // the reader pool; the same as w for an in-memory database
	log   *slog.Logger
	path  string
	stmts statements
	guard *fileGuard // nil for a Memory database
	lock  *os.File   // the data directory lock; nil for a Memory database

	healthMu  sync.Mutex
	healthAt  time.Time // of the last write probe
	healthErr error     // its result
	healthSeq int
}

var (
	_ keys.Store     = (*Store)(nil)
	_ auth.Store     = (*Store)(nil)
	_ auth.UserStore = (*Store)(nil)
	_ cmk.Store      = (*Store)(nil)
)

// Open opens (creating if needed) the database at cfg.Path and applies the
// embedded migrations, or with cfg.NoMigrate only checks that the schema is
// current. It returns Kind Invalid for a bad path, Unavailable when the file
// cannot be opened or is locked, and Conflict for a schema of another
// version (see [Store.Migrate]). A file database locks its directory (the
// data directory, [LockFile]) until Close: a second Open of it, by this or
// another process, returns Kind Conflict naming the directory and the
// process holding it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	const op = "open database"
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.Path == "":
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "path", Reason: "database path is empty"}
	case strings.ContainsAny(cfg.Path, "?#") || strings.HasPrefix(cfg.Path, "file:"):
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "path", Reason: "database path must be a plain file name without '?' or '#'"}
	}
	s := &Store{log: log, path: cfg.Path}
	if cfg.Path == Memory {
		db, err := sql.Open("sqlite", Memory+memoryParams)
		if err != nil {
			return nil, classify(ctx, op, "database", err)
		}
		// Every connection to :memory: is a new database: keep exactly one,
		// forever.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
		s.w, s.r = db, db
	} else {
		lock, err := lockDir(filepath.Dir(cfg.Path), log)
		if err != nil {
			return nil, err
		}
		s.lock = lock
		if err := createFile(cfg.Path, log); err != nil {
			return nil, s.closeAfter(&fault.Error{Kind: fault.Unavailable, Op: op, Resource: "database", Reason: "cannot create or open the database file", Err: err})
		}
		if s.guard, err = newFileGuard(cfg.Path, log); err != nil {
			return nil, s.closeAfter(&fault.Error{Kind: fault.Unavailable, Op: op, Resource: "database", Reason: "cannot open the database file", Err: err})
		}
		w, r, err := openGuarded(s.guard)
		if err != nil {
			return nil, s.closeAfter(classify(ctx, op, "database", err))
		}
		s.w, s.r = w, r
		w.SetMaxOpenConns(1)
		w.SetMaxIdleConns(1)
		w.SetConnMaxLifetime(0)
		w.SetConnMaxIdleTime(0)
		// Open the writer first: it switches the file to WAL, which readers
		// then find persistent in the file.
		if err := w.PingContext(ctx); err != nil {
			return nil, s.closeAfter(classify(ctx, op, "database", err))
		}
		r.SetMaxOpenConns(readers)
		r.SetMaxIdleConns(readers)
		s.r = r
	}
	if err := s.w.PingContext(ctx); err != nil {
		return nil, s.closeAfter(classify(ctx, op, "database", err))
	}
	var err error
	if cfg.NoMigrate {
		err = s.checkSchema(ctx)
	} else {
		_, err = s.Migrate(ctx)
	}
	if err != nil {
		return nil, s.closeAfter(err)
	}
	if err := s.prepare(ctx); err != nil {
		return nil, s.closeAfter(err)
	}
	return s, nil
}

// createFile creates path with mode 0600 if it does not exist. SQLite gives
// the -wal and -shm files the mode of the database file. An existing file
// readable by others is reported, not changed: the operator chose it.
func createFile(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("database file is accessible by other users", slog.String("path", path), slog.String("mode", fi.Mode().Perm().String()))
	}
	return nil
}

// closeAfter closes s after a failed Open and returns err, with any close
// error attached to it.
func (s *Store) closeAfter(err error) error {
	if cerr := s.Close(); cerr != nil {
		if fe := fault.As(err); fe != nil {
			fe.Err = errors.Join(fe.Err, cerr)
		}
	}
	return err
}

// Close closes the database and releases the data directory. It is safe to
// call more than once. A database file deleted under the store is first
// restored (see [Store.Health]), so nothing committed is lost.
func (s *Store) Close() error {
	var errs []error
	if s.guard != nil && s.w != nil && s.lock != nil {
		if _, err := os.Stat(s.path); errors.Is(err, fs.ErrNotExist) {
			_, err := s.w.ExecContext(context.Background(), `PRAGMA user_version`)
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.closeStatements())
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if s.lock != nil {
		// Closing the descriptor releases the flock.
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return &fault.Error{Kind: fault.Internal, Op: "close database", Resource: "database", Err: err}
	}
	return nil
}

// DB returns the writer connection, for tests and tools that need raw SQL.
func (s *Store) DB() *sql.DB { return s.w }

// ScrubDeleted makes deleted rows unrecoverable from the database files:
// deleted content is zeroed in place (secure_delete), and this checkpoints
// the write-ahead log and truncates it, so no earlier page image remains.
// orgkms calls it after moving an org between the platform key and a
// customer managed key (no copy of the old wrapping may remain).
func (s *Store) ScrubDeleted(ctx context.Context) error {
	if s.path == Memory {
		return nil
	}
	_, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	return classify(ctx, "scrub deleted rows", "database", err)
}
