package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/orgkms/orgkms/internal/fault"
)

// fileGuard watches the database file under a running store and owns the
// physical connections of both pools (writer and readers), so that it can
// move them to a new file.
//
// SQLite keeps using an open file after it was deleted or replaced at its
// path: commits would be acknowledged and lost at the next start. So every
// write (a transaction's BEGIN, a statement outside a transaction) first
// checks that the path still names the open file:
//
//   - deleted: the guard writes a consistent copy of the open database
//     (VACUUM INTO, which includes the write-ahead log) back to the path,
//     and moves every connection to it; nothing committed is lost and the
//     write proceeds;
//   - replaced by another file: the write is refused (Unavailable) until
//     the original is put back, since switching to the other file would
//     drop everything committed since it was made.
//
// Connections are counted by generation: after a move, a new connection
// opens only when every connection to the old file has closed, because
// SQLite's last connection to a file removes its -wal and -shm by name.
type fileGuard struct {
	path string
	log  *slog.Logger

	mu       sync.Mutex
	ident    os.FileInfo // the file the connections use
	gen      int         // connections of older generations are discarded
	live     map[int]int // open connections per generation
	drained  chan struct{}
	cleanup  bool     // remove stale -wal/-shm before the first new connection
	reported bool     // the path does not name the open file, and that was logged
	drop     []func() // closes idle connections of the pools (set by Open)

	// The outcome of the last writes (not the health probe, whose one page
	// a full disk may still take): see [Store.Health].
	lastOK      time.Time
	lastFault   error
	lastFaultAt time.Time
}

// faultMemory is how long a write that failed for lack of space, a
// read-only file system or an I/O error keeps [Store.Health] false when no
// write has succeeded since.
const faultMemory = 10 * time.Second

// noteWrite records the outcome of a write.
func (g *fileGuard) noteWrite(err error) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	switch sqliteCode(err) & 0xff {
	case 0:
		if err == nil {
			g.lastOK = now
		}
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR:
		g.lastFault, g.lastFaultAt = err, now
	}
}

// recentFault returns the last write fault if no write succeeded since and
// it is recent.
func (g *fileGuard) recentFault() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lastFault == nil || !g.lastFaultAt.After(g.lastOK) || time.Since(g.lastFaultAt) > faultMemory {
		return nil
	}
	return g.lastFault
}

type probeKey struct{}

func newFileGuard(path string, log *slog.Logger) (*fileGuard, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	return &fileGuard{path: path, log: log, ident: fi, live: map[int]int{}}, nil
}

// connector returns the driver.Connector of a pool whose connections open
// path+params.
func (g *fileGuard) connector(params string, writer bool) (driver.Connector, error) {
	base, err := sqlite.NewConnector(g.path + params)
	if err != nil {
		return nil, err
	}
	return &guardedConnector{base: base, g: g, writer: writer}, nil
}

type guardedConnector struct {
	base   driver.Connector
	g      *fileGuard
	writer bool
}

func (c *guardedConnector) Driver() driver.Driver { return c.base.Driver() }

// Connect waits until no connection to a previous file remains, then opens
// one to the current file.
func (c *guardedConnector) Connect(ctx context.Context) (driver.Conn, error) {
	g := c.g
	for {
		g.mu.Lock()
		old := 0
		for gen, n := range g.live {
			if gen < g.gen {
				old += n
			}
		}
		if old == 0 {
			break
		}
		if g.drained == nil {
			g.drained = make(chan struct{})
		}
		wait := g.drained
		g.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	defer g.mu.Unlock()
	if g.cleanup {
		// The file was restored from a copy that has no write-ahead log: a
		// -wal or -shm left at its name belongs to the old file.
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Remove(g.path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
		}
		g.cleanup = false
	}
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	g.live[g.gen]++
	return &guardedConn{base: conn, c: c, gen: g.gen}, nil
}

// release counts a closed connection of generation gen.
func (g *fileGuard) release(gen int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live[gen]--
	if g.live[gen] <= 0 {
		delete(g.live, gen)
	}
	for old, n := range g.live {
		if old < g.gen && n > 0 {
			return
		}
	}
	if g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
}

func (g *fileGuard) current(gen int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gen == g.gen
}

// errMoved makes database/sql retry an operation on a new connection after
// the guard moved the connections to a restored file.
var errMoved = driver.ErrBadConn

// checkWrite is called, holding the writer connection conn, before every
// write. It returns nil when the path names the open file, errMoved after
// restoring a deleted file, and an Unavailable *fault.Error otherwise.
func (g *fileGuard) checkWrite(ctx context.Context, conn *guardedConn) error {
	const op = "write to the database"
	fi, err := os.Stat(g.path)
	g.mu.Lock()
	same := err == nil && os.SameFile(fi, g.ident)
	report := !same && !g.reported // log a replaced file once, not at every write
	g.reported = !same
	g.mu.Unlock()
	switch {
	case same:
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "the database", Reason: "the database file cannot be checked; retry later", Err: err}
	case err != nil:
		if rerr := g.restore(ctx, conn); rerr != nil {
			g.log.Error("database file was deleted under the running server and could not be restored", slog.String("path", g.path), slog.String("error", rerr.Error()))
			return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: "the database", Reason: "the database file is missing and could not be restored yet; retry later", Err: rerr}
		}
		g.log.Warn("database file was deleted under the running server: restored it from the open database, nothing is lost", slog.String("path", g.path))
		return errMoved
	default:
		if !report {
			return errReplaced
		}
		g.log.Error("database file was replaced under the running server: writes are refused until the original file is put back (or orgkms restarts on the new one, losing what was written since)",
			slog.String("path", g.path))
		return errReplaced
	}
}

var errReplaced = &fault.Error{Kind: fault.Unavailable, Op: "write to the database", Resource: "the database", RetryAfter: 5 * time.Second,
	Reason: "the database file was replaced while orgkms was running; writes resume when the operator puts the original back"}

// restore writes a copy of the database open on conn to the (missing) path
// and moves every connection to it. The caller holds the only writer
// connection, so no commit can slip in between the copy and the move.
func (g *fileGuard) restore(ctx context.Context, conn *guardedConn) error {
	dir := filepath.Dir(g.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+filepath.Base(g.path)+".restore-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(tmp)
	execer, ok := conn.base.(driver.ExecerContext)
	if !ok {
		return errors.New("the sqlite driver connection cannot execute statements")
	}
	if _, err := execer.ExecContext(ctx, "VACUUM INTO ?", []driver.NamedValue{{Ordinal: 1, Value: tmp}}); err != nil {
		return fmt.Errorf("copy the open database: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	// Link, not rename: a file the operator put back meanwhile wins.
	if err := os.Link(tmp, g.path); err != nil {
		return fmt.Errorf("put the copy in place: %w", err)
	}
	if err := syncFile(dir); err != nil {
		return err
	}
	fi, err := os.Stat(g.path)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.ident = fi
	g.gen++
	g.cleanup = true
	drop := g.drop
	g.mu.Unlock()
	// Idle connections to the old file close now; busy ones when they are
	// returned.
	for _, d := range drop {
		d()
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// guardedConn is a connection of a guarded pool. It forwards every optional
// interface of the sqlite driver's connections (see [sqlite.NewConnector]).
type guardedConn struct {
	base driver.Conn
	c    *guardedConnector
	gen  int
	once sync.Once
	// inTx is set while a transaction is open: its statements were checked
	// at BEGIN. (A file deleted before its COMMIT is restored, commit
	// included, at the next write or at Close.)
	inTx bool
	// stmts are this connection's prepared statements, by query text (see
	// cachedStmt).
	stmts map[string]*cachedStmt
}

// maxCachedStmts bounds a connection's statement cache; queries past it
// are prepared per call, as without a cache.
const maxCachedStmts = 256

// cachedStmt is a statement prepared once on its connection and reused by
// every later call with the same query text: parsing a statement costs
// SQLite more than running a point query or update, and a re-wrap job
// runs about twenty of them. database/sql uses a connection from one
// goroutine at a time, so no lock is needed; busy marks a statement whose
// rows are still open (the same query issued again meanwhile is prepared
// afresh instead). Unlike a statement prepared on the *sql.DB, preparing
// here never waits for a connection, so it is safe inside a transaction
// on the single writer.
type cachedStmt struct {
	st   driver.Stmt
	busy bool
}

// cached returns the connection's statement for query, preparing it on
// first use; nil when the query is not to be cached (a script, a full
// cache, a statement in use) or does not prepare (the caller's uncached
// call then reports the error).
func (c *guardedConn) cached(ctx context.Context, query string) *cachedStmt {
	if cs, ok := c.stmts[query]; ok {
		if cs.busy {
			return nil
		}
		return cs
	}
	if len(c.stmts) >= maxCachedStmts || strings.Contains(query, ";") {
		return nil
	}
	st, err := c.base.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if c.stmts == nil {
		c.stmts = map[string]*cachedStmt{}
	}
	cs := &cachedStmt{st: st}
	c.stmts[query] = cs
	return cs
}

// cachedRows clears its statement's busy mark when closed.
type cachedRows struct {
	driver.Rows
	cs *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.cs.busy = false
	return err
}

func (c *guardedConn) exec(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if cs := c.cached(ctx, query); cs != nil {
		cs.busy = true
		defer func() { cs.busy = false }()
		return cs.st.(driver.StmtExecContext).ExecContext(ctx, args)
	}
	return c.base.(driver.ExecerContext).ExecContext(ctx, query, args)
}

type guardedTx struct {
	base driver.Tx
	c    *guardedConn
}

func (t *guardedTx) Commit() error {
	t.c.inTx = false
	return t.base.Commit()
}

func (t *guardedTx) Rollback() error {
	t.c.inTx = false
	return t.base.Rollback()
}

var (
	_ driver.ConnBeginTx                = (*guardedConn)(nil)
	_ driver.ConnPrepareContext         = (*guardedConn)(nil)
	_ driver.ExecerContext              = (*guardedConn)(nil)
	_ driver.QueryerContext             = (*guardedConn)(nil)
	_ driver.Pinger                     = (*guardedConn)(nil)
	_ driver.SessionResetter            = (*guardedConn)(nil)
	_ driver.Validator                  = (*guardedConn)(nil)
	_ driver.NamedValueChecker          = (*guardedConn)(nil)
	_ interface{ Unwrap() driver.Conn } = (*guardedConn)(nil)
)

func (c *guardedConn) Unwrap() driver.Conn { return c.base }

func (c *guardedConn) Prepare(query string) (driver.Stmt, error) { return c.base.Prepare(query) }

func (c *guardedConn) Close() error {
	var errs []error
	for _, cs := range c.stmts {
		errs = append(errs, cs.st.Close())
	}
	c.stmts = nil
	err := errors.Join(append(errs, c.base.Close())...)
	c.once.Do(func() { c.c.g.release(c.gen) })
	return err
}

func (c *guardedConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *guardedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if c.c.writer {
		if err := c.checkWrite(ctx); err != nil {
			return nil, err
		}
	}
	tx, err := c.base.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	c.inTx = true
	return &guardedTx{base: tx, c: c}, nil
}

// checkWrite refuses a write on a connection to a moved-away file.
func (c *guardedConn) checkWrite(ctx context.Context) error {
	if !c.c.g.current(c.gen) {
		return errMoved
	}
	return c.c.g.checkWrite(ctx, c)
}

func (c *guardedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.base.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *guardedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if c.c.writer && !c.inTx {
		if err := c.checkWrite(ctx); err != nil {
			return nil, err
		}
		res, err := c.exec(ctx, query, args)
		if ctx.Value(probeKey{}) == nil {
			c.c.g.noteWrite(err)
		}
		return res, err
	}
	return c.exec(ctx, query, args)
}

func (c *guardedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if cs := c.cached(ctx, query); cs != nil {
		rows, err := cs.st.(driver.StmtQueryContext).QueryContext(ctx, args)
		if err != nil {
			return nil, err
		}
		cs.busy = true
		return &cachedRows{Rows: rows, cs: cs}, nil
	}
	return c.base.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *guardedConn) Ping(ctx context.Context) error {
	return c.base.(driver.Pinger).Ping(ctx)
}

func (c *guardedConn) ResetSession(ctx context.Context) error {
	if !c.c.g.current(c.gen) {
		return driver.ErrBadConn
	}
	return c.base.(driver.SessionResetter).ResetSession(ctx)
}

func (c *guardedConn) IsValid() bool {
	return c.c.g.current(c.gen) && c.base.(driver.Validator).IsValid()
}

func (c *guardedConn) CheckNamedValue(nv *driver.NamedValue) error {
	if nvc, ok := c.base.(driver.NamedValueChecker); ok {
		return nvc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// openGuarded opens the writer and reader pools of a file database through
// a [fileGuard].
func openGuarded(g *fileGuard) (w, r *sql.DB, err error) {
	wc, err := g.connector(writerParams, true)
	if err != nil {
		return nil, nil, err
	}
	rc, err := g.connector(readerParams, false)
	if err != nil {
		return nil, nil, err
	}
	w, r = sql.OpenDB(wc), sql.OpenDB(rc)
	g.drop = []func(){
		func() { w.SetMaxIdleConns(0); w.SetMaxIdleConns(1) },
		func() { r.SetMaxIdleConns(0); r.SetMaxIdleConns(readers) },
	}
	return w, r, nil
}
