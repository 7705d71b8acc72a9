//go:build !crashtest

package main

// jobStepHook observes nothing outside the crash tests' build (see
// crashhook.go).
func jobStepHook() func(kind, step string) { return nil }
