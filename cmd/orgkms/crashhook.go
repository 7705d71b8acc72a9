//go:build crashtest

package main

import (
	"os"
	"syscall"

	"github.com/orgkms/orgkms/internal/jobs"
)

// jobObserver is the crash tests' observer of re-wrap job steps, only in a
// binary built with -tags crashtest (cmd/orgkms/crash_test.go builds one):
// with ORGKMS_TEST_CRASH_AT=STEP the process kills itself with SIGKILL right
// after a job's step STEP ("copied", "verified" or "switched") is durable.
func jobObserver() func(jobs.Event) {
	at := os.Getenv("ORGKMS_TEST_CRASH_AT")
	if at == "" {
		return nil
	}
	return func(ev jobs.Event) {
		if ev.Step == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
