package azureemu

import (
	"bytes"
	"net/http"
	"sync"
	"testing"
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
