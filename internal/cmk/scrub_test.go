package cmk

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestScrubberCoalesces: every caller of do returns after a pass that
// started after it asked, and callers that ask while a pass runs share the
// next pass instead of one each.
func TestScrubberCoalesces(t *testing.T) {
	var c scrubber
	var (
		started atomic.Int64 // passes started
		active  atomic.Int32
	)
	release := make(chan struct{})
	scrub := func(ctx context.Context) error {
		if active.Add(1) != 1 {
			t.Error("two scrub passes ran at once")
		}
		defer active.Add(-1)
		if started.Add(1) == 1 {
			<-release // hold the first pass while the others ask
		}
		return nil
	}
	first := make(chan error, 1)
	go func() { first <- c.do(t.Context(), scrub) }()
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const n = 50
	var wg sync.WaitGroup
	asked := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			before := started.Load()
			asked <- struct{}{}
			if err := c.do(t.Context(), scrub); err != nil {
				t.Error(err)
			}
			if started.Load() <= before {
				t.Errorf("do returned without a pass started after it asked (passes %d, before %d)", started.Load(), before)
			}
		})
	}
	for range n {
		<-asked
	}
	time.Sleep(20 * time.Millisecond) // let the callers reach do
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := started.Load(); got < 2 || got > 3 {
		// The first pass, then one (rarely two, when a caller was still on
		// its way into do) for the 50 callers that asked during it.
		t.Errorf("%d scrub passes for 51 calls, want 2 or 3", got)
	}
}

// TestScrubberError: the callers of a failed pass get its error; a
// cancelled caller returns at once.
func TestScrubberError(t *testing.T) {
	var c scrubber
	boom := errors.New("boom")
	if err := c.do(t.Context(), func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("do = %v, want %v", err, boom)
	}
	hold, running := make(chan struct{}), make(chan struct{})
	go c.do(t.Context(), func(context.Context) error { close(running); <-hold; return nil })
	<-running
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.do(ctx, func(context.Context) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled do = %v, want context.Canceled", err)
	}
	close(hold)
}
