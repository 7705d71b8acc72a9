package awskms_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/awsemu"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
	"github.com/orgkms/orgkms/internal/testwait"
)

// emuVault is the budget's vault of every local-kms key.
var emuVault = masterkey.Vault{Cloud: "aws", Name: awsemu.Account + "/" + awsemu.Region}

// gated returns a provider whose KMS calls draw from b, and a key whose
// role session is already cached (STS does not draw from the budget).
func gated(t *testing.T, e *env, b *budget.Budget) (*awskms.Provider, masterkey.Ref) {
	t.Helper()
	p := e.provider(t, func(c *awskms.Config) { c.Gate = b; c.MaxAttempts = 3 })
	key := e.newKey(t)
	if _, err := p.Describe(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	return p, key
}

func TestVaultNamesAccountAndRegion(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t)
	key := e.newKey(t)
	if v, ok := p.Vault(key); !ok || v != emuVault {
		t.Fatalf("Vault(%s) = %+v, %v; want %+v", key.ID, v, ok, emuVault)
	}
	if _, ok := p.Vault(masterkey.Ref{Provider: "azurekv", ID: "x"}); ok {
		t.Fatal("Vault of another driver's ref: ok")
	}
}

// TestGateSeesEveryAttempt: every HTTP attempt, the SDK's retries
// included, is admitted once and its answer reported once; a
// ThrottlingException halves the budget and no request reaches the account
// and Region before the pause (AWS sends no Retry-After: the budget's
// default) has passed.
func TestGateSeesEveryAttempt(t *testing.T) {
	e := newEnv(t)
	b := budget.New(budget.Config{Ceilings: map[string]float64{"aws": 1000}})
	p, key := gated(t, e, b)
	w, err := p.Wrap(t.Context(), key, dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	e.kms.Fail("Decrypt", "ThrottlingException", 400, 1)
	if _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); err != nil {
		t.Fatalf("Unwrap after one throttled attempt: %v", err)
	}
	reqs := e.kms.Requests()
	throttledAt := -1
	for i, r := range reqs {
		if r.Throttled {
			throttledAt = i
		}
	}
	if throttledAt < 0 || throttledAt == len(reqs)-1 {
		t.Fatalf("requests %+v: want a throttled Decrypt, then its retry", reqs)
	}
	if gap := reqs[throttledAt+1].At.Sub(reqs[throttledAt].At); gap < budget.DefaultRetryAfter {
		t.Fatalf("the retry reached AWS %v after the ThrottlingException, before the %v pause", gap, budget.DefaultRetryAfter)
	}
	s, ok := b.State(emuVault)
	if !ok {
		t.Fatalf("no budget state for %+v", emuVault)
	}
	load := s.Calls["load"]
	if load[budget.OutcomeThrottled] != 1 || s.Throttled != 1 {
		t.Fatalf("calls %v, throttled %d; want 1 throttled", s.Calls, s.Throttled)
	}
	sent := 0
	for _, r := range reqs {
		if r.Op != "CreateKey" { // the customer's console action, not orgkms'
			sent++
		}
	}
	if got := load[budget.OutcomeOK] + load[budget.OutcomeThrottled]; got != uint64(sent) {
		t.Fatalf("the budget admitted %d attempts, AWS received %d requests from orgkms", got, sent)
	}
	if s.Rate != 500 || !s.Throttling {
		t.Fatalf("budget after a ThrottlingException: rate %v, throttling %v; want 500 (halved), true", s.Rate, s.Throttling)
	}
}

// TestGatePauseIsPerVault: while the account and Region are paused, a
// call whose deadline ends first fails at once with Unavailable and the
// pause's Retry-After, sending nothing; another vault is not affected.
func TestGatePauseIsPerVault(t *testing.T) {
	e := newEnv(t)
	b := budget.New(budget.Config{})
	p, key := gated(t, e, b)
	w, err := p.Wrap(t.Context(), key, dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	e.kms.Fail("Decrypt", "ThrottlingException", 400, 1)
	before := len(e.kms.Requests())
	ctx, cancel := context.WithTimeout(t.Context(), budget.DefaultRetryAfter/2)
	defer cancel()
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter <= 0 {
		t.Fatalf("Unwrap throttled with a deadline before the pause ends = %v, want Unavailable with a Retry-After", err)
	}
	if n := len(e.kms.Requests()) - before; n != 1 {
		t.Fatalf("AWS received %d requests, want 1 (the throttled one; the retry waits for the pause)", n)
	}
	s, _ := b.State(emuVault)
	if s.PausedUntil.IsZero() {
		// The pause is a second; if the machine was slow enough to pass it,
		// the check below means nothing.
		t.Fatalf("the vault is not paused after the ThrottlingException: %+v", s)
	}
	other := masterkey.Vault{Cloud: "aws", Name: "444455556666/" + awsemu.Region}
	octx, ocancel := context.WithTimeout(t.Context(), budget.DefaultRetryAfter/4)
	defer ocancel()
	done, err := b.Admit(octx, other)
	if err != nil {
		t.Fatalf("another account's vault during the pause: %v", err)
	}
	done(false, 0)
	if os, _ := b.State(other); os.Throttling || !os.PausedUntil.IsZero() || os.Rate != budget.DefaultCeilings["aws"] {
		t.Fatalf("another vault's budget: %+v", os)
	}
}

// TestGateJobYieldsToLoad: while the vault is paused, a re-wrap job's
// call and then a cache load wait; the load reaches AWS first. The
// budget is small (1/s after the throttled answer halves it, one call at
// a time), so the job waits for the next token after the load's.
func TestGateJobYieldsToLoad(t *testing.T) {
	e := newEnv(t)
	b := budget.New(budget.Config{Ceilings: map[string]float64{"aws": 2}})
	p, key := gated(t, e, b)
	w, err := p.Wrap(t.Context(), key, dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	e.kms.Fail("DescribeKey", "ThrottlingException", 400, 1)
	// The deadline leaves time for the wait for a token (half a second at
	// 2/s) and the throttled attempt, and ends before the pause does, so
	// the retry is refused at once.
	ctx, cancel := context.WithTimeout(t.Context(), budget.DefaultRetryAfter*9/10)
	defer cancel()
	if _, err := p.Describe(ctx, key); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Describe throttled: %v", err)
	}
	if s, _ := b.State(emuVault); s.Throttled != 1 {
		t.Fatalf("the throttled Describe did not reach AWS in time: %+v", s)
	}
	start := len(e.kms.Requests())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		_, err := p.Describe(budget.With(t.Context(), budget.Job, "org-a"), key)
		errs <- err
	})
	waitFor(t, func(s budget.State) bool { return s.Waiting["job"] == 1 }, b)
	wg.Go(func() {
		_, err := p.Unwrap(budget.With(t.Context(), budget.Load, "org-b"), w.Key, w.Ciphertext, aad)
		errs <- err
	})
	waitFor(t, func(s budget.State) bool { return s.Waiting["load"] == 1 }, b)
	if s, _ := b.State(emuVault); s.PausedUntil.IsZero() || s.Waiting["job"] != 1 {
		t.Fatalf("the pause ended before both calls waited (%+v): the order below means nothing", s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	reqs := e.kms.Requests()[start:]
	if len(reqs) == 0 || reqs[0].Op != "Decrypt" {
		t.Fatalf("requests after the pause %+v: want the load's Decrypt first", reqs)
	}
}

// waitFor polls the emulated vault's budget state until cond holds.
func waitFor(t *testing.T, cond func(budget.State) bool, b *budget.Budget) {
	t.Helper()
	testwait.For(t, "the budget state", 2*time.Minute, func() (bool, string) {
		s, _ := b.State(emuVault)
		return cond(s), fmt.Sprintf("%+v", s)
	})
}
