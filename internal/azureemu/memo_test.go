package azureemu

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
)

// TestRSAMemo checks that unwrapping a copy the emulator wrapped answers
// what the private-key operation answers, and that any other ciphertext
// still takes the real operation (a tampered one fails).
func TestRSAMemo(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kv := &keyVersion{Kty: "RSA", rsa: key}
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, alg := range []string{"RSA-OAEP-256", "RSA-OAEP", "RSA1_5"} {
		w, err := doCrypto(kv, OpWrapKey, opParams{alg: alg, data: secret})
		if err != nil {
			t.Fatalf("%s wrap: %v", alg, err)
		}
		got, err := doCrypto(kv, OpUnwrapKey, opParams{alg: alg, data: w.value})
		if err != nil || !bytes.Equal(got.value, secret) {
			t.Fatalf("%s unwrap of a remembered copy = %x, %v; want the secret", alg, got.value, err)
		}
		got.value[0] ^= 1 // the caller's copy: the memo keeps its own
		again, err := doCrypto(kv, OpUnwrapKey, opParams{alg: alg, data: w.value})
		if err != nil || !bytes.Equal(again.value, secret) {
			t.Fatalf("%s second unwrap = %x, %v; want the secret", alg, again.value, err)
		}
		tampered := bytes.Clone(w.value)
		tampered[len(tampered)/2] ^= 0x40
		if _, err := doCrypto(kv, OpUnwrapKey, opParams{alg: alg, data: tampered}); err == nil && alg != "RSA1_5" {
			t.Fatalf("%s unwrap of a tampered copy succeeded", alg)
		}
	}
	// A ciphertext made elsewhere (not remembered) decrypts for real.
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := doCrypto(kv, OpUnwrapKey, opParams{alg: "RSA-OAEP-256", data: ct})
	if err != nil || !bytes.Equal(got.value, secret) {
		t.Fatalf("unwrap of a foreign copy = %x, %v; want the secret", got.value, err)
	}
	// Another key never answers from this key's memo.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	w, _ := doCrypto(kv, OpWrapKey, opParams{alg: "RSA-OAEP-256", data: secret})
	if _, err := doCrypto(&keyVersion{Kty: "RSA", rsa: other}, OpUnwrapKey, opParams{alg: "RSA-OAEP-256", data: w.value}); err == nil {
		t.Fatal("another key unwrapped this key's copy")
	}
}
