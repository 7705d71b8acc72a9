package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
)

// BenchmarkTransitVsNative measures a 1 KiB encrypt through the
// Transit-compatible route and through the native route, in the same run,
// on the API handler alone (no network), with the same org, key and token.
func BenchmarkTransitVsNative(b *testing.B) {
	ts := startServer(b, b.TempDir())
	if _, err := ts.keys.CreateOrg(b.Context(), "bench", "acme", ""); err != nil {
		b.Fatal(err)
	}
	tok := ts.token("svc", "acme", auth.RoleService)
	h := api.New(api.Config{Keys: ts.keys, Tokens: ts.tokens, Logger: slog.New(slog.DiscardHandler)})
	plaintext := make([]byte, 1024)
	native, _ := json.Marshal(client.EncryptRequest{Plaintext: plaintext})
	transit, _ := json.Marshal(map[string]string{"plaintext": base64.StdEncoding.EncodeToString(plaintext)})
	run := func(b *testing.B, method, path string, body []byte, header string) {
		b.ReportAllocs()
		b.SetBytes(int64(len(plaintext)))
		for b.Loop() {
			req := httptest.NewRequest(method, path, bytes.NewReader(body))
			if header == "Authorization" {
				req.Header.Set("Authorization", "Bearer "+tok)
			} else {
				req.Header.Set(header, tok)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	b.Run("native", func(b *testing.B) {
		run(b, "POST", "/v1/orgs/acme/keys/default/encrypt", native, "Authorization")
	})
	b.Run("transit", func(b *testing.B) {
		run(b, "PUT", "/v1/transit/encrypt/default", transit, "X-Vault-Token")
	})
}
