package main

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// A release build (-tags orgkms_release, make build-release) links neither
// the Azure emulator nor the development server, and its orgkms dev and
// orgkms emulator say so.
func TestReleaseBuild(t *testing.T) {
	out, err := goCmd(t, "list", "-deps", "-tags", "orgkms_release", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps -tags orgkms_release: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/internal/azureemu") {
			t.Errorf("the release build links %s", pkg)
		}
	}
	// The default build keeps orgkms dev and the emulator (make dev).
	if out, err := goCmd(t, "list", "-deps", ".").Output(); err != nil || !strings.Contains(string(out), "/internal/azureemu\n") {
		t.Errorf("the default build does not link the Azure emulator (go list: %v): orgkms dev needs it", err)
	}

	bin := buildOrgkms(t, t.TempDir(), "orgkms_release")
	for _, cmd := range []string{"dev", "emulator"} {
		t.Run(cmd, func(t *testing.T) {
			out, err := exec.Command(bin, cmd).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("release orgkms %s: %v, want exit status 1\n%s", cmd, err, out)
			}
			if want := "orgkms: error: orgkms " + cmd + " is not in this build: this is a release build"; !strings.Contains(string(out), want) {
				t.Errorf("release orgkms %s said:\n%s\nwant it to contain %q", cmd, out, want)
			}
		})
	}
}

// Outside a -tags crashtest build nothing observes job steps, whatever the
// environment says.
func TestNoCrashHookByDefault(t *testing.T) {
	t.Setenv("ORGKMS_TEST_CRASH_AT", "copied")
	if jobObserver() != nil {
		t.Fatal("jobObserver() is set in a build without -tags crashtest")
	}
}
