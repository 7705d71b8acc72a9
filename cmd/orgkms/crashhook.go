//go:build crashtest

package main

import (
	"os"
	"syscall"
)

// jobStepHook is the crash tests' observer of re-wrap job steps, only in a
// binary built with -tags crashtest (cmd/orgkms/crash_test.go builds one):
// with ORGKMS_TEST_CRASH_AT=STEP the process kills itself with SIGKILL right
// after a job's step STEP ("copied", "verified" or "switched") is durable.
func jobStepHook() func(kind, step string) {
	at := os.Getenv("ORGKMS_TEST_CRASH_AT")
	if at == "" {
		return nil
	}
	return func(_, step string) {
		if step == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}
