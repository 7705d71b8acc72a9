package testwait

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeT records a failure instead of stopping the goroutine for good.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f)
}

func run(f func(t testing.TB)) (failed string) {
	ft := &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != any(ft) {
			panic(r)
		}
		failed = ft.failed
	}()
	f(ft)
	return ""
}

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	msg := run(func(t testing.TB) {
		For(t, "third poll", time.Minute, func() (bool, string) { n++; return n == 3, fmt.Sprint(n) })
	})
	if msg != "" || n != 3 {
		t.Fatalf("For: failed %q after %d polls; want success on the third", msg, n)
	}
}

func TestForFailsWithTheLastDescription(t *testing.T) {
	msg := run(func(t testing.TB) {
		For(t, "never", 30*time.Millisecond, func() (bool, string) { return false, "still 0 of 3" })
	})
	if !strings.Contains(msg, "never: not within 30ms") || !strings.Contains(msg, "still 0 of 3") {
		t.Fatalf("For's failure %q should name what, the timeout and the last description", msg)
	}
	msg = run(func(t testing.TB) { Until(t, "never", 30*time.Millisecond, func() bool { return false }) })
	if msg != "never: not within 30ms" {
		t.Fatalf("Until's failure = %q", msg)
	}
}
