package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

// fuzzRoutes are the data-plane and CMK routes of the route table, but the
// consent callback: a page for the administrator's browser, HTML by design.
func fuzzRoutes() []string {
	var out []string
	for _, rt := range api.Routes {
		if rt.Pattern == "GET /v1/cmk/callback" {
			continue
		}
		if strings.Contains(rt.Pattern, "/keys/{key}/") || strings.Contains(rt.Pattern, "/cmk") {
			out = append(out, rt.Pattern)
		}
	}
	return out
}

var fuzzMethods = []string{"POST", "GET", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "BREW"}

// FuzzAPIRequests feeds arbitrary bodies, path segments, methods and
// headers to the API handler on the data-plane and CMK routes (with a
// valid service or security-admin token, or an arbitrary Authorization
// header). Properties: no panic, never a 5xx, and every error is a JSON
// error body with a known code, a message and a request ID.
func FuzzAPIRequests(f *testing.F) {
	rts := fuzzRoutes()
	if len(rts) < 8 {
		f.Fatalf("only %d data-plane and CMK routes found: %v", len(rts), rts)
	}
	ts := startServer(f, f.TempDir())
	if _, err := ts.keys.CreateOrg(context.Background(), "test", "acme", "Acme"); err != nil {
		f.Fatal(err)
	}
	tokens := []string{
		"Bearer " + ts.token("svc", "acme", auth.RoleService),
		"Bearer " + ts.token("sec", "acme", auth.RoleAdmin, auth.RoleKeyAdmin),
		"Bearer " + ts.token("ops", "", auth.RoleOperator, auth.RoleService),
	}
	ct, err := ts.keys.Encrypt(context.Background(), "test", "acme", "default", []byte("hello"), []byte("ctx"))
	if err != nil {
		f.Fatal(err)
	}
	known := map[string]bool{}
	for _, k := range fault.Kinds() {
		known[k.Code()] = true
	}
	handler := ts.srv.Config.Handler

	// Seeds: each route with a valid body, and some broken ones.
	for i, rt := range rts {
		method, _, _ := strings.Cut(rt, " ")
		m := uint8(0)
		if method == "GET" {
			m = 1
		}
		f.Add(m, uint8(i), "", uint8(0), "", []byte(`{"plaintext":"aGVsbG8=","context":"Y3R4"}`))
		f.Add(m, uint8(i), "", uint8(1), "", []byte(`{"vault_uri":"https://contoso-kv.vault.azure.net/","key_name":"k","tenant_id":"t"}`))
	}
	ctJSON, _ := json.Marshal(map[string]any{"ciphertext": ct.Bytes, "context": []byte("ctx")})
	f.Add(uint8(0), uint8(1), "", uint8(0), "", ctJSON)
	f.Add(uint8(0), uint8(0), "", uint8(0), "", []byte(`{"batch":[{"plaintext":"aA=="},{"plaintext":"!"}]}`))
	f.Add(uint8(0), uint8(0), "../../etc", uint8(2), "bearer okms_x", []byte(`{"plaintext":`))
	f.Add(uint8(3), uint8(2), "%00", uint8(2), "Basic Zm9vOmJhcg==", []byte("\xff\xfe"))
	f.Add(uint8(0), uint8(3), "default", uint8(0), "", []byte(`{"bits":-1,"type":"raw"}`))
	f.Add(uint8(0), uint8(0), strings.Repeat("a", 300), uint8(1), "", []byte(`{"plaintext":"aA==","plaintext":"aA=="}`))

	f.Fuzz(func(t *testing.T, method uint8, route uint8, seg string, authKind uint8, authz string, body []byte) {
		pattern := rts[int(route)%len(rts)]
		m, path, _ := strings.Cut(pattern, " ")
		if method%4 != 0 { // mostly the route's own method
			m = fuzzMethods[int(method)%len(fuzzMethods)]
		}
		org, key := "acme", "default"
		if seg != "" {
			if route&0x80 != 0 {
				org = seg
			} else {
				key = seg
			}
		}
		path = strings.NewReplacer("{org}", org, "{key}", key).Replace(path)
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Method = m
		req.URL.Path = path
		if i := int(authKind) % (len(tokens) + 1); i < len(tokens) {
			req.Header.Set("Authorization", tokens[i])
		} else {
			req.Header.Set("Authorization", authz)
		}
		if authKind&0x80 != 0 {
			req.Header.Set("Content-Type", authz)
			req.Header.Set("X-Request-Id", seg)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		res := rec.Result()
		if res.StatusCode >= 500 {
			t.Fatalf("%s %q: status %d: %s", m, path, res.StatusCode, rec.Body.Bytes())
		}
		if res.StatusCode >= 300 && res.StatusCode < 400 {
			if res.Header.Get("Location") == "" { // the router's redirect to the clean path
				t.Fatalf("%s %q: %d without Location", m, path, res.StatusCode)
			}
			return
		}
		if m == "HEAD" || res.StatusCode < 400 {
			if m != "HEAD" && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %q: %d with a body that is not JSON: %.200q", m, path, res.StatusCode, rec.Body.Bytes())
			}
			return
		}
		var eb client.ErrorBody
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&eb); err != nil {
			t.Fatalf("%s %q: %d with a body that is not a JSON error (%v): %.200q", m, path, res.StatusCode, err, rec.Body.Bytes())
		}
		if !known[eb.Error.Code] || eb.Error.Message == "" || eb.Error.RequestID == "" {
			t.Fatalf("%s %q: %d error %+v: want a known code, a message and a request ID", m, path, res.StatusCode, eb.Error)
		}
		if got := res.Header.Get("Content-Type"); got != "application/json" {
			t.Fatalf("%s %q: error Content-Type %q", m, path, got)
		}
		if res.StatusCode == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "" {
			t.Fatalf("%s %q: 405 without Allow", m, path)
		}
	})
}
