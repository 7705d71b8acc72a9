package pkcs11_test

import (
	"context"
	"testing"

	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11/softhsmtest"
)

// setup makes a token with the keys kek-a and kek-b (version 1 each) and
// returns their refs.
func setup(t *testing.T) (*softhsmtest.Token, masterkey.Ref, masterkey.Ref) {
	t.Helper()
	tok := softhsmtest.New(t, "orgkms", "1234")
	k1, k2 := ref(t, tok.URI("kek-a")), ref(t, tok.URI("kek-b"))
	withProvider(t, func(p *pkcs11.Provider) {
		for _, k := range []masterkey.Ref{k1, k2} {
			if v, err := p.NewVersion(t.Context(), k); err != nil || v.Version != "1" {
				t.Fatalf("NewVersion(%s) = %v, %v; want version 1", k, v, err)
			}
		}
	})
	return tok, k1, k2
}

func ref(t *testing.T, uri string) masterkey.Ref {
	t.Helper()
	r, err := pkcs11.ParseRef(uri)
	if err != nil {
		t.Fatalf("ParseRef(%q): %v", uri, err)
	}
	return r
}

func open(t *testing.T, cfg pkcs11.Config) *pkcs11.Provider {
	t.Helper()
	p, err := pkcs11.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withProvider runs fn on a provider of its own, closed after.
func withProvider(t *testing.T, fn func(p *pkcs11.Provider)) {
	t.Helper()
	p := open(t, pkcs11.Config{})
	defer p.Close()
	fn(p)
}

type harness struct{}

func (harness) Rotate(t *testing.T, key masterkey.Ref) {
	withProvider(t, func(p *pkcs11.Provider) {
		if _, err := p.NewVersion(t.Context(), key); err != nil {
			t.Fatalf("NewVersion: %v", err)
		}
	})
}

func (harness) SetEnabled(t *testing.T, key masterkey.Ref, enabled bool) {
	withProvider(t, func(p *pkcs11.Provider) {
		d, err := p.Describe(context.Background(), key.Unversioned())
		if err != nil {
			t.Fatalf("Describe: %v", err)
		}
		if err := p.SetEnabled(context.Background(), d.Key, enabled); err != nil {
			t.Fatalf("SetEnabled(%v): %v", enabled, err)
		}
	})
}

// TestConformance runs the shared master-key suite on SoftHSM2.
func TestConformance(t *testing.T) {
	_, k1, k2 := setup(t)
	masterkeytest.Run(t, masterkeytest.Harness{
		Open:     func(t *testing.T) masterkey.Provider { return open(t, pkcs11.Config{}) },
		Keys:     func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return k1, k2 },
		Rotator:  harness{},
		Disabler: harness{},
	})
}
