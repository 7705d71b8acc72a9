package pkcs11

import (
	"bytes"
	"strings"
	"testing"

	p11 "github.com/miekg/pkcs11"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11/softhsmtest"
)

// TestClassify: every CKR_* value orgkms meets maps to one Kind.
func TestClassify(t *testing.T) {
	tests := []struct {
		rv   uint
		want fault.Kind
	}{
		{p11.CKR_PIN_INCORRECT, fault.CredentialsInvalid},
		{p11.CKR_PIN_INVALID, fault.CredentialsInvalid},
		{p11.CKR_PIN_LEN_RANGE, fault.CredentialsInvalid},
		{p11.CKR_PIN_EXPIRED, fault.CredentialsInvalid},
		{p11.CKR_PIN_LOCKED, fault.CredentialsInvalid},
		{p11.CKR_USER_PIN_NOT_INITIALIZED, fault.CredentialsInvalid},
		{p11.CKR_DEVICE_ERROR, fault.Unavailable},
		{p11.CKR_DEVICE_MEMORY, fault.Unavailable},
		{p11.CKR_DEVICE_REMOVED, fault.Unavailable},
		{p11.CKR_TOKEN_NOT_PRESENT, fault.Unavailable},
		{p11.CKR_TOKEN_NOT_RECOGNIZED, fault.Unavailable},
		{p11.CKR_SESSION_HANDLE_INVALID, fault.Unavailable},
		{p11.CKR_SESSION_CLOSED, fault.Unavailable},
		{p11.CKR_SESSION_COUNT, fault.Unavailable},
		{p11.CKR_HOST_MEMORY, fault.Unavailable},
		{p11.CKR_FUNCTION_FAILED, fault.Unavailable},
		{p11.CKR_GENERAL_ERROR, fault.Unavailable}, // Integrity only in a GCM decrypt whose session still answers
		{p11.CKR_CRYPTOKI_NOT_INITIALIZED, fault.Unavailable},
		{p11.CKR_USER_NOT_LOGGED_IN, fault.Unavailable},
		{p11.CKR_SLOT_ID_INVALID, fault.Unavailable},
		{p11.CKR_KEY_HANDLE_INVALID, fault.KeyNotFound},
		{p11.CKR_OBJECT_HANDLE_INVALID, fault.KeyNotFound},
		{p11.CKR_KEY_FUNCTION_NOT_PERMITTED, fault.KeyDisabled},
		{p11.CKR_KEY_TYPE_INCONSISTENT, fault.Invalid},
		{p11.CKR_KEY_SIZE_RANGE, fault.Invalid},
		{p11.CKR_MECHANISM_INVALID, fault.Invalid},
		{p11.CKR_MECHANISM_PARAM_INVALID, fault.Invalid},
		{p11.CKR_ENCRYPTED_DATA_INVALID, fault.Integrity},
		{p11.CKR_ENCRYPTED_DATA_LEN_RANGE, fault.Integrity},
		{p11.CKR_ARGUMENTS_BAD, fault.Internal},
	}
	for _, tc := range tests {
		err := classify("unwrap", p11.Error(tc.rv), "pkcs11 key k on token t")
		fe := fault.As(err)
		if fe == nil || fe.Kind != tc.want {
			t.Errorf("classify(%v) = %v, want kind %v", p11.Error(tc.rv), err, tc.want)
			continue
		}
		if fe.Provider != Scheme || fe.Op != "unwrap" || fe.Resource == "" {
			t.Errorf("classify(%v) = %+v: provider, op or resource missing", p11.Error(tc.rv), fe)
		}
		if tc.want == fault.CredentialsInvalid && !strings.Contains(fe.Reason, "PIN") {
			t.Errorf("classify(%v): reason %q names no remedy", p11.Error(tc.rv), fe.Reason)
		}
		if tc.want.Retryable() != (tc.want == fault.Unavailable) {
			t.Errorf("classify(%v): kind %v retryable %v", p11.Error(tc.rv), tc.want, tc.want.Retryable())
		}
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct{ in, want string }{
		{"pkcs11:token=orgkms;object=platform-kek", "pkcs11://token=orgkms;object=platform-kek"},
		{"pkcs11:object=platform-kek;token=orgkms;type=secret-key", "pkcs11://token=orgkms;object=platform-kek"},
		{"pkcs11:token=org%20kms;object=k#12", "pkcs11://token=org%20kms;object=k#12"},
		{"pkcs11:token=orgkms;object=k?pin-source=file:///etc/orgkms/hsm.pin&module-path=/usr/lib/m.so",
			"pkcs11://token=orgkms;object=k?module-path=/usr/lib/m.so&pin-source=file:/etc/orgkms/hsm.pin"},
		{"pkcs11:token=orgkms;object=k?pin-source=env:HSM_PIN", "pkcs11:token=orgkms;object=k?pin-source=env:HSM_PIN"},
		{"pkcs11://token=orgkms;object=k#3", "pkcs11://token=orgkms;object=k#3"},
	}
	for _, tc := range tests {
		r, err := ParseRef(tc.in)
		if err != nil || r.String() != tc.want {
			t.Errorf("ParseRef(%q) = %q, %v; want %q", tc.in, r.String(), err, tc.want)
			continue
		}
		again, err := ParseRef(r.String())
		if err != nil || again != r {
			t.Errorf("ParseRef(%q) = %v, %v; not a fixed point", r.String(), again, err)
		}
	}
	bad := []string{
		"pkcs11:token=orgkms",                                     // no object
		"pkcs11:object=k",                                         // no token
		"pkcs11:token=orgkms;object=k;object=j",                   // twice
		"pkcs11:token=orgkms;object=k;serial=1",                   // unknown
		"pkcs11:token=orgkms;object=k;type=private",               // not a secret key
		"pkcs11:token=orgkms;object=k?pin-value=1234",             // PIN in the URI
		"pkcs11:token=orgkms;object=k?pin-source=1234",            // not a source
		"pkcs11:token=orgkms;object=k?pin-source=file:hsm.pin",    // relative
		"pkcs11:token=orgkms;object=k?module-path=libsofthsm2.so", // relative
		"pkcs11:token=orgkms;object=k?slot=1",                     // unknown
		"pkcs11:token=orgkms;object=k#01",                         // leading zero
		"pkcs11:token=orgkms;object=k#v2",                         // not decimal
		"pkcs11:token=orgkms;object=%zz",                          // bad escape
		"pkcs11:token=orgkms;;object=k",                           // empty attribute
		"local:///k",                                              // another scheme
	}
	for _, in := range bad {
		_, err := ParseRef(in)
		if fault.KindOf(err) != fault.Invalid {
			t.Errorf("ParseRef(%q) = %v, want Invalid", in, err)
			continue
		}
		if strings.Contains(err.Error(), "1234") {
			t.Errorf("ParseRef(%q) error repeats the PIN: %v", in, err)
		}
		if !strings.Contains(err.Error(), "pkcs11:token=") && !strings.Contains(err.Error(), "PROVIDER://") {
			t.Errorf("ParseRef(%q) error names no expected form: %v", in, err)
		}
	}
}

func testProvider(t *testing.T, pool int) (*Provider, masterkey.Ref) {
	tok := softhsmtest.New(t, "orgkms", "1234")
	key, err := ParseRef(tok.URI("kek"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{PoolSize: pool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := p.NewVersion(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	return p, key
}

// A pooled session that the HSM closed (CKR_SESSION_HANDLE_INVALID) is
// dropped and the call succeeds on a fresh one.
func TestSessionLostReopened(t *testing.T) {
	p, key := testProvider(t, 1)
	_, tok, _ := p.resolve(key)
	s, c, err := tok.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.CloseSession(s.h) // behind the pool's back
	tok.release(s, false)
	d := bytes.Repeat([]byte{7}, 32)
	w, err := p.Wrap(t.Context(), key, d, []byte("aad"))
	if err != nil {
		t.Fatalf("Wrap after the session was closed: %v", err)
	}
	if got, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, []byte("aad")); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("Unwrap: %v", err)
	}
}

// A lost login (every session logged out, as after a token reset) makes
// the pool log in again instead of reporting the key missing.
func TestLoginLostRelogin(t *testing.T) {
	p, key := testProvider(t, 2)
	_, tok, _ := p.resolve(key)
	s, c, err := tok.acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(s.h); err != nil {
		t.Fatal(err)
	}
	tok.release(s, false)
	if _, err := p.Describe(t.Context(), key); err != nil {
		t.Fatalf("Describe after the token logged out: %v", err)
	}
	if _, err := p.Wrap(t.Context(), key, make([]byte, 32), []byte("aad")); err != nil {
		t.Fatalf("Wrap after the token logged out: %v", err)
	}
}

// Close finalizes the module when its last provider closes, so a new
// provider initializes it again (with the current SOFTHSM2_CONF).
func TestModuleShared(t *testing.T) {
	p, key := testProvider(t, 1)
	p2, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.Describe(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	p2.Close()
	if _, err := p.Describe(t.Context(), key); err != nil {
		t.Fatalf("Describe on the first provider after the second closed: %v", err)
	}
	p.Close()
	modules.Lock()
	n := len(modules.m)
	modules.Unlock()
	if n != 0 {
		t.Fatalf("%d modules still loaded after every provider closed", n)
	}
}
