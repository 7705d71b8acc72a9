package main

import (
	"bytes"
	"errors"
	"os"
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
	// The crash tests' hooks (crashhook.go) are not linked: nothing in a
	// release binary reads their variables.
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"ORGKMS_TEST_CRASH_AT", "ORGKMS_TEST_CLOCK_OFFSET"} {
		if bytes.Contains(b, []byte(v)) {
			t.Errorf("the release binary contains %s: a crash test hook is linked", v)
		}
	}
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

// Outside a -tags crashtest build nothing observes job steps and the clock
// is the wall clock, whatever the environment says.
func TestNoCrashHookByDefault(t *testing.T) {
	t.Setenv("ORGKMS_TEST_CRASH_AT", "copied")
	t.Setenv("ORGKMS_TEST_CLOCK_OFFSET", "192h")
	if jobObserver() != nil {
		t.Error("jobObserver() is set in a build without -tags crashtest")
	}
	if now, err := testClock(); now != nil || err != nil {
		t.Errorf("testClock() = %v, %v in a build without -tags crashtest, want nil, nil (the wall clock)", now != nil, err)
	}
}
