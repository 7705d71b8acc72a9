package pgtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestHelperNeedsPostgres is run by TestWithoutPostgres in a child
// process; run directly, it does nothing.
func TestHelperNeedsPostgres(t *testing.T) {
	if os.Getenv("PGTEST_HELPER") != "1" {
		return
	}
	URL(t)
	t.Log("got a URL")
}

// TestWithoutPostgres runs a test that needs PostgreSQL without
// ORGKMS_TEST_POSTGRES_URL: it fails, saying how to start PostgreSQL; with
// ORGKMS_TEST_POSTGRES=off it is skipped, saying so.
func TestWithoutPostgres(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      []string
		wantFail bool
		want     string
	}{
		{"unset", nil, true, `eval "$(bash .ci/postgres.sh)"`},
		{"turned off", []string{EnvSwitch + "=off"}, false, EnvSwitch + "=off: the PostgreSQL tests are turned off"},
		{"turned off with a URL", []string{EnvSwitch + "=off", EnvURL + "=postgres://u@127.0.0.1:1/db"}, false, "turned off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperNeedsPostgres$", "-test.v")
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, EnvURL+"=") && !strings.HasPrefix(kv, EnvSwitch+"=") {
					env = append(env, kv)
				}
			}
			cmd.Env = append(append(env, "PGTEST_HELPER=1"), tc.env...)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.wantFail {
				t.Errorf("test without PostgreSQL (%s): failed = %v (%v), want %v; output:\n%s", tc.name, failed, err, tc.wantFail, out)
			}
			if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "got a URL") {
				t.Errorf("test without PostgreSQL (%s) output:\n%s\nwant it to say %q", tc.name, out, tc.want)
			}
		})
	}
}

// TestURLGivesEmptySchemas checks that each URL is a schema of its own in
// one database of the package run, dropped at the end by Main.
func TestURLGivesEmptySchemas(t *testing.T) {
	ctx := t.Context()
	var dbs []string
	for i := range 2 {
		conn, err := pgx.Connect(ctx, URL(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var db, schema string
		var tables int
		if err := conn.QueryRow(ctx, `SELECT current_database(), current_schema(), (SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema())`).
			Scan(&db, &schema, &tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 || !strings.HasPrefix(db, "orgkms_test_") {
			t.Errorf("URL #%d: database %s schema %s with %d tables, want an empty schema in an orgkms_test_ database", i, db, schema, tables)
		}
		if _, err := conn.Exec(ctx, `CREATE TABLE marker (id int)`); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db+"/"+schema)
	}
	if dbs[0] == dbs[1] || strings.Split(dbs[0], "/")[0] != strings.Split(dbs[1], "/")[0] {
		t.Errorf("URLs gave %v, want two schemas of one database", dbs)
	}
}

// TestServerStopStart starts a private server, stops it as a crash would,
// and starts it again on the same address, where the data written before
// the stop is still there (a committed transaction survives an immediate
// stop).
func TestServerStopStart(t *testing.T) {
	ctx := t.Context()
	s := StartServer(t)
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatalf("connect to the private server: %v", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE marker (id int); INSERT INTO marker VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	s.Stop(t)
	if err := conn.Ping(ctx); err == nil {
		t.Errorf("Ping after Stop succeeded, want the connection broken")
	}
	conn.Close(context.Background())
	if c, err := pgx.Connect(ctx, s.URL); err == nil {
		c.Close(context.Background())
		t.Fatalf("connect after Stop succeeded, want it refused")
	}
	s.Start(t)
	if s.Addr() != addr {
		t.Errorf("after a restart the server listens on %s, want %s as before", s.Addr(), addr)
	}
	conn, err = pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatalf("connect after the restart: %v", err)
	}
	defer conn.Close(context.Background())
	var id int
	if err := conn.QueryRow(ctx, `SELECT id FROM marker`).Scan(&id); err != nil || id != 42 {
		t.Errorf("after the restart, SELECT id FROM marker = %d, %v; want 42", id, err)
	}
	if wrong, err := pgx.Connect(ctx, strings.Replace(s.URL, s.Password, "wrong", 1)); err == nil {
		wrong.Close(context.Background())
		t.Errorf("connect with a wrong password succeeded, want it refused")
	}
}
