package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
)

// openapiDocument is the part of the embedded OpenAPI document the tests
// check.
type openapiDocument struct {
	OpenAPI    string                                 `json:"openapi"`
	Security   []map[string][]string                  `json:"security"`
	Paths      map[string]map[string]openapiOperation `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Schemas map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

type openapiOperation struct {
	OperationID string                 `json:"operationId"`
	Summary     string                 `json:"summary"`
	Description string                 `json:"description"`
	Action      *string                `json:"x-orgkms-action"`
	Security    *[]map[string][]string `json:"security"` // nil: the document's default
	Parameters  []json.RawMessage      `json:"parameters"`
	Responses   map[string]any         `json:"responses"`
}

// extraPublicRoutes are served outside the routes table (see New).
var extraPublicRoutes = []string{"GET /metrics"}

func loadOpenAPI(t *testing.T) (openapiDocument, map[string]any) {
	t.Helper()
	var doc openapiDocument
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(openapiDoc, &raw); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	return doc, raw
}

// docOperations returns the document's operations keyed like route
// patterns: "GET /v1/orgs/{org}".
func docOperations(doc openapiDocument) map[string]openapiOperation {
	ops := map[string]openapiOperation{}
	for path, methods := range doc.Paths {
		for method, op := range methods {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch", "trace":
				ops[strings.ToUpper(method)+" "+path] = op
			}
		}
	}
	return ops
}

// routePatterns returns every served "METHOD PATH" with its action ("" =
// public).
func routePatterns() map[string]string {
	out := map[string]string{}
	for _, rt := range routes {
		out[rt.Pattern] = string(rt.Action)
	}
	for _, p := range extraPublicRoutes {
		out[p] = ""
	}
	return out
}

func TestOpenAPIRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	ops := docOperations(doc)
	served := routePatterns()
	for _, pattern := range sortedKeys(served) {
		op, ok := ops[pattern]
		if !ok {
			t.Errorf("route %s is not described in openapi.json: add an operation under paths", pattern)
			continue
		}
		if op.OperationID == "" || op.Summary == "" || op.Description == "" {
			t.Errorf("operation %s needs operationId, summary and description", pattern)
		}
		// 202: the operation starts a durable job (cmk enable, disable).
		if !slices.ContainsFunc([]string{"200", "201", "202"}, func(code string) bool { _, ok := op.Responses[code]; return ok }) {
			t.Errorf("operation %s has no 200, 201 or 202 response", pattern)
		}
	}
	for _, pattern := range sortedKeys(ops) {
		if _, ok := served[pattern]; !ok {
			t.Errorf("openapi.json describes %s, which is not a route in routes.go", pattern)
		}
	}
}

func TestOpenAPISecurity(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if s := doc.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Fatalf("components.securitySchemes.bearer = %+v, want type http, scheme bearer", s)
	}
	ops := docOperations(doc)
	for pattern, action := range routePatterns() {
		op, ok := ops[pattern]
		if !ok {
			continue // reported by TestOpenAPIRoutes
		}
		security := doc.Security
		if op.Security != nil {
			security = *op.Security
		}
		bearer := slices.ContainsFunc(security, func(req map[string][]string) bool {
			_, ok := req["bearer"]
			return ok && len(req) == 1
		})
		optional := slices.ContainsFunc(security, func(req map[string][]string) bool { return len(req) == 0 })
		switch {
		case action == "" && len(security) != 0:
			t.Errorf("public route %s: security = %v, want [] (no authentication)", pattern, security)
		case action != "" && (!bearer || optional):
			t.Errorf("route %s needs action %s: security = %v, want bearer required", pattern, action, security)
		}
		if action != "" {
			if op.Action == nil || *op.Action != action {
				t.Errorf("route %s: x-orgkms-action = %v, want %q (the action in routes.go)", pattern, deref(op.Action), action)
			}
			if !strings.Contains(op.Description, "Requires") && !strings.Contains(op.Description, "Any valid token") {
				t.Errorf("route %s: the description does not state the required roles", pattern)
			}
			if _, ok := op.Responses["401"]; !ok {
				t.Errorf("route %s: no 401 response", pattern)
			}
		}
	}
}

func TestOpenAPIPathParameters(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	for pattern, op := range docOperations(doc) {
		_, path, _ := strings.Cut(pattern, " ")
		var want []string
		for seg := range strings.SplitSeq(path, "/") {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				want = append(want, strings.Trim(seg, "{}"))
			}
		}
		var got []string
		for _, p := range op.Parameters {
			var param struct {
				Ref      string `json:"$ref"`
				Name     string `json:"name"`
				In       string `json:"in"`
				Required bool   `json:"required"`
			}
			if err := json.Unmarshal(p, &param); err != nil {
				t.Fatalf("%s: parameter %s: %v", pattern, p, err)
			}
			if param.Ref != "" {
				v, err := resolvePointer(raw, param.Ref)
				if err != nil {
					continue // reported by TestOpenAPIRefs
				}
				b, _ := json.Marshal(v)
				json.Unmarshal(b, &param)
			}
			if param.In == "path" {
				if !param.Required {
					t.Errorf("%s: path parameter %s must be required", pattern, param.Name)
				}
				got = append(got, param.Name)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: path parameters = %v, want %v", pattern, got, want)
		}
	}
}

func TestOpenAPIRefs(t *testing.T) {
	_, raw := loadOpenAPI(t)
	var refs int
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				if _, err := resolvePointer(raw, ref); err != nil {
					t.Errorf("%s: $ref %q does not resolve: %v", at, ref, err)
				}
			}
			for k, e := range v {
				walk(e, at+"/"+escapePointer(k))
			}
		case []any:
			for i, e := range v {
				walk(e, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(raw, "#")
	if refs == 0 {
		t.Fatal("openapi.json has no $ref: is the walker broken?")
	}
}

// TestOpenAPIErrorCodes checks that the documented error codes are exactly
// the codes of fault.Kind, with the HTTP status of Status.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	var code struct {
		Enum         []string          `json:"enum"`
		Descriptions map[string]string `json:"x-enum-descriptions"`
	}
	if err := json.Unmarshal(doc.Components.Schemas["ErrorCode"], &code); err != nil {
		t.Fatalf("components.schemas.ErrorCode: %v", err)
	}
	want := map[string]int{}
	for k := fault.Kind(0); k < 64; k++ {
		if k == fault.Internal || k.Code() != fault.Internal.Code() {
			want[k.Code()] = Status(k)
		}
	}
	for _, c := range sortedKeys(want) {
		if !slices.Contains(code.Enum, c) {
			t.Errorf("error code %s (HTTP %d) is missing from ErrorCode.enum", c, want[c])
		}
		if d := code.Descriptions[c]; !strings.HasPrefix(d, fmt.Sprintf("HTTP %d. ", want[c])) {
			t.Errorf("ErrorCode x-enum-descriptions[%s] = %q, want it to start with \"HTTP %d. \"", c, d, want[c])
		}
	}
	for _, c := range code.Enum {
		if _, ok := want[c]; !ok {
			t.Errorf("ErrorCode.enum has %s, which is not a fault.Kind code", c)
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	h := New(Config{Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(rec.Body.Bytes(), openapiDoc) {
		t.Errorf("GET /v1/openapi.json did not return the embedded document")
	}
}

// resolvePointer resolves a local reference "#/a/b" in doc.
func resolvePointer(doc map[string]any, ref string) (any, error) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("not a local reference")
	}
	var cur any = doc
	for tok := range strings.SplitSeq(p, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", tok)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("no %q", tok)
		}
	}
	return cur, nil
}

func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func deref(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}
