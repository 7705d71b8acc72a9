package envelope_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/orgkms/orgkms/internal/envelope"
)

var testBinding = envelope.Binding{OrgID: "org-42", KeyName: "default", Context: []byte("ctx")}

func TestEncryptDecrypt(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{7}, envelope.KeySize))
	for _, n := range []int{0, 1, 15, 16, 17, 1024, 1 << 16} {
		pt := bytes.Repeat([]byte{0xa5}, n)
		ct, err := envelope.Encrypt([]byte("dst"), k, 3, pt, testBinding)
		if err != nil {
			t.Fatalf("Encrypt(%d bytes): %v", n, err)
		}
		if !bytes.HasPrefix(ct, []byte("dst")) {
			t.Fatalf("Encrypt did not append to dst")
		}
		ct = ct[len("dst"):]
		if len(ct) != n+envelope.Overhead {
			t.Fatalf("len(Encrypt(%d bytes)) = %d, want %d", n, len(ct), n+envelope.Overhead)
		}
		h, err := envelope.ParseHeader(ct)
		if err != nil {
			t.Fatalf("ParseHeader: %v", err)
		}
		if h.Format != envelope.FormatXAES256GCM || h.KeyVersion != 3 || !bytes.Equal(h.Nonce[:], ct[8:32]) {
			t.Errorf("ParseHeader = %+v, want format 1, version 3 and the nonce at offset 8", h)
		}
		got, err := envelope.Decrypt([]byte("out"), k, ct, testBinding)
		if err != nil {
			t.Fatalf("Decrypt(%d bytes): %v", n, err)
		}
		if !bytes.Equal(got, append([]byte("out"), pt...)) {
			t.Errorf("Decrypt(%d bytes) round trip mismatch", n)
		}
	}
}

func TestNilAndEmptyContextAreTheSame(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{7}, envelope.KeySize))
	b := envelope.Binding{OrgID: "o", KeyName: "k"}
	ct, err := envelope.Encrypt(nil, k, 1, []byte("x"), b)
	if err != nil {
		t.Fatal(err)
	}
	b.Context = []byte{}
	if _, err := envelope.Decrypt(nil, k, ct, b); err != nil {
		t.Errorf("Decrypt with empty context of a nil-context ciphertext: %v", err)
	}
}

func TestEncryptErrors(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{7}, envelope.KeySize))
	tests := []struct {
		name      string
		version   uint32
		plaintext []byte
		b         envelope.Binding
		want      error
	}{
		{name: "ok", version: 1, b: testBinding, want: nil},
		{name: "max plaintext", version: 1, plaintext: make([]byte, envelope.MaxPlaintext), b: testBinding, want: nil},
		{name: "version 0", version: 0, b: testBinding, want: envelope.ErrInvalid},
		{name: "plaintext too long", version: 1, plaintext: make([]byte, envelope.MaxPlaintext+1), b: testBinding, want: envelope.ErrInvalid},
		{name: "empty org", version: 1, b: envelope.Binding{KeyName: "k"}, want: envelope.ErrInvalid},
		{name: "empty key name", version: 1, b: envelope.Binding{OrgID: "o"}, want: envelope.ErrInvalid},
		{name: "longest org", version: 1, b: envelope.Binding{OrgID: strings.Repeat("o", 65535), KeyName: "k"}, want: nil},
		{name: "org too long", version: 1, b: envelope.Binding{OrgID: strings.Repeat("o", 65536), KeyName: "k"}, want: envelope.ErrInvalid},
		{name: "key name too long", version: 1, b: envelope.Binding{OrgID: "o", KeyName: strings.Repeat("k", 65536)}, want: envelope.ErrInvalid},
		{name: "longest context", version: 1, b: envelope.Binding{OrgID: "o", KeyName: "k", Context: make([]byte, 64<<10)}, want: nil},
		{name: "context too long", version: 1, b: envelope.Binding{OrgID: "o", KeyName: "k", Context: make([]byte, 64<<10+1)}, want: envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := envelope.Encrypt(nil, k, tt.version, tt.plaintext, tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Encrypt err = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if ct != nil {
					t.Errorf("Encrypt returned %d bytes with an error, want nil", len(ct))
				}
				return
			}
			if _, err := envelope.Decrypt(nil, k, ct, tt.b); err != nil {
				t.Errorf("Decrypt: %v", err)
			}
		})
	}
}

func TestDecryptErrors(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{7}, envelope.KeySize))
	other := mustKey(t, bytes.Repeat([]byte{8}, envelope.KeySize))
	pt := []byte("plaintext")
	ct, err := envelope.Encrypt(nil, k, 5, pt, testBinding)
	if err != nil {
		t.Fatal(err)
	}
	// Same key and binding, other key version: the caller looked up the wrong version.
	ct6, err := envelope.Encrypt(nil, k, 6, pt, testBinding)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(ct)) }
	with := func(f func(b *envelope.Binding)) envelope.Binding {
		b := testBinding
		f(&b)
		return b
	}
	tests := []struct {
		name string
		key  *envelope.Key
		ct   []byte
		b    envelope.Binding
		want error
	}{
		{name: "ok", key: k, ct: ct, b: testBinding, want: nil},
		{name: "wrong key", key: other, ct: ct, b: testBinding, want: envelope.ErrAuth},
		{name: "wrong org", key: k, ct: ct, b: with(func(b *envelope.Binding) { b.OrgID = "org-43" }), want: envelope.ErrAuth},
		{name: "wrong key name", key: k, ct: ct, b: with(func(b *envelope.Binding) { b.KeyName = "other" }), want: envelope.ErrAuth},
		{name: "wrong context", key: k, ct: ct, b: with(func(b *envelope.Binding) { b.Context = []byte("cty") }), want: envelope.ErrAuth},
		{name: "no context", key: k, ct: ct, b: with(func(b *envelope.Binding) { b.Context = nil }), want: envelope.ErrAuth},
		{name: "version rewritten", key: k, ct: mod(func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 6); return b }), b: testBinding, want: envelope.ErrAuth},
		{name: "header from other version", key: k, ct: append(bytes.Clone(ct6[:8]), ct[8:]...), b: testBinding, want: envelope.ErrAuth},
		{name: "nonce", key: k, ct: mod(func(b []byte) []byte { b[31] ^= 1; return b }), b: testBinding, want: envelope.ErrAuth},
		{name: "body", key: k, ct: mod(func(b []byte) []byte { b[32] ^= 1; return b }), b: testBinding, want: envelope.ErrAuth},
		{name: "tag", key: k, ct: mod(func(b []byte) []byte { b[len(b)-16] ^= 1; return b }), b: testBinding, want: envelope.ErrAuth},
		{name: "appended byte", key: k, ct: append(bytes.Clone(ct), 0), b: testBinding, want: envelope.ErrAuth},
		{name: "magic", key: k, ct: mod(func(b []byte) []byte { b[2] = 'K'; return b }), b: testBinding, want: envelope.ErrInvalid},
		{name: "format 0", key: k, ct: mod(func(b []byte) []byte { b[3] = 0; return b }), b: testBinding, want: envelope.ErrInvalid},
		{name: "format 2", key: k, ct: mod(func(b []byte) []byte { b[3] = 2; return b }), b: testBinding, want: envelope.ErrInvalid},
		{name: "version 0", key: k, ct: mod(func(b []byte) []byte { clear(b[4:8]); return b }), b: testBinding, want: envelope.ErrInvalid},
		{name: "shorter than overhead", key: k, ct: ct[:envelope.Overhead-1], b: testBinding, want: envelope.ErrInvalid},
		{name: "nil", key: k, ct: nil, b: testBinding, want: envelope.ErrInvalid},
		{name: "too long", key: k, ct: make([]byte, envelope.MaxPlaintext+envelope.Overhead+1), b: testBinding, want: envelope.ErrInvalid},
		{name: "empty org", key: k, ct: ct, b: with(func(b *envelope.Binding) { b.OrgID = "" }), want: envelope.ErrInvalid},
		{name: "sealed not enveloped", key: k, ct: k.Seal(nil, pt, nil), b: testBinding, want: envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, 0, 256)
			got, err := envelope.Decrypt(dst, tt.key, tt.ct, tt.b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decrypt err = %v, want %v", err, tt.want)
			}
			if tt.want == nil {
				if !bytes.Equal(got, pt) {
					t.Errorf("Decrypt = %q, want %q", got, pt)
				}
				return
			}
			if got != nil {
				t.Errorf("Decrypt returned %x with an error, want nil", got)
			}
			if bytes.Contains(dst[:cap(dst)], pt) {
				t.Errorf("failed Decrypt left plaintext in dst")
			}
		})
	}
}

func TestParseHeaderErrorsReturnZero(t *testing.T) {
	for _, v := range loadVectors(t) {
		h, err := envelope.ParseHeader(v.ct)
		if err != nil && h != (envelope.Header{}) {
			t.Errorf("%s: ParseHeader returned %+v with error %v, want the zero Header", v.name, h, err)
		}
		if err != nil && !errors.Is(err, envelope.ErrInvalid) {
			t.Errorf("%s: ParseHeader err = %v, want %v", v.name, err, envelope.ErrInvalid)
		}
	}
}

// TestAADEncoding pins the associated data documented in docs/format.md
// independently of the encoder: it spells the bytes out by hand and checks
// that the raw XAES-256-GCM seal of them is the vector's ciphertext.
func TestAADEncoding(t *testing.T) {
	for _, v := range loadVectors(t) {
		if v.expect != "success" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			var aad []byte
			aad = append(aad, "orgkms/ciphertext/v1"...)
			aad = append(aad, byte(len(v.binding.OrgID)>>8), byte(len(v.binding.OrgID)))
			aad = append(aad, v.binding.OrgID...)
			aad = append(aad, byte(len(v.binding.KeyName)>>8), byte(len(v.binding.KeyName)))
			aad = append(aad, v.binding.KeyName...)
			aad = binary.BigEndian.AppendUint32(aad, uint32(len(v.binding.Context)))
			aad = append(aad, v.binding.Context...)
			aad = append(aad, 'o', 'k', 'm', 0x01)
			aad = binary.BigEndian.AppendUint32(aad, v.version)
			if got := envelope.AppendAAD(nil, v.binding, v.ct[:8]); !bytes.Equal(got, aad) {
				t.Fatalf("AAD = %x, want %x", got, aad)
			}
			var nonce [envelope.NonceSize]byte
			copy(nonce[:], v.ct[8:32])
			sealed, err := envelope.SealWithNonce(mustKey(t, v.key), nil, &nonce, v.plaintext, aad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sealed, v.ct[8:]) {
				t.Errorf("raw seal with the documented AAD does not match the vector")
			}
		})
	}
}

func TestWrapKey(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{9}, envelope.KeySize))
	other := mustKey(t, bytes.Repeat([]byte{10}, envelope.KeySize))
	material := bytes.Repeat([]byte{0x5a}, 32)
	aad := []byte("org/org-42/ring/default/v3")
	wrapped := envelope.WrapKey(k, material, aad)
	if len(wrapped) != len(material)+envelope.NonceSize+envelope.TagSize {
		t.Fatalf("len(WrapKey) = %d, want %d", len(wrapped), len(material)+envelope.NonceSize+envelope.TagSize)
	}
	flipped := bytes.Clone(wrapped)
	flipped[len(flipped)-1] ^= 1
	ct, err := envelope.Encrypt(nil, k, 1, material, testBinding)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     *envelope.Key
		wrapped []byte
		aad     []byte
		want    error
	}{
		{name: "ok", key: k, wrapped: wrapped, aad: aad, want: nil},
		{name: "wrong key", key: other, wrapped: wrapped, aad: aad, want: envelope.ErrAuth},
		{name: "wrong aad", key: k, wrapped: wrapped, aad: []byte("org/org-43/ring/default/v3"), want: envelope.ErrAuth},
		{name: "tampered", key: k, wrapped: flipped, aad: aad, want: envelope.ErrAuth},
		{name: "raw seal is not a wrap", key: k, wrapped: k.Seal(nil, material, aad), aad: aad, want: envelope.ErrAuth},
		{name: "ciphertext body is not a wrap", key: k, wrapped: ct[8:], aad: aad, want: envelope.ErrAuth},
		{name: "too short", key: k, wrapped: wrapped[:envelope.NonceSize+envelope.TagSize-1], aad: aad, want: envelope.ErrInvalid},
		{name: "too long", key: k, wrapped: make([]byte, envelope.NonceSize+4096+envelope.TagSize+1), aad: aad, want: envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envelope.UnwrapKey(tt.key, tt.wrapped, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnwrapKey err = %v, want %v", err, tt.want)
			}
			if tt.want != nil && got != nil {
				t.Errorf("UnwrapKey returned %x with an error, want nil", got)
			}
			if tt.want == nil && !bytes.Equal(got, material) {
				t.Errorf("UnwrapKey = %x, want %x", got, material)
			}
		})
	}
	t.Run("oversized material panics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Errorf("WrapKey of 4097 bytes did not panic")
			}
		}()
		envelope.WrapKey(k, make([]byte, 4097), aad)
	})
}

func TestDestroy(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{11}, envelope.KeySize))
	ct, err := envelope.Encrypt(nil, k, 1, []byte("x"), testBinding)
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal(nil, []byte("x"), nil)
	wrapped := envelope.WrapKey(k, []byte("x"), nil)
	k.Destroy()
	k.Destroy() // idempotent
	if got := envelope.K1(k); got != [16]byte{} {
		t.Errorf("K1 after Destroy = %x, want zeros", got)
	}
	errs := []struct {
		name string
		err  error
	}{
		{"Encrypt", second(envelope.Encrypt(nil, k, 1, []byte("x"), testBinding))},
		{"Decrypt", second(envelope.Decrypt(nil, k, ct, testBinding))},
		{"Open", second(k.Open(nil, sealed, nil))},
		{"UnwrapKey", second(envelope.UnwrapKey(k, wrapped, nil))},
		{"zero Key Open", second((&envelope.Key{}).Open(nil, sealed, nil))},
	}
	for _, e := range errs {
		if !errors.Is(e.err, envelope.ErrDestroyed) {
			t.Errorf("%s after Destroy err = %v, want %v", e.name, e.err, envelope.ErrDestroyed)
		}
	}
	for name, f := range map[string]func(){
		"Seal":    func() { k.Seal(nil, []byte("x"), nil) },
		"WrapKey": func() { envelope.WrapKey(k, []byte("x"), nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s after Destroy did not panic", name)
				}
			}()
			f()
		}()
	}
}

func second[T any](_ T, err error) error { return err }

// TestConcurrentUseAndDestroy runs under -race: operations racing with
// Destroy either succeed or report ErrDestroyed, never anything else.
func TestConcurrentUseAndDestroy(t *testing.T) {
	k := mustKey(t, bytes.Repeat([]byte{12}, envelope.KeySize))
	ct, err := envelope.Encrypt(nil, k, 1, []byte("payload"), testBinding)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if _, err := envelope.Encrypt(nil, k, 1, []byte("payload"), testBinding); err != nil && !errors.Is(err, envelope.ErrDestroyed) {
					t.Errorf("Encrypt: %v", err)
					return
				}
				if pt, err := envelope.Decrypt(nil, k, ct, testBinding); err != nil && !errors.Is(err, envelope.ErrDestroyed) {
					t.Errorf("Decrypt: %v", err)
					return
				} else if err == nil && string(pt) != "payload" {
					t.Errorf("Decrypt = %q, want payload", pt)
					return
				}
			}
		})
	}
	wg.Go(k.Destroy)
	wg.Wait()
}
