package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// serverTimeout bounds initdb, a start and a stop of a private server:
// generous, the machine may be loaded.
const serverTimeout = 3 * time.Minute

// Server is a private PostgreSQL server for one test, which the test may
// stop and start again (e.g. to show what orgkms does while its database is
// down). It has its own data directory and listens on a free loopback port
// that stays the same across restarts; it is stopped and deleted when the
// test ends.
//
// It uses the PostgreSQL binaries of Debian's postgresql package
// (/usr/lib/postgresql/VERSION/bin, the newest version), or initdb and
// pg_ctl from PATH, the same ones .ci/postgres.sh uses. Run as root, the
// server runs as the postgres user, as initdb refuses root.
type Server struct {
	// URL is the server's database "postgres" as the superuser postgres,
	// with a random password: postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres?sslmode=disable.
	URL string
	// Password is the password in URL (tests check that it never shows).
	Password string

	bin  string // directory of initdb, pg_ctl
	dir  string // the server's directory: data, log, socket
	port int
	as   *user.User // the user the server runs as when the test runs as root; nil otherwise

	mu      sync.Mutex
	running bool
}

// StartServer creates a new PostgreSQL cluster in a temporary directory
// (initdb takes a few seconds) and starts it. It fails t when PostgreSQL is
// not installed, and skips it only when ORGKMS_TEST_POSTGRES=off, like
// [URL].
func StartServer(t testing.TB) *Server {
	t.Helper()
	if os.Getenv(EnvSwitch) == "off" {
		t.Skipf("%s=off: the PostgreSQL tests are turned off", EnvSwitch)
	}
	bin, err := binDir()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		if s.as, err = user.Lookup("postgres"); err != nil {
			t.Fatalf("pgtest: running as root, the server needs the postgres user (Debian's postgresql package creates it): %v", err)
		}
	}
	// Not t.TempDir: its parents are private to root, and the server may
	// run as another user.
	if s.dir, err = os.MkdirTemp("", "orgkms-pgtest-"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		s.stop(t, "fast")
		if err := os.RemoveAll(s.dir); err != nil {
			t.Errorf("pgtest: remove the server's directory: %v", err)
		}
	})
	s.Password = strings.ToLower(rand.Text())
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := s.chown(s.dir, pwfile); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	out, err := s.run("initdb", "-D", s.data(), "-U", "postgres", "--pwfile="+pwfile, "--auth-local=trust", "--auth-host=scram-sha-256",
		"--encoding=UTF8", "--locale=C.UTF-8", "-N")
	os.Remove(pwfile)
	if err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}
	s.Start(t)
	return s
}

// Start starts the server (again) on its port and waits until it accepts
// connections. A new server picks a free port; if another process took it
// meanwhile, a new server tries another one, a restarted one fails t.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		t.Fatalf("pgtest: the server is already running")
	}
	attempts := 1
	if s.port == 0 {
		attempts = 5
	}
	var out []byte
	var err error
	for range attempts {
		port := s.port
		if port == 0 {
			if port, err = freePort(); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
		// fsync off: the data survives the server's processes (not the
		// machine), which is what a stop tests. synchronous_commit stays
		// on, so a committed transaction survives an immediate stop.
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c full_page_writes=off -c max_connections=200", port, s.dir)
		out, err = s.run("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "server.log"), "-w", "-t", strconv.Itoa(int(serverTimeout.Seconds())),
			"-o", opts, "start")
		if err == nil {
			s.port, s.running = port, true
			break
		}
		// A failed start may leave a postmaster behind.
		s.run("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop")
	}
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\nserver log:\n%s", err, out, log)
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword("postgres", s.Password), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path: "/postgres", RawQuery: "sslmode=disable"}
	s.URL = u.String()
	// pg_ctl -w waits for the server to accept connections; make sure
	// with a real one, over TCP, with the password.
	ctx, cancel := context.WithTimeout(context.Background(), serverTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.URL)
		if err == nil {
			conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("pgtest: the server does not accept connections: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server at once, as a crash would: pg_ctl stop -m
// immediate (every server process quits without a checkpoint; the next
// start recovers from the write-ahead log). Open connections break.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stop(t, "immediate")
}

func (s *Server) stop(t testing.TB, mode string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	if out, err := s.run("pg_ctl", "-D", s.data(), "-m", mode, "-w", "-t", strconv.Itoa(int(serverTimeout.Seconds())), "stop"); err != nil {
		t.Errorf("pgtest: pg_ctl stop -m %s: %v\n%s", mode, err, out)
		return
	}
	s.running = false
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// DataDir is the server's data directory (PGDATA), for tests that read
// its files: the server is local and runs as the test's user, or as the
// postgres user when the test runs as root (who can read its files).
func (s *Server) DataDir() string { return s.data() }

// run runs a PostgreSQL program as the server's user.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), serverTimeout+30*time.Second)
	defer cancel()
	prog := filepath.Join(s.bin, name)
	var cmd *exec.Cmd
	if s.as != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", s.as.Username, "--", prog}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, prog, args...)
	}
	cmd.Dir = s.dir
	return cmd.CombinedOutput()
}

// chown gives the server's user the paths, when the test runs as root.
func (s *Server) chown(paths ...string) error {
	if s.as == nil {
		return nil
	}
	uid, err := strconv.Atoi(s.as.Uid)
	if err != nil {
		return err
	}
	gid, err := strconv.Atoi(s.as.Gid)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// binDir finds the directory of initdb and pg_ctl: the newest
// /usr/lib/postgresql/VERSION/bin, else PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl, no pg_ctl in PATH): install Debian's postgresql package")
}

// freePort returns a loopback TCP port that nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
