//go:build !crashtest

package main

import (
	"time"

	"github.com/orgkms/orgkms/internal/jobs"
)

// jobObserver observes nothing outside the crash tests' build (see
// crashhook.go).
func jobObserver() func(jobs.Event) { return nil }

// testClock is the wall clock outside the crash tests' build, whatever the
// environment says (see crashhook.go).
func testClock() (func() time.Time, error) { return nil, nil }
