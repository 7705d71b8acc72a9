package azurekv_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

const demoVault = "contoso-kv"

var demoBudgetVault = masterkey.Vault{Cloud: "azure", Name: "contoso-kv.vault.azure.net"}

// warm caches the token and the challenge.
func warm(t *testing.T, keeper *masterkey.Keeper, ref masterkey.Ref) {
	t.Helper()
	if _, err := keeper.Describe(t.Context(), ref); err != nil {
		t.Fatal(err)
	}
}

// TestGateHonoursRetryAfter: behind a vault's service limit, a throttled
// attempt is retried through the gate, and no request reaches the vault
// before the Retry-After it sent; the budget shrinks.
func TestGateHonoursRetryAfter(t *testing.T) {
	emu, demo := startEmulator(t)
	b := budget.New(budget.Config{Ceilings: map[string]float64{"azure": 1000}})
	keeper, ref := outageKeeper(t, emu, demo, azurekv.Config{Gate: b, MaxRetries: 3, Timeout: time.Minute, TryTimeout: 30 * time.Second})
	warm(t, keeper, ref)
	if err := emu.SetThrottle(demoVault, azureemu.Throttle{Limit: 5, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if _, err := keeper.Describe(t.Context(), ref); err != nil {
			t.Fatalf("describe %d: %v", i, err)
		}
	}
	st, _ := emu.ThrottleStats(demoVault)
	if st.Throttled == 0 {
		t.Fatalf("the vault never throttled: %+v", st)
	}
	for i, at := range st.ThrottledTimes {
		resume := at.Add(st.RetryAfters[i])
		for _, s := range append(st.Times, st.ThrottledTimes...) {
			if s.After(at) && s.Before(resume) {
				t.Fatalf("a request arrived %v after a 429 whose Retry-After was %v", s.Sub(at), st.RetryAfters[i])
			}
		}
	}
	s, _ := b.State(demoBudgetVault)
	if s.Throttled == 0 || s.Rate >= 1000 || !s.Throttling {
		t.Fatalf("budget after 429s: %+v, want throttled, shrunk", s)
	}
}

// TestGatePauseBeyondDeadline: a Retry-After longer than the call's
// timeout ends the call at once with Unavailable and that Retry-After, and
// later calls to the vault wait for it without sending.
func TestGatePauseBeyondDeadline(t *testing.T) {
	emu, demo := startEmulator(t)
	b := budget.New(budget.Config{})
	keeper, ref := outageKeeper(t, emu, demo, azurekv.Config{Gate: b, Timeout: 3 * time.Second})
	warm(t, keeper, ref)
	if err := emu.SetFault(demoVault, azureemu.Fault{Status: 429, RetryAfter: 30 * time.Second, Count: 1}); err != nil {
		t.Fatal(err)
	}
	emu.ResetCounters()
	for i := range 3 {
		_, err := keeper.Describe(t.Context(), ref)
		fe := fault.As(err)
		if fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter < 25*time.Second {
			t.Fatalf("describe %d during a 30s Retry-After = %v, want Unavailable with its Retry-After", i, err)
		}
	}
	if got := emu.VaultCounters(demoVault)[azureemu.OpGet]; got != 1 {
		t.Fatalf("vault saw %d GETs, want 1 (the throttled one)", got)
	}
}

// TestGateBoundsTheRate: many concurrent callers never send more than the
// budget per window.
func TestGateBoundsTheRate(t *testing.T) {
	emu, demo := startEmulator(t)
	const rate = 20
	b := budget.New(budget.Config{Ceilings: map[string]float64{"azure": rate}})
	keeper, ref := outageKeeper(t, emu, demo, azurekv.Config{Gate: b, Timeout: time.Minute, TryTimeout: 30 * time.Second})
	warm(t, keeper, ref)
	if err := emu.SetThrottle(demoVault, azureemu.Throttle{Limit: 1 << 30, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				keeper.Describe(budget.With(ctx, budget.Job, "org-1"), ref)
			}
		})
	}
	wg.Wait()
	st, _ := emu.ThrottleStats(demoVault)
	if st.MaxInWindow > rate+2 {
		t.Fatalf("%d requests within one second, budget %d/s", st.MaxInWindow, rate)
	}
	if st.Served < rate {
		t.Fatalf("only %d requests in 3s at %d/s", st.Served, rate)
	}
}
