package azureemu

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Throttle is a vault's service limit, as Key Vault enforces it: at most
// Limit requests per Window (Key Vault: per 10 s, e.g. 2,000 RSA-2048 HSM
// operations), counted over a sliding window of the requests it served;
// beyond that the vault answers 429 Throttled, with a Retry-After of the
// whole seconds until the oldest counted request leaves the window (at
// least 1) unless NoRetryAfter (some real 429s carry none). Throttled
// requests do not count toward the limit, as in Key Vault. Only requests
// with a token count (the unauthenticated challenge does not).
type Throttle struct {
	Limit        int           `json:"limit"`
	Window       time.Duration `json:"window"` // default 10s
	NoRetryAfter bool          `json:"no_retry_after"`
}

// ThrottleStats are what a vault's throttle saw since it was set.
type ThrottleStats struct {
	Served    int         // requests answered normally (counted)
	Throttled int         // requests answered 429
	Times     []time.Time // when each served request arrived, in order
	// ThrottledTimes are when each throttled request arrived, and
	// RetryAfters the Retry-After each was answered with (0 for none).
	ThrottledTimes []time.Time
	RetryAfters    []time.Duration
	// MaxInWindow is the largest number of served requests that arrived
	// within one Window.
	MaxInWindow int
}

type throttleState struct {
	cfg       Throttle
	times     []time.Time // served, in order (all of them, for the stats)
	throttled int
	tTimes    []time.Time
	tAfters   []time.Duration
}

// maxThrottleTimes bounds the arrival times a throttle keeps.
const maxThrottleTimes = 1 << 20

// SetThrottle sets vault's service limit (see [Throttle]), replacing any
// previous one and its statistics; a Limit of 0 removes it.
func (e *Emulator) SetThrottle(vault string, t Throttle) error {
	if t.Limit < 0 || t.Window < 0 {
		return fmt.Errorf("throttle: negative value: %w", ErrInvalid)
	}
	if t.Window == 0 {
		t.Window = 10 * time.Second
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return err
	}
	if e.throttles == nil {
		e.throttles = map[string]*throttleState{}
	}
	if t.Limit == 0 {
		delete(e.throttles, v.Name)
		return nil
	}
	e.throttles[v.Name] = &throttleState{cfg: t}
	return nil
}

// ThrottleStats returns what vault's throttle saw; ok is false when it has
// none.
func (e *Emulator) ThrottleStats(vault string) (ThrottleStats, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return ThrottleStats{}, false
	}
	ts, ok := e.throttles[v.Name]
	if !ok {
		return ThrottleStats{}, false
	}
	s := ThrottleStats{Served: len(ts.times), Throttled: ts.throttled, Times: append([]time.Time(nil), ts.times...),
		ThrottledTimes: append([]time.Time(nil), ts.tTimes...), RetryAfters: append([]time.Duration(nil), ts.tAfters...)}
	j := 0
	for i := range ts.times {
		for ts.times[i].Sub(ts.times[j]) >= ts.cfg.Window {
			j++
		}
		s.MaxInWindow = max(s.MaxInWindow, i-j+1)
	}
	return s, true
}

// throttle applies vault's service limit to one authenticated request at
// now: it returns the Retry-After (0 for none) and true when the request
// is to be answered 429.
func (e *Emulator) throttle(vault string, now time.Time) (time.Duration, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ts, ok := e.throttles[vault]
	if !ok {
		return 0, false
	}
	// Count the served requests within the window (times are in order).
	from := now.Add(-ts.cfg.Window)
	n := 0
	for i := len(ts.times) - 1; i >= 0 && ts.times[i].After(from); i-- {
		n++
	}
	if n >= ts.cfg.Limit {
		ts.throttled++
		after := time.Duration(0)
		if !ts.cfg.NoRetryAfter {
			oldest := ts.times[len(ts.times)-n]
			wait := oldest.Add(ts.cfg.Window).Sub(now)
			after = max(time.Second, (wait+time.Second-1)/time.Second*time.Second)
		}
		if len(ts.tTimes) < maxThrottleTimes {
			ts.tTimes, ts.tAfters = append(ts.tTimes, now), append(ts.tAfters, after)
		}
		return after, true
	}
	if len(ts.times) < maxThrottleTimes {
		ts.times = append(ts.times, now)
	}
	return 0, false
}

// writeThrottled answers 429 as Key Vault does.
func writeThrottled(w http.ResponseWriter, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	}
	kvError(w, http.StatusTooManyRequests, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", "")
}
