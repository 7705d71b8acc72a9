//go:build crashtest

package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/orgkms/orgkms/internal/jobs"
)

// jobObserver is the crash tests' observer of job steps, only in a binary
// built with -tags crashtest (cmd/orgkms/crash_test.go builds one): with
// ORGKMS_TEST_CRASH_AT=STEP the process kills itself with SIGKILL right
// after a job's step STEP is durable. The steps are the re-wrap jobs'
// ("copied", "verified", "switched") and the shred jobs' ("erased",
// "scrubbed"); every job runner (CMK, platform key, shred) reports its
// steps through the same observer (server.Options.JobObserver).
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

// testClock is the crash tests' clock, only in a -tags crashtest binary:
// with ORGKMS_TEST_CLOCK_OFFSET=DURATION (a Go duration such as "192h")
// the server's clock (server.Options.Now) runs that far ahead of the wall
// clock, so that a real process reaches a deletion date. Unset, it is nil
// (the wall clock).
func testClock() (func() time.Time, error) {
	s := os.Getenv("ORGKMS_TEST_CLOCK_OFFSET")
	if s == "" {
		return nil, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return nil, fmt.Errorf("ORGKMS_TEST_CLOCK_OFFSET=%q is not a duration such as 192h", s)
	}
	return func() time.Time { return time.Now().Add(d) }, nil
}
