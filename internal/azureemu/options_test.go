package azureemu

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOptions(t *testing.T) {
	e := startEmu(t, Config{DisabledKeyAllowsWrap: true, KeepTokensAfterRevoke: true})
	w := newWorld(t, e)
	c := e.HTTPClient()
	base := "https://demo.vault.azure.net"
	tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
	must[KeyInfo](t)(e.UpdateKey("demo", "k1", "", boolPtr(false), nil, nil))
	r := send(t, c, http.MethodPost, base+"/keys/k1/wrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": "AAAA"})
	if r.status != 200 {
		t.Errorf("wrap on disabled key with DisabledKeyAllowsWrap: %d %s", r.status, r.body)
	}
	r = send(t, c, http.MethodPost, base+"/keys/k1/unwrapkey"+apiV, tok, map[string]string{"alg": "RSA-OAEP-256", "value": r.json(t)["value"].(string)})
	if _, inner, _ := r.errCodes(t); r.status != 403 || inner != "KeyDisabled" {
		t.Errorf("unwrap on disabled key: %d %s", r.status, inner)
	}
	must[KeyInfo](t)(e.UpdateKey("demo", "k1", "", boolPtr(true), nil, nil))
	must[struct{}](t)(struct{}{}, e.RevokeConsent(w.customer.ID, w.app.ClientID))
	if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil); r.status != 200 {
		t.Errorf("token after revoke with KeepTokensAfterRevoke: %d %s", r.status, r.body)
	}
	if r := tokenResp(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default"); r.status != 400 {
		t.Errorf("new token after revoke: %d", r.status)
	}
}

func TestConcurrentRoundTrips(t *testing.T) {
	e := startEmu(t, Config{})
	w := newWorld(t, e)
	c := sdkClient(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://demo.vault.azure.net")
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			dek := bytes.Repeat([]byte{byte(i)}, 32)
			wr, err := c.WrapKey(t.Context(), "k1", "", azkeysParams(dek), nil)
			if err != nil {
				t.Errorf("wrap %d: %v", i, err)
				return
			}
			uw, err := c.UnwrapKey(t.Context(), "k1", wr.KID.Version(), azkeysParams(wr.Result), nil)
			if err != nil || !bytes.Equal(uw.Result, dek) {
				t.Errorf("unwrap %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := e.VaultCounters("demo"); got[OpWrapKey] != 32 || got[OpUnwrapKey] != 32 {
		t.Errorf("counters %v", got)
	}
}

// TestDeletedKeyLag: inside the soft-delete delay the deleted key is
// absent from both /keys and /deletedkeys, as right after a delete in
// Azure; afterwards it is listed as deleted.
func TestDeletedKeyLag(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	for _, tt := range []struct {
		name    string
		cfg     Config
		advance time.Duration // after the first GET
	}{
		{"calls", Config{DeletedKeyLagCalls: 2}, 0},
		{"duration", Config{DeletedKeyLag: time.Minute}, 2 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Now = clock
			e := startEmu(t, tt.cfg)
			w := newWorld(t, e)
			c := e.HTTPClient()
			base := "https://demo.vault.azure.net"
			tok := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
			if r := send(t, c, http.MethodDelete, base+"/keys/k1"+apiV, tok, nil); r.status != 200 {
				t.Fatalf("delete: %d %s", r.status, r.body)
			}
			r := send(t, c, http.MethodGet, base+"/deletedkeys/k1"+apiV, tok, nil)
			if code, _, msg := r.errCodes(t); r.status != 404 || code != "KeyNotFound" || !strings.Contains(msg, "Deleted Key not found") {
				t.Fatalf("GET deleted key inside the delay: %d %s %q, want 404 KeyNotFound", r.status, code, msg)
			}
			if r := send(t, c, http.MethodGet, base+"/keys/k1"+apiV, tok, nil); r.status != 404 {
				t.Fatalf("GET key after delete: %d", r.status)
			}
			mu.Lock()
			now = now.Add(tt.advance)
			mu.Unlock()
			if tt.name == "calls" {
				if r := send(t, c, http.MethodGet, base+"/deletedkeys/k1"+apiV, tok, nil); r.status != 404 {
					t.Fatalf("second GET inside a 2-call delay: %d", r.status)
				}
			}
			if r := send(t, c, http.MethodGet, base+"/deletedkeys/k1"+apiV, tok, nil); r.status != 200 {
				t.Fatalf("GET deleted key after the delay: %d %s", r.status, r.body)
			}
		})
	}
}
