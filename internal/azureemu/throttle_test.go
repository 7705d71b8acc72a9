package azureemu

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	e := startEmu(t, Config{})
	w := newWorld(t, e)
	c := e.HTTPClient()
	base := "https://demo.vault.azure.net"
	tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
	if err := e.SetThrottle("demo", Throttle{Limit: 3, Window: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil); r.status != 200 {
			t.Fatalf("request %d within the limit: %d %s", i, r.status, r.body)
		}
	}
	r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil)
	code, _, _ := r.errCodes(t)
	if r.status != http.StatusTooManyRequests || code != "Throttled" {
		t.Fatalf("request beyond the limit: %d %s, want 429 Throttled", r.status, code)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q, want 1 or 2 seconds", r.header.Get("Retry-After"))
	}
	// Throttled requests do not count: once the window has passed, the
	// vault serves again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still throttled after the window: %d", r.status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st, ok := e.ThrottleStats("demo")
	if !ok || st.Served != 4 || st.Throttled < 1 || st.MaxInWindow != 3 || len(st.Times) != 4 {
		t.Fatalf("stats %+v, want 4 served, max 3 in a window, at least 1 throttled", st)
	}
	// The unauthenticated challenge is not counted, other vaults not limited.
	if _, ok := e.ThrottleStats("other"); ok {
		t.Fatal("ThrottleStats of an unknown vault found")
	}
	if err := e.SetThrottle("demo", Throttle{Limit: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SetThrottle(-1) = %v, want ErrInvalid", err)
	}
	if err := e.SetThrottle("demo", Throttle{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.ThrottleStats("demo"); ok {
		t.Fatal("ThrottleStats after removing the throttle found")
	}
}

func TestThrottleWithoutRetryAfter(t *testing.T) {
	e := startEmu(t, Config{})
	w := newWorld(t, e)
	tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
	if err := e.SetThrottle("demo", Throttle{Limit: 1, NoRetryAfter: true}); err != nil {
		t.Fatal(err)
	}
	send(t, e.HTTPClient(), http.MethodGet, "https://demo.vault.azure.net/keys/k1"+apiV, tok, nil)
	r := send(t, e.HTTPClient(), http.MethodGet, "https://demo.vault.azure.net/keys/k1"+apiV, tok, nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "" {
		t.Fatalf("second request: %d Retry-After %q, want 429 without Retry-After", r.status, r.header.Get("Retry-After"))
	}
}
