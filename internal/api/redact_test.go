package api_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
)

// TestPlatformKeyLocationHidden: an org admin's views (audit log, CMK
// status, errors, batch item errors) never contain the platform master
// key's file path nor its local:// reference, even when the platform key
// fails (the key file replaced under existing orgs). A platform operator
// still sees the audit events as stored.
func TestPlatformKeyLocationHidden(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	mustOrg(t, ts, "acme")
	admin := ts.token("sec", "acme", auth.RoleAdmin, auth.RoleKeyAdmin)
	svc := ts.token("billing", "acme", auth.RoleService)
	op := ts.token("ops", "", auth.RoleOperator)
	keyPath := filepath.Join(dir, "master.key")

	leaks := func(what string, body []byte) {
		t.Helper()
		for _, secret := range []string{keyPath, dir, "local://", "local:"} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%s shows %q to an org admin: %s", what, secret, body)
			}
		}
	}
	status, body := ts.raw("GET", "/v1/orgs/acme/audit", admin, nil)
	if status != 200 {
		t.Fatalf("audit = %d %s", status, body)
	}
	if !strings.Contains(string(body), "org.create") {
		t.Fatalf("audit lacks org.create: %s", body)
	}
	leaks("audit", body)
	if status, body := ts.raw("GET", "/v1/orgs/acme/audit", op, nil); status != 200 || !strings.Contains(string(body), `"master_key":"platform"`) {
		t.Errorf("operator's audit = %d %s, want the events as stored", status, body)
	}
	_, body = ts.raw("GET", "/v1/orgs/acme/cmk", admin, nil)
	leaks("cmk status", body)
	_, body = ts.raw("GET", "/v1/orgs/acme", admin, nil)
	leaks("org", body)

	// The platform key file replaced: every use of the org's root key
	// fails, and says why without saying where.
	ts.stop()
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := localkey.EnsureFile(keyPath); err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, dir)
	for _, rq := range []struct{ what, method, path, token, body string }{
		{"create key error", "POST", "/v1/orgs/acme/keys", admin, `{"name":"k2"}`},
		{"rotate error", "POST", "/v1/orgs/acme/keys/default/rotate", admin, `{}`},
		{"encrypt error", "POST", "/v1/orgs/acme/keys/default/encrypt", svc, `{"plaintext":"aGk="}`},
		{"batch error", "POST", "/v1/orgs/acme/keys/default/encrypt", svc, `{"batch":[{"plaintext":"aGk="}]}`},
		{"cmk disable error", "POST", "/v1/orgs/acme/cmk/disable", admin, `{}`},
		{"audit", "GET", "/v1/orgs/acme/audit", admin, ""},
		{"cmk status", "GET", "/v1/orgs/acme/cmk", admin, ""},
	} {
		var b any
		if rq.body != "" {
			b = rq.body
		}
		status, body := ts.raw(rq.method, rq.path, rq.token, b)
		if status >= 500 {
			t.Errorf("%s = %d %s", rq.what, status, body)
		}
		leaks(rq.what, body)
	}
	// The failure did name the platform key (in words).
	_, body = ts.raw("POST", "/v1/orgs/acme/keys/default/encrypt", svc, `{"plaintext":"aGk="}`)
	if !strings.Contains(string(body), "platform master key") {
		t.Errorf("encrypt error %s: want it to name the platform master key", body)
	}
}
