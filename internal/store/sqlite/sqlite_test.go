package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/store/storetest"
)

func openFile(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open(%s) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func openTemp(t testing.TB) *Store {
	t.Helper()
	return openFile(t, filepath.Join(t.TempDir(), "orgkms.db"))
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTemp(t) })
}

func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openFile(t, Memory) })
}

func TestCMKStore(t *testing.T) {
	storetest.RunCMK(t, func(t *testing.T) storetest.CMKStore { return openTemp(t) })
}

func TestCMKStoreMemory(t *testing.T) {
	storetest.RunCMK(t, func(t *testing.T) storetest.CMKStore { return openFile(t, Memory) })
}

func TestUsersStore(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) storetest.UsersStore { return auditFailer{openTemp(t)} })
}

func TestUsersStoreMemory(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) storetest.UsersStore { return auditFailer{openFile(t, Memory)} })
}

// auditFailer gives a Store the suite's [storetest.AuditFailer] capability,
// with a trigger that aborts the audit insert inside the change's
// transaction.
type auditFailer struct{ *Store }

func (s auditFailer) FailAudit(t *testing.T, action string) {
	t.Helper()
	name := fmt.Sprintf("fail_audit_%x", action)
	lit := "'" + strings.ReplaceAll(action, "'", "''") + "'"
	if _, err := s.DB().ExecContext(t.Context(), `CREATE TRIGGER `+name+` BEFORE INSERT ON audit_events
		WHEN NEW.action = `+lit+` BEGIN SELECT RAISE(ABORT, 'audit write failed'); END`); err != nil {
		t.Fatalf("create trigger %s: %v", name, err)
	}
}

func TestOpenTwiceMigratesOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orgkms.db")
	s := openFile(t, path)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	applied, err := s.Migrate(t.Context())
	if err != nil || len(applied) != 0 {
		t.Errorf("Migrate(ctx) on a current schema = %v, %v; want nothing applied", applied, err)
	}
	// The next store on the same file (serve after migrate), then one more.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.Context(), Config{Path: path, NoMigrate: true})
	if err != nil {
		t.Fatalf("Open(NoMigrate) on a current schema = %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := openFile(t, path)
	if err := s3.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Errorf("after a second Open schema_migrations has %d rows (%v), want %d", n, err, len(ms))
	}
}

func TestMigrateReportsApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orgkms.db")
	// An empty file, as `orgkms migrate` finds on a first run.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), Config{Path: path, NoMigrate: true})
	if fault.KindOf(err) != fault.Conflict {
		t.Fatalf("Open(NoMigrate) on an empty database kind = %v (%v), want %v", fault.KindOf(err), err, fault.Conflict)
	}
	if want := "database schema is at version 0, this orgkms needs "; !strings.Contains(fault.Message(err), want) ||
		!strings.Contains(fault.Message(err), "run `orgkms migrate`") {
		t.Errorf("Open(NoMigrate) message = %q, want it to say %q and how to migrate", fault.Message(err), want)
	}
	if s != nil {
		t.Errorf("Open(NoMigrate) returned a store with its error")
	}
	s = openFile(t, path)
	ms, _ := migrations()
	var names []string
	rows, err := s.DB().QueryContext(t.Context(), `SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(names) != len(ms) || names[0] != "0001_init" {
		t.Errorf("schema_migrations names = %v, want %d starting with 0001_init", names, len(ms))
	}
}

func TestNoMigrateRefusesOutdatedAndNewerSchema(t *testing.T) {
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	latest := len(ms)
	for _, tc := range []struct {
		name     string
		mutate   string // SQL run on a migrated database
		wantKind fault.Kind
		wantMsg  string
	}{
		{"current", ``, 0, ""},
		{"outdated", `DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)`, fault.Conflict,
			"this orgkms needs"},
		{"newer", `INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', '2030-01-01T00:00:00.000000Z')`,
			fault.Conflict, "this database was migrated by a newer orgkms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "orgkms.db")
			s := openFile(t, path)
			if tc.mutate != "" {
				if _, err := s.DB().ExecContext(t.Context(), tc.mutate); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil { // one store per data directory
				t.Fatal(err)
			}
			s2, err := Open(t.Context(), Config{Path: path, NoMigrate: true})
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Open(NoMigrate) = %v", err)
				}
				s2.Close()
				return
			}
			if s2 != nil {
				s2.Close()
			}
			if fault.KindOf(err) != tc.wantKind {
				t.Fatalf("Open(NoMigrate) kind = %v (%v), want %v", fault.KindOf(err), err, tc.wantKind)
			}
			if !strings.Contains(fault.Message(err), tc.wantMsg) {
				t.Errorf("Open(NoMigrate) message = %q, want it to contain %q", fault.Message(err), tc.wantMsg)
			}
			if want := fmt.Sprintf("version %d, this orgkms needs %d", latest-1, latest); tc.name == "outdated" && !strings.Contains(fault.Message(err), want) {
				t.Errorf("Open(NoMigrate) message = %q, want it to contain %q", fault.Message(err), want)
			}
			if tc.name == "newer" {
				// Migrating refuses a newer schema too.
				s3, err := Open(t.Context(), Config{Path: path})
				if s3 != nil {
					s3.Close()
				}
				if fault.KindOf(err) != fault.Conflict {
					t.Errorf("Open (migrating) on a newer schema kind = %v (%v), want %v", fault.KindOf(err), err, fault.Conflict)
				}
			}
		})
	}
}

func TestMigrationFiles(t *testing.T) {
	if _, err := migrations(); err != nil {
		t.Fatalf("embedded migrations: %v", err)
	}
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tc := range []struct {
		name  string
		files []string
		ok    bool
	}{
		{"one", []string{"0001_init.sql"}, true},
		{"contiguous", []string{"0001_init.sql", "0002_cmk_state.sql", "0003_jobs.sql"}, true},
		{"empty", nil, false},
		{"gap", []string{"0001_init.sql", "0003_jobs.sql"}, false},
		{"duplicate number", []string{"0001_init.sql", "0001_other.sql"}, false},
		{"starts at 0", []string{"0000_init.sql"}, false},
		{"starts at 2", []string{"0002_init.sql"}, false},
		{"three digits", []string{"001_init.sql"}, false},
		{"no name", []string{"0001.sql"}, false},
		{"uppercase", []string{"0001_Init.sql"}, false},
		{"dash", []string{"0001_cmk-state.sql"}, false},
		{"other extension", []string{"0001_init.sql", "0002_jobs.up.sql"}, false},
		{"stray file", []string{"0001_init.sql", "README.md"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys[f] = sql
			}
			ms, err := loadMigrations(fsys)
			if tc.ok && err != nil {
				t.Errorf("loadMigrations(%v) = %v", tc.files, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("loadMigrations(%v) = %d migrations, want an error", tc.files, len(ms))
			}
		})
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orgkms.db")
	s := openFile(t, path)
	// Write, so the WAL and shared-memory files exist.
	if _, err := s.AppendAudit(t.Context(), audit.Event{OrgID: audit.Platform, Time: time.Now(), Action: "test"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat %s: %v", filepath.Base(p), err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("mode of %s = %v, want -rw-------", filepath.Base(p), m)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name     string
		path     string
		wantKind fault.Kind
	}{
		{"empty path", "", fault.Invalid},
		{"query in path", filepath.Join(dir, "x.db?mode=ro"), fault.Invalid},
		{"uri", "file:" + filepath.Join(dir, "x.db"), fault.Invalid},
		{"missing directory", filepath.Join(dir, "missing", "x.db"), fault.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.Context(), Config{Path: tc.path})
			if s != nil {
				s.Close()
			}
			if fault.KindOf(err) != tc.wantKind {
				t.Errorf("Open(%q) kind = %v (%v), want %v", tc.path, fault.KindOf(err), err, tc.wantKind)
			}
		})
	}
}

// TestChangeRolledBackWhenAuditFails makes the audit insert fail inside the
// change's transaction and checks that the change was not stored either.
func TestChangeRolledBackWhenAuditFails(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if _, err := s.DB().ExecContext(ctx, `CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events
		WHEN NEW.action = 'boom' BEGIN SELECT RAISE(ABORT, 'audit write failed'); END`); err != nil {
		t.Fatal(err)
	}
	mk := masterkey.Ref{Provider: "local", ID: "m"}
	now := time.Now()
	org := keys.Org{ID: "acme", Name: "Acme", CreatedAt: now, MasterKey: mk}
	root := keys.RootKeyWrapping{Wrapped: masterkey.Wrapped{Ciphertext: []byte{1, 2, 3}, Key: mk.WithVersion("1")}, CreatedAt: now}
	first := keys.DataKey{Name: "default", CreatedAt: now, LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: now, Wrapped: []byte{4, 5, 6}}}}
	boom := audit.Event{Time: now, Action: "boom"}

	err := s.CreateOrg(ctx, org, root, first, boom)
	if fault.KindOf(err) != fault.Internal {
		t.Errorf("CreateOrg with a failing audit write kind = %v (%v), want %v", fault.KindOf(err), err, fault.Internal)
	}
	for _, table := range []string{"orgs", "root_keys", "data_keys", "data_key_versions", "audit_events"} {
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s has %d rows after a failed CreateOrg, want 0", table, n)
		}
	}

	if err := s.CreateOrg(ctx, org, root, first, audit.Event{Time: now, Action: "org.create"}); err != nil {
		t.Fatalf("CreateOrg = %v", err)
	}
	v2 := keys.DataKeyVersion{Version: 2, CreatedAt: now, Wrapped: []byte{7}}
	if err := s.AddDataKeyVersion(ctx, "acme", "default", v2, boom); err == nil {
		t.Fatalf("AddDataKeyVersion with a failing audit write = nil")
	}
	dk, err := s.GetDataKey(ctx, "acme", "default")
	if err != nil {
		t.Fatal(err)
	}
	if dk.LatestVersion != 1 || len(dk.Versions) != 1 {
		t.Errorf("after a failed AddDataKeyVersion the key is at %d with %d versions, want 1 and 1", dk.LatestVersion, len(dk.Versions))
	}
}

// TestCMKChangeRolledBackWhenAuditFails makes the audit insert of each CMK
// change fail and checks that none of the change was stored.
func TestCMKChangeRolledBackWhenAuditFails(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if _, err := s.DB().ExecContext(ctx, `CREATE TRIGGER fail_audit BEFORE INSERT ON audit_events
		WHEN NEW.action = 'boom' BEGIN SELECT RAISE(ABORT, 'audit write failed'); END`); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	platform := masterkey.Ref{Provider: "local", ID: "m"}
	org := keys.Org{ID: "acme", Name: "Acme", CreatedAt: now, MasterKey: platform}
	root := keys.RootKeyWrapping{Wrapped: masterkey.Wrapped{Ciphertext: []byte{1, 2, 3}, Key: platform.WithVersion("1")}, CreatedAt: now}
	first := keys.DataKey{Name: "default", CreatedAt: now, LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: now, Wrapped: []byte{4, 5, 6}}}}
	if err := s.CreateOrg(ctx, org, root, first, audit.Event{Time: now, Action: "org.create"}); err != nil {
		t.Fatalf("CreateOrg = %v", err)
	}
	boom := audit.Event{Time: now, Action: "boom"}
	rec := cmk.Record{OrgID: "acme", State: cmk.StateActive, UpdatedAt: now}
	cmkKey := masterkey.Ref{Provider: "azurekv", ID: "kv.vault.azure.net/keys/k"}
	pending, err := s.AddPendingWrapping(ctx, "acme", keys.RootKeyWrapping{State: keys.WrappingPending, CreatedAt: now,
		Wrapped: masterkey.Wrapped{Ciphertext: []byte{7}, Key: cmkKey.WithVersion("v1")}})
	if err != nil {
		t.Fatalf("AddPendingWrapping = %v", err)
	}

	if err := s.PutCMK(ctx, rec, &boom); err == nil {
		t.Errorf("PutCMK with a failing audit write = nil")
	}
	if err := s.SwitchWrapping(ctx, "acme", pending, cmkKey, rec, boom, nil); err == nil {
		t.Errorf("SwitchWrapping with a failing audit write = nil")
	}
	if _, err := s.StartJob(ctx, cmk.Job{OrgID: "acme", Kind: cmk.JobActivate, CreatedAt: now}, rec, boom); err == nil {
		t.Errorf("StartJob with a failing audit write = nil")
	}
	if _, err := s.GetCMK(ctx, "acme"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetCMK after failed changes kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
	if o, err := s.GetOrg(ctx, "acme"); err != nil || o.MasterKey != platform {
		t.Errorf("GetOrg after a failed switch = %+v, %v; want master key %v", o, err, platform)
	}
	if ws, err := s.RootKeys(ctx, "acme"); err != nil || len(ws) != 2 || ws[1].ID != pending || ws[1].State != keys.WrappingPending {
		t.Errorf("RootKeys after a failed switch = %+v, %v; want the active and the pending wrapping", ws, err)
	}
	if _, err := s.OrgJob(ctx, "acme"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("OrgJob after a failed StartJob kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}

	if _, err := s.StartJob(ctx, cmk.Job{OrgID: "acme", Kind: cmk.JobActivate, CreatedAt: now}, rec, audit.Event{Time: now, Action: "cmk.start"}); err != nil {
		t.Fatalf("StartJob = %v", err)
	}
	j, err := s.ClaimJob(ctx, "node-1", now, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJob = %v", err)
	}
	done := j
	done.State, done.Step = cmk.JobDone, "switched"
	finished := rec
	finished.State, finished.Revision = cmk.StateRevoked, 1 // current: only the audit write fails
	if err := s.FinishJob(ctx, done, finished, boom); err == nil {
		t.Errorf("FinishJob with a failing audit write = nil")
	}
	if got, err := s.GetJob(ctx, j.ID); err != nil || got.State != cmk.JobRunning || got.Step != "" {
		t.Errorf("GetJob after a failed FinishJob = %+v, %v; want it still running at step \"\"", got, err)
	}
	if got, err := s.GetCMK(ctx, "acme"); err != nil || got.State != cmk.StateActive || got.Revision != 1 {
		t.Errorf("GetCMK after a failed FinishJob = %+v, %v; want state %s at revision 1", got, err, cmk.StateActive)
	}
}

// TestReaderPoolIsReadOnly guards the split: a write through the reader
// pool is a bug and must fail.
func TestReaderPoolIsReadOnly(t *testing.T) {
	s := openTemp(t)
	_, err := s.r.ExecContext(t.Context(), `INSERT INTO tokens (id, hash, principal, org_id, roles, description, created_at)
		VALUES ('t', x'00', 'p', '', '', '', '2025-01-01T00:00:00.000000Z')`)
	if err == nil {
		t.Fatal("write through the reader pool succeeded")
	}
}

func TestClassify(t *testing.T) {
	ctx := t.Context()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	s := openTemp(t)
	_, uniqueErr := s.DB().ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'x', 'y')`)
	_, syntaxErr := s.DB().ExecContext(ctx, `SELEKT 1`)
	fe := &fault.Error{Kind: fault.Invalid}
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		err      error
		wantKind fault.Kind
	}{
		{"no rows", ctx, sql.ErrNoRows, fault.NotFound},
		{"wrapped no rows", ctx, errorsJoin(sql.ErrNoRows), fault.NotFound},
		{"unique", ctx, uniqueErr, fault.Conflict},
		{"syntax", ctx, syntaxErr, fault.Internal},
		{"cancelled", cancelled, errors.New("interrupted"), fault.Unavailable},
		{"deadline", ctx, context.DeadlineExceeded, fault.Unavailable},
		{"fault passes through", ctx, fe, fault.Invalid},
		{"other", ctx, errors.New("boom"), fault.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.ctx, "op", "thing", tc.err)
			if fault.As(err) == nil {
				t.Fatalf("classify(%v) = %T, want *fault.Error", tc.err, err)
			}
			if got := fault.KindOf(err); got != tc.wantKind {
				t.Errorf("classify(%v) kind = %v, want %v", tc.err, got, tc.wantKind)
			}
			if tc.wantKind == fault.Internal && !errors.Is(err, tc.err) {
				t.Errorf("classify(%v) does not wrap the error", tc.err)
			}
		})
	}
	if classify(ctx, "op", "thing", nil) != nil {
		t.Errorf("classify(nil) != nil")
	}
}

func errorsJoin(err error) error { return errors.Join(err) }

func TestTimeRoundTrip(t *testing.T) {
	for _, in := range []time.Time{
		time.Time{},
		time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", -7*3600)),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Unix(0, 0),
	} {
		var got time.Time
		if err := scanTime(&got).Scan(timeArg(in)); err != nil {
			t.Fatalf("scan(%q) = %v", timeArg(in), err)
		}
		if want := in.Truncate(time.Microsecond); !got.Equal(want) {
			t.Errorf("time %v round trip = %v, want %v", in, got, want)
		}
	}
	// Text order is time order.
	a, b := timeArg(time.Date(2025, 1, 1, 0, 0, 0, 100000, time.UTC)), timeArg(time.Date(2025, 1, 1, 0, 0, 0, 20000000, time.UTC))
	if !(a < b) {
		t.Errorf("stored times do not sort: %q >= %q", a, b)
	}
}

func TestCloseTwice(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "orgkms.db"), Memory} {
		s, err := Open(t.Context(), Config{Path: path})
		if err != nil {
			t.Fatalf("Open(%s) = %v", path, err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close() twice = %v", err)
		}
		if _, err := s.GetOrg(t.Context(), "acme"); err == nil || fault.KindOf(err) == fault.NotFound {
			t.Errorf("GetOrg(ctx, acme) after Close = %v, want a failure other than NotFound", err)
		}
		if _, err := s.AppendAudit(t.Context(), audit.Event{OrgID: "acme"}); err == nil {
			t.Errorf("AppendAudit(ctx) after Close = nil, want an error")
		}
	}
}

func TestPlatformKeyStore(t *testing.T) {
	storetest.RunPlatformKey(t, func(t *testing.T) storetest.PlatformStore { return openTemp(t) })
}

func TestWebhookStore(t *testing.T) {
	storetest.RunWebhooks(t, func(t *testing.T) storetest.WebhookStore { return openTemp(t) })
}

func TestStagedStore(t *testing.T) {
	storetest.RunStaged(t, func(t *testing.T) storetest.CMKStore { return openTemp(t) })
}

func TestShredStore(t *testing.T) {
	storetest.RunShred(t, func(t *testing.T) storetest.ShredStore { return openTemp(t) })
}
