package pkcs11_test

import (
	"testing"

	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11/softhsmtest"
)

// benchProvider makes a token and key version 1, and a provider with a pool
// of size sessions.
func benchProvider(b *testing.B, size int) (*pkcs11.Provider, masterkey.Ref) {
	tok := softhsmtest.New(b, "orgkms", "1234")
	key, err := pkcs11.ParseRef(tok.URI("kek"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := pkcs11.New(pkcs11.Config{PoolSize: size})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	if _, err := p.NewVersion(b.Context(), key); err != nil {
		b.Fatal(err)
	}
	return p, key
}

// BenchmarkWrap and BenchmarkUnwrap measure one 32-byte root key per op
// through the pool (4 sessions), from parallel goroutines.
func BenchmarkWrap(b *testing.B) {
	p, key := benchProvider(b, 4)
	dek := make([]byte, 32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Wrap(b.Context(), key, dek, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUnwrap(b *testing.B) {
	p, key := benchProvider(b, 4)
	w, err := p.Wrap(b.Context(), key, make([]byte, 32), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Unwrap(b.Context(), w.Key, w.Ciphertext, aad); err != nil {
				b.Fatal(err)
			}
		}
	})
}
