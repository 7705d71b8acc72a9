package azureemu

import (
	"net/http"
	"strings"
	"testing"
)

// TestRevokeTokens: revoking the tokens of an app in a tenant makes every
// vault refuse the tokens issued so far with 401, while a token requested
// afterwards works as long as consent stands; with consent withdrawn and
// tokens kept (as in Azure), revoking the tokens ends their life early.
func TestRevokeTokens(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		revokeConsent bool
		wantOldBefore int // status of the old token after the consent change, before RevokeTokens
		wantNewToken  int // status of a new token request after RevokeTokens
	}{
		{"consent stands", Config{}, false, 200, 200},
		{"consent withdrawn, tokens kept", Config{KeepTokensAfterRevoke: true}, true, 200, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmu(t, tt.cfg)
			w := newWorld(t, e)
			c := e.HTTPClient()
			const url = "https://demo.vault.azure.net/keys/k1" + apiV
			old := token(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
			if tt.revokeConsent {
				must[struct{}](t)(struct{}{}, e.RevokeConsent(w.customer.ID, w.app.ClientID))
			}
			if r := send(t, c, http.MethodGet, url, old, nil); r.status != tt.wantOldBefore {
				t.Fatalf("old token before RevokeTokens: %d %s, want %d", r.status, r.body, tt.wantOldBefore)
			}
			// Over the control API, as the CLI does.
			cc := NewControlClient(e.URL(), e.AdminToken(), e.CAPool())
			if err := cc.RevokeTokens(t.Context(), w.customer.ID, w.app.ClientID); err != nil {
				t.Fatalf("RevokeTokens: %v", err)
			}
			r := send(t, c, http.MethodGet, url, old, nil)
			if _, _, msg := r.errCodes(t); r.status != 401 || !strings.Contains(msg, "revoked") || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("old token after RevokeTokens: %d %q (challenge %q), want 401 with a challenge", r.status, msg, r.header.Get("WWW-Authenticate"))
			}
			nr := tokenResp(t, e, w.customer.ID, w.app.ClientID, w.app.Secret, "https://vault.azure.net/.default")
			if nr.status != tt.wantNewToken {
				t.Fatalf("new token after RevokeTokens: %d %s, want %d", nr.status, nr.body, tt.wantNewToken)
			}
			if nr.status == 200 {
				if r := send(t, c, http.MethodGet, url, nr.json(t)["access_token"].(string), nil); r.status != 200 {
					t.Fatalf("new token after RevokeTokens: vault answered %d %s", r.status, r.body)
				}
			} else if !strings.Contains(string(nr.body), "AADSTS700016") {
				t.Fatalf("new token without consent: %s, want AADSTS700016", nr.body)
			}
		})
	}
	t.Run("unknown app", func(t *testing.T) {
		e := startEmu(t, Config{})
		w := newWorld(t, e)
		if err := e.RevokeTokens(w.customer.ID, "00000000-0000-0000-0000-000000000000"); err == nil {
			t.Fatal("RevokeTokens of an unknown app succeeded")
		}
	})
}
