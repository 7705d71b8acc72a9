package main

import (
	"strings"
	"testing"
)

// A build with -tags no_gcpkms links no Google Cloud client; the default
// build links the gcpkms driver.
func TestNoGCPKMSBuild(t *testing.T) {
	out, err := goCmd(t, "list", "-deps", "-tags", "no_gcpkms", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps -tags no_gcpkms: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "cloud.google.com/") || strings.HasSuffix(pkg, "/internal/masterkey/gcpkms") {
			t.Errorf("the no_gcpkms build links %s", pkg)
		}
	}
	if out, err := goCmd(t, "list", "-deps", ".").Output(); err != nil || !strings.Contains(string(out), "/internal/masterkey/gcpkms\n") {
		t.Errorf("the default build does not link the gcpkms driver (go list: %v)", err)
	}
}
