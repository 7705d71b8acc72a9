package main

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// TestMigratePostgres runs orgkms migrate on a PostgreSQL database given
// by ORGKMS_DATABASE_URL: it migrates, then finds the schema current, and
// names the database without its password.
func TestMigratePostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	t.Setenv("ORGKMS_DATABASE_URL", dbURL)
	for _, want := range []string{" migrated\n", " is up to date\n"} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"migrate", "--data", t.TempDir()}, strings.NewReader(""), &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if code != 0 || !strings.HasPrefix(stdout.String(), "database postgres://") || !strings.HasSuffix(stdout.String(), want) {
			t.Errorf("orgkms migrate = exit %d, output %q; want exit 0 and \"database postgres://...%s\"", code, out, want)
		}
		if strings.Contains(out, pw) || !strings.Contains(out, "xxxxx") {
			t.Errorf("orgkms migrate output %q shows the database password, or does not redact it", out)
		}
	}
}
