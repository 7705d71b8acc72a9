// Package testwait waits on conditions in tests. Tests run under -race on
// a shared 2-core machine, so a test never sleeps a fixed time and never
// asserts how long something took: it polls a condition until it holds,
// within a deadline generous enough for a loaded machine, and fails with
// what the condition last said.
package testwait

import (
	"testing"
	"time"
)

// poll is the first and longest interval between two polls: the interval
// doubles from the first up to the longest, so a quick condition is seen
// quickly and a slow one is not polled in a busy loop.
const (
	firstPoll = 10 * time.Millisecond
	maxPoll   = 200 * time.Millisecond
)

// For polls cond until it returns true, and fails t after timeout with
// what and cond's last description.
func For(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := firstPoll; ; wait = min(2*wait, maxPoll) {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if last != "" {
				t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
			}
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(wait)
	}
}

// Until is For with a condition that has nothing to say.
func Until(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	For(t, what, timeout, func() (bool, string) { return cond(), "" })
}
