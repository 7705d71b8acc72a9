package console_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlatformKeyLocationHiddenInConsole: an org admin's console pages
// (overview, keys, security, audit log and its export) never show the
// platform master key's file path nor its local:// reference.
func TestPlatformKeyLocationHiddenInConsole(t *testing.T) {
	h := newHarness(t, options{})
	ref := h.keys.PlatformKey()
	keyPath := ref.ID
	if !filepath.IsAbs(keyPath) {
		t.Fatalf("platform key ID %q is not a path", keyPath)
	}
	b := h.signedIn(secAdmin)
	for _, path := range []string{"/console/orgs/acme/", "/console/orgs/acme/keys", "/console/orgs/acme/security",
		"/console/orgs/acme/audit", "/console/orgs/acme/audit/export"} {
		p := b.get(path).want(http.StatusOK)
		if path == "/console/orgs/acme/audit/export" && !strings.Contains(p.body, "org.create") {
			t.Fatalf("%s lacks org.create:\n%s", path, p.body)
		}
		for _, secret := range []string{keyPath, filepath.Dir(keyPath), "local://", "local:"} {
			if strings.Contains(p.body, secret) {
				t.Errorf("%s shows %q to an org admin", path, secret)
			}
		}
	}
}
