package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/notify"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/testwait"
)

// hookReceiver is a real HTTPS receiver that verifies each request as the
// docs say (HMAC-SHA256 keyed by the secret over timestamp "." body, a
// timestamp within 5 minutes).
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	events []map[string]any
	bad    int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		ts := req.Header.Get("X-Orgkms-Timestamp")
		mac := hmac.New(sha256.New, []byte(r.secret))
		mac.Write([]byte(ts + "." + string(body)))
		want := "v1=" + hex.EncodeToString(mac.Sum(nil))
		n, err := strconv.ParseInt(ts, 10, 64)
		fresh := err == nil && time.Since(time.Unix(n, 0)).Abs() < 5*time.Minute
		if !fresh || !strings.Contains(req.Header.Get("X-Orgkms-Signature"), want) {
			r.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		r.events = append(r.events, ev)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) caFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "receiver-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (r *hookReceiver) find(typ, state string) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.events {
		data, _ := ev["data"].(map[string]any)
		if ev["type"] == typ && (state == "" || data["state"] == state) {
			return ev
		}
	}
	return nil
}

// webhookServer is a whole orgkms with the azure cloud on the emulator,
// its background work running, org acme with a token of its admins, and
// logs captured.
type webhookServer struct {
	srv   *httptest.Server
	emu   *azureemu.Emulator
	demo  azureemu.Demo
	token string
	logs  *syncBuffer
	s     *server.Server
}

func startWebhookServer(t *testing.T, wh config.Webhooks) *webhookServer {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var handler atomic.Pointer[http.Handler]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*handler.Load()).ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	callbackURL := srv.URL + "/v1/cmk/callback"
	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	demo, err := azureemu.SeedDemo(emu, []string{callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.SetKeyTags(azureemu.DemoVault, azureemu.DemoKey, "", map[string]string{"orgkms-org": "acme"}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DataDir: t.TempDir(), PublicURL: srv.URL, LogRequests: true, Webhooks: wh}
	cfg.CMK.Clouds, cfg.CMK.CallbackURL = []string{"azure"}, callbackURL
	cfg.CMK.ProbeInterval = config.Duration(time.Second)
	cfg.CMK.Azure = config.Azure{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/"}
	s, err := server.Open(ctx, cfg, server.Options{Logger: log, Migrate: true, AzureHTTPClient: emu.HTTPClient(), AzureMaxRetries: 1,
		AzureRetryDelay: 10 * time.Millisecond, JobPoll: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("server.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	conf := newConformance(t)
	h := conf.wrap(s.Handler)
	handler.Store(&h)
	t.Cleanup(func() { conf.check(t) })
	for _, org := range []string{"acme", "globex"} {
		if _, err := s.Keys.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, token, err := s.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "sec", OrgID: "acme", Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	s.Start(runCtx)
	return &webhookServer{srv: srv, emu: emu, demo: demo, token: token, logs: logs, s: s}
}

// waitUntil polls cond with a generous timeout.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, what, 90*time.Second, cond)
}

// TestWebhookOnCMKRevocation: an org's admin registers a webhook, tests
// it, and enables a customer managed key; the activation and then the
// key's disabling in the vault (the emulator) reach the receiver as
// signed cmk.state_changed events (active, then revoked with its reason),
// and the history shows them. The secret is in the create response only:
// in no later response and no log line.
func TestWebhookOnCMKRevocation(t *testing.T) {
	r := newHookReceiver(t)
	ws := startWebhookServer(t, config.Webhooks{AllowPrivateAddresses: true, CAFile: r.caFile(t), Backoff: config.Duration(100 * time.Millisecond),
		Poll: config.Duration(50 * time.Millisecond)})
	srv, token := ws.srv, ws.token
	code, body := call(t, srv, "POST", "/v1/orgs/acme/webhooks", token, client.CreateWebhookRequest{URL: r.srv.URL + "/orgkms", Description: "security team",
		Events: []string{"cmk.state_changed", "cmk.rotation_followed", "job.failed"}})
	var created client.WebhookCreated
	if code != 201 || json.Unmarshal(body, &created) != nil || !strings.HasPrefix(created.Secret, "whsec_") {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	r.mu.Lock()
	r.secret = created.Secret
	r.mu.Unlock()
	var responses []string
	record := func(code int, body []byte) []byte { responses = append(responses, string(body)); return body }

	code, body = call(t, srv, "POST", "/v1/orgs/acme/webhooks/"+created.ID+"/test", token, nil)
	var ping client.WebhookDelivery
	if json.Unmarshal(record(code, body), &ping) != nil || code != 200 || ping.State != "delivered" || ping.History[0].StatusCode != 200 || r.find("ping", "") == nil {
		t.Fatalf("test webhook: %d %s", code, body)
	}

	consentViaAPI(t, srv, ws.emu, ws.demo, token)
	if code, body := call(t, srv, "POST", "/v1/orgs/acme/cmk/configure", token, client.CMKConfigureRequest{VaultURI: ws.demo.VaultURI, KeyName: ws.demo.KeyName}); code != 200 {
		t.Fatalf("configure: %d %s", code, body)
	}
	if code, body := call(t, srv, "POST", "/v1/orgs/acme/cmk/enable", token, nil); code != 202 {
		t.Fatalf("enable: %d %s", code, body)
	}
	waitUntil(t, "the activation's notification", func() bool { return r.find("cmk.state_changed", "active") != nil })

	disabled := false
	if _, err := ws.emu.UpdateKey(azureemu.DemoVault, azureemu.DemoKey, "", &disabled, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the revocation's notification", func() bool { return r.find("cmk.state_changed", "revoked") != nil })
	ev := r.find("cmk.state_changed", "revoked")
	data := ev["data"].(map[string]any)
	if ev["org"] != "acme" || data["reason"] != "cmk_key_disabled" || !strings.HasPrefix(ev["id"].(string), "evt_") {
		t.Errorf("revocation event = %v, want org acme, reason cmk_key_disabled", ev)
	}
	r.mu.Lock()
	if r.bad != 0 {
		t.Errorf("%d requests did not verify", r.bad)
	}
	r.mu.Unlock()

	code, body = call(t, srv, "GET", "/v1/orgs/acme/webhooks/"+created.ID+"/deliveries", token, nil)
	var dl client.WebhookDeliveryList
	if json.Unmarshal(record(code, body), &dl) != nil || code != 200 || len(dl.Deliveries) < 3 {
		t.Fatalf("deliveries: %d %s", code, body)
	}
	var types []string
	for _, d := range dl.Deliveries {
		types = append(types, d.EventType)
		if d.State == "delivered" && (len(d.History) == 0 || d.History[len(d.History)-1].StatusCode != 200) {
			t.Errorf("delivery %+v has no 200 attempt", d)
		}
	}
	if types[len(types)-1] != "ping" {
		t.Errorf("history types (newest first) = %v, want the ping last", types)
	}
	code, body = call(t, srv, "GET", "/v1/orgs/acme/webhooks", token, nil)
	record(code, body)
	code, body = call(t, srv, "GET", "/v1/orgs/acme/webhooks/"+created.ID, token, nil)
	record(code, body)
	code, body = call(t, srv, "GET", "/v1/orgs/acme/audit", token, nil)
	if !strings.Contains(string(record(code, body)), `"webhook.create"`) {
		t.Errorf("audit log has no webhook.create: %s", body)
	}
	raw := strings.TrimPrefix(created.Secret, "whsec_")
	for _, resp := range responses {
		if strings.Contains(resp, raw) {
			t.Errorf("a response after creation contains the secret: %s", resp)
		}
	}
	if strings.Contains(string(ws.logs.Bytes()), raw) {
		t.Errorf("the logs contain the secret")
	}
	if code, body := call(t, srv, "DELETE", "/v1/orgs/acme/webhooks/"+created.ID, token, nil); code != 200 {
		t.Errorf("delete: %d %s", code, body)
	}
	if code, _ := call(t, srv, "GET", "/v1/orgs/acme/webhooks/"+created.ID, token, nil); code != 404 {
		t.Errorf("get after delete: %d, want 404", code)
	}
}

// TestWebhookBadInput: every bad request to the webhook routes is a 4xx
// with a stable code; another org's webhook is a 404 or 403.
func TestWebhookBadInput(t *testing.T) {
	ws := startWebhookServer(t, config.Webhooks{})
	srv, token := ws.srv, ws.token
	cases := []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"no body", "POST", "/v1/orgs/acme/webhooks", nil, 400, "invalid_argument", ""},
		{"unknown field", "POST", "/v1/orgs/acme/webhooks", map[string]string{"url": "https://8.8.8.8/x", "secret": "mine"}, 400, "invalid_argument", ""},
		{"no url", "POST", "/v1/orgs/acme/webhooks", map[string]string{"description": "x"}, 400, "invalid_argument", "url"},
		{"bad url", "POST", "/v1/orgs/acme/webhooks", map[string]string{"url": "not a url"}, 400, "invalid_argument", "url"},
		{"http", "POST", "/v1/orgs/acme/webhooks", map[string]string{"url": "http://8.8.8.8/x"}, 400, "webhook_url_insecure", "url"},
		{"loopback", "POST", "/v1/orgs/acme/webhooks", map[string]string{"url": "https://127.0.0.1/x"}, 400, "webhook_address_forbidden", "url"},
		{"private", "POST", "/v1/orgs/acme/webhooks", map[string]string{"url": "https://192.168.0.10/x"}, 400, "webhook_address_forbidden", "url"},
		{"metadata", "POST", "/v1/orgs/acme/webhooks", map[string]string{"url": "https://169.254.169.254/"}, 400, "webhook_address_forbidden", "url"},
		{"unknown event", "POST", "/v1/orgs/acme/webhooks", map[string]any{"url": "https://8.8.8.8/x", "events": []string{"all"}}, 400, "invalid_argument", "events"},
		{"events not a list", "POST", "/v1/orgs/acme/webhooks", map[string]any{"url": "https://8.8.8.8/x", "events": "ping"}, 400, "invalid_argument", "events"},
		{"missing webhook", "GET", "/v1/orgs/acme/webhooks/wh_0000000000000000", nil, 404, "not_found", ""},
		{"missing webhook test", "POST", "/v1/orgs/acme/webhooks/wh_0000000000000000/test", nil, 404, "not_found", ""},
		{"missing webhook deliveries", "GET", "/v1/orgs/acme/webhooks/wh_0000000000000000/deliveries", nil, 404, "not_found", ""},
		{"missing webhook delete", "DELETE", "/v1/orgs/acme/webhooks/wh_0000000000000000", nil, 404, "not_found", ""},
		{"another org", "GET", "/v1/orgs/globex/webhooks", nil, 403, "permission_denied", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(t, srv, tc.method, tc.path, token, tc.body)
			var e client.ErrorBody
			json.Unmarshal(body, &e)
			if code != tc.status || e.Error.Code != tc.code || (tc.field != "" && e.Error.Field != tc.field) {
				t.Errorf("%s %s: %d %s, want %d %s (field %q)", tc.method, tc.path, code, body, tc.status, tc.code, tc.field)
			}
		})
	}
	// A public receiver is accepted; a bad limit on its history is refused.
	code, body := call(t, srv, "POST", "/v1/orgs/acme/webhooks", token, map[string]string{"url": "https://8.8.8.8/hook"})
	var created client.WebhookCreated
	if code != 201 || json.Unmarshal(body, &created) != nil {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := call(t, srv, "GET", "/v1/orgs/acme/webhooks/"+created.ID+"/deliveries?limit=0", token, nil); code != 400 || !strings.Contains(string(body), `"invalid_argument"`) {
		t.Errorf("deliveries?limit=0: %d %s, want 400 invalid_argument", code, body)
	}
	// globex's operator-created webhook is invisible to acme's token.
	gw, _, err := ws.s.Webhooks.Create(context.Background(), "globex", "test", notifyReq("https://8.8.4.4/hook"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, srv, "GET", "/v1/orgs/acme/webhooks/"+gw.ID, token, nil); code != 404 {
		t.Errorf("acme reads globex's webhook: %d, want 404", code)
	}
	if code, _ := call(t, srv, "DELETE", "/v1/orgs/acme/webhooks/"+gw.ID, token, nil); code != 404 {
		t.Errorf("acme deletes globex's webhook: %d, want 404", code)
	}
}

func notifyReq(url string) notify.CreateRequest { return notify.CreateRequest{URL: url} }

// TestWebhookOnDeletionScheduled: a data key's and then the org's
// scheduled deletion reach the org's webhook as signed deletion.scheduled
// events that name the target and the date; a cancellation sends none.
func TestWebhookOnDeletionScheduled(t *testing.T) {
	r := newHookReceiver(t)
	ws := startWebhookServer(t, config.Webhooks{AllowPrivateAddresses: true, CAFile: r.caFile(t), Backoff: config.Duration(100 * time.Millisecond),
		Poll: config.Duration(50 * time.Millisecond)})
	srv, token := ws.srv, ws.token
	_, operator, err := ws.s.Tokens.Create(t.Context(), "test", auth.CreateTokenRequest{Principal: "ops", Roles: []auth.Role{auth.RoleOperator}})
	if err != nil {
		t.Fatal(err)
	}
	code, body := call(t, srv, "POST", "/v1/orgs/acme/webhooks", token, client.CreateWebhookRequest{URL: r.srv.URL + "/orgkms", Events: []string{"deletion.scheduled"}})
	var created client.WebhookCreated
	if code != 201 || json.Unmarshal(body, &created) != nil {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	r.mu.Lock()
	r.secret = created.Secret
	r.mu.Unlock()
	find := func(target string) map[string]any {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, ev := range r.events {
			if data, _ := ev["data"].(map[string]any); ev["type"] == "deletion.scheduled" && data["target"] == target {
				return ev
			}
		}
		return nil
	}

	if code, body := call(t, srv, "DELETE", "/v1/orgs/acme/keys/default", token, map[string]int{"waiting_days": 10}); code != 200 {
		t.Fatalf("schedule the key's deletion: %d %s", code, body)
	}
	waitUntil(t, "the key's deletion.scheduled", func() bool { return find("key/default") != nil })
	data := find("key/default")["data"].(map[string]any)
	if data["waiting_days"] != "10" || data["deletion_date"] == nil {
		t.Errorf("key deletion event data = %v, want waiting_days 10 and the deletion date", data)
	}
	if code, body := call(t, srv, "POST", "/v1/orgs/acme/keys/default/cancel-deletion", token, nil); code != 200 {
		t.Fatalf("cancel the key's deletion: %d %s", code, body)
	}
	if code, body := call(t, srv, "DELETE", "/v1/orgs/acme", operator, nil); code != 202 {
		t.Fatalf("schedule the org's deletion: %d %s", code, body)
	}
	waitUntil(t, "the org's deletion.scheduled", func() bool { return find("org/acme") != nil })
	ev := find("org/acme")
	if data := ev["data"].(map[string]any); ev["org"] != "acme" || data["waiting_days"] != "7" {
		t.Errorf("org deletion event = %v, want org acme, waiting_days 7", ev)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != 0 {
		t.Errorf("%d requests did not verify", r.bad)
	}
	for _, ev := range r.events {
		if ev["type"] != "deletion.scheduled" {
			t.Errorf("event %v: the webhook subscribed to deletion.scheduled only", ev)
		}
	}
	if len(r.events) != 2 {
		t.Errorf("received %d events, want 2 (the cancellation sends none)", len(r.events))
	}
}
