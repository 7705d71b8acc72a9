package pkcs11

import (
	"context"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/orgkms/orgkms/internal/masterkey"
)

// HoldSession takes one session of key's token out of p's pool until the
// returned function is called.
func HoldSession(t *testing.T, p *Provider, key masterkey.Ref) (release func()) {
	t.Helper()
	_, tok, err := p.resolve(key)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := tok.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func() { tok.release(s, false) }
}

// GenerateExtractable makes version of key as an extractable, non-sensitive
// key, which orgkms must refuse.
func GenerateExtractable(t *testing.T, p *Provider, key masterkey.Ref, version string) {
	t.Helper()
	a, tok, err := p.resolve(key)
	if err != nil {
		t.Fatal(err)
	}
	err = tok.do(t.Context(), func(c *p11.Ctx, s p11.SessionHandle) error {
		_, err := c.GenerateKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY), p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE_LEN, 32), p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, false), p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
			p11.NewAttribute(p11.CKA_ENCRYPT, true), p11.NewAttribute(p11.CKA_DECRYPT, true),
			p11.NewAttribute(p11.CKA_LABEL, a.Object), p11.NewAttribute(p11.CKA_ID, []byte(version)),
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
