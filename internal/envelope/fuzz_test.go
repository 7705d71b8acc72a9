package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/orgkms/orgkms/internal/envelope"
)

// FuzzParse checks ParseHeader and Decrypt on arbitrary input. Seeds are the
// ciphertexts of testdata/vectors; loadVectors fails if there are none.
//
// Properties:
//   - on error, ParseHeader returns the zero Header and Decrypt a nil slice,
//     and the error is ErrInvalid or ErrAuth (never anything else);
//   - a successful ParseHeader round-trips byte for byte: re-encoding the
//     Header gives back the first 32 bytes of the input;
//   - ParseHeader succeeds exactly when Decrypt does not report ErrInvalid
//     (the binding being valid), so they agree on what is well formed;
//   - Decrypt with a fixed key never panics.
func FuzzParse(f *testing.F) {
	vs := loadVectors(f)
	for _, v := range vs {
		f.Add(v.ct)
	}
	// A key and binding that open the success vectors, so the fuzzer can
	// reach the success path too.
	k := mustKey(f, vs[0].key)
	b := envelope.Binding{OrgID: "org-42", KeyName: "default"}
	f.Fuzz(func(t *testing.T, ct []byte) {
		h, err := envelope.ParseHeader(ct)
		if err != nil {
			if h != (envelope.Header{}) {
				t.Fatalf("ParseHeader returned %+v with error %v, want the zero Header", h, err)
			}
			if !errors.Is(err, envelope.ErrInvalid) {
				t.Fatalf("ParseHeader err = %v, want %v", err, envelope.ErrInvalid)
			}
		} else if enc := envelope.AppendHeader(nil, h); !bytes.Equal(enc, ct[:envelope.HeaderSize]) {
			t.Fatalf("header round trip: %x, want %x", enc, ct[:envelope.HeaderSize])
		}

		pt, derr := envelope.Decrypt(nil, k, ct, b)
		switch {
		case derr == nil:
			if err != nil {
				t.Fatalf("Decrypt succeeded where ParseHeader failed: %v", err)
			}
			if len(pt) != len(ct)-envelope.Overhead {
				t.Fatalf("Decrypt returned %d bytes from %d", len(pt), len(ct))
			}
		case pt != nil:
			t.Fatalf("Decrypt returned %x with error %v, want nil", pt, derr)
		case errors.Is(derr, envelope.ErrInvalid) != (err != nil):
			t.Fatalf("Decrypt err = %v, but ParseHeader err = %v", derr, err)
		case !errors.Is(derr, envelope.ErrInvalid) && !errors.Is(derr, envelope.ErrAuth):
			t.Fatalf("Decrypt err = %v, want ErrInvalid or ErrAuth", derr)
		}
	})
}
