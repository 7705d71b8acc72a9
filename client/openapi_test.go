package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The client's request and response types are checked against the API's
// OpenAPI document, for every route the client calls: each schema's
// properties are the Go type's JSON field names, both ways, recursively
// through nested objects and arrays; a response's required properties are
// exactly its fields without omitempty (the server encodes these types, so
// those are the fields always present); a request's required properties are
// fields the client always sends (no omitempty).

const openapiPath = "../internal/api/openapi.json"

// apiCall is one method of Client, the types it sends and expects.
type apiCall struct {
	method string // Client method name
	call   func(ctx context.Context, c *Client) error
	req    reflect.Type // nil: no body of the client's own type
	resp   reflect.Type // nil: the client ignores the response body
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

func apiCalls() []apiCall {
	b := []byte("x")
	return []apiCall{
		{"CreateOrg", func(ctx context.Context, c *Client) error { _, err := c.CreateOrg(ctx, "acme", "Acme"); return err }, typeOf[CreateOrgRequest](), typeOf[Org]()},
		{"GetOrg", func(ctx context.Context, c *Client) error { _, err := c.GetOrg(ctx, "acme"); return err }, nil, typeOf[Org]()},
		{"ListOrgs", func(ctx context.Context, c *Client) error { _, err := c.ListOrgs(ctx, "a", 10); return err }, nil, typeOf[OrgList]()},
		{"ListKeys", func(ctx context.Context, c *Client) error { _, err := c.ListKeys(ctx, "acme"); return err }, nil, typeOf[KeyList]()},
		{"CreateKey", func(ctx context.Context, c *Client) error { _, err := c.CreateKey(ctx, "acme", "k"); return err }, typeOf[CreateKeyRequest](), typeOf[Key]()},
		{"GetKey", func(ctx context.Context, c *Client) error { _, err := c.GetKey(ctx, "acme", "k"); return err }, nil, typeOf[Key]()},
		{"RotateKey", func(ctx context.Context, c *Client) error { _, err := c.RotateKey(ctx, "acme", "k"); return err }, nil, typeOf[Key]()},
		{"DeleteOrg", func(ctx context.Context, c *Client) error { _, err := c.DeleteOrg(ctx, "acme", 7); return err }, typeOf[DeleteRequest](), typeOf[Org]()},
		{"CancelOrgDeletion", func(ctx context.Context, c *Client) error { _, err := c.CancelOrgDeletion(ctx, "acme"); return err }, nil, typeOf[Org]()},
		{"DisableKey", func(ctx context.Context, c *Client) error { _, err := c.DisableKey(ctx, "acme", "k"); return err }, nil, typeOf[Key]()},
		{"EnableKey", func(ctx context.Context, c *Client) error { _, err := c.EnableKey(ctx, "acme", "k"); return err }, nil, typeOf[Key]()},
		{"DeleteKey", func(ctx context.Context, c *Client) error { _, err := c.DeleteKey(ctx, "acme", "k", 7); return err }, typeOf[DeleteRequest](), typeOf[Key]()},
		{"CancelKeyDeletion", func(ctx context.Context, c *Client) error {
			_, err := c.CancelKeyDeletion(ctx, "acme", "k")
			return err
		}, nil, typeOf[Key]()},
		{"SetMinDecryptionVersion", func(ctx context.Context, c *Client) error {
			_, err := c.SetMinDecryptionVersion(ctx, "acme", "k", 2)
			return err
		}, typeOf[KeyConfigRequest](), typeOf[Key]()},
		{"Encrypt", func(ctx context.Context, c *Client) error { _, _, err := c.Encrypt(ctx, "acme", "k", b, b); return err }, typeOf[EncryptRequest](), typeOf[CryptoResponse]()},
		{"Decrypt", func(ctx context.Context, c *Client) error { _, err := c.Decrypt(ctx, "acme", "k", b, b); return err }, typeOf[DecryptRequest](), typeOf[CryptoResponse]()},
		{"Rewrap", func(ctx context.Context, c *Client) error { _, _, err := c.Rewrap(ctx, "acme", "k", b, b); return err }, typeOf[DecryptRequest](), typeOf[CryptoResponse]()},
		{"EncryptBatch", func(ctx context.Context, c *Client) error {
			_, err := c.EncryptBatch(ctx, "acme", "k", []BatchItem{{Plaintext: b}})
			return err
		}, typeOf[EncryptRequest](), typeOf[CryptoResponse]()},
		{"DecryptBatch", func(ctx context.Context, c *Client) error {
			_, err := c.DecryptBatch(ctx, "acme", "k", []BatchItem{{Ciphertext: b}})
			return err
		}, typeOf[DecryptRequest](), typeOf[CryptoResponse]()},
		{"RewrapBatch", func(ctx context.Context, c *Client) error {
			_, err := c.RewrapBatch(ctx, "acme", "k", []BatchItem{{Ciphertext: b}})
			return err
		}, typeOf[DecryptRequest](), typeOf[CryptoResponse]()},
		{"DataKey", func(ctx context.Context, c *Client) error {
			_, err := c.DataKey(ctx, "acme", "k", DataKeyRequest{})
			return err
		}, typeOf[DataKeyRequest](), typeOf[DataKeyResponse]()},
		{"CreateToken", func(ctx context.Context, c *Client) error {
			_, err := c.CreateToken(ctx, CreateTokenRequest{})
			return err
		}, typeOf[CreateTokenRequest](), typeOf[Token]()},
		{"ListTokens", func(ctx context.Context, c *Client) error { _, err := c.ListTokens(ctx); return err }, nil, typeOf[TokenList]()},
		{"CreateWebhook", func(ctx context.Context, c *Client) error {
			_, err := c.CreateWebhook(ctx, "acme", CreateWebhookRequest{URL: "https://hooks.example.com/x"})
			return err
		}, typeOf[CreateWebhookRequest](), typeOf[WebhookCreated]()},
		{"ListWebhooks", func(ctx context.Context, c *Client) error { _, err := c.ListWebhooks(ctx, "acme"); return err }, nil, typeOf[WebhookList]()},
		{"GetWebhook", func(ctx context.Context, c *Client) error {
			_, err := c.GetWebhook(ctx, "acme", "wh_0123456789abcdef")
			return err
		}, nil, typeOf[Webhook]()},
		{"DeleteWebhook", func(ctx context.Context, c *Client) error { return c.DeleteWebhook(ctx, "acme", "wh_0123456789abcdef") }, nil, nil},
		{"TestWebhook", func(ctx context.Context, c *Client) error {
			_, err := c.TestWebhook(ctx, "acme", "wh_0123456789abcdef")
			return err
		}, nil, typeOf[WebhookDelivery]()},
		{"RotateWebhookSecret", func(ctx context.Context, c *Client) error {
			_, err := c.RotateWebhookSecret(ctx, "acme", "wh_0123456789abcdef")
			return err
		}, nil, typeOf[WebhookSecret]()},
		{"WebhookDeliveries", func(ctx context.Context, c *Client) error {
			_, err := c.WebhookDeliveries(ctx, "acme", "wh_0123456789abcdef", 10)
			return err
		}, nil, typeOf[WebhookDeliveryList]()},
		{"RevokeToken", func(ctx context.Context, c *Client) error { return c.RevokeToken(ctx, "tok_1") }, nil, nil},
		{"Audit", func(ctx context.Context, c *Client) error { _, err := c.Audit(ctx, "acme", 0, 10); return err }, nil, typeOf[AuditList]()},
		{"VerifyAudit", func(ctx context.Context, c *Client) error { _, err := c.VerifyAudit(ctx, "acme"); return err }, nil, typeOf[AuditVerify]()},
		{"Usage", func(ctx context.Context, c *Client) error { _, err := c.Usage(ctx, "acme", time.Now()); return err }, nil, typeOf[UsageList]()},
		{"QueryUsage", func(ctx context.Context, c *Client) error {
			_, err := c.QueryUsage(ctx, "acme", UsageQuery{Key: "k", Limit: 5})
			return err
		}, nil, typeOf[UsageList]()},
		{"ExportUsage", func(ctx context.Context, c *Client) error {
			return c.ExportUsage(ctx, "acme", UsageQuery{}, "csv", io.Discard)
		}, nil, nil},
		{"PurgeCache", func(ctx context.Context, c *Client) error { return c.PurgeCache(ctx, "acme") }, nil, nil},
		{"PurgeCache", func(ctx context.Context, c *Client) error { return c.PurgeCache(ctx, "") }, nil, nil},
		{"WhoAmI", func(ctx context.Context, c *Client) error { _, err := c.WhoAmI(ctx); return err }, nil, typeOf[WhoAmI]()},
		{"ListNodes", func(ctx context.Context, c *Client) error { _, err := c.ListNodes(ctx); return err }, nil, typeOf[NodeList]()},
		{"PlatformKeyStatus", func(ctx context.Context, c *Client) error { _, err := c.PlatformKeyStatus(ctx); return err }, nil, typeOf[PlatformKeyStatus]()},
		{"VaultBudgets", func(ctx context.Context, c *Client) error { _, err := c.VaultBudgets(ctx); return err }, nil, typeOf[VaultBudgetList]()},
		{"CMKStatus", func(ctx context.Context, c *Client) error { _, err := c.CMKStatus(ctx, "acme"); return err }, nil, typeOf[CMKStatus]()},
		{"CMKClouds", func(ctx context.Context, c *Client) error { _, err := c.CMKClouds(ctx, "acme"); return err }, nil, typeOf[CMKClouds]()},
		{"CMKAuthorize", func(ctx context.Context, c *Client) error { _, err := c.CMKAuthorize(ctx, "acme", "t"); return err }, typeOf[CMKAuthorizeRequest](), typeOf[CMKAuthorizeResponse]()},
		{"CMKAuthorizeIn", func(ctx context.Context, c *Client) error {
			_, err := c.CMKAuthorizeIn(ctx, "acme", CMKAuthorizeRequest{Cloud: "aws"})
			return err
		}, typeOf[CMKAuthorizeRequest](), typeOf[CMKAuthorizeResponse]()},
		{"CMKConfigure", func(ctx context.Context, c *Client) error {
			_, err := c.CMKConfigure(ctx, "acme", CMKConfigureRequest{})
			return err
		}, typeOf[CMKConfigureRequest](), typeOf[CMKStatus]()},
		{"CMKTest", func(ctx context.Context, c *Client) error { _, err := c.CMKTest(ctx, "acme"); return err }, nil, typeOf[CMKTestReport]()},
		{"CMKEnable", func(ctx context.Context, c *Client) error { _, err := c.CMKEnable(ctx, "acme"); return err }, nil, typeOf[CMKStatus]()},
		{"CMKDisable", func(ctx context.Context, c *Client) error { _, err := c.CMKDisable(ctx, "acme"); return err }, nil, typeOf[CMKStatus]()},
		{"CMKFallback", func(ctx context.Context, c *Client) error { _, err := c.CMKFallback(ctx, "acme"); return err }, typeOf[CMKFallbackRequest](), typeOf[CMKStatus]()},
		{"CMKImpact", func(ctx context.Context, c *Client) error {
			_, err := c.CMKImpact(ctx, "acme", "disable-key", "k")
			return err
		}, nil, typeOf[Impact]()},
		{"CMKDecryptOnly", func(ctx context.Context, c *Client) error {
			_, err := c.CMKDecryptOnly(ctx, "acme", true, "r")
			return err
		}, typeOf[CMKDecryptOnlyRequest](), typeOf[CMKStatus]()},
		{"CMKScheduleRevocation", func(ctx context.Context, c *Client) error {
			_, err := c.CMKScheduleRevocation(ctx, "acme", CMKRevocationRequest{At: "2030-01-02T15:04:05Z"})
			return err
		}, typeOf[CMKRevocationRequest](), typeOf[CMKStatus]()},
		{"CMKCancelRevocation", func(ctx context.Context, c *Client) error { _, err := c.CMKCancelRevocation(ctx, "acme"); return err }, nil, typeOf[CMKStatus]()},
		{"CreateUser", func(ctx context.Context, c *Client) error {
			_, err := c.CreateUser(ctx, "acme", CreateUserRequest{})
			return err
		}, typeOf[CreateUserRequest](), typeOf[User]()},
		{"CreateUser", func(ctx context.Context, c *Client) error {
			_, err := c.CreateUser(ctx, "", CreateUserRequest{})
			return err
		}, typeOf[CreateUserRequest](), typeOf[User]()},
		{"ListUsers", func(ctx context.Context, c *Client) error { _, err := c.ListUsers(ctx, "acme"); return err }, nil, typeOf[UserList]()},
		{"ListUsers", func(ctx context.Context, c *Client) error { _, err := c.ListUsers(ctx, ""); return err }, nil, typeOf[UserList]()},
	}
}

// allowedExtra lists Go fields that a schema does not have, each with the
// reason it is right.
var allowedExtra = map[string]string{
	"EncryptItem.ciphertext":       "BatchItem serves encrypt and decrypt items alike; the client never sets ciphertext in an encrypt item (omitzero)",
	"DecryptItem.plaintext":        "BatchItem serves encrypt and decrypt items alike; the client never sets plaintext in a decrypt item (omitzero)",
	"CiphertextResponse.plaintext": "CryptoResponse serves encrypt, rewrap and decrypt alike; plaintext is only in decrypt's (omitempty)",
	"PlaintextResponse.ciphertext": "CryptoResponse serves encrypt, rewrap and decrypt alike; ciphertext is only in encrypt's and rewrap's (omitempty)",
}

// sentNonZero lists request fields that are required and tagged omitzero:
// the client method never leaves them zero (nil), which a test checks.
var sentNonZero = map[string]string{
	"EncryptItem.plaintext":  "EncryptBatch sends a nil plaintext as \"\" (TestBatchSendsEmptyItems)",
	"DecryptItem.ciphertext": "DecryptBatch and RewrapBatch send a nil ciphertext as \"\" (TestBatchSendsEmptyItems)",
}

type schemaDoc struct {
	raw     map[string]any
	schemas map[string]any
}

func loadSchemaDoc(t *testing.T) schemaDoc {
	t.Helper()
	b, err := os.ReadFile(openapiPath)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("%s: %v", openapiPath, err)
	}
	comps, _ := raw["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	return schemaDoc{raw: raw, schemas: schemas}
}

// resolve follows $ref; name is the schema's component name, if any.
func (d schemaDoc) resolve(s map[string]any) (map[string]any, string) {
	name := ""
	for i := 0; i < 10; i++ {
		ref, ok := s["$ref"].(string)
		if !ok {
			break
		}
		name = strings.TrimPrefix(ref, "#/components/schemas/")
		next, ok := d.schemas[name].(map[string]any)
		if !ok {
			return nil, name
		}
		s = next
	}
	return s, name
}

// object is a schema's properties and required names; a oneOf is the
// union of its alternatives' properties, required where every one
// requires it.
type object struct {
	name     string
	props    map[string]map[string]any
	required []string
	parts    []string // the component names of a oneOf's alternatives
}

func (d schemaDoc) object(s map[string]any) (object, bool) {
	s, name := d.resolve(s)
	if s == nil {
		return object{}, false
	}
	o := object{name: name, props: map[string]map[string]any{}}
	if alts, ok := s["oneOf"].([]any); ok {
		for i, a := range alts {
			am, _ := a.(map[string]any)
			ao, ok := d.object(am)
			if !ok {
				continue
			}
			o.parts = append(o.parts, ao.name)
			for k, v := range ao.props {
				o.props[k] = v
			}
			if i == 0 {
				o.required = ao.required
			} else {
				o.required = slices.DeleteFunc(o.required, func(r string) bool { return !slices.Contains(ao.required, r) })
			}
		}
		return o, len(o.props) > 0
	}
	props, ok := s["properties"].(map[string]any)
	if !ok {
		return object{}, false
	}
	for k, v := range props {
		vm, _ := v.(map[string]any)
		o.props[k] = vm
	}
	for _, r := range asSlice(s["required"]) {
		o.required = append(o.required, r.(string))
	}
	return o, true
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// goFields returns the JSON fields of struct type t: name → (type,
// omitempty).
func goFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// omitempty reports whether f is tagged omitempty, omits whether it is
// tagged omitempty or omitzero.
func omitempty(f reflect.StructField) bool { return hasOpt(f, "omitempty") }
func omits(f reflect.StructField) bool     { return hasOpt(f, "omitempty") || hasOpt(f, "omitzero") }

func hasOpt(f reflect.StructField, opt string) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
	return slices.Contains(strings.Split(opts, ","), opt)
}

// structOf returns the struct type of t, *t, []t or []*t, or nil.
func structOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]() {
		return t
	}
	return nil
}

// compare checks schema s against Go type t at where; response tells the
// direction (see the package comment of this file).
func (d schemaDoc) compare(t *testing.T, where string, s map[string]any, gt reflect.Type, response bool, seen map[string]bool) {
	o, ok := d.object(s)
	if !ok {
		t.Errorf("%s: the schema for Go type %s is not an object with properties", where, gt)
		return
	}
	label := orElse(o.name, where)
	key := label + "/" + gt.String() + "/" + map[bool]string{true: "resp", false: "req"}[response]
	if seen[key] {
		return
	}
	seen[key] = true
	fields := goFields(gt)
	for _, name := range sortedNames(o.props) {
		if _, ok := fields[name]; !ok {
			t.Errorf("%s: schema %s has property %q, Go type %s has no such JSON field", where, label, name, gt)
		}
	}
	for _, name := range sortedNames(fields) {
		if _, ok := o.props[name]; ok {
			continue
		}
		extra := true
		for _, part := range append([]string{o.name}, o.parts...) {
			if _, ok := allowedExtra[part+"."+name]; ok {
				extra = false
			}
		}
		if extra {
			t.Errorf("%s: Go type %s has JSON field %q, schema %s has no such property", where, gt, name, label)
		}
	}
	for _, name := range o.required {
		f, ok := fields[name]
		if !ok || !omits(f) {
			continue
		}
		if _, ok := sentNonZero[o.name+"."+name]; ok && !response && !omitempty(f) {
			continue
		}
		t.Errorf("%s: schema %s requires %q, but Go type %s omits it when empty (%s)", where, label, name, gt, f.Tag.Get("json"))
	}
	if response {
		for _, name := range sortedNames(fields) {
			if _, ok := o.props[name]; ok && !omits(fields[name]) && !slices.Contains(o.required, name) {
				t.Errorf("%s: Go type %s always sends %q (no omitempty), but schema %s does not list it as required", where, gt, name, label)
			}
		}
	}
	// Nested objects and arrays of objects.
	for _, name := range sortedNames(fields) {
		ps, ok := o.props[name]
		if !ok {
			continue
		}
		st := structOf(fields[name].Type)
		if st == nil {
			continue
		}
		ps, _ = d.resolve(ps)
		if items, ok := ps["items"].(map[string]any); ok {
			ps = items
		}
		d.compare(t, where+"."+name, ps, st, response, seen)
	}
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func sortedNames[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// operation finds the operation of method and a concrete path.
func (d schemaDoc) operation(method, path string) (map[string]any, string) {
	paths, _ := d.raw["paths"].(map[string]any)
	for tmpl, v := range paths {
		if !pathMatches(tmpl, path) {
			continue
		}
		ops, _ := v.(map[string]any)
		if op, ok := ops[strings.ToLower(method)].(map[string]any); ok {
			return op, tmpl
		}
	}
	return nil, ""
}

func pathMatches(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if !(strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}")) && ts[i] != ps[i] {
			return false
		}
	}
	return true
}

func TestClientTypesMatchOpenAPI(t *testing.T) {
	doc := loadSchemaDoc(t)
	var mu sync.Mutex
	var last string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = r.Method + " " + r.URL.Path
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := New(Config{Addr: srv.URL, Token: "t", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	seen := map[string]bool{}
	for _, ac := range apiCalls() {
		covered[ac.method] = true
		if err := ac.call(t.Context(), c); err != nil {
			t.Errorf("%s: %v", ac.method, err)
			continue
		}
		mu.Lock()
		route := last
		mu.Unlock()
		method, path, _ := strings.Cut(route, " ")
		op, tmpl := doc.operation(method, path)
		if op == nil {
			t.Errorf("%s calls %s, which openapi.json does not describe", ac.method, route)
			continue
		}
		where := ac.method + " (" + method + " " + tmpl + ")"
		reqBody, _ := op["requestBody"].(map[string]any)
		switch {
		case ac.req != nil && reqBody == nil:
			t.Errorf("%s sends a %s, but the operation has no requestBody", where, ac.req)
		case ac.req != nil:
			s := jsonSchema(reqBody)
			if s == nil {
				t.Errorf("%s: requestBody has no application/json schema", where)
			} else {
				doc.compare(t, where+" request", s, ac.req, false, seen)
			}
		case reqBody != nil:
			t.Errorf("%s sends no body of its own type, but the operation has a requestBody", where)
		}
		if ac.resp == nil {
			continue
		}
		responses, _ := op["responses"].(map[string]any)
		var s map[string]any
		for _, code := range []string{"200", "201", "202"} {
			if r, ok := responses[code].(map[string]any); ok {
				s = jsonSchema(r)
				break
			}
		}
		if s == nil {
			t.Errorf("%s: no 2xx application/json response schema", where)
			continue
		}
		doc.compare(t, where+" response", s, ac.resp, true, seen)
	}
	// Every exported method of Client that calls the API is in apiCalls.
	for m := range reflect.TypeFor[*Client]().Methods() {
		if m.Name != "Addr" && !covered[m.Name] {
			t.Errorf("Client.%s is not checked against openapi.json: add it to apiCalls", m.Name)
		}
	}
	// The error body too.
	if s, ok := doc.schemas["Error"].(map[string]any); ok {
		doc.compare(t, "error body", s, typeOf[ErrorBody](), true, seen)
	} else {
		t.Error("openapi.json has no components.schemas.Error")
	}
}

func jsonSchema(v map[string]any) map[string]any {
	content, _ := v["content"].(map[string]any)
	js, _ := content["application/json"].(map[string]any)
	s, _ := js["schema"].(map[string]any)
	return s
}
