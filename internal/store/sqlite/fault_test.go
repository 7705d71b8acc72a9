package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"

	sqlite3 "modernc.org/sqlite/lib"
)

// lockHelperEnv makes the test binary a helper process that holds a store
// open (see TestMain and TestSecondServerRefused).
const lockHelperEnv = "ORGKMS_TEST_SQLITE_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHelperEnv); path != "" {
		s, err := Open(context.Background(), Config{Path: path})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin) // hold the store until the parent closes stdin
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tokenN is a distinct token for the n-th write of a test.
func tokenN(n int) auth.Token {
	return auth.Token{ID: fmt.Sprintf("tok_%04d", n), Hash: []byte(fmt.Sprintf("hash-%04d-%s", n, strings.Repeat("x", 200))),
		Principal: "p" + strconv.Itoa(n), Roles: []auth.Role{auth.RoleService}, CreatedAt: time.Now().UTC()}
}

// countTokens counts the tokens of the store at path, opened afresh (a
// restart).
func countTokens(t *testing.T, path string) int {
	t.Helper()
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("reopen %s: %v", path, err)
	}
	defer s.Close()
	n, err := s.CountTokens(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitHealth polls Health (it probes at most once a second) until it
// returns kind want, with a generous limit.
func waitHealth(t *testing.T, s *Store, want fault.Kind, ok bool) error {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := s.Health(t.Context())
		if ok && err == nil || !ok && err != nil && fault.KindOf(err) == want {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("Health() = %v after a minute; want ok=%v kind %v", err, ok, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not waiting for time
	}
}

func TestClassifyDatabaseFaults(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	real := func(q string) error {
		_, err := s.DB().ExecContext(ctx, q)
		if err == nil {
			t.Fatalf("%s succeeded", q)
		}
		return err
	}
	if _, err := s.DB().ExecContext(ctx, `CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().ExecContext(ctx, `INSERT INTO t VALUES (1, 'a')`); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		err        error
		wantKind   fault.Kind
		wantReason string
	}{
		{"no rows", ctx, sql.ErrNoRows, fault.NotFound, ""},
		{"unique (engine)", ctx, real(`INSERT INTO t VALUES (2, 'a')`), fault.Conflict, "already exists"},
		{"primary key (engine)", ctx, real(`INSERT INTO t VALUES (1, 'b')`), fault.Conflict, "already exists"},
		{"syntax (engine)", ctx, real(`SELEC 1`), fault.Internal, ""},
		{"busy", ctx, codedErr(sqlite3.SQLITE_BUSY), fault.Unavailable, "busy"},
		{"locked", ctx, codedErr(sqlite3.SQLITE_LOCKED_SHAREDCACHE), fault.Unavailable, "busy"},
		{"full", ctx, codedErr(sqlite3.SQLITE_FULL), fault.Unavailable, "disk is full"},
		{"readonly", ctx, codedErr(sqlite3.SQLITE_READONLY), fault.Unavailable, "read-only"},
		{"readonly dbmoved", ctx, codedErr(sqlite3.SQLITE_READONLY_DBMOVED), fault.Unavailable, "read-only"},
		{"ioerr", ctx, codedErr(sqlite3.SQLITE_IOERR), fault.Unavailable, "I/O error"},
		{"ioerr write", ctx, codedErr(sqlite3.SQLITE_IOERR_WRITE), fault.Unavailable, "I/O error"},
		{"ioerr fsync", ctx, codedErr(sqlite3.SQLITE_IOERR_FSYNC), fault.Unavailable, "I/O error"},
		{"cantopen", ctx, codedErr(sqlite3.SQLITE_CANTOPEN), fault.Unavailable, "cannot be opened"},
		{"notadb", ctx, codedErr(sqlite3.SQLITE_NOTADB), fault.Unavailable, "cannot be opened"},
		{"corrupt", ctx, codedErr(sqlite3.SQLITE_CORRUPT), fault.Internal, ""},
		{"bad conn", ctx, fmt.Errorf("exec: %w", driver.ErrBadConn), fault.Unavailable, "connection was lost"},
		{"cancelled", cancelled, context.Canceled, fault.Unavailable, ""},
		{"unknown", ctx, errors.New("boom"), fault.Internal, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(tc.ctx, "op", "thing", tc.err)
			if got := fault.KindOf(err); got != tc.wantKind {
				t.Fatalf("classify(%v) kind = %v, want %v", tc.err, got, tc.wantKind)
			}
			fe := fault.As(err)
			if !strings.Contains(fe.Reason, tc.wantReason) {
				t.Errorf("classify(%v) reason = %q, want it to contain %q", tc.err, fe.Reason, tc.wantReason)
			}
			if tc.wantKind == fault.Unavailable && tc.wantReason != "" && fe.RetryAfter <= 0 {
				t.Errorf("classify(%v) RetryAfter = %v, want > 0", tc.err, fe.RetryAfter)
			}
			if strings.Contains(fault.Message(err), s.path) {
				t.Errorf("classify(%v) message %q names the database path", tc.err, fault.Message(err))
			}
		})
	}
}

// codedErr is an error with an SQLite result code, as the driver returns
// it (for codes the engine cannot be made to return on demand).
type codedErr int

func (c codedErr) Error() string { return "sqlite error " + strconv.Itoa(int(c)) }
func (c codedErr) Code() int     { return int(c) }

// TestDeletedDatabaseIsRestored deletes the database file (and with it, or
// not, its -wal and -shm) under an open store: the next write restores the
// file from the open database and succeeds, and a restart finds every
// acknowledged write.
func TestDeletedDatabaseIsRestored(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove []string
	}{
		{"database only", []string{""}},
		{"database, wal and shm", []string{"", "-wal", "-shm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "orgkms.db")
			s, err := Open(t.Context(), Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := t.Context()
			for i := range 20 {
				if err := s.CreateToken(ctx, tokenN(i)); err != nil {
					t.Fatal(err)
				}
			}
			// A reader holds a connection to the old file while it goes.
			rows, err := s.r.QueryContext(ctx, `SELECT id FROM tokens`)
			if err != nil {
				t.Fatal(err)
			}
			for _, suffix := range tc.remove {
				if err := os.Remove(path + suffix); err != nil {
					t.Fatal(err)
				}
			}
			rowsDone := make(chan struct{})
			go func() {
				defer close(rowsDone)
				for rows.Next() {
				}
				rows.Close()
			}()
			if err := s.CreateToken(ctx, tokenN(20)); err != nil {
				t.Fatalf("CreateToken after the file was deleted = %v, want it restored and written", err)
			}
			<-rowsDone
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("database file after the write: %v", err)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("restored file mode = %v, want 0600", fi.Mode().Perm())
			}
			if err := waitHealth(t, s, 0, true); err != nil {
				t.Fatal(err)
			}
			for i := 21; i < 30; i++ {
				if err := s.CreateToken(ctx, tokenN(i)); err != nil {
					t.Fatal(err)
				}
			}
			if n, err := s.CountTokens(ctx); err != nil || n != 30 {
				t.Errorf("CountTokens() = %d, %v; want 30", n, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := countTokens(t, path); n != 30 {
				t.Errorf("after a restart %d tokens, want 30 (every acknowledged write)", n)
			}
		})
	}
}

// TestDeletedDatabaseRestoredAtClose: a file deleted after the last write
// is restored when the store closes, so a restart loses nothing.
func TestDeletedDatabaseRestoredAtClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "orgkms.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.CreateToken(t.Context(), tokenN(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countTokens(t, path); n != 5 {
		t.Errorf("after a restart %d tokens, want 5", n)
	}
}

// TestReplacedDatabaseRefusesWrites replaces the database file by another
// database under an open store: writes and Health answer Unavailable (the
// server must not write into a file nobody will read again, nor switch to
// one that lacks what it acknowledged), and both recover when the original
// is put back.
func TestReplacedDatabaseRefusesWrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orgkms.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateToken(ctx, tokenN(0)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".aside"); err != nil {
		t.Fatal(err)
	}
	// Another database at the path (an old backup, say).
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(`CREATE TABLE x (y)`); err != nil {
		t.Fatal(err)
	}
	other.Close()
	err = s.CreateToken(ctx, tokenN(1))
	if fault.KindOf(err) != fault.Unavailable || !strings.Contains(fault.Message(err), "replaced") {
		t.Fatalf("CreateToken on a replaced file = %v (kind %v), want Unavailable saying it was replaced", err, fault.KindOf(err))
	}
	if strings.Contains(fault.Message(err), dir) {
		t.Errorf("message %q names the data directory", fault.Message(err))
	}
	if err := waitHealth(t, s, fault.Unavailable, false); !strings.Contains(fault.Message(err), "replaced") {
		t.Errorf("Health() = %v, want it to say the file was replaced", err)
	}
	// Reads still answer, from the file the store acknowledged writes in.
	if n, err := s.CountTokens(ctx); err != nil || n != 1 {
		t.Errorf("CountTokens() = %d, %v; want 1", n, err)
	}
	if err := os.Rename(path+".aside", path); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, s, 0, true)
	if err := s.CreateToken(ctx, tokenN(1)); err != nil {
		t.Fatalf("CreateToken after the original is back = %v", err)
	}
	s.Close()
	if n := countTokens(t, path); n != 2 {
		t.Errorf("after a restart %d tokens, want 2", n)
	}
}

// TestWriteFaultsAreUnavailable makes the writer connection fail as SQLite
// fails on a full disk (max_page_count: the engine returns SQLITE_FULL
// exactly as for ENOSPC) and on a read-only file system (query_only: the
// engine returns SQLITE_READONLY): writes and Health answer Unavailable
// with a Retry-After and the condition, nothing acknowledged is lost, and
// both recover when the condition is gone.
func TestWriteFaultsAreUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name, inject, heal, wantReason string
		wantCode                       int
	}{
		{"full", `PRAGMA max_page_count = %d`, `PRAGMA max_page_count = 1073741823`, "disk is full", sqlite3.SQLITE_FULL},
		{"readonly", `PRAGMA query_only = 1`, `PRAGMA query_only = 0`, "read-only", sqlite3.SQLITE_READONLY},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "orgkms.db")
			s, err := Open(t.Context(), Config{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := t.Context()
			var pages int
			if err := s.w.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
				t.Fatal(err)
			}
			inject := tc.inject
			if strings.Contains(inject, "%d") {
				inject = fmt.Sprintf(inject, pages)
			}
			if _, err := s.w.ExecContext(ctx, inject); err != nil {
				t.Fatal(err)
			}
			acked := 0
			var werr error
			for i := range 10_000 {
				if werr = s.CreateToken(ctx, tokenN(i)); werr != nil {
					break
				}
				acked++
			}
			if fault.KindOf(werr) != fault.Unavailable || sqliteCode(werr)&0xff != tc.wantCode {
				t.Fatalf("CreateToken under %s = %v (kind %v, code %d), want Unavailable from code %d", tc.name, werr, fault.KindOf(werr), sqliteCode(werr), tc.wantCode)
			}
			if fe := fault.As(werr); fe.RetryAfter <= 0 || !strings.Contains(fe.Reason, tc.wantReason) {
				t.Errorf("CreateToken error = %+v, want a Retry-After and a reason with %q", fe, tc.wantReason)
			}
			err = waitHealth(t, s, fault.Unavailable, false)
			if !strings.Contains(fault.Message(err), tc.wantReason) {
				t.Errorf("Health() = %v, want it to say %q", err, tc.wantReason)
			}
			if _, err := s.w.ExecContext(ctx, tc.heal); err != nil {
				t.Fatal(err)
			}
			if err := s.CreateToken(ctx, tokenN(acked)); err != nil {
				t.Fatalf("CreateToken after the fault is gone = %v", err)
			}
			waitHealth(t, s, 0, true)
			s.Close()
			if n := countTokens(t, path); n != acked+1 {
				t.Errorf("after a restart %d tokens, want %d (every acknowledged write)", n, acked+1)
			}
		})
	}
}

// TestDiskFullForReal runs a store on a 1 MiB tmpfs, fills it, and checks
// what the engine-level test checks, with the kernel's ENOSPC. It needs
// mount(2) (root); elsewhere it is skipped unless ORGKMS_REQUIRE lists
// "mount".
func TestDiskFullForReal(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		if strings.Contains(os.Getenv("ORGKMS_REQUIRE"), "mount") {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v (needs root; ORGKMS_REQUIRE=mount makes this a failure)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	path := filepath.Join(dir, "orgkms.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	// Fill the file system.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	filler.Close()
	acked := 0
	var werr error
	for i := range 10_000 {
		if werr = s.CreateToken(ctx, tokenN(i)); werr != nil {
			break
		}
		acked++
	}
	if fault.KindOf(werr) != fault.Unavailable || sqliteCode(werr)&0xff != sqlite3.SQLITE_FULL {
		t.Fatalf("CreateToken on a full disk = %v (kind %v, code %d), want Unavailable from SQLITE_FULL", werr, fault.KindOf(werr), sqliteCode(werr))
	}
	if err := waitHealth(t, s, fault.Unavailable, false); !strings.Contains(fault.Message(err), "disk is full") {
		t.Errorf("Health() = %v, want it to say the disk is full", err)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, s, 0, true)
	if err := s.CreateToken(ctx, tokenN(acked)); err != nil {
		t.Fatalf("CreateToken after space is freed = %v", err)
	}
	s.Close()
	if n := countTokens(t, path); n != acked+1 {
		t.Errorf("after a restart %d tokens, want %d", n, acked+1)
	}
}

// TestSecondServerRefused opens the same data directory twice, in this
// process and from another process: the second Open is refused with
// Conflict, naming the directory and the holder, and succeeds once the
// first store is closed.
func TestSecondServerRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "orgkms.db")
	s := openFile(t, path)
	_, err := Open(t.Context(), Config{Path: filepath.Join(dir, "other.db")})
	if fault.KindOf(err) != fault.Conflict || !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Open of %s = %v (kind %v), want %v wrapping ErrDataDirInUse", dir, err, fault.KindOf(err), fault.Conflict)
	}
	for _, want := range []string{dir, "process " + strconv.Itoa(os.Getpid()), "in use by another orgkms server"} {
		if !strings.Contains(fault.Message(err), want) {
			t.Errorf("second Open message = %q, want it to contain %q", fault.Message(err), want)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Another process holds it.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("helper process said %q, %v; want ready", line, err)
	}
	_, err = Open(t.Context(), Config{Path: path})
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(fault.Message(err), "process "+strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("Open while process %d holds it = %v, want Conflict naming that process", cmd.Process.Pid, err)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	s2, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatalf("Open after the other process exited = %v", err)
	}
	s2.Close()
}

// TestReadOnlyFileSystemForReal: Linux refuses to make a file system
// read-only while a file on it is open for writing (EBUSY), so a running
// store never meets one (TestWriteFaultsAreUnavailable covers the engine's
// SQLITE_READONLY); a store opened on a read-only file system fails with
// Unavailable, not Internal, and opens once it is writable again. Needs
// mount(2), like TestDiskFullForReal.
func TestReadOnlyFileSystemForReal(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		if strings.Contains(os.Getenv("ORGKMS_REQUIRE"), "mount") {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v (needs root; ORGKMS_REQUIRE=mount makes this a failure)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	path := filepath.Join(dir, "orgkms.db")
	s, err := Open(t.Context(), Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(t.Context(), tokenN(0)); err != nil {
		t.Fatal(err)
	}
	// While the store is open, the kernel refuses.
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err == nil {
		t.Fatal("remounting read-only under an open store succeeded; the test's premise is wrong")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	_, err = Open(t.Context(), Config{Path: path})
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Open on a read-only file system = %v (kind %v), want Unavailable", err, fault.KindOf(err))
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remount read-write: %v", err)
	}
	if n := countTokens(t, path); n != 1 {
		t.Errorf("after the file system is writable again %d tokens, want 1", n)
	}
}
