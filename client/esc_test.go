package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestDotNamesStayInTheirSegment: a key or org named "." or ".." is sent
// percent-encoded, never as a dot segment that addresses another route
// (DELETE /v1/orgs/acme/keys/.. is DELETE /v1/orgs/acme once cleaned).
func TestDotNamesStayInTheirSegment(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.EscapedPath())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"not_found","message":"no such key"}}`))
	}))
	defer srv.Close()
	c, err := New(Config{Addr: srv.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c.DeleteKey(ctx, "acme", "..", 0)
	c.CancelKeyDeletion(ctx, "acme", "..")
	c.DisableKey(ctx, "..", ".")
	want := []string{"DELETE /v1/orgs/acme/keys/%2E%2E", "POST /v1/orgs/acme/keys/%2E%2E/cancel-deletion", "POST /v1/orgs/%2E%2E/keys/%2E/disable"}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("requests = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d = %q, want %q", i, got[i], want[i])
		}
	}
}
