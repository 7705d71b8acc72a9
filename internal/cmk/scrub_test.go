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
	if got := started.Load(); got < 2 || got > 10 {
		// The first pass, then one for the 50 callers that asked during it
		// (a few more on a loaded machine, when callers were still on their
		// way into do at the release); one pass per caller would be 51.
		t.Errorf("%d scrub passes for 51 calls, want 2 and at most a few more", got)
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

// TestBatcherResults: concurrent calls get their own results, share
// flushes, and a flush run by a caller whose context ends meanwhile still
// completes for the others.
func TestBatcherResults(t *testing.T) {
	var b batcher[int, int]
	var flushes atomic.Int32
	hold, holding := make(chan struct{}), make(chan struct{})
	flush := func(ctx context.Context, in []int) ([]int, error) {
		if flushes.Add(1) == 1 {
			close(holding)
			<-hold
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out := make([]int, len(in))
		for i, x := range in {
			out[i] = x * x
		}
		return out, nil
	}
	lctx, cancelLeader := context.WithCancel(t.Context())
	type result struct {
		v   int
		err error
	}
	leader := make(chan result, 1)
	go func() {
		v, err := b.do(lctx, 1, flush)
		leader <- result{v, err}
	}()
	<-holding
	cancelLeader() // the caller running the first flush is cancelled: the flush goes on
	var wg sync.WaitGroup
	for x := 2; x <= 40; x++ {
		wg.Go(func() {
			got, err := b.do(t.Context(), x, flush)
			if err != nil || got != x*x {
				t.Errorf("do(%d) = %d, %v; want %d", x, got, err, x*x)
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let them join the next batch
	close(hold)
	wg.Wait()
	if r := <-leader; r.err != nil || r.v != 1 {
		t.Errorf("do(1) of the cancelled caller = %d, %v; want 1 (its flush ran under a context of its own)", r.v, r.err)
	}
	if n := flushes.Load(); n < 2 || n > 10 {
		t.Errorf("%d flushes for 40 calls, want a few (the first, then batches)", n)
	}
}
