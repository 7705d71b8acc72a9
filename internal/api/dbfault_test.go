package api_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
)

// get sends a GET without a token and returns status, Retry-After and body.
func (ts *testServer) get(path string) (int, string, []byte) {
	ts.t.Helper()
	resp, err := http.Get(ts.url + path)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), []byte(b.String())
}

// waitReady polls /readyz until its status is want (it probes the database
// at most once a second), with a generous limit.
func waitReady(t *testing.T, ts *testServer, want int) []byte {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		status, _, body := ts.get("/readyz")
		if status == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after a minute, want %d", status, body, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}

// TestDatabaseFaults: a read-only database (SQLite's own SQLITE_READONLY,
// from query_only on the writer connection) makes writes answer 503
// unavailable with Retry-After and /readyz false with the reason; both
// recover by themselves when it is gone. A database file deleted under the
// server is restored and writes go on; a restart finds every org.
func TestDatabaseFaults(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir)
	tok := ts.token("root", "", auth.RoleOperator)
	if status, body := ts.raw("POST", "/v1/orgs", tok, `{"id":"acme"}`); status != 200 && status != 201 {
		t.Fatalf("create org = %d %s", status, body)
	}
	waitReady(t, ts, 200)

	if _, err := ts.store.DB().ExecContext(t.Context(), `PRAGMA query_only = 1`); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", ts.url+"/v1/orgs", strings.NewReader(`{"id":"globex"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb client.ErrorBody
	json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != 503 || eb.Error.Code != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("create org on a read-only database = %d %q Retry-After %q, want 503 unavailable with Retry-After", resp.StatusCode, eb.Error.Code, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(eb.Error.Message, "read-only") || strings.Contains(eb.Error.Message, dir) {
		t.Errorf("message %q: want it to say read-only, without a path", eb.Error.Message)
	}
	body := waitReady(t, ts, 503)
	if !strings.Contains(string(body), "read-only") || strings.Contains(string(body), dir) {
		t.Errorf("/readyz body %s: want the reason (read-only), without a path", body)
	}
	if _, err := ts.store.DB().ExecContext(t.Context(), `PRAGMA query_only = 0`); err != nil {
		t.Fatal(err)
	}
	if status, body := ts.raw("POST", "/v1/orgs", tok, `{"id":"globex"}`); status != 200 && status != 201 {
		t.Fatalf("create org after the fault = %d %s", status, body)
	}
	waitReady(t, ts, 200)

	// The database file deleted under the running server.
	if err := os.Remove(filepath.Join(dir, "orgkms.db")); err != nil {
		t.Fatal(err)
	}
	if status, body := ts.raw("POST", "/v1/orgs", tok, `{"id":"initech"}`); status != 200 && status != 201 {
		t.Fatalf("create org after the file was deleted = %d %s", status, body)
	}
	waitReady(t, ts, 200)
	ts.stop()
	ts2 := startServer(t, dir)
	for _, org := range []string{"acme", "globex", "initech"} {
		if _, err := ts2.keys.GetOrg(t.Context(), org); err != nil {
			t.Errorf("after a restart GetOrg(%s) = %v", org, err)
		}
	}
}
