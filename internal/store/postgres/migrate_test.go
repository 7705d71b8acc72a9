package postgres

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// TestMigrationNumbersMatchSQLite holds the two dialects to one schema
// history: a migration added to one is added to the other, under the same
// number.
func TestMigrationNumbersMatchSQLite(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	lite, err := loadMigrations(os.DirFS("../sqlite/migrations"))
	if err != nil {
		t.Fatalf("SQLite migrations: %v", err)
	}
	numbers := func(ms []migration) (vs []int) {
		for _, m := range ms {
			vs = append(vs, m.Version)
		}
		return vs
	}
	if pg, sq := numbers(ms), numbers(lite); !slices.Equal(pg, sq) {
		t.Errorf("PostgreSQL migrations %v, SQLite migrations %v: want the same numbers", pg, sq)
	}
}

// logRecorder is a slog.Handler that keeps the messages of every record.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
	text strings.Builder // every record as text, attributes included
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Message)
	h.text.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		h.text.WriteString(" " + a.String())
		return true
	})
	h.text.WriteString("\n")
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// TestMigrateConcurrently starts several stores (each its own pool and
// sessions, as separate processes have) on one empty schema at once: every
// migration is applied exactly once, and every store opens.
func TestMigrateConcurrently(t *testing.T) {
	url := pgtest.URL(t)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	const nodes = 4
	rec := &logRecorder{}
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	stores := make([]*Store, nodes)
	for i := range nodes {
		wg.Go(func() {
			stores[i], errs[i] = Open(t.Context(), Config{URL: url, Logger: slog.New(rec)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open(node %d) = %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if got := rec.count("database migrated"); got != len(ms) {
		t.Errorf("%d nodes starting at once applied %d migrations, want each of the %d once", nodes, got, len(ms))
	}
	i := slices.IndexFunc(stores, func(s *Store) bool { return s != nil })
	if i < 0 {
		t.Fatal("no node opened")
	}
	var n int
	if err := stores[i].DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Errorf("schema_migrations has %d rows (%v), want %d", n, err, len(ms))
	}
}

func TestOpenTwiceMigratesOnce(t *testing.T) {
	url := pgtest.URL(t)
	s := openURL(t, url)
	applied, err := s.Migrate(t.Context())
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate(ctx) on a current schema = %v, %v; want nothing applied", applied, err)
	}
	s2, err := Open(t.Context(), Config{URL: url, NoMigrate: true})
	if err != nil {
		t.Fatalf("Open(NoMigrate) on a current schema = %v", err)
	}
	s2.Close()
}

// TestMigrationIsOneTransaction applies a migration that fails half-way:
// nothing of it remains, and the migrations before it stay applied.
func TestMigrationIsOneTransaction(t *testing.T) {
	url := pgtest.URL(t)
	s, err := Open(t.Context(), Config{URL: url}) // the real schema, in its own search_path
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := loadMigrations(fstest.MapFS{
		"0001_one.sql": {Data: []byte(`CREATE TABLE t_one (id int)`)},
		"0002_two.sql": {Data: []byte(`CREATE TABLE t_two (id int); INSERT INTO t_two VALUES (1); SELECT 1/0`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.DB().ExecContext(ctx, `DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}
	applied, err := s.migrate(ctx, ms)
	if err == nil {
		t.Fatalf("migrate(0001, failing 0002) = %v, nil; want an error", applied)
	}
	if !slices.Equal(applied, []string{"0001_one"}) {
		t.Errorf("migrate(0001, failing 0002) applied %v, want [0001_one]", applied)
	}
	var two any
	if err := s.DB().QueryRowContext(ctx, `SELECT to_regclass('t_two')`).Scan(&two); err != nil || two != nil {
		t.Errorf("table t_two of the failed migration = %v (%v), want none", two, err)
	}
	rows, err := s.DB().QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := collect(rows, func(rows *sql.Rows) (int, error) {
		var v int
		return v, rows.Scan(&v)
	})
	if err != nil || !slices.Equal(versions, []int{1}) {
		t.Errorf("schema_migrations = %v (%v), want [1]", versions, err)
	}
}

func TestNoMigrateRefusesOutdatedAndNewerSchema(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1].Name
	for _, tc := range []struct {
		name     string
		mutate   string // SQL run on a migrated schema; "-" for an empty schema
		wantKind fault.Kind
		wantMsg  []string
	}{
		{"current", ``, 0, nil},
		{"empty", `-`, fault.Conflict, []string{"database schema is at version 0, this orgkms needs ", "run `orgkms migrate`", "0001_init, ", last}},
		{"outdated", `DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)`, fault.Conflict,
			[]string{"this orgkms needs", "run `orgkms migrate` to apply " + last}},
		{"newer", `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', now())`,
			fault.Conflict, []string{"this database was migrated by a newer orgkms: schema version 9999"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.URL(t)
			if tc.mutate != "-" {
				s := openURL(t, url)
				if tc.mutate != "" {
					if _, err := s.DB().ExecContext(t.Context(), tc.mutate); err != nil {
						t.Fatal(err)
					}
				}
			}
			s2, err := Open(t.Context(), Config{URL: url, NoMigrate: true})
			if s2 != nil {
				defer s2.Close()
			}
			if tc.wantMsg == nil {
				if err != nil {
					t.Fatalf("Open(NoMigrate) = %v", err)
				}
				return
			}
			if s2 != nil {
				t.Errorf("Open(NoMigrate) returned a store with its error")
			}
			if fault.KindOf(err) != tc.wantKind {
				t.Fatalf("Open(NoMigrate) kind = %v (%v), want %v", fault.KindOf(err), err, tc.wantKind)
			}
			for _, want := range tc.wantMsg {
				if !strings.Contains(fault.Message(err), want) {
					t.Errorf("Open(NoMigrate) message = %q, want it to contain %q", fault.Message(err), want)
				}
			}
			if tc.name == "newer" {
				// Migrating does not help: this orgkms does not know the schema.
				_, err := Open(t.Context(), Config{URL: url})
				if fault.KindOf(err) != fault.Conflict || !strings.Contains(fault.Message(err), "newer orgkms") {
					t.Errorf("Open(migrate) on a newer schema = %v, want a Conflict naming the newer orgkms", err)
				}
			}
		})
	}
}
