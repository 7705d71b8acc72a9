package azureemu

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

const apiV = "?api-version=2025-07-01"

// TestReplay drives the data plane with raw HTTP requests in the documented
// shapes and checks status codes, headers and bodies.
func TestReplay(t *testing.T) {
	clock := newClock()
	e := startEmu(t, Config{Now: clock.Now})
	w := newWorld(t, e)
	c := e.HTTPClient()
	base := "https://demo.vault.azure.net"
	tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")

	t.Run("challenge", func(t *testing.T) {
		r := send(t, c, http.MethodPost, base+"/keys/k1/wrapkey"+apiV, "", nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", r.status)
		}
		want := `Bearer authorization="https://login.microsoftonline.com/` + w.customer.ID + `", resource="https://vault.azure.net"`
		if got := r.header.Get("WWW-Authenticate"); got != want {
			t.Errorf("WWW-Authenticate = %q, want %q", got, want)
		}
		code, _, msg := r.errCodes(t)
		if code != "Unauthorized" || msg != "AKV10000: Request is missing a Bearer or PoP token." {
			t.Errorf("error = %s %q", code, msg)
		}
	})

	t.Run("api-version required", func(t *testing.T) {
		r := send(t, c, http.MethodGet, base+"/keys/k1", tok, nil)
		if code, _, _ := r.errCodes(t); r.status != 400 || code != "BadParameter" {
			t.Errorf("status %d code %s, want 400 BadParameter", r.status, code)
		}
	})

	var ver string
	t.Run("get key bundle", func(t *testing.T) {
		for _, p := range []string{"/keys/k1", "/keys/k1/", "/KEYS/K1/"} {
			r := send(t, c, http.MethodGet, base+p+apiV, tok, nil)
			if r.status != 200 {
				t.Fatalf("GET %s: status %d %s", p, r.status, r.body)
			}
			m := r.json(t)
			key := m["key"].(map[string]any)
			attr := m["attributes"].(map[string]any)
			kid := key["kid"].(string)
			if !strings.HasPrefix(kid, base+"/keys/k1/") || len(kid) != len(base+"/keys/k1/")+32 {
				t.Errorf("kid = %s", kid)
			}
			ver = kid[strings.LastIndex(kid, "/")+1:]
			if key["kty"] != "RSA" || key["e"] != "AQAB" || len(key["key_ops"].([]any)) != 6 {
				t.Errorf("key = %v", key)
			}
			n, err := base64.RawURLEncoding.DecodeString(key["n"].(string))
			if err != nil || len(n) != 256 {
				t.Errorf("n: %d bytes, %v", len(n), err)
			}
			if attr["enabled"] != true || attr["recoveryLevel"] != "Recoverable+Purgeable" || attr["recoverableDays"] != float64(90) ||
				attr["created"] != float64(clock.Now().Unix()) {
				t.Errorf("attributes = %v", attr)
			}
		}
	})

	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	var wrapped string
	t.Run("wrap unwrap", func(t *testing.T) {
		r := send(t, c, http.MethodPost, base+"/keys/k1/WrapKey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": base64.RawURLEncoding.EncodeToString(dek)})
		if r.status != 200 {
			t.Fatalf("wrap: %d %s", r.status, r.body)
		}
		m := r.json(t)
		if m["kid"] != base+"/keys/k1/"+ver {
			t.Errorf("wrap kid = %v, want version %s", m["kid"], ver)
		}
		wrapped = m["value"].(string)
		if len(wrapped) != 342 || strings.Contains(wrapped, "=") {
			t.Errorf("wrapped value %d chars: %q", len(wrapped), wrapped)
		}
		padded := base64.URLEncoding.EncodeToString(mustB64(t, wrapped)) // padding accepted on input
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": padded})
		if r.status != 200 {
			t.Fatalf("unwrap: %d %s", r.status, r.body)
		}
		if got := mustB64(t, r.json(t)["value"].(string)); string(got) != string(dek) {
			t.Errorf("unwrap returned other bytes")
		}
		for _, alg := range []string{"RSA-OAEP", "RSA1_5"} {
			r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/encrypt"+apiV, tok, map[string]string{"alg": alg, "value": "aGVsbG8"})
			ct := r.json(t)["value"].(string)
			r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/decrypt"+apiV, tok, map[string]string{"alg": alg, "value": ct})
			if r.status != 200 || r.json(t)["value"] != "aGVsbG8" {
				t.Errorf("%s round trip: %d %s", alg, r.status, r.body)
			}
		}
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": "AAAA"})
		if code, _, _ := r.errCodes(t); r.status != 400 || code != "BadParameter" {
			t.Errorf("bad ciphertext: %d %s", r.status, code)
		}
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/wrapkey"+apiV, tok, map[string]string{"alg": "A256KW", "value": "AAAA"})
		if r.status != 400 {
			t.Errorf("A256KW on RSA: %d", r.status)
		}
	})

	t.Run("versions paging", func(t *testing.T) {
		r := send(t, c, http.MethodPost, base+"/keys/k1/rotate"+apiV, tok, nil)
		if r.status != 200 {
			t.Fatalf("rotate: %d %s", r.status, r.body)
		}
		newKID := r.json(t)["key"].(map[string]any)["kid"].(string)
		if strings.HasSuffix(newKID, ver) {
			t.Fatal("rotate kept the version")
		}
		var kids []string
		next := base + "/keys/k1/versions" + apiV + "&maxresults=1"
		for next != "" {
			r := send(t, c, http.MethodGet, next, tok, nil)
			if r.status != 200 {
				t.Fatalf("versions: %d %s", r.status, r.body)
			}
			m := r.json(t)
			for _, it := range m["value"].([]any) {
				item := it.(map[string]any)
				if _, ok := item["key"]; ok {
					t.Error("list item carries key material")
				}
				kids = append(kids, item["kid"].(string))
			}
			next, _ = m["nextLink"].(string)
			if next != "" && !strings.Contains(next, "$skiptoken=") {
				t.Errorf("nextLink = %s", next)
			}
		}
		if len(kids) != 2 || kids[0] > kids[1] {
			t.Errorf("versions = %v, want 2 sorted by id", kids)
		}
		// The old version still unwraps.
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": wrapped})
		if r.status != 200 {
			t.Errorf("unwrap old version after rotate: %d %s", r.status, r.body)
		}
		r = send(t, c, http.MethodGet, base+"/keys/k1/versions"+apiV+"&maxresults=26", tok, nil)
		if code, _, _ := r.errCodes(t); r.status != 400 || code != "BadParameter" {
			t.Errorf("maxresults=26: %d %s", r.status, code)
		}
	})

	t.Run("errors", func(t *testing.T) {
		r := send(t, c, http.MethodGet, base+"/keys/nope"+apiV, tok, nil)
		code, inner, msg := r.errCodes(t)
		if r.status != 404 || code != "KeyNotFound" || inner != "" ||
			msg != "A key with (name/id) nope was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182" {
			t.Errorf("missing key: %d %s %q", r.status, code, msg)
		}
		r = send(t, c, http.MethodGet, base+"/keys/k1/00000000000000000000000000000000"+apiV, tok, nil)
		if _, _, msg := r.errCodes(t); r.status != 404 || !strings.Contains(msg, "k1/00000000000000000000000000000000") {
			t.Errorf("missing version: %d %s", r.status, msg)
		}

		homeTok := token(t, e, w.home.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
		r = send(t, c, http.MethodGet, base+"/keys/k1"+apiV, homeTok, nil)
		code, _, msg = r.errCodes(t)
		want := "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/" + w.customer.ID + "/, found https://sts.windows.net/" + w.home.ID + "/."
		if r.status != 401 || code != "Unauthorized" || msg != want {
			t.Errorf("wrong tenant: %d %s %q", r.status, code, msg)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Error("401 without challenge")
		}

		forged := tok[:len(tok)-4] + "AAAA"
		if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, forged, nil); r.status != 401 {
			t.Errorf("forged token: %d", r.status)
		}
		mgmt := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://management.azure.com/.default")
		r = send(t, c, http.MethodGet, base+"/keys/k1"+apiV, mgmt, nil)
		if _, _, msg := r.errCodes(t); r.status != 401 || !strings.HasPrefix(msg, "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com") {
			t.Errorf("wrong audience: %d %s", r.status, msg)
		}
	})

	t.Run("forbidden by policy", func(t *testing.T) {
		if err := e.SetPolicy("demo", w.sp.ObjectID, []string{"get", "wrapKey"}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := e.SetPolicy("demo", w.sp.ObjectID, []string{"get", "list", "wrapKey", "unwrapKey", "update", "create", "delete", "recover", "purge", "rotate", "encrypt", "decrypt"}); err != nil {
				t.Fatal(err)
			}
		}()
		r := send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": wrapped})
		code, inner, msg := r.errCodes(t)
		want := "The user, group or application 'appid=" + w.app.ClientID + ";oid=" + w.sp.ObjectID + ";iss=https://sts.windows.net/" + w.customer.ID +
			"/' does not have keys unwrapKey permission on key vault 'demo;location=eastus'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
		if r.status != 403 || code != "Forbidden" || inner != "ForbiddenByPolicy" || msg != want {
			t.Errorf("got %d %s/%s %q", r.status, code, inner, msg)
		}
	})

	t.Run("key state", func(t *testing.T) {
		r := send(t, c, http.MethodPatch, base+"/keys/k1/"+ver+apiV, tok, map[string]any{"attributes": map[string]any{"enabled": false}})
		if r.status != 200 || r.json(t)["attributes"].(map[string]any)["enabled"] != false {
			t.Fatalf("disable: %d %s", r.status, r.body)
		}
		if r := send(t, c, http.MethodGet, base+"/keys/k1/"+ver+apiV, tok, nil); r.status != 200 {
			t.Errorf("GET disabled: %d", r.status)
		}
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": wrapped})
		code, inner, msg := r.errCodes(t)
		if r.status != 403 || code != "Forbidden" || inner != "KeyDisabled" || msg != "Operation unwrapKey is not allowed on a disabled key." {
			t.Errorf("disabled unwrap: %d %s/%s %q", r.status, code, inner, msg)
		}
		f := false
		must[KeyInfo](t)(e.UpdateKey("demo", "k1", ver, boolPtr(true), nil, nil))
		_ = f

		// key_ops
		r = send(t, c, http.MethodPost, base+"/keys/k2/create"+apiV, tok, map[string]any{"kty": "RSA", "key_size": 2048, "key_ops": []string{"wrapKey"}})
		if r.status != 200 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		r = send(t, c, http.MethodPost, base+"/keys/k2/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": wrapped})
		if _, inner, msg := r.errCodes(t); r.status != 403 || inner != "KeyOperationForbidden" || msg != "Operation unwrapKey is not permitted on this key." {
			t.Errorf("key_ops: %d %s %q", r.status, inner, msg)
		}
		r = send(t, c, http.MethodPost, base+"/keys/k3/create"+apiV, tok, map[string]any{"kty": "EC-HSM"})
		if r.status != 400 {
			t.Errorf("create EC-HSM: %d", r.status)
		}

		// exp: wrap refused, unwrap allowed.
		past := clock.Now().Add(-time.Minute)
		must[KeyInfo](t)(e.UpdateKey("demo", "k1", ver, nil, nil, &past))
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/wrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": "AAAA"})
		if r.status != 403 {
			t.Errorf("wrap with expired key: %d", r.status)
		}
		r = send(t, c, http.MethodPost, base+"/keys/k1/"+ver+"/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": wrapped})
		if r.status != 200 {
			t.Errorf("unwrap with expired key: %d %s", r.status, r.body)
		}
		must[KeyInfo](t)(e.UpdateKey("demo", "k1", ver, nil, nil, &time.Time{}))
	})

	t.Run("faults", func(t *testing.T) {
		if err := e.SetFault("demo", Fault{Status: 429, RetryAfter: 2 * time.Second, Count: 1}); err != nil {
			t.Fatal(err)
		}
		r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil)
		code, _, msg := r.errCodes(t)
		if r.status != 429 || code != "Throttled" || r.header.Get("Retry-After") != "2" || !strings.Contains(msg, "VaultRequestTypeLimitReached") {
			t.Errorf("throttled: %d %s %q Retry-After=%q", r.status, code, msg, r.header.Get("Retry-After"))
		}
		if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil); r.status != 200 {
			t.Errorf("after Count: %d", r.status)
		}
		must[struct{}](t)(struct{}{}, e.SetFault("demo", Fault{Status: 429}))
		if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil); r.status != 429 || r.header.Get("Retry-After") != "" {
			t.Errorf("429 without Retry-After: %d %q", r.status, r.header.Get("Retry-After"))
		}
		must[struct{}](t)(struct{}{}, e.SetFault("demo", Fault{Status: 503, Latency: 20 * time.Millisecond}))
		start := time.Now()
		if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil); r.status != 503 || time.Since(start) < 20*time.Millisecond {
			t.Errorf("503 with latency: %d after %v", r.status, time.Since(start))
		}
		must[struct{}](t)(struct{}{}, e.SetFault("demo", Fault{Outage: true}))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/keys/k1"+apiV, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("outage: got status %d, want a connection error", resp.StatusCode)
		}
		must[struct{}](t)(struct{}{}, e.ClearFault("demo"))
	})

	t.Run("delete recover purge", func(t *testing.T) {
		r := send(t, c, http.MethodDelete, base+"/keys/k2"+apiV, tok, nil)
		m := r.json(t)
		if r.status != 200 || m["recoveryId"] != base+"/deletedkeys/k2" ||
			m["scheduledPurgeDate"].(float64)-m["deletedDate"].(float64) != 90*86400 || m["key"] == nil {
			t.Fatalf("delete: %d %s", r.status, r.body)
		}
		if r := send(t, c, http.MethodPost, base+"/keys/k2/wrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": "AAAA"}); r.status != 404 {
			t.Errorf("wrap deleted: %d", r.status)
		}
		if r := send(t, c, http.MethodPost, base+"/keys/k2/create"+apiV, tok, map[string]any{"kty": "RSA"}); r.status != 409 {
			t.Errorf("create over deleted: %d", r.status)
		} else if _, inner, _ := r.errCodes(t); inner != "ObjectIsDeletedButRecoverable" {
			t.Errorf("create over deleted inner = %s", inner)
		}
		if r := send(t, c, http.MethodGet, base+"/deletedkeys/k2"+apiV, tok, nil); r.status != 200 {
			t.Errorf("get deleted: %d", r.status)
		}
		if r := send(t, c, http.MethodGet, base+"/deletedkeys"+apiV, tok, nil); r.status != 200 || len(r.json(t)["value"].([]any)) != 1 {
			t.Errorf("list deleted: %d %s", r.status, r.body)
		}
		if r := send(t, c, http.MethodPost, base+"/deletedkeys/k2/recover"+apiV, tok, nil); r.status != 200 {
			t.Errorf("recover: %d", r.status)
		}
		if r := send(t, c, http.MethodGet, base+"/keys/k2"+apiV, tok, nil); r.status != 200 {
			t.Errorf("get recovered: %d", r.status)
		}
		send(t, c, http.MethodDelete, base+"/keys/k2"+apiV, tok, nil)
		r = send(t, c, http.MethodDelete, base+"/deletedkeys/k2"+apiV, tok, nil)
		if r.status != 204 || len(r.body) != 0 {
			t.Errorf("purge: %d %q", r.status, r.body)
		}
		r = send(t, c, http.MethodGet, base+"/deletedkeys/k2"+apiV, tok, nil)
		if code, _, msg := r.errCodes(t); r.status != 404 || code != "KeyNotFound" || msg != "Deleted Key not found: k2" {
			t.Errorf("get purged: %d %s %q", r.status, code, msg)
		}
	})

	t.Run("purge protection", func(t *testing.T) {
		must[Vault](t)(e.CreateVault(w.customer.ID, "locked", VaultOptions{SoftDeleteDays: 7, PurgeProtection: true}))
		must[KeyInfo](t)(e.CreateKey("locked", "k", KeyOptions{}))
		must[struct{}](t)(struct{}{}, e.SetPolicy("locked", w.app.ClientID, []string{"get", "delete", "purge"}))
		lb := "https://locked.vault.azure.net"
		r := send(t, c, http.MethodGet, lb+"/keys/k"+apiV, tok, nil)
		if lvl := r.json(t)["attributes"].(map[string]any)["recoveryLevel"]; lvl != "CustomizedRecoverable" {
			t.Errorf("recoveryLevel = %v", lvl)
		}
		send(t, c, http.MethodDelete, lb+"/keys/k"+apiV, tok, nil)
		r = send(t, c, http.MethodDelete, lb+"/deletedkeys/k"+apiV, tok, nil)
		if code, _, msg := r.errCodes(t); r.status != 403 || code != "Forbidden" || !strings.HasPrefix(msg, `Operation "purge" is not allowed because purge protection is enabled for this vault.`) {
			t.Errorf("purge protected: %d %s %q", r.status, code, msg)
		}
		clock.Advance(8 * 24 * time.Hour)
		tok2 := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
		if r := send(t, c, http.MethodGet, lb+"/deletedkeys/k"+apiV, tok2, nil); r.status != 404 {
			t.Errorf("deleted key after retention: %d", r.status)
		}
		// The first token has expired by now.
		if r := send(t, c, http.MethodGet, lb+"/keys/k"+apiV, tok, nil); r.status != 401 {
			t.Errorf("expired token: %d", r.status)
		}
	})

	t.Run("counters", func(t *testing.T) {
		e.ResetCounters()
		tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
		send(t, c, http.MethodPost, base+"/keys/k1/wrapkey"+apiV, "", nil)
		for range 3 {
			send(t, c, http.MethodPost, base+"/keys/k1/wrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": "AAAA"})
		}
		send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil)
		got := e.VaultCounters("demo")
		if got[OpChallenge] != 1 || got[OpWrapKey] != 3 || got[OpGet] != 1 || len(got) != 3 {
			t.Errorf("counters = %v", got)
		}
	})
}

func TestManagedHSM(t *testing.T) {
	e := startEmu(t, Config{})
	ten := must[Tenant](t)(e.CreateTenant("fabrikam"))
	app := must[App](t)(e.RegisterApp(ten.ID, AppRegistration{Name: "svc"}))
	must[Vault](t)(e.CreateVault(ten.ID, "hsm1", VaultOptions{ManagedHSM: true}))
	if _, err := e.CreateVault(ten.ID, "kv1", VaultOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateKey("kv1", "aes", KeyOptions{Kty: "oct-HSM"}); err == nil {
		t.Error("oct-HSM in a vault: no error")
	}
	must[KeyInfo](t)(e.CreateKey("hsm1", "aes", KeyOptions{Kty: "oct-HSM", Size: 256}))
	rk := must[KeyInfo](t)(e.CreateKey("hsm1", "rsa", KeyOptions{Kty: "RSA"}))
	if rk.Kty != "RSA-HSM" {
		t.Errorf("Managed HSM RSA kty = %s", rk.Kty)
	}
	c := e.HTTPClient()
	base := "https://hsm1.managedhsm.azure.net"

	r := send(t, c, http.MethodGet, base+"/keys/aes"+apiV, "", nil)
	if r.status != 401 || len(r.body) != 0 || !strings.Contains(r.header.Get("WWW-Authenticate"), `resource="https://managedhsm.azure.net"`) {
		t.Errorf("challenge: %d %q %q", r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
	vtok := token(t, e, ten.ID, app.ClientID, app.Secret, "https://vault.azure.net/.default")
	if r := send(t, c, http.MethodGet, base+"/keys/aes"+apiV, vtok, nil); r.status != 401 {
		t.Errorf("vault token on HSM: %d", r.status)
	}
	tok := token(t, e, ten.ID, app.ClientID, app.Secret, "https://managedhsm.azure.net/.default")
	r = send(t, c, http.MethodPost, base+"/keys/aes/wrapkey"+apiV, tok, map[string]string{"alg": "A256KW", "value": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})
	if _, inner, _ := r.errCodes(t); r.status != 403 || inner != "ForbiddenByRbac" {
		t.Errorf("no role: %d %s", r.status, inner)
	}
	must[struct{}](t)(struct{}{}, e.SetPolicy("hsm1", app.ClientID, []string{"wrapKey", "unwrapKey", "encrypt", "decrypt", "get"}))
	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	for _, alg := range []string{"A256KW", "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"} {
		r = send(t, c, http.MethodPost, base+"/keys/aes/wrapkey"+apiV, tok, map[string]string{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(dek)})
		m := r.json(t)
		if r.status != 200 || m["alg"] != alg {
			t.Fatalf("%s wrap: %d %s", alg, r.status, r.body)
		}
		r = send(t, c, http.MethodPost, base+"/keys/aes/unwrapkey"+apiV, tok, map[string]string{"alg": alg, "value": m["value"].(string)})
		if r.status != 200 || string(mustB64(t, r.json(t)["value"].(string))) != string(dek) {
			t.Errorf("%s unwrap: %d %s", alg, r.status, r.body)
		}
	}
	r = send(t, c, http.MethodPost, base+"/keys/aes/encrypt"+apiV, tok, map[string]string{"alg": "A256GCM", "value": "aGVsbG8", "aad": "YWFk"})
	m := r.json(t)
	r = send(t, c, http.MethodPost, base+"/keys/aes/decrypt"+apiV, tok, map[string]any{"alg": "A256GCM", "value": m["value"], "iv": m["iv"], "tag": m["tag"], "aad": "YWFk"})
	if r.status != 200 || r.json(t)["value"] != "aGVsbG8" {
		t.Errorf("GCM round trip: %d %s", r.status, r.body)
	}
	r = send(t, c, http.MethodGet, base+"/keys/nope"+apiV, tok, nil)
	if _, _, msg := r.errCodes(t); r.status != 404 || !strings.HasPrefix(msg, "Key not found: "+base+"/keys/nope") {
		t.Errorf("MHSM KeyNotFound: %d %q", r.status, msg)
	}
}

func TestAESKeyWrapVector(t *testing.T) {
	// RFC 3394 §4.6: 256-bit KEK, 256-bit key data.
	kek := mustHex(t, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	data := mustHex(t, "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
	want := "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
	kv := &keyVersion{Kty: "oct-HSM", Size: 256, Oct: kek}
	res, err := doCrypto(kv, OpWrapKey, opParams{alg: "A256KW", data: data})
	if err != nil || strings.ToUpper(hexString(res.value)) != want {
		t.Fatalf("wrap = %X, %v", res.value, err)
	}
	// RFC 5649 §6: 192-bit KEK, 20-octet key.
	kek = mustHex(t, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	kv = &keyVersion{Kty: "oct-HSM", Size: 192, Oct: kek}
	res, err = doCrypto(kv, OpWrapKey, opParams{alg: "CKM_AES_KEY_WRAP_PAD", data: mustHex(t, "c37b7e6492584340bed12207808941155068f738")})
	if err != nil || hexString(res.value) != "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a" {
		t.Fatalf("wrap pad = %x, %v", res.value, err)
	}
}

func boolPtr(b bool) *bool { return &b }

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := decodeB64(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
