package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goTool is the go command of the toolchain running the tests (go test
// puts its GOROOT/bin first in the tests' PATH).
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build orgkms: %v", err)
	}
	return p
}

// goCmd runs the go command in this package's directory with the running
// toolchain.
func goCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(goTool(t), args...)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
	return cmd
}

// buildOrgkms builds ./cmd/orgkms with the build tags into dir and returns
// the binary's path. A race-enabled test builds a race-enabled binary, so
// the build reuses the test's compiled packages.
func buildOrgkms(t *testing.T, dir string, tags ...string) string {
	t.Helper()
	bin := filepath.Join(dir, "orgkms")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out, err := goCmd(t, append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}
