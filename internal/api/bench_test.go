package api_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/api"
	"github.com/orgkms/orgkms/internal/auth"
)

// BenchmarkHandlerEncrypt measures the API handler alone (no network) for a
// 1 KiB encrypt, against a bare handler doing only JSON + AES-256-GCM on the
// same body (the in-process part of `orgkms bench --baseline`).
func BenchmarkHandlerEncrypt(b *testing.B) {
	ts := startServer(b, b.TempDir())
	if _, err := ts.keys.CreateOrg(b.Context(), "bench", "acme", ""); err != nil {
		b.Fatal(err)
	}
	tok := ts.token("svc", "", auth.RoleService)
	// As served: request logging off (failures only).
	h := api.New(api.Config{Keys: ts.keys, Tokens: ts.tokens, Logger: slog.New(slog.DiscardHandler)})
	body, _ := json.Marshal(client.EncryptRequest{Plaintext: make([]byte, 1024)})
	b.Run("orgkms", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("POST", "/v1/orgs/acme/keys/default/encrypt", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
	key := make([]byte, 32)
	rand.Read(key)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Plaintext []byte `json:"plaintext"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		nonce := make([]byte, 12, 12+len(req.Plaintext)+16)
		rand.Read(nonce)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(client.CryptoResponse{Ciphertext: g.Seal(nonce, nonce, req.Plaintext, nil)})
	})
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
			w := httptest.NewRecorder()
			bare.ServeHTTP(w, req)
		}
	})
}
