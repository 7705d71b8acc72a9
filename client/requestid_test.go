package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestWithRequestID: a call on a context of WithRequestID sends the ID as
// X-Request-Id on every attempt (also a retried one); other calls send none.
func TestWithRequestID(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Request-Id"))
		first := len(seen) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"ciphertext":"AA==","key_version":1}`))
	}))
	defer srv.Close()
	c, err := New(Config{Addr: srv.URL, Token: "t", MinRetryWait: time.Millisecond, MaxRetryWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := WithRequestID(t.Context(), "0b6c9f2e-3c55-4f5e-9d1e-6a0f4f1f2c3d")
	if got := RequestID(ctx); got != "0b6c9f2e-3c55-4f5e-9d1e-6a0f4f1f2c3d" {
		t.Fatalf("RequestID = %q", got)
	}
	if _, _, err := c.Encrypt(ctx, "acme", "default", []byte("x"), nil); err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	if _, _, err := c.Encrypt(context.Background(), "acme", "default", []byte("x"), nil); err != nil {
		t.Fatalf("Encrypt without an ID: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"0b6c9f2e-3c55-4f5e-9d1e-6a0f4f1f2c3d", "0b6c9f2e-3c55-4f5e-9d1e-6a0f4f1f2c3d", ""}
	if len(seen) != len(want) {
		t.Fatalf("X-Request-Id of the requests = %q, want %q", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("request %d: X-Request-Id = %q, want %q", i, seen[i], want[i])
		}
	}
}
