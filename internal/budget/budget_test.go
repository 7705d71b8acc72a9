package budget

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// manualClock is a clock the test moves; After fires on Advance.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []manualTimer
}

type manualTimer struct {
	at time.Time
	c  chan time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Now()}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, manualTimer{c.now.Add(d), ch})
	return ch
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
}

var (
	vaultA = masterkey.Vault{Cloud: "azure", Name: "contoso.vault.azure.net"}
	vaultB = masterkey.Vault{Cloud: "azure", Name: "fabrikam.vault.azure.net"}
)

func mustState(t *testing.T, b *Budget, v masterkey.Vault) State {
	t.Helper()
	s, ok := b.State(v)
	if !ok {
		t.Fatalf("State(%s) not found", v.Name)
	}
	return s
}

func TestAIMDShrinksThenGrowsBack(t *testing.T) {
	clk := newManualClock()
	b := New(Config{Ceilings: map[string]float64{"azure": 100}, Clock: clk})
	ctx := t.Context()
	done, err := b.Admit(ctx, vaultA)
	if err != nil {
		t.Fatal(err)
	}
	done(true, 2*time.Second)
	s := mustState(t, b, vaultA)
	if s.Rate != 50 || !s.Throttling || s.Throttled != 1 {
		t.Fatalf("after one 429: rate %v throttling %v throttled %d, want 50 true 1", s.Rate, s.Throttling, s.Throttled)
	}
	if want := clk.Now().Add(2 * time.Second); !s.PausedUntil.Equal(want) {
		t.Fatalf("PausedUntil = %v, want %v", s.PausedUntil, want)
	}
	// A second 429 of the same burst shrinks the budget no further.
	clk.Advance(500 * time.Millisecond)
	b.done(b.vaults[vaultA], Probe, true, 0)
	if s := mustState(t, b, vaultA); s.Rate != 50 {
		t.Fatalf("second 429 within DecreaseEvery: rate %v, want 50", s.Rate)
	}
	clk.Advance(time.Second)
	b.done(b.vaults[vaultA], Probe, true, 0)
	if s := mustState(t, b, vaultA); s.Rate != 25 {
		t.Fatalf("429 after DecreaseEvery: rate %v, want 25", s.Rate)
	}
	// Growth: a tenth of the ceiling per GrowEvery (5s) without a 429.
	clk.Advance(4 * time.Second)
	if s := mustState(t, b, vaultA); s.Rate != 25 {
		t.Fatalf("4s after the last 429: rate %v, want 25", s.Rate)
	}
	clk.Advance(time.Second)
	if s := mustState(t, b, vaultA); s.Rate != 35 {
		t.Fatalf("5s after the last 429: rate %v, want 35", s.Rate)
	}
	clk.Advance(60 * time.Second)
	s = mustState(t, b, vaultA)
	if s.Rate != 100 {
		t.Fatalf("65s after the last 429: rate %v, want the ceiling 100", s.Rate)
	}
	if s.Throttling {
		t.Fatal("Throttling still set a minute after the last 429 with the budget grown back")
	}
	if got := s.Calls["load"][OutcomeThrottled]; got != 1 {
		t.Fatalf("load throttled calls = %d, want 1", got)
	}
}

func TestMinFactorBoundsTheShrink(t *testing.T) {
	clk := newManualClock()
	b := New(Config{Ceilings: map[string]float64{"azure": 160}, Clock: clk})
	b.Admit(t.Context(), vaultA)
	for range 20 {
		clk.Advance(2 * time.Second)
		b.done(b.vaults[vaultA], Job, true, time.Second)
	}
	if s := mustState(t, b, vaultA); s.Rate != 10 {
		t.Fatalf("after 20 429s: rate %v, want 160/16 = 10", s.Rate)
	}
}

func TestNodesShareTheCeiling(t *testing.T) {
	nodes := 4
	b := New(Config{Ceilings: map[string]float64{"aws": 400}, Nodes: func() int { return nodes }, Clock: newManualClock()})
	v := masterkey.Vault{Cloud: "aws", Name: "111122223333/eu-west-1"}
	b.Admit(t.Context(), v)
	if s := mustState(t, b, v); s.Ceiling != 400 || s.Share != 100 || s.Rate != 100 {
		t.Fatalf("4 nodes: ceiling %v share %v rate %v, want 400 100 100", s.Ceiling, s.Share, s.Rate)
	}
	nodes = 0
	if s := mustState(t, b, v); s.Share != 400 {
		t.Fatalf("0 live nodes counted: share %v, want 400 (one node)", s.Share)
	}
	if got := b.Ceiling("gcp"); got != DefaultCeilings["gcp"] {
		t.Fatalf("Ceiling(gcp) = %v, want the default %v", got, DefaultCeilings["gcp"])
	}
}

func TestPausedPastDeadlineFailsFast(t *testing.T) {
	clk := newManualClock()
	b := New(Config{Clock: clk})
	done, _ := b.Admit(t.Context(), vaultA)
	done(true, 30*time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), clk.Now().Add(5*time.Second))
	defer cancel()
	_, err := b.Admit(ctx, vaultA)
	fe := fault.As(err)
	if fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter != 30*time.Second {
		t.Fatalf("Admit during a 30s pause with a 5s deadline = %v, want Unavailable with RetryAfter 30s", err)
	}
	// Another vault is not paused.
	if _, err := b.Admit(ctx, vaultB); err != nil {
		t.Fatalf("Admit on another vault: %v", err)
	}
	if got := mustState(t, b, vaultA).Calls["load"][OutcomeRefused]; got != 1 {
		t.Fatalf("refused loads = %d, want 1", got)
	}
}

// admitter records the order in which calls are admitted.
type admitter struct {
	b     *Budget
	mu    sync.Mutex
	order []string
	at    []time.Time
	wg    sync.WaitGroup
}

func (a *admitter) start(ctx context.Context, v masterkey.Vault, c Class, org, name string) {
	a.wg.Go(func() {
		done, err := a.b.Admit(With(ctx, c, org), v)
		if err != nil {
			a.mu.Lock()
			a.order = append(a.order, name+":"+err.Error())
			a.mu.Unlock()
			return
		}
		a.mu.Lock()
		a.order = append(a.order, name)
		a.at = append(a.at, time.Now())
		a.mu.Unlock()
		done(false, 0)
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{Ceilings: map[string]float64{"azure": 100}})
		done, err := b.Admit(t.Context(), vaultA)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		done(true, 3*time.Second)
		a := &admitter{b: b}
		for i := range 5 {
			a.start(t.Context(), vaultA, Load, "org-1", fmt.Sprint(i))
		}
		a.wg.Wait()
		for i, at := range a.at {
			if at.Sub(start) < 3*time.Second {
				t.Fatalf("call %d admitted %v after the 429, before its Retry-After of 3s", i, at.Sub(start))
			}
		}
		if len(a.at) != 5 {
			t.Fatalf("admitted %v, want 5 calls", a.order)
		}
	})
}

func TestPriorityClasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{Ceilings: map[string]float64{"azure": 10}}) // burst 1: one call per 100ms
		if _, err := b.Admit(t.Context(), vaultA); err != nil {     // takes the one token
			t.Fatal(err)
		}
		a := &admitter{b: b}
		for i := range 3 {
			a.start(t.Context(), vaultA, Job, "org-1", fmt.Sprint("job", i))
			synctest.Wait()
		}
		a.start(t.Context(), vaultA, Probe, "org-2", "probe")
		synctest.Wait()
		a.start(t.Context(), vaultA, Test, "org-3", "test")
		synctest.Wait()
		a.start(t.Context(), vaultA, Load, "org-4", "load")
		synctest.Wait()
		if s := mustState(t, b, vaultA); s.Waiting["job"] != 3 || s.Waiting["load"] != 1 {
			t.Fatalf("waiting = %v, want 3 jobs, 1 load", s.Waiting)
		}
		a.wg.Wait()
		want := []string{"load", "test", "probe", "job0", "job1", "job2"}
		if fmt.Sprint(a.order) != fmt.Sprint(want) {
			t.Fatalf("admission order %v, want %v", a.order, want)
		}
	})
}

func TestFairAcrossOrgs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{Ceilings: map[string]float64{"azure": 10}})
		b.Admit(t.Context(), vaultA)
		a := &admitter{b: b}
		for i := range 20 {
			a.start(t.Context(), vaultA, Job, "org-big", fmt.Sprint("big", i))
			synctest.Wait()
		}
		a.start(t.Context(), vaultA, Job, "org-small", "small0")
		synctest.Wait()
		a.start(t.Context(), vaultA, Job, "org-small", "small1")
		synctest.Wait()
		a.wg.Wait()
		pos := map[string]int{}
		for i, n := range a.order {
			pos[n] = i
		}
		// Round robin: big0 was next when the small org came; then the
		// orgs alternate.
		if pos["small0"] > 2 || pos["small1"] > 4 {
			t.Fatalf("the small org's jobs were admitted at %d and %d of %d: %v", pos["small0"], pos["small1"], len(a.order), a.order)
		}
	})
}

func TestCancelledWaiterLeavesTheQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{Ceilings: map[string]float64{"azure": 10}})
		b.Admit(t.Context(), vaultA)
		ctx, cancel := context.WithCancel(t.Context())
		a := &admitter{b: b}
		a.start(ctx, vaultA, Load, "org-1", "cancelled")
		synctest.Wait()
		a.start(t.Context(), vaultA, Job, "org-2", "job")
		synctest.Wait()
		cancel()
		a.wg.Wait()
		if len(a.order) != 2 || a.order[1] != "job" {
			t.Fatalf("order %v, want the cancelled load refused, then the job", a.order)
		}
		if s := mustState(t, b, vaultA); s.Waiting["load"] != 0 || s.Calls["load"][OutcomeRefused] != 1 {
			t.Fatalf("state %+v, want no waiting load and one refused", s)
		}
	})
}

// TestRateBound drives a vault from many goroutines and checks that no
// window of one second admits more than rate + burst calls.
func TestRateBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate = 20.0
		b := New(Config{Ceilings: map[string]float64{"azure": rate}})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		var mu sync.Mutex
		var at []time.Time
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				for ctx.Err() == nil {
					done, err := b.Admit(With(ctx, Job, fmt.Sprint("org-", i%3)), vaultA)
					if err != nil {
						return
					}
					mu.Lock()
					at = append(at, time.Now())
					mu.Unlock()
					done(false, 0)
				}
			})
		}
		wg.Wait()
		if len(at) < 180 || len(at) > 205 {
			t.Fatalf("admitted %d calls in 10s at %v/s", len(at), rate)
		}
		for i := range at {
			n := 0
			for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
				n++
			}
			if n > int(rate)+2 {
				t.Fatalf("%d calls admitted within one second from %v, want at most %v", n, at[i], rate+2)
			}
		}
	})
}

func TestCallContext(t *testing.T) {
	ctx := t.Context()
	if c, org := Of(ctx); c != Load || org != "" {
		t.Fatalf("Of(plain ctx) = %v %q, want load", c, org)
	}
	job := With(ctx, Job, "org-1")
	if c, org := Of(Default(job, Load, "org-1")); c != Job || org != "org-1" {
		t.Fatalf("Default over a job ctx = %v %q, want job org-1", c, org)
	}
	if c, _ := Of(Default(ctx, Probe, "org-2")); c != Probe {
		t.Fatalf("Default over a plain ctx = %v, want probe", c)
	}
	if VaultID(vaultA) == VaultID(vaultB) || len(VaultID(vaultA)) != 12 {
		t.Fatalf("VaultID: %q %q", VaultID(vaultA), VaultID(vaultB))
	}
}
