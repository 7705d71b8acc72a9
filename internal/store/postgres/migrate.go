package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migration is one forward-only schema change.
type migration struct {
	Version int
	Name    string // file name without ".sql", e.g. "0001_init"
	SQL     string
}

var migrationFile = regexp.MustCompile(`^([0-9]{4})_[a-z0-9]+(?:_[a-z0-9]+)*\.sql$`)

// loadMigrations reads the migrations in the root of fsys. Every file must
// be named NNNN_name.sql (lowercase name), and the numbers must run from
// 0001 without gaps or duplicates.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries { // sorted by name
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			return nil, fmt.Errorf("migration %q: name must be NNNN_name.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", e.Name(), err)
		}
		if want := len(ms) + 1; v != want {
			return nil, fmt.Errorf("migration %q: expected number %04d: migrations are numbered from 0001 without gaps or duplicates", e.Name(), want)
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{Version: v, Name: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// migrations returns the embedded migrations.
func migrations() ([]migration, error) {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, err
	}
	return loadMigrations(sub)
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    bigint NOT NULL PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL
)`

// lockMigrations takes the migration lock of the store's schema until the
// end of tx: a transaction-scoped advisory lock, so that of two processes
// starting at once one migrates and the other then finds the schema
// current. Migrations may take long: the statement timeout is off for tx.
const lockMigrations = `SELECT set_config('statement_timeout', '0', true),
	pg_advisory_xact_lock(hashtextextended('orgkms schema_migrations ' || coalesce(current_schema(), ''), 0))`

// Migrate applies the embedded migrations the database lacks, each in its
// own transaction under the migration lock, and returns the names of those
// it applied (e.g. "0001_init"), none when the schema is current: any
// number of processes may call it at once, and each migration is applied
// exactly once. It returns Kind Conflict if the database was migrated by a
// newer orgkms, whose schema this one does not know.
func (s *Store) Migrate(ctx context.Context) (applied []string, err error) {
	ms, err := migrations()
	if err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: "migrate database", Err: err}
	}
	return s.migrate(ctx, ms)
}

// migrate applies the migrations of ms the database lacks, as Migrate.
func (s *Store) migrate(ctx context.Context, ms []migration) (applied []string, err error) {
	const op = "migrate database"
	for {
		var next *migration
		err := s.inTx(ctx, op, func(tx *sql.Tx) error {
			next = nil
			if _, err := tx.ExecContext(ctx, lockMigrations); err != nil {
				return classify(ctx, op, "database", err)
			}
			if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
				return classify(ctx, op, "database", err)
			}
			have, err := appliedVersions(ctx, tx)
			if err != nil {
				return classify(ctx, op, "database", err)
			}
			if err := newerSchema(op, have, len(ms)); err != nil {
				return err
			}
			for i := range ms {
				if !have[ms[i].Version] {
					next = &ms[i]
					break
				}
			}
			if next == nil {
				return nil
			}
			mop := "apply migration " + next.Name
			if _, err := tx.ExecContext(ctx, next.SQL); err != nil {
				return classify(ctx, mop, "database", err)
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				next.Version, next.Name, timeArg(time.Now()))
			return classify(ctx, mop, "database", err)
		})
		if err != nil {
			return applied, err
		}
		if next == nil {
			return applied, nil
		}
		s.log.Info("database migrated", slog.Int("version", next.Version), slog.String("migration", next.Name))
		applied = append(applied, next.Name)
	}
}

// checkSchema returns a Conflict unless the database has exactly the
// embedded migrations applied; the Conflict of an outdated schema names the
// migrations to apply. It does not write.
func (s *Store) checkSchema(ctx context.Context) error {
	const op = "open database"
	ms, err := migrations()
	if err != nil {
		return &fault.Error{Kind: fault.Internal, Op: op, Err: err}
	}
	var table sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations')::text`).Scan(&table); err != nil {
		return classify(ctx, op, "database", err)
	}
	have := map[int]bool{}
	if table.Valid {
		if have, err = appliedVersions(ctx, s.db); err != nil {
			return classify(ctx, op, "database", err)
		}
	}
	if err := newerSchema(op, have, len(ms)); err != nil {
		return err
	}
	current := 0
	for current < len(ms) && have[current+1] {
		current++
	}
	if current < len(ms) {
		var missing []string
		for _, m := range ms {
			if !have[m.Version] {
				missing = append(missing, m.Name)
			}
		}
		return &fault.Error{Kind: fault.Conflict, Op: op, Resource: "database",
			Reason: fmt.Sprintf("database schema is at version %d, this orgkms needs %d: run `orgkms migrate` to apply %s",
				current, len(ms), strings.Join(missing, ", "))}
	}
	return nil
}

// newerSchema returns a Conflict if have holds a version above known.
func newerSchema(op string, have map[int]bool, known int) error {
	newest := 0
	for v := range have {
		newest = max(newest, v)
	}
	if newest > known {
		return &fault.Error{Kind: fault.Conflict, Op: op, Resource: "database",
			Reason: fmt.Sprintf("this database was migrated by a newer orgkms: schema version %d, this orgkms knows up to %d", newest, known)}
	}
	return nil
}

func appliedVersions(ctx context.Context, q querier) (map[int]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	vs, err := collect(rows, func(rows *sql.Rows) (int, error) {
		var v int
		return v, rows.Scan(&v)
	})
	if err != nil {
		return nil, err
	}
	have := make(map[int]bool, len(vs))
	for _, v := range vs {
		have[v] = true
	}
	return have, nil
}
