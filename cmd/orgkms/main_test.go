package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// TestMain lets the scripts run "orgkms" as a subprocess of the test binary,
// with the same signal handling as main, so that "kill -INT" stops a dev
// server gracefully.
func TestMain(m *testing.M) {
	testscript.Main(pgtest.Wrap(m), map[string]func(){
		"orgkms": func() {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// TestScripts runs the CLI scripts in testdata/*.txt.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			// A race-enabled binary sleeps 1 s at exit by default, and
			// the scripts run it dozens of times.
			gorace := os.Getenv("GORACE")
			if !strings.Contains(gorace, "atexit_sleep_ms") {
				gorace = strings.TrimSpace(gorace + " atexit_sleep_ms=0")
			}
			env.Setenv("GORACE", gorace)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitenv":  cmdWaitEnv,
			"capture":  cmdCapture,
			"waitfor":  cmdWaitFor,
			"hookrecv": cmdHookRecv, // webhook_test.go
			"hookgot":  cmdHookGot,
		},
	})
}

// waitEnvTimeout bounds how long waitenv waits for a dev server. It is
// generous: a loaded 2-core machine running -race tests in parallel can
// take well over 20 s to start one, and waitenv returns as soon as the
// file is there (or fails at once when the server exits).
const waitEnvTimeout = 3 * time.Minute

// cmdWaitEnv implements "waitenv FILE": it waits until the dev server has
// written FILE (DATA/dev.env) and sets ORGKMS_ADDR and ORGKMS_TOKEN from it.
// It fails at once if the last background command (the server) exits.
func cmdWaitEnv(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! waitenv")
	}
	if len(args) != 1 {
		ts.Fatalf("usage: waitenv FILE")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(waitEnvTimeout)
	for {
		// The file is written in one call, but not atomically: wait until
		// both variables are there.
		if env, ok := readDevEnv(path); ok {
			ts.Setenv("ORGKMS_ADDR", env["ORGKMS_ADDR"])
			ts.Setenv("ORGKMS_TOKEN", env["ORGKMS_TOKEN"])
			return
		}
		if bg := ts.BackgroundCmds(); len(bg) > 0 && bg[len(bg)-1].Process != nil {
			srv := bg[len(bg)-1]
			if err := srv.Process.Signal(syscall.Signal(0)); errors.Is(err, os.ErrProcessDone) {
				ts.Fatalf("%s exited before writing %s; its output follows", filepath.Base(srv.Path), args[0])
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear within %v; did the dev server start?", args[0], waitEnvTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readDevEnv parses "export NAME=VALUE" lines; ok reports whether both
// ORGKMS_ADDR and ORGKMS_TOKEN are set.
func readDevEnv(path string) (map[string]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(string(b), "\n") {
		return nil, false // not yet, or partially written
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			env[name] = strings.TrimSpace(value)
		}
	}
	return env, env["ORGKMS_ADDR"] != "" && env["ORGKMS_TOKEN"] != ""
}

// cmdCapture implements "capture NAME stdout|stderr|FILE REGEXP": it sets
// NAME to the first submatch of REGEXP (multi-line mode, as in the stdout
// command) in the output of the last command, or in FILE.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! capture")
	}
	if len(args) != 3 {
		ts.Fatalf("usage: capture NAME stdout|stderr|FILE REGEXP")
	}
	re, err := regexp.Compile("(?m)" + args[2])
	ts.Check(err)
	if re.NumSubexp() < 1 {
		ts.Fatalf("capture: %s has no submatch", args[2])
	}
	text := ts.ReadFile(args[1])
	m := re.FindStringSubmatch(text)
	if m == nil {
		ts.Fatalf("capture: no match for %#q in %s", args[2], args[1])
	}
	ts.Setenv(args[0], m[1])
}
