package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
)

// do sends a request with the given Authorization header.
func (ts *testServer) do(method, path, authz, body string) (*http.Response, client.ErrorBody) {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb client.ErrorBody
	if resp.StatusCode >= 400 && method != http.MethodHead {
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
			ts.t.Fatalf("%s %s: %d with a body that is not a JSON error: %v", method, path, resp.StatusCode, err)
		}
	}
	return resp, eb
}

func TestBearerSchemeCaseInsensitive(t *testing.T) {
	ts := startServer(t, t.TempDir())
	tok := ts.token("ops", "", auth.RoleOperator)
	for _, tc := range []struct {
		name, authz string
		want        int
	}{
		{"Bearer", "Bearer " + tok, 200},
		{"bearer", "bearer " + tok, 200},
		{"BEARER", "BEARER " + tok, 200},
		{"extra spaces", "Bearer   " + tok + " ", 200},
		{"basic", "Basic " + tok, 401},
		{"no scheme", tok, 401},
		{"scheme only", "Bearer", 401},
		{"empty secret", "Bearer   ", 401},
		{"bearer-ish", "Bearerx " + tok, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, eb := ts.do("GET", "/v1/whoami", tc.authz, "")
			if resp.StatusCode != tc.want {
				t.Fatalf("Authorization %q: status %d (%s), want %d", tc.name, resp.StatusCode, eb.Error.Code, tc.want)
			}
			if tc.want == 401 && (eb.Error.Code != "unauthenticated" || resp.Header.Get("WWW-Authenticate") == "") {
				t.Errorf("Authorization %q: code %q WWW-Authenticate %q, want unauthenticated with a challenge", tc.name, eb.Error.Code, resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestWrongMethodIs405(t *testing.T) {
	ts := startServer(t, t.TempDir())
	mustOrg(t, ts, "acme")
	tok := "Bearer " + ts.token("ops", "", auth.RoleOperator, auth.RoleService)
	for _, tc := range []struct {
		method, path string
		wantStatus   int
		wantAllow    string
	}{
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "/v1/orgs", 405, "GET, HEAD, POST"},
		{"GET", "/v1/orgs/acme/keys/default/encrypt", 405, "POST"},
		{"PUT", "/v1/orgs/acme/cmk", 405, "GET, HEAD"},
		{"GET", "/v1/tokens/tok_1", 405, "DELETE"},
		{"HEAD", "/v1/orgs/acme/cmk/enable", 405, "POST"},
		{"PUT", "/v1/nothing", 404, ""},
		{"GET", "/v1/orgs", 200, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			for _, authz := range []string{tok, ""} { // the same answer without a token
				resp, eb := ts.do(tc.method, tc.path, authz, `{}`)
				if tc.wantStatus == 200 && authz == "" {
					continue
				}
				if resp.StatusCode != tc.wantStatus || resp.Header.Get("Allow") != tc.wantAllow {
					t.Fatalf("%s %s (token %v): %d Allow %q, want %d Allow %q", tc.method, tc.path, authz != "", resp.StatusCode, resp.Header.Get("Allow"), tc.wantStatus, tc.wantAllow)
				}
				if tc.wantStatus == 405 && tc.method != "HEAD" && (eb.Error.Code != "method_not_allowed" || !strings.Contains(eb.Error.Message, tc.wantAllow) || eb.Error.RequestID == "") {
					t.Errorf("%s %s: error %+v, want method_not_allowed naming %s", tc.method, tc.path, eb.Error, tc.wantAllow)
				}
				if resp.Header.Get("X-Request-Id") == "" {
					t.Errorf("%s %s: %d without X-Request-Id", tc.method, tc.path, resp.StatusCode)
				}
			}
		})
	}
}
