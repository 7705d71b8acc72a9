package postgres

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// Defaults of [Config].
const (
	DefaultMaxConns         = 10
	DefaultStatementTimeout = 30 * time.Second
	DefaultConnectTimeout   = 10 * time.Second
)

// Config configures [Open]. The zero value of every field except URL is a
// valid default.
type Config struct {
	// URL is the database, postgres://user:password@host:port/dbname with
	// optional parameters (sslmode, search_path, ...). Its password never
	// appears in logs or errors.
	URL string
	// MaxConns bounds the connection pool; 0 means [DefaultMaxConns].
	MaxConns int32
	// StatementTimeout bounds every statement on the server (its
	// statement_timeout); 0 means [DefaultStatementTimeout], negative means
	// none. A statement that runs longer fails with Kind Unavailable.
	// Migrations run without it.
	StatementTimeout time.Duration
	// ConnectTimeout bounds each connection attempt; 0 means
	// [DefaultConnectTimeout].
	ConnectTimeout time.Duration
	// Logger receives migration notices; nil discards.
	Logger *slog.Logger
	// NoMigrate makes Open check the schema version instead of applying
	// migrations (orgkms serve): an outdated or newer schema is a Conflict.
	NoMigrate bool
}

// Store is the PostgreSQL implementation of [keys.Store], [auth.Store],
// [auth.UserStore] and [cmk.Store]. It is safe for concurrent use, by any
// number of processes on one database.
type Store struct {
	pool   *pgxpool.Pool
	db     *sql.DB // database/sql over pool
	log    *slog.Logger
	secret string // the URL's password, redacted from every error of Open
}

var (
	_ keys.Store     = (*Store)(nil)
	_ auth.Store     = (*Store)(nil)
	_ auth.UserStore = (*Store)(nil)
	_ cmk.Store      = (*Store)(nil)
)

// Open connects to the database at cfg.URL and applies the embedded
// migrations, or with cfg.NoMigrate only checks that the schema is current.
// It returns Kind Invalid for a malformed URL or setting, Unavailable when
// the database cannot be reached or refuses orgkms' credentials, and
// Conflict for a schema of another version (see [Store.Migrate]). No error
// contains the URL's password.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	const op = "open database"
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, secret, err := poolConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &Store{log: log, secret: secret}
	if s.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, s.redact(classify(ctx, op, "database", err))
	}
	s.db = stdlib.OpenDBFromPool(s.pool)
	s.db.SetMaxOpenConns(int(pc.MaxConns))
	s.db.SetMaxIdleConns(int(pc.MaxConns))
	if err := s.pool.Ping(ctx); err != nil {
		return nil, s.closeAfter(s.redact(classify(ctx, op, "database", err)))
	}
	if cfg.NoMigrate {
		err = s.checkSchema(ctx)
	} else {
		_, err = s.Migrate(ctx)
	}
	if err != nil {
		return nil, s.closeAfter(s.redact(err))
	}
	return s, nil
}

// poolConfig parses cfg into a pool configuration and returns the URL's
// password, so that errors can be scrubbed of it.
func poolConfig(cfg Config) (*pgxpool.Config, string, error) {
	const op = "open database"
	invalid := func(field, reason string, err error) error {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: field, Reason: reason, Err: err}
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
		// url.Parse quotes the URL in its error: keep none of it.
		return nil, "", invalid("database", "the database URL must look like postgres://user:password@host:5432/dbname", nil)
	}
	secret, _ := u.User.Password()
	switch {
	case cfg.MaxConns < 0:
		return nil, "", invalid("max_conns", "the pool size must not be negative", nil)
	case cfg.ConnectTimeout < 0:
		return nil, "", invalid("connect_timeout", "the connect timeout must not be negative", nil)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, "", invalid("database", "the database URL is not a valid PostgreSQL URL", redactErr(err, secret))
	}
	pc.MaxConns = cfg.MaxConns
	if pc.MaxConns == 0 {
		pc.MaxConns = DefaultMaxConns
	}
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	timeout := cfg.StatementTimeout
	switch {
	case timeout == 0:
		timeout = DefaultStatementTimeout
	case timeout < 0:
		timeout = 0 // the server's "no limit"
	}
	rp := pc.ConnConfig.RuntimeParams
	rp["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	rp["timezone"] = "UTC"
	if rp["application_name"] == "" {
		rp["application_name"] = "orgkms"
	}
	return pc, secret, nil
}

// redact returns err with the URL's password replaced in the text of its
// underlying error. The drivers do not put it there; this makes sure.
func (s *Store) redact(err error) error {
	if fe := fault.As(err); fe != nil && fe.Err != nil {
		fe.Err = redactErr(fe.Err, s.secret)
	}
	return err
}

// redactErr returns err, or a copy of its text without secret when it
// contains it.
func redactErr(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "xxxxx"))
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

// Close closes the connections. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	if s.db != nil {
		err = s.db.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if err != nil {
		return &fault.Error{Kind: fault.Internal, Op: "close database", Resource: "database", Err: err}
	}
	return nil
}

// DB returns the database/sql handle, for tests and tools that need raw
// SQL.
func (s *Store) DB() *sql.DB { return s.db }

// Pool returns the pgx pool under [Store.DB], for what database/sql cannot
// do (LISTEN/NOTIFY).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
