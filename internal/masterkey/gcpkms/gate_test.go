package gcpkms_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
	"github.com/orgkms/orgkms/internal/testwait"
)

// vault1 is the budget's vault of key1 and key2; otherKey is in another
// project.
var vault1 = masterkey.Vault{Cloud: "gcp", Name: "acme-prod/europe-west4"}

const otherKey = "projects/globex-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1"

// gatedOpen opens the driver on e's fake with every call drawing from b.
func gatedOpen(t *testing.T, e *env, b *budget.Budget) *gcpkms.Provider {
	t.Helper()
	c := e.config()
	c.Gate = b
	p, err := gcpkms.Open(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestVaultNamesProjectAndLocation(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	if v, ok := p.Vault(ref(key1)); !ok || v != vault1 {
		t.Fatalf("Vault(%s) = %+v, %v; want %+v", key1, v, ok, vault1)
	}
	if _, ok := p.Vault(masterkey.Ref{Provider: "awskms", ID: key1}); ok {
		t.Fatal("Vault of another driver's ref: ok")
	}
}

// TestGateSeesEveryAttempt: every RPC attempt, the client's retries
// included, is admitted once and its answer reported once; a
// RESOURCE_EXHAUSTED halves the budget, and no request reaches the project
// and location before its RetryInfo delay has passed.
func TestGateSeesEveryAttempt(t *testing.T) {
	e := newEnv(t)
	b := budget.New(budget.Config{Ceilings: map[string]float64{"gcp": 1000}})
	p := gatedOpen(t, e, b)
	const delay = 1500 * time.Millisecond
	e.srv.ExhaustNextRetry(1, delay)
	if _, err := p.Wrap(t.Context(), ref(key1), dek(), aad); err != nil {
		t.Fatalf("Wrap after one RESOURCE_EXHAUSTED: %v", err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 2 || !reqs[0].Exhausted || reqs[1].Exhausted || reqs[1].Method != "Encrypt" {
		t.Fatalf("requests %+v: want an exhausted Encrypt, then its retry", reqs)
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < delay {
		t.Fatalf("the retry reached Cloud KMS %v after RESOURCE_EXHAUSTED, before its RetryInfo delay %v", gap, delay)
	}
	s, ok := b.State(vault1)
	if !ok {
		t.Fatalf("no budget state for %+v", vault1)
	}
	load := s.Calls["load"]
	if load[budget.OutcomeThrottled] != 1 || load[budget.OutcomeOK] != 1 || s.Throttled != 1 {
		t.Fatalf("calls %v, throttled %d; want 1 throttled and 1 ok, one per attempt", s.Calls, s.Throttled)
	}
	if s.Rate != 500 || !s.Throttling {
		t.Fatalf("budget after RESOURCE_EXHAUSTED: rate %v, throttling %v; want 500 (halved), true", s.Rate, s.Throttling)
	}
}

// TestGatePauseIsPerVault: a RetryInfo delay longer than the call's
// timeout ends the call at once with Unavailable and that Retry-After;
// later calls to the project and location fail without sending, while a
// key of another project is not affected.
func TestGatePauseIsPerVault(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.CreateKey(otherKey, gcpkmsemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	b := budget.New(budget.Config{})
	p := gatedOpen(t, e, b)
	e.srv.ExhaustNextRetry(1, 30*time.Second)
	for i := range 2 {
		_, err := p.Describe(t.Context(), ref(key1))
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter < 20*time.Second {
			t.Fatalf("Describe %d during a 30s RetryInfo = %v, want Unavailable with its Retry-After", i, err)
		}
	}
	if n := len(e.srv.Requests()); n != 1 {
		t.Fatalf("Cloud KMS received %d requests, want 1 (the exhausted one)", n)
	}
	if _, err := p.Describe(t.Context(), ref(otherKey)); err != nil {
		t.Fatalf("Describe of another project's key during the pause: %v", err)
	}
	other := masterkey.Vault{Cloud: "gcp", Name: "globex-prod/europe-west4"}
	if s, _ := b.State(other); s.Throttling || !s.PausedUntil.IsZero() || s.Calls["load"][budget.OutcomeOK] != 1 {
		t.Fatalf("another project's budget: %+v", s)
	}
	if s, _ := b.State(vault1); s.PausedUntil.IsZero() || s.Calls["load"][budget.OutcomeRefused] != 2 {
		t.Fatalf("the paused vault's budget: %+v", s)
	}
}

// TestGateJobYieldsToLoad: while the vault is paused, a re-wrap job's
// call and then a cache load wait; the load reaches Cloud KMS first. The
// budget is small (1/s after the throttled answer halves it, one call at
// a time), so the job waits for the next token after the load's.
func TestGateJobYieldsToLoad(t *testing.T) {
	e := newEnv(t)
	b := budget.New(budget.Config{Ceilings: map[string]float64{"gcp": 2}})
	p := gatedOpen(t, e, b)
	w, err := p.Wrap(t.Context(), ref(key1), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.ExhaustNextRetry(1, 2*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := p.Describe(ctx, ref(key1)); fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Describe exhausted: %v", err)
	}
	if s, _ := b.State(vault1); s.Throttled != 1 {
		t.Fatalf("the exhausted Describe did not reach Cloud KMS in time: %+v", s)
	}
	start := len(e.srv.Requests())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		_, err := p.Describe(budget.With(t.Context(), budget.Job, "org-a"), ref(key2))
		errs <- err
	})
	waitState(t, b, func(s budget.State) bool { return s.Waiting["job"] == 1 })
	wg.Go(func() {
		_, err := p.Unwrap(budget.With(t.Context(), budget.Load, "org-b"), w.Key, w.Ciphertext, aad)
		errs <- err
	})
	waitState(t, b, func(s budget.State) bool { return s.Waiting["load"] == 1 })
	if s, _ := b.State(vault1); s.PausedUntil.IsZero() || s.Waiting["job"] != 1 {
		t.Fatalf("the pause ended before both calls waited (%+v): the order below means nothing", s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	reqs := e.srv.Requests()[start:]
	if len(reqs) == 0 || reqs[0].Method != "Decrypt" {
		t.Fatalf("requests after the pause %+v: want the load's Decrypt first", reqs)
	}
}

// waitState polls vault1's budget state until cond holds.
func waitState(t *testing.T, b *budget.Budget, cond func(budget.State) bool) {
	t.Helper()
	testwait.For(t, "the budget state", 2*time.Minute, func() (bool, string) {
		s, _ := b.State(vault1)
		return cond(s), fmt.Sprintf("%+v", s)
	})
}
