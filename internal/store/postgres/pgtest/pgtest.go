// Package pgtest gives tests a real PostgreSQL: every call of [URL] returns
// a new, empty schema in a database of its own for the test package run,
// created on first use and dropped by [Main] at the end.
//
// The server is ORGKMS_TEST_POSTGRES_URL (`eval "$(bash .ci/postgres.sh)"`
// starts one and sets it); its role must be allowed to create databases.
// Without the variable a test that needs PostgreSQL fails, saying how to
// start it, unless ORGKMS_TEST_POSTGRES=off turns those tests off
// explicitly (they are then skipped, saying so). CI always provides it.
//
// A test that stops and starts its database (what orgkms does while the
// database is down) gets a private server of its own instead, from
// [StartServer]: a new cluster (initdb) in a temporary directory, on a free
// loopback port, stopped and deleted at the end of the test. It needs the
// PostgreSQL binaries, not ORGKMS_TEST_POSTGRES_URL.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by [URL].
const (
	EnvURL    = "ORGKMS_TEST_POSTGRES_URL"
	EnvSwitch = "ORGKMS_TEST_POSTGRES" // "off" skips the tests that need PostgreSQL
)

// setupTimeout bounds creating the package's database: generous, the
// machine may be loaded.
const setupTimeout = 2 * time.Minute

var (
	mu      sync.Mutex
	inMain  bool
	created string // the package run's database, once created
	base    *url.URL
	conn    *pgx.Conn // to created, for CREATE SCHEMA
	schemas int
)

// Main runs the package's tests (call it from TestMain) and then drops the
// database they used, if any.
func Main(m *testing.M) { os.Exit(Wrap(m).Run()) }

// Wrap returns m with a Run that also drops the package's database at the
// end, for a TestMain that hands m to another runner (testscript.Main).
func Wrap(m interface{ Run() int }) interface{ Run() int } { return wrapped{m} }

type wrapped struct{ m interface{ Run() int } }

func (w wrapped) Run() int {
	mu.Lock()
	inMain = true
	mu.Unlock()
	code := w.m.Run()
	if err := drop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Available reports whether the PostgreSQL tests are turned on (the URL is
// set and ORGKMS_TEST_POSTGRES is not "off").
func Available() bool {
	return os.Getenv(EnvSwitch) != "off" && os.Getenv(EnvURL) != ""
}

// URL returns the URL of a new, empty schema (its search_path) in the
// package run's database. It fails t when PostgreSQL is not configured, and
// skips it only when ORGKMS_TEST_POSTGRES=off.
func URL(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvSwitch) == "off" {
		t.Skipf("%s=off: the PostgreSQL tests are turned off", EnvSwitch)
	}
	raw := os.Getenv(EnvURL)
	if raw == "" {
		t.Fatalf("%s is not set: this test needs PostgreSQL. Start one with\n\teval \"$(bash .ci/postgres.sh)\"\n"+
			"(as root, or any user with PostgreSQL 15 installed), or set %s=off to skip the PostgreSQL tests", EnvURL, EnvSwitch)
	}
	mu.Lock()
	defer mu.Unlock()
	if !inMain {
		t.Fatalf("pgtest.URL needs pgtest.Main (or Wrap): call it from the package's TestMain, so its database is dropped at the end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	if conn == nil {
		if err := create(ctx, raw); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	schemas++
	schema := fmt.Sprintf("t%d", schemas)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	u := *base
	u.Path = "/" + created
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// withDatabase returns u with its database replaced by name.
func withDatabase(u url.URL, name string) string {
	u.Path = "/" + name
	return u.String()
}

// create creates the package run's database and connects to it.
func create(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a URL", EnvURL) // the error would quote it, password and all
	}
	admin, err := pgx.Connect(ctx, raw)
	if err != nil {
		return fmt.Errorf("connect to %s (%s): %w", EnvURL, u.Redacted(), err)
	}
	defer admin.Close(context.Background())
	name := "orgkms_test_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create database %s: %w (the role of %s must be allowed to create databases)", name, err, EnvURL)
	}
	created, base = name, u
	if conn, err = pgx.Connect(ctx, withDatabase(*u, name)); err != nil {
		return fmt.Errorf("connect to database %s: %w", name, err)
	}
	return nil
}

// drop drops the package run's database, disconnecting whoever is still
// connected.
func drop() error {
	mu.Lock()
	defer mu.Unlock()
	if created == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	conn.Close(ctx)
	admin, err := pgx.Connect(ctx, base.String())
	if err != nil {
		return fmt.Errorf("drop database %s: %w", created, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+created+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", created, err)
	}
	created, conn = "", nil
	return nil
}
