package cmk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsNoDriver: the lifecycle knows no cloud. Package cmk must not
// depend on any masterkey driver (internal/masterkey/azurekv, ...) nor on
// a cloud package: each cloud is a package of its own that imports cmk.
func TestImportsNoDriver(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/orgkms/orgkms/internal/cmk").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, d := range deps {
		rest, ok := strings.CutPrefix(d, "github.com/orgkms/orgkms/internal/")
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, "masterkey/") || strings.HasPrefix(rest, "cmk/") || strings.Contains(rest, "emu") {
			t.Errorf("package cmk depends on %s: a cloud's driver or cloud package", d)
		}
	}
	if !strings.Contains(string(out), "github.com/orgkms/orgkms/internal/masterkey\n") {
		t.Errorf("package cmk does not depend on internal/masterkey: is this the right package list?\n%s", out)
	}
}
