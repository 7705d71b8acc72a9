//go:build !crashtest

package main

import "github.com/orgkms/orgkms/internal/jobs"

// jobObserver observes nothing outside the crash tests' build (see
// crashhook.go).
func jobObserver() func(jobs.Event) { return nil }
