package budget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Class is the priority class of a vault call; a lower value is served
// first.
type Class int

// The classes, highest priority first.
const (
	Load  Class = iota // a data-plane cache load: an org's root key unwrapped for a caller
	Test               // Test Managed Key (and the test of an enable)
	Probe              // the periodic probe of an org's key
	Job                // a re-wrap job (rotation, enable, disable, replace, fallback)
	numClasses
)

// Classes lists every class, highest priority first.
var Classes = []Class{Load, Test, Probe, Job}

// String returns the class's name as metrics and states spell it.
func (c Class) String() string {
	switch c {
	case Load:
		return "load"
	case Test:
		return "test"
	case Probe:
		return "probe"
	case Job:
		return "job"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

type callKey struct{}

type call struct {
	class Class
	org   string
}

// With returns ctx marking its vault calls as class c on behalf of org. The
// class and org are request-scoped metadata read by [Budget.Admit], like a
// request ID; org is used for fairness only and never leaves the package.
func With(ctx context.Context, c Class, org string) context.Context {
	return context.WithValue(ctx, callKey{}, call{c, org})
}

// Default is [With] unless ctx already names a class: a cache load on behalf
// of a re-wrap job stays a job call.
func Default(ctx context.Context, c Class, org string) context.Context {
	if _, ok := ctx.Value(callKey{}).(call); ok {
		return ctx
	}
	return With(ctx, c, org)
}

// Of returns the class and org ctx names; Load and "" when none.
func Of(ctx context.Context) (Class, string) {
	if c, ok := ctx.Value(callKey{}).(call); ok {
		return c.class, c.org
	}
	return Load, ""
}

// DefaultCeilings are the cluster-wide ceilings per cloud, in requests per
// second per vault, when Config.Ceilings names none:
//
//   - azure: 100/s (1,000 per 10 s), half of Key Vault's lowest RSA-2048
//     limit (2,000 HSM operations per 10 s; 4,000 for software keys);
//   - aws: 250/s per account and Region, a quarter of the RSA key quota
//     (1,000/s) and far below the symmetric one (5,500/s or more);
//   - gcp: 100/s per project and location, a tenth of the commonly cited
//     60,000 crypto requests per minute of a calling project.
//
// The rest is left to the customer's own workloads.
var DefaultCeilings = map[string]float64{"azure": 100, "aws": 250, "gcp": 100}

// DefaultCeiling applies to a cloud neither Config.Ceilings nor
// DefaultCeilings name.
const DefaultCeiling = 100

// DefaultRetryAfter is the pause after a throttled answer that names no
// Retry-After (Key Vault's 429 often has none; its docs advise backing off
// from 1 s).
const DefaultRetryAfter = time.Second

// Clock is the time source of a [Budget].
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures a [Budget]. The zero value is valid.
type Config struct {
	// Ceilings are the cluster-wide ceilings per cloud ("azure", "aws",
	// "gcp"), in requests per second per vault; a cloud not named gets
	// DefaultCeilings' value.
	Ceilings map[string]float64
	// Nodes returns the number of live nodes sharing the ceilings; nil or
	// a value below 1 counts as 1.
	Nodes func() int
	// MinFactor is the lowest fraction of the ceiling AIMD shrinks a
	// vault's budget to; default 1/16.
	MinFactor float64
	// GrowEvery is how long a vault must answer without throttling before
	// its budget grows by a tenth of the ceiling; default 5s.
	GrowEvery time.Duration
	// DecreaseEvery is the window in which several throttled answers
	// shrink the budget once; default 1s.
	DecreaseEvery time.Duration
	// ThrottlingFor is how long after a throttled answer [State.Throttling]
	// stays set; default 1m.
	ThrottlingFor time.Duration
	// Clock is the time source; default the system clock.
	Clock Clock
}

// Budget is the set of vault budgets of one node. Safe for concurrent use.
type Budget struct {
	cfg    Config
	mu     sync.Mutex
	vaults map[masterkey.Vault]*vault
}

var _ masterkey.Gate = (*Budget)(nil)

// New returns a budget.
func New(cfg Config) *Budget {
	if cfg.MinFactor <= 0 || cfg.MinFactor > 1 {
		cfg.MinFactor = 1.0 / 16
	}
	if cfg.GrowEvery <= 0 {
		cfg.GrowEvery = 5 * time.Second
	}
	if cfg.DecreaseEvery <= 0 {
		cfg.DecreaseEvery = time.Second
	}
	if cfg.ThrottlingFor <= 0 {
		cfg.ThrottlingFor = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	return &Budget{cfg: cfg, vaults: map[masterkey.Vault]*vault{}}
}

// Ceiling returns the cluster-wide ceiling of cloud, in requests per second.
func (b *Budget) Ceiling(cloud string) float64 {
	if c, ok := b.cfg.Ceilings[cloud]; ok && c > 0 {
		return c
	}
	if c, ok := DefaultCeilings[cloud]; ok {
		return c
	}
	return DefaultCeiling
}

func (b *Budget) nodes() int {
	if b.cfg.Nodes == nil {
		return 1
	}
	return max(1, b.cfg.Nodes())
}

// Outcomes of calls, as [State.Calls] counts them.
const (
	OutcomeOK        = "ok"        // the vault answered (any answer but throttled)
	OutcomeThrottled = "throttled" // the vault throttled the call
	OutcomeRefused   = "refused"   // the caller gave up before the budget admitted it
)

type vault struct {
	key    masterkey.Vault
	factor float64 // fraction of the ceiling allowed now (AIMD)
	tokens float64
	last   time.Time // of the last refill

	blockedUntil  time.Time
	lastThrottled time.Time
	lastDecrease  time.Time
	lastGrow      time.Time
	throttled     uint64

	calls   [numClasses]map[string]uint64 // by outcome
	queues  [numClasses]classQueue
	waiting int
}

// classQueue holds the waiting calls of one class, per org, served round
// robin: orgs[0] is next.
type classQueue struct {
	orgs []*orgQueue
}

type orgQueue struct {
	org string
	ws  []*waiter
}

type waiter struct {
	class Class
	org   string
	wake  chan struct{}
}

func (b *Budget) vaultLocked(v masterkey.Vault, now time.Time) *vault {
	vs := b.vaults[v]
	if vs == nil {
		vs = &vault{key: v, factor: 1, last: now, lastGrow: now}
		for c := range vs.calls {
			vs.calls[c] = map[string]uint64{}
		}
		vs.tokens = b.burst(vs)
		b.vaults[v] = vs
	}
	return vs
}

// rate is vs's budget on this node now, in calls per second.
func (b *Budget) rate(vs *vault) float64 {
	return vs.factor * b.Ceiling(vs.key.Cloud) / float64(b.nodes())
}

// burst is how many calls vs may take at once: a tenth of a second's
// worth, at least one.
func (b *Budget) burst(vs *vault) float64 { return math.Max(1, b.rate(vs)/10) }

// refill grows vs's budget back (AIMD's additive increase) and adds the
// tokens earned since the last refill.
func (b *Budget) refill(vs *vault, now time.Time) {
	if vs.factor < 1 {
		since := vs.lastGrow
		if vs.lastThrottled.After(since) {
			since = vs.lastThrottled
		}
		if steps := now.Sub(since) / b.cfg.GrowEvery; steps > 0 {
			vs.factor = math.Min(1, vs.factor+0.1*float64(steps))
			vs.lastGrow = since.Add(steps * b.cfg.GrowEvery)
		}
	} else {
		vs.lastGrow = now
	}
	if el := now.Sub(vs.last); el > 0 {
		vs.tokens = math.Min(b.burst(vs), vs.tokens+el.Seconds()*b.rate(vs))
		vs.last = now
	}
}

// next returns the waiter to admit next: the first of the highest class
// with waiters, of the org whose turn it is.
func (vs *vault) next() *waiter {
	for c := range vs.queues {
		if q := &vs.queues[c]; len(q.orgs) > 0 {
			return q.orgs[0].ws[0]
		}
	}
	return nil
}

func (vs *vault) enqueue(w *waiter) {
	q := &vs.queues[w.class]
	for _, oq := range q.orgs {
		if oq.org == w.org {
			oq.ws = append(oq.ws, w)
			vs.waiting++
			return
		}
	}
	q.orgs = append(q.orgs, &orgQueue{org: w.org, ws: []*waiter{w}})
	vs.waiting++
}

// remove takes w out of its queue. When w was admitted (served), its org's
// turn passes: the org goes to the back of the class's round.
func (vs *vault) remove(w *waiter, served bool) {
	q := &vs.queues[w.class]
	for i, oq := range q.orgs {
		if oq.org != w.org {
			continue
		}
		j := slices.Index(oq.ws, w)
		if j < 0 {
			return
		}
		oq.ws = slices.Delete(oq.ws, j, j+1)
		vs.waiting--
		q.orgs = slices.Delete(q.orgs, i, i+1)
		if len(oq.ws) > 0 {
			if served {
				q.orgs = append(q.orgs, oq)
			} else {
				q.orgs = slices.Insert(q.orgs, i, oq)
			}
		}
		return
	}
}

// wakeNext tells the waiter now at the head that it is.
func (vs *vault) wakeNext() {
	if w := vs.next(); w != nil {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Admit waits until the budget of vault v admits one call of the class and
// org ctx names (see [With]; Load when none), and returns the function the
// caller calls with the vault's answer. It returns Kind Unavailable, with a
// RetryAfter, when ctx ends first or when v asked for a pause that outlasts
// ctx's deadline.
func (b *Budget) Admit(ctx context.Context, v masterkey.Vault) (func(throttled bool, retryAfter time.Duration), error) {
	class, org := Of(ctx)
	if class < 0 || class >= numClasses {
		class = Load
	}
	b.mu.Lock()
	now := b.cfg.Clock.Now()
	vs := b.vaultLocked(v, now)
	b.refill(vs, now)
	if vs.waiting == 0 && !now.Before(vs.blockedUntil) && vs.tokens >= 1 {
		vs.tokens--
		b.mu.Unlock()
		return b.doneFunc(vs, class), nil
	}
	if err := b.blockedPast(ctx, vs, now); err != nil {
		vs.calls[class][OutcomeRefused]++
		b.mu.Unlock()
		return nil, err
	}
	w := &waiter{class: class, org: org, wake: make(chan struct{}, 1)}
	vs.enqueue(w)
	for {
		var timer <-chan time.Time
		if vs.next() == w {
			now = b.cfg.Clock.Now()
			b.refill(vs, now)
			if !now.Before(vs.blockedUntil) && vs.tokens >= 1 {
				vs.tokens--
				vs.remove(w, true)
				vs.wakeNext()
				b.mu.Unlock()
				return b.doneFunc(vs, class), nil
			}
			if err := b.blockedPast(ctx, vs, now); err != nil {
				return nil, b.giveUp(vs, w, err)
			}
			wait := time.Duration((1 - vs.tokens) / b.rate(vs) * float64(time.Second))
			if d := vs.blockedUntil.Sub(now); d > wait {
				wait = d
			}
			timer = b.cfg.Clock.After(max(wait, time.Millisecond))
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			b.mu.Lock()
			return nil, b.giveUp(vs, w, &fault.Error{Kind: fault.Unavailable, Op: "wait for vault budget", Resource: "vault " + v.Name,
				Reason: "the vault's request budget did not admit the call in time", RetryAfter: time.Second, Err: ctx.Err()})
		case <-w.wake:
		case <-timer:
		}
		b.mu.Lock()
	}
}

// giveUp removes w, which was not admitted, counts it and unlocks b.mu.
func (b *Budget) giveUp(vs *vault, w *waiter, err error) error {
	head := vs.next() == w
	vs.remove(w, false)
	vs.calls[w.class][OutcomeRefused]++
	if head {
		vs.wakeNext()
	}
	b.mu.Unlock()
	return err
}

// blockedPast returns Unavailable when vs is paused beyond ctx's deadline.
func (b *Budget) blockedPast(ctx context.Context, vs *vault, now time.Time) error {
	if !now.Before(vs.blockedUntil) {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(vs.blockedUntil) {
		return &fault.Error{Kind: fault.Unavailable, Op: "call vault", Resource: "vault " + vs.key.Name,
			Reason: "the vault is throttling orgkms; calls resume after its Retry-After", RetryAfter: vs.blockedUntil.Sub(now)}
	}
	return nil
}

func (b *Budget) doneFunc(vs *vault, class Class) func(bool, time.Duration) {
	var once sync.Once
	return func(throttled bool, retryAfter time.Duration) {
		once.Do(func() { b.done(vs, class, throttled, retryAfter) })
	}
}

// done records the vault's answer to an admitted call: a throttled one
// shrinks the budget and pauses the vault.
func (b *Budget) done(vs *vault, class Class, throttled bool, retryAfter time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !throttled {
		vs.calls[class][OutcomeOK]++
		return
	}
	vs.calls[class][OutcomeThrottled]++
	now := b.cfg.Clock.Now()
	b.refill(vs, now)
	vs.throttled++
	vs.lastThrottled = now
	if retryAfter <= 0 {
		retryAfter = DefaultRetryAfter
	}
	if u := now.Add(retryAfter); u.After(vs.blockedUntil) {
		vs.blockedUntil = u
	}
	if vs.lastDecrease.IsZero() || now.Sub(vs.lastDecrease) >= b.cfg.DecreaseEvery {
		vs.factor = math.Max(b.cfg.MinFactor, vs.factor/2)
		vs.lastDecrease = now
	}
	vs.tokens = 0
	vs.wakeNext() // the head's timer must now run to blockedUntil
}

// State is the budget state of one vault on this node.
type State struct {
	Vault masterkey.Vault
	// ID is a short hash of the vault (cloud and name), the label metrics
	// use for it.
	ID string
	// Ceiling is the cloud's cluster-wide ceiling, Share this node's part
	// of it (ceiling / live nodes) and Rate what this node allows now,
	// after AIMD; all in requests per second.
	Ceiling, Share, Rate float64
	// Throttling is set while the vault throttled a call within the last
	// Config.ThrottlingFor, or while the budget has not grown back.
	Throttling    bool
	PausedUntil   time.Time // no call before; zero when not paused
	LastThrottled time.Time // zero when never
	Throttled     uint64    // throttled answers since start
	// Waiting counts waiting calls by class name; Calls counts admitted and
	// refused calls by class name and outcome.
	Waiting map[string]int
	Calls   map[string]map[string]uint64
}

// VaultID is the hash [State.ID] names a vault by: 12 hex digits of
// SHA-256 over cloud, ":" and name.
func VaultID(v masterkey.Vault) string {
	h := sha256.Sum256([]byte(v.Cloud + ":" + v.Name))
	return hex.EncodeToString(h[:6])
}

// State returns the state of vault v; ok is false when this node has not
// called it (the state is then that of an idle vault: its full share).
func (b *Budget) State(v masterkey.Vault) (State, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	vs := b.vaults[v]
	if vs == nil {
		now := b.cfg.Clock.Now()
		idle := &vault{key: v, factor: 1, last: now, lastGrow: now}
		for c := range idle.calls {
			idle.calls[c] = map[string]uint64{}
		}
		return b.stateLocked(idle), false
	}
	return b.stateLocked(vs), true
}

// States returns the state of every vault this node has called, by cloud
// and name.
func (b *Budget) States() []State {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]State, 0, len(b.vaults))
	for _, vs := range b.vaults {
		out = append(out, b.stateLocked(vs))
	}
	slices.SortFunc(out, func(a, c State) int {
		if a.Vault.Cloud != c.Vault.Cloud {
			return compare(a.Vault.Cloud, c.Vault.Cloud)
		}
		return compare(a.Vault.Name, c.Vault.Name)
	})
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (b *Budget) stateLocked(vs *vault) State {
	now := b.cfg.Clock.Now()
	b.refill(vs, now)
	ceiling := b.Ceiling(vs.key.Cloud)
	s := State{Vault: vs.key, ID: VaultID(vs.key), Ceiling: ceiling, Share: ceiling / float64(b.nodes()), Rate: b.rate(vs),
		LastThrottled: vs.lastThrottled, Throttled: vs.throttled, Waiting: map[string]int{}, Calls: map[string]map[string]uint64{}}
	if now.Before(vs.blockedUntil) {
		s.PausedUntil = vs.blockedUntil
	}
	s.Throttling = vs.factor < 1 || (!vs.lastThrottled.IsZero() && now.Sub(vs.lastThrottled) < b.cfg.ThrottlingFor)
	for _, c := range Classes {
		n := 0
		for _, oq := range vs.queues[c].orgs {
			n += len(oq.ws)
		}
		s.Waiting[c.String()] = n
		m := map[string]uint64{}
		for o, k := range vs.calls[c] {
			m[o] = k
		}
		s.Calls[c.String()] = m
	}
	return s
}
