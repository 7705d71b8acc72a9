package api_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/orgkms/orgkms/internal/api"
)

// conformance checks every exchange of a test server against the OpenAPI
// document with a real validator (libopenapi-validator): each response's
// status, headers and body must be one the document describes for that
// operation, and each request the server accepted (2xx) must be one the
// document allows. Tests that send malformed requests on purpose are
// therefore only held to the response they get.
type conformance struct {
	mu   sync.Mutex
	v    validator.Validator
	errs []string
}

var (
	conformanceOnce sync.Once
	conformanceDoc  libopenapi.Document
	conformanceErr  error
)

func newConformance(t testing.TB) *conformance {
	t.Helper()
	conformanceOnce.Do(func() { conformanceDoc, conformanceErr = libopenapi.NewDocument(api.OpenAPIDocument) })
	if conformanceErr != nil {
		t.Fatalf("openapi.json does not load: %v", conformanceErr)
	}
	v, errs := validator.NewValidator(conformanceDoc)
	if len(errs) > 0 {
		t.Fatalf("openapi.json: no validator: %v", errs)
	}
	return &conformance{v: v}
}

// wrap serves h and checks each exchange under /v1/.
func (c *conformance) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			h.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		out := rec.Body.Bytes()
		_, _ = w.Write(out)

		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		if len(body) > 0 && req.Header.Get("Content-Type") == "" {
			// orgkms reads every request body as JSON, whatever its
			// Content-Type; the document names application/json.
			req.Header.Set("Content-Type", "application/json")
		}
		resp := rec.Result()
		resp.Body = io.NopCloser(bytes.NewReader(out))
		c.mu.Lock()
		defer c.mu.Unlock()
		var errs []*verrors.ValidationError
		if rec.Code < 300 {
			_, errs = c.v.ValidateHttpRequestResponse(req, resp)
		} else {
			_, errs = c.v.ValidateHttpResponse(req, resp)
		}
		for _, e := range errs {
			if e.ValidationType == "path" && (rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed || rec.Code/100 == 3) {
				continue // a route that does not exist, refused as such (TestOpenAPIErrorCodes checks the bodies)
			}
			if e.ValidationType == "path" && rec.Code == http.StatusBadRequest && bytes.Contains(out, []byte(`"field":"path"`)) {
				continue // an empty, . or .. segment, refused before any route (TestUncleanPathsRefused)
			}
			msg := r.Method + " " + r.URL.Path + " → " + http.StatusText(rec.Code) + ": " + e.Message
			if e.Reason != "" {
				msg += ": " + e.Reason
			}
			for _, s := range e.SchemaValidationErrors {
				msg += "; " + s.FieldPath + ": " + s.Reason
			}
			c.errs = append(c.errs, msg)
		}
	})
}

// check reports what the exchanges broke.
func (c *conformance) check(t testing.TB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range c.errs {
		if !seen[e] {
			seen[e] = true
			t.Errorf("not as openapi.json describes it: %s", e)
		}
	}
}

// TestOpenAPIDocumentValid validates openapi.json against the OpenAPI 3.1
// specification's own schema with a real validator.
func TestOpenAPIDocumentValid(t *testing.T) {
	c := newConformance(t)
	if ok, errs := c.v.ValidateDocument(); !ok || len(errs) > 0 {
		for _, e := range errs {
			t.Errorf("openapi.json: %s: %s", e.Message, e.Reason)
			for _, s := range e.SchemaValidationErrors {
				t.Errorf("  %s: %s", s.FieldPath, s.Reason)
			}
		}
		if len(errs) == 0 {
			t.Error("openapi.json is not a valid OpenAPI 3.1 document")
		}
	}
}
