package postgres

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/shred"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// shredServer is a private PostgreSQL server whose files the test reads
// (the shared test server's data directory is not readable by its role),
// with a database owned by an ordinary role, as orgkms runs in production,
// and a superuser connection for what only the test does (CHECKPOINT).
type shredServer struct {
	pg    *pgtest.Server
	store *Store
	super *pgx.Conn // superuser, on the store's database
	url   url.URL   // the store's database, as the superuser
}

func startShredServer(t *testing.T) *shredServer {
	t.Helper()
	ctx := t.Context()
	pg := pgtest.StartServer(t)
	admin, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatalf("connect as the superuser: %v", err)
	}
	defer admin.Close(ctx)
	password := strings.ToLower(rand.Text())
	for _, q := range []string{
		`CREATE ROLE orgkms_app LOGIN PASSWORD '` + password + `'`, // NOSUPERUSER: the role orgkms runs as
		`CREATE DATABASE orgkms_app OWNER orgkms_app`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", strings.Fields(q)[0]+" "+strings.Fields(q)[1], err)
		}
	}
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	su := *u
	su.Path = "/orgkms_app"
	super, err := pgx.Connect(ctx, su.String())
	if err != nil {
		t.Fatalf("connect as the superuser to orgkms_app: %v", err)
	}
	t.Cleanup(func() { super.Close(ctx) })
	app := su
	app.User = url.UserPassword("orgkms_app", password)
	// One connection: the scrub's session settings must be gone from the
	// connection it returns to the pool.
	s, err := Open(ctx, Config{URL: app.String(), MaxConns: 1})
	if err != nil {
		t.Fatalf("Open as orgkms_app: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return &shredServer{pg: pg, store: s, super: super, url: su}
}

// randomBlob is n random bytes: a wrapped key that cannot be found in the
// files by accident, and that PostgreSQL cannot compress.
func randomBlob(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// seedOrg creates org id with a root key wrapping, a pending one (a
// re-wrap's copy), the default data key and a data key of two versions, the
// second of toastSize bytes (0: a wrapped key's usual size). It returns
// every wrapped blob stored.
func (ss *shredServer) seedOrg(t *testing.T, id string, toastSize int) [][]byte {
	t.Helper()
	ctx := t.Context()
	s := ss.store
	mk := masterkey.Ref{Provider: "local", ID: "platform"}
	root, pending, v1, x1, x2 := randomBlob(60), randomBlob(256), randomBlob(60), randomBlob(60), randomBlob(60)
	if toastSize > 0 {
		x2 = randomBlob(toastSize)
	}
	first := keys.DataKey{Name: "default", CreatedAt: t0, LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: t0, Wrapped: v1}}}
	if err := s.CreateOrg(ctx, keys.Org{ID: id, Name: id, CreatedAt: t0, MasterKey: mk},
		keys.RootKeyWrapping{State: keys.WrappingActive, CreatedAt: t0, Wrapped: masterkey.Wrapped{Ciphertext: root, Key: mk.WithVersion("1")}}, first,
		audit.Event{Time: t0, Actor: "user:test", Action: "org.create", Target: "org/" + id}); err != nil {
		t.Fatalf("CreateOrg(%s) = %v", id, err)
	}
	if _, err := s.AddPendingWrapping(ctx, id, keys.RootKeyWrapping{State: keys.WrappingPending, CreatedAt: t0,
		Wrapped: masterkey.Wrapped{Ciphertext: pending, Key: mk.WithVersion("2")}}); err != nil {
		t.Fatalf("AddPendingWrapping(%s) = %v", id, err)
	}
	extra := keys.DataKey{Name: "extra", CreatedAt: t0, LatestVersion: 2, MinDecryptionVersion: 1,
		Versions: []keys.DataKeyVersion{{Version: 1, CreatedAt: t0, Wrapped: x1}, {Version: 2, CreatedAt: t0, Wrapped: x2}}}
	if err := s.CreateDataKey(ctx, id, extra, audit.Event{Time: t0, Actor: "user:test", Action: "key.create", Target: "key/extra"}); err != nil {
		t.Fatalf("CreateDataKey(%s, extra) = %v", id, err)
	}
	return [][]byte{root, pending, v1, x1, x2}
}

// shredOrg shreds org id as the shred job does: scheduled, claimed at the
// deletion date, erased (Shred), scrubbed (ScrubShredded), finished.
func (ss *shredServer) shredOrg(t *testing.T, id string, scrub bool) {
	t.Helper()
	ctx := t.Context()
	s := ss.store
	date := t0.Add(7 * 24 * time.Hour)
	l := keys.Lifecycle{State: keys.LifecyclePendingDeletion, DeletionDate: date, ChangedBy: "user:test", ChangedAt: t0}
	if err := s.SetLifecycle(ctx, id, "", []keys.LifecycleState{keys.LifecycleEnabled}, l,
		&jobs.Job{OrgID: id, Kind: shred.JobOrg, NotBefore: date, CreatedAt: t0},
		audit.Event{Time: t0, Actor: "user:test", Action: "org.deletion.schedule", Target: "org/" + id}); err != nil {
		t.Fatalf("SetLifecycle(%s, pending deletion) = %v", id, err)
	}
	at := date.Add(time.Second)
	j, err := s.ShredJobs().ClaimJob(ctx, "node-a/1", at, time.Minute)
	if err != nil || j.OrgID != id {
		t.Fatalf("ClaimJob at the deletion date = %+v, %v; want the shred of %s", j, err, id)
	}
	j.Step = shred.StepErased
	if err := s.Shred(ctx, j, at, audit.Event{Time: at, Actor: "orgkms", Action: "org.shredded", Target: "org/" + id}); err != nil {
		t.Fatalf("Shred(%s) = %v", id, err)
	}
	if !scrub {
		return
	}
	if err := s.ScrubShredded(ctx); err != nil {
		t.Fatalf("ScrubShredded() = %v", err)
	}
	j.Step, j.State = shred.StepScrubbed, jobs.Done
	if err := s.FinishShredJob(ctx, j, nil); err != nil {
		t.Fatalf("FinishShredJob(%s) = %v", id, err)
	}
}

// checkpoint writes every dirty page to the table files (superuser).
func (ss *shredServer) checkpoint(t *testing.T) {
	t.Helper()
	if _, err := ss.super.Exec(t.Context(), `CHECKPOINT`); err != nil {
		t.Fatalf("CHECKPOINT: %v", err)
	}
}

// relationFiles returns the files of the tables that hold wrapped keys:
// each table's heap, its TOAST table and the TOAST table's index, and
// every index, with all their segments (path, path.1, ...). It fails t if
// a relation has no file.
func (ss *shredServer) relationFiles(t *testing.T) map[string][]string {
	t.Helper()
	ctx := t.Context()
	rows, err := ss.super.Query(ctx, `
		WITH tables AS (SELECT oid, reltoastrelid FROM pg_class WHERE oid IN ('root_keys'::regclass, 'data_key_versions'::regclass)),
		rels AS (
			SELECT oid FROM tables
			UNION SELECT reltoastrelid FROM tables WHERE reltoastrelid <> 0
			UNION SELECT indexrelid FROM pg_index WHERE indrelid IN (SELECT oid FROM tables UNION SELECT reltoastrelid FROM tables)
		)
		SELECT c.relname, c.relkind::text, pg_relation_filepath(c.oid) FROM pg_class c JOIN rels USING (oid) ORDER BY c.relname`)
	if err != nil {
		t.Fatalf("relation files: %v", err)
	}
	defer rows.Close()
	files := map[string][]string{}
	kinds := map[string]int{}
	for rows.Next() {
		var name, kind, rel string
		if err := rows.Scan(&name, &kind, &rel); err != nil {
			t.Fatal(err)
		}
		kinds[kind]++
		path := filepath.Join(ss.pg.DataDir(), rel)
		for seg := 0; ; seg++ {
			p := path
			if seg > 0 {
				p += "." + strconv.Itoa(seg)
			}
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			files[name] = append(files[name], p)
		}
		if len(files[name]) == 0 {
			t.Fatalf("relation %s has no file at %s", name, path)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Two tables, their TOAST tables ('t'), and indexes ('i').
	if kinds["r"] != 2 || kinds["t"] != 2 || kinds["i"] < 4 {
		t.Fatalf("relations of the key tables by kind: %v; want 2 tables, 2 TOAST tables, their indexes", kinds)
	}
	return files
}

// databaseFiles returns every file of the store's database directory
// (base/OID): whatever table a blob could be copied to.
func (ss *shredServer) databaseFiles(t *testing.T) []string {
	t.Helper()
	var rel string
	if err := ss.super.QueryRow(t.Context(), `SELECT pg_relation_filepath('root_keys')`).Scan(&rel); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ss.pg.DataDir(), filepath.Dir(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files
}

// pieceSize is the length of the pieces of a blob that [found] looks for:
// TOAST stores a large value in chunks of about 2 kB, and a piece of 32
// random bytes occurs nowhere by accident.
const pieceSize = 32

// found returns the indexes of the blobs any piece of which occurs in the
// files (the pieces at offsets 0, 32, ... and the last 32 bytes).
func found(t *testing.T, files []string, blobs [][]byte) []int {
	t.Helper()
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue // unlinked meanwhile (a checkpoint removes truncated files)
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	var idx []int
	for i, b := range blobs {
		if len(b) < pieceSize {
			t.Fatalf("blob %d has %d bytes, too short to look for", i, len(b))
		}
		for off := 0; off < len(b); off += pieceSize {
			piece := b[min(off, len(b)-pieceSize):][:pieceSize]
			if bytes.Contains(all, piece) {
				idx = append(idx, i)
				break
			}
		}
	}
	return idx
}

func allFiles(m map[string][]string) []string {
	var out []string
	for _, fs := range m {
		out = append(out, fs...)
	}
	return out
}

// TestShredLeavesNoBytesInTableFiles proves the org shred on PostgreSQL at
// the byte level: before it, the files of the key tables hold every
// wrapped key of the org (one of them large enough to live in the TOAST
// table); the erase alone leaves them in the files (deleted row versions
// stay until a vacuum); after the shred job's steps (Shred, then
// ScrubShredded, as the org's role) neither the key tables' files (heap,
// TOAST, indexes) nor any other file of the database holds any of them,
// without a checkpoint and after one, while the other org's are all there
// and still read back.
func TestShredLeavesNoBytesInTableFiles(t *testing.T) {
	ss := startShredServer(t)
	ctx := t.Context()
	const toast = 6000 // over the TOAST threshold (about 2 kB a row), incompressible
	doomed := ss.seedOrg(t, "acme", toast)
	kept := ss.seedOrg(t, "globex", 0)
	ss.checkpoint(t)

	before := ss.relationFiles(t)
	if got := found(t, allFiles(before), doomed); len(got) != len(doomed) {
		t.Fatalf("before the shred, the key tables' files hold blobs %v of acme's %d: the test does not read where they are", got, len(doomed))
	}
	var toastFiles []string
	for name, fs := range before {
		if strings.HasPrefix(name, "pg_toast_") && !strings.HasSuffix(name, "_index") {
			toastFiles = append(toastFiles, fs...)
		}
	}
	if got := found(t, toastFiles, doomed[len(doomed)-1:]); len(got) != 1 {
		t.Fatalf("the %d-byte wrapped key of acme is not in a TOAST table's file: the test does not cover TOAST", toast)
	}

	// The erase alone: the rows are gone, their bytes are not.
	ss.shredOrg(t, "acme", false)
	ss.checkpoint(t)
	if got := found(t, allFiles(ss.relationFiles(t)), doomed); len(got) == 0 {
		t.Errorf("after the erase, before the scrub, no blob of acme is in the table files: the scrub is not what this test proves")
	}

	// The scrub, as the job runs it (with the org's role, no checkpoint).
	if err := ss.store.ScrubShredded(ctx); err != nil {
		t.Fatalf("ScrubShredded() = %v", err)
	}
	for _, when := range []string{"without a checkpoint", "after a checkpoint"} {
		if when != "without a checkpoint" {
			ss.checkpoint(t)
		}
		after := ss.relationFiles(t)
		for name, fs := range after {
			if got := found(t, fs, doomed); len(got) > 0 {
				t.Errorf("after the scrub (%s), %s (%v) holds blobs %v of acme", when, name, fs, got)
			}
		}
		if got := found(t, ss.databaseFiles(t), doomed); len(got) > 0 {
			t.Errorf("after the scrub (%s), the database directory holds blobs %v of acme", when, got)
		}
		if when == "after a checkpoint" {
			if got := found(t, allFiles(after), kept); len(got) != len(kept) {
				t.Errorf("after the scrub (%s), the key tables' files hold blobs %v of globex's %d, want all", when, got, len(kept))
			}
		}
	}
	roots, err := ss.store.RootKeys(ctx, "globex")
	if err != nil || len(roots) != 2 || !bytes.Equal(roots[0].Wrapped.Ciphertext, kept[0]) && !bytes.Equal(roots[1].Wrapped.Ciphertext, kept[0]) {
		t.Errorf("RootKeys(globex) after the shred of acme = %d wrappings, %v; want both intact", len(roots), err)
	}
	k, err := ss.store.GetDataKey(ctx, "globex", "extra")
	if err != nil || len(k.Versions) != 2 || !bytes.Equal(k.Versions[1].Wrapped, kept[4]) {
		t.Errorf("GetDataKey(globex, extra) after the shred of acme = %d versions, %v; want both intact", len(k.Versions), err)
	}

	// What the scrub cannot reach: the write-ahead log keeps the inserted
	// rows until its segments are recycled (docs/crypto-shred.md).
	wal, err := filepath.Glob(filepath.Join(ss.pg.DataDir(), "pg_wal", "0*"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the scrub, the write-ahead log still holds %d of acme's %d blobs (until its segments are recycled)", len(found(t, wal, doomed)), len(doomed))

	// The session settings of the scrub did not stay on the pool's
	// connection.
	var lockTimeout, stmtTimeout string
	if err := ss.store.DB().QueryRowContext(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout')`).Scan(&lockTimeout, &stmtTimeout); err != nil {
		t.Fatal(err)
	}
	if lockTimeout != "0" || stmtTimeout != "30s" {
		t.Errorf("after the scrub, the pool's connection has lock_timeout %s and statement_timeout %s, want 0 and 30s (the store's)", lockTimeout, stmtTimeout)
	}
}

// TestScrubShreddedGivesUpOnALock: a transaction that holds a key table
// keeps the scrub's VACUUM FULL from its lock; the scrub gives up after
// its lock timeout with Unavailable (the job retries) instead of queueing
// every reader of the table behind it, and succeeds once the lock is free.
func TestScrubShreddedGivesUpOnALock(t *testing.T) {
	ss := startShredServer(t)
	ctx := t.Context()
	ss.seedOrg(t, "acme", 0)
	tx, err := ss.super.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM data_key_versions`); err != nil {
		t.Fatal(err)
	}
	err = ss.store.ScrubShredded(ctx)
	if fault.KindOf(err) != fault.Unavailable {
		t.Errorf("ScrubShredded() while a transaction reads data_key_versions = %v, want Unavailable", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ss.store.ScrubShredded(ctx); err != nil {
		t.Errorf("ScrubShredded() once the lock is free = %v", err)
	}
}

// TestScrubShreddedRefusesATableItCannotVacuum: run as a role that may
// write the key tables but owns neither them nor the database, VACUUM FULL
// would skip them with a mere warning; the scrub is Unavailable instead,
// naming the tables (the job retries until orgkms runs as their owner).
func TestScrubShreddedRefusesATableItCannotVacuum(t *testing.T) {
	ss := startShredServer(t)
	ctx := t.Context()
	password := strings.ToLower(rand.Text())
	for _, q := range []string{
		`CREATE ROLE orgkms_writer LOGIN PASSWORD '` + password + `'`,
		`GRANT USAGE ON SCHEMA public TO orgkms_writer`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO orgkms_writer`,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO orgkms_writer`,
	} {
		if _, err := ss.super.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", strings.Join(strings.Fields(q)[:2], " "), err)
		}
	}
	u := ss.url
	u.User = url.UserPassword("orgkms_writer", password)
	w, err := Open(ctx, Config{URL: u.String(), NoMigrate: true})
	if err != nil {
		t.Fatalf("Open as orgkms_writer: %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	err = w.ScrubShredded(ctx)
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Unavailable || fe.Resource != "table data_key_versions, root_keys, webhooks" {
		t.Errorf("ScrubShredded() as a role that owns no table = %v, want Unavailable naming the three tables", err)
	}
	// The owner scrubs.
	if err := ss.store.ScrubShredded(ctx); err != nil {
		t.Errorf("ScrubShredded() as the owner = %v", err)
	}
}
