package envelope_test

import (
	"bytes"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"flag"
	"testing"

	"github.com/orgkms/orgkms/internal/envelope"
)

var long = flag.Bool("long", false, "run slow tests (the 1,000,000-iteration C2SP accumulated vector)")

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func mustKey(t testing.TB, k []byte) *envelope.Key {
	t.Helper()
	key, err := envelope.NewKey(k)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return key
}

// TestC2SPVectors checks the two test vectors of c2sp.org/XAES-256-GCM,
// including the intermediate CMAC subkey K1 (one with MSB(L) = 0, one with 1).
func TestC2SPVectors(t *testing.T) {
	tests := []struct {
		name       string
		key        string
		nonce      string
		k1         string
		plaintext  string
		aad        string
		ciphertext string
	}{
		{
			name:       "msb0",
			key:        "0101010101010101010101010101010101010101010101010101010101010101",
			nonce:      "ABCDEFGHIJKLMNOPQRSTUVWX",
			k1:         "e531954aca063d5b8d9c47a47d4cc6f0",
			plaintext:  "XAES-256-GCM",
			aad:        "",
			ciphertext: "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271",
		},
		{
			name:       "msb1",
			key:        "0303030303030303030303030303030303030303030303030303030303030303",
			nonce:      "ABCDEFGHIJKLMNOPQRSTUVWX",
			k1:         "23810ec50edb99f374409466ed1f4b7b",
			plaintext:  "XAES-256-GCM",
			aad:        "c2sp.org/XAES-256-GCM",
			ciphertext: "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := mustKey(t, mustHex(t, tt.key))
			if got := envelope.K1(k); hex.EncodeToString(got[:]) != tt.k1 {
				t.Errorf("K1 = %x, want %s", got, tt.k1)
			}
			var nonce [envelope.NonceSize]byte
			copy(nonce[:], tt.nonce)
			sealed, err := envelope.SealWithNonce(k, nil, &nonce, []byte(tt.plaintext), []byte(tt.aad))
			if err != nil {
				t.Fatalf("SealWithNonce: %v", err)
			}
			if got := hex.EncodeToString(sealed[envelope.NonceSize:]); got != tt.ciphertext {
				t.Errorf("ciphertext = %s, want %s", got, tt.ciphertext)
			}
			if !bytes.Equal(sealed[:envelope.NonceSize], nonce[:]) {
				t.Errorf("sealed does not start with the nonce")
			}
			pt, err := k.Open(nil, sealed, []byte(tt.aad))
			if err != nil || string(pt) != tt.plaintext {
				t.Errorf("Open = %q, %v, want %q, nil", pt, err, tt.plaintext)
			}
		})
	}
}

// TestC2SPAccumulated runs the accumulated randomized test of
// c2sp.org/XAES-256-GCM: inputs come from one SHAKE-128 stream with empty
// input, and every ciphertext is absorbed by a second SHAKE-128 instance.
func TestC2SPAccumulated(t *testing.T) {
	tests := []struct {
		name       string
		iterations int
		want       string
		long       bool
	}{
		{name: "10000", iterations: 10_000, want: "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939"},
		{name: "1000000", iterations: 1_000_000, want: "2163ae1445985a30b60585ee67daa55674df06901b890593e824b8a7c885ab15", long: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.long && !*long {
				t.Skip("1,000,000 iterations take seconds (minutes under -race); run with -long")
			}
			rng, hash := sha3.NewSHAKE128(), sha3.NewSHAKE128()
			var (
				key   [envelope.KeySize]byte
				nonce [envelope.NonceSize]byte
				n     [1]byte
				buf   = make([]byte, 0, 255+envelope.NonceSize+envelope.TagSize)
				pt    = make([]byte, 255)
				aad   = make([]byte, 255)
			)
			for i := range tt.iterations {
				mustRead(t, rng, key[:])
				mustRead(t, rng, nonce[:])
				mustRead(t, rng, n[:])
				pt := pt[:n[0]]
				mustRead(t, rng, pt)
				mustRead(t, rng, n[:])
				aad := aad[:n[0]]
				mustRead(t, rng, aad)

				k := mustKey(t, key[:])
				sealed, err := envelope.SealWithNonce(k, buf[:0], &nonce, pt, aad)
				if err != nil {
					t.Fatalf("iteration %d: SealWithNonce: %v", i, err)
				}
				got, err := k.Open(nil, sealed, aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("iteration %d: Open = %x, %v, want %x, nil", i, got, err, pt)
				}
				if _, err := hash.Write(sealed[envelope.NonceSize:]); err != nil {
					t.Fatal(err)
				}
			}
			sum := make([]byte, 32)
			mustRead(t, hash, sum)
			if got := hex.EncodeToString(sum); got != tt.want {
				t.Errorf("accumulated hash = %s, want %s", got, tt.want)
			}
		})
	}
}

func mustRead(t *testing.T, s *sha3.SHAKE, b []byte) {
	if _, err := s.Read(b); err != nil {
		t.Fatal(err)
	}
}

func TestRNGStreamStart(t *testing.T) {
	// The spec states the RNG stream starts with this value; it pins our use of SHAKE-128.
	b := make([]byte, 16)
	mustRead(t, sha3.NewSHAKE128(), b)
	if got, want := hex.EncodeToString(b), "7f9c2ba4e88f827d616045507605853e"; got != want {
		t.Errorf("SHAKE-128 stream = %s, want %s", got, want)
	}
}

func TestSealOpen(t *testing.T) {
	k1 := mustKey(t, bytes.Repeat([]byte{1}, envelope.KeySize))
	k2 := mustKey(t, bytes.Repeat([]byte{2}, envelope.KeySize))
	pt, aad := []byte("attack at dawn"), []byte("aad")
	sealed := k1.Seal([]byte("prefix"), pt, aad)
	if !bytes.HasPrefix(sealed, []byte("prefix")) {
		t.Fatalf("Seal did not append to dst")
	}
	sealed = sealed[len("prefix"):]
	if len(sealed) != len(pt)+envelope.NonceSize+envelope.TagSize {
		t.Fatalf("len(sealed) = %d, want %d", len(sealed), len(pt)+envelope.NonceSize+envelope.TagSize)
	}
	if again := k1.Seal(nil, pt, aad); bytes.Equal(again[:envelope.NonceSize], sealed[:envelope.NonceSize]) {
		t.Errorf("two Seals used the same nonce")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		key    *envelope.Key
		sealed []byte
		aad    []byte
		want   error
	}{
		{name: "ok", key: k1, sealed: sealed, aad: aad, want: nil},
		{name: "wrong key", key: k2, sealed: sealed, aad: aad, want: envelope.ErrAuth},
		{name: "wrong aad", key: k1, sealed: sealed, aad: []byte("aae"), want: envelope.ErrAuth},
		{name: "nil aad", key: k1, sealed: sealed, aad: nil, want: envelope.ErrAuth},
		{name: "nonce first half", key: k1, sealed: flip(0), aad: aad, want: envelope.ErrAuth},
		{name: "nonce second half", key: k1, sealed: flip(12), aad: aad, want: envelope.ErrAuth},
		{name: "body", key: k1, sealed: flip(envelope.NonceSize), aad: aad, want: envelope.ErrAuth},
		{name: "tag", key: k1, sealed: flip(len(sealed) - 1), aad: aad, want: envelope.ErrAuth},
		{name: "truncated tag", key: k1, sealed: sealed[:len(sealed)-1], aad: aad, want: envelope.ErrAuth},
		{name: "too short", key: k1, sealed: sealed[:envelope.NonceSize+envelope.TagSize-1], aad: aad, want: envelope.ErrInvalid},
		{name: "empty", key: k1, sealed: nil, aad: aad, want: envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := make([]byte, 0, 64)
			got, err := tt.key.Open(dst, tt.sealed, tt.aad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open err = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if got != nil {
					t.Errorf("Open returned %x with an error, want nil", got)
				}
				if bytes.Contains(dst[:cap(dst)], pt) {
					t.Errorf("failed Open left plaintext in dst")
				}
				return
			}
			if !bytes.Equal(got, pt) {
				t.Errorf("Open = %q, want %q", got, pt)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want error
	}{
		{name: "32", n: 32, want: nil},
		{name: "nil", n: 0, want: envelope.ErrInvalid},
		{name: "16", n: 16, want: envelope.ErrInvalid},
		{name: "31", n: 31, want: envelope.ErrInvalid},
		{name: "33", n: 33, want: envelope.ErrInvalid},
		{name: "64", n: 64, want: envelope.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := envelope.NewKey(make([]byte, tt.n))
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewKey(%d bytes) err = %v, want %v", tt.n, err, tt.want)
			}
			if (k == nil) != (tt.want != nil) {
				t.Errorf("NewKey(%d bytes) = %v, %v: key and error disagree", tt.n, k, err)
			}
		})
	}
}

func TestNewKeyCopies(t *testing.T) {
	raw, err := envelope.NewRandomKeyBytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != envelope.KeySize {
		t.Fatalf("NewRandomKeyBytes returned %d bytes, want %d", len(raw), envelope.KeySize)
	}
	k := mustKey(t, raw)
	sealed := k.Seal(nil, []byte("x"), nil)
	clear(raw)
	if _, err := k.Open(nil, sealed, nil); err != nil {
		t.Errorf("Open after zeroing the caller's key bytes: %v", err)
	}
}

func TestOverlapPanics(t *testing.T) {
	k := mustKey(t, make([]byte, envelope.KeySize))
	buf := make([]byte, 100, 200)
	defer func() {
		if recover() == nil {
			t.Errorf("Seal(buf[:0], buf[:100]) did not panic")
		}
		if !bytes.Equal(buf, make([]byte, 100)) {
			t.Errorf("Seal wrote over the plaintext before panicking")
		}
	}()
	k.Seal(buf[:0], buf, nil)
}
