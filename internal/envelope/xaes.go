package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"unsafe"
)

const (
	// KeySize is the size of an XAES-256-GCM key in bytes.
	KeySize = 32
	// NonceSize is the size of an XAES-256-GCM nonce in bytes.
	NonceSize = 24
	// TagSize is the size of the authentication tag in bytes.
	TagSize = 16
)

var (
	// ErrInvalid reports malformed input: a wrong length, an unknown format,
	// key version 0, or a field too long to encode.
	ErrInvalid = errors.New("invalid input")
	// ErrAuth reports that well-formed input failed authentication: wrong
	// key, wrong associated data or binding, or modified bytes.
	ErrAuth = errors.New("message authentication failed")
	// ErrDestroyed reports use of a [Key] after [Key.Destroy]. It is a
	// programming or lifecycle error, never a property of the input.
	ErrDestroyed = errors.New("envelope: key destroyed")
)

const redacted = "[redacted]"

// Key is an XAES-256-GCM key with its derivation precomputed: the AES-256
// block cipher of the key and the CMAC subkey K1. Safe for concurrent use,
// including concurrently with [Key.Destroy]. Construct it with [NewKey]; the
// zero Key behaves like a destroyed one.
//
// String, GoString, Format and LogValue return "[redacted]", so a Key (or a
// *Key) never prints or logs key material.
type Key struct {
	s *keyState // behind a pointer so Key values can be copied and formatted safely
}

type keyState struct {
	mu    sync.RWMutex
	block cipher.Block        // AES-256 keyed with K; nil once destroyed
	k1    [aes.BlockSize]byte // CMAC subkey K1 = dbl(AES-256_K(0^128))
}

// NewKey returns a Key for the 32-byte key k. It does not retain k; the
// caller may (and should) zero k afterwards.
// NewKey returns an error wrapping [ErrInvalid] if len(k) != [KeySize].
func NewKey(k []byte) (*Key, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("envelope: new key: key is %d bytes, want %d: %w", len(k), KeySize, ErrInvalid)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("envelope: new key: %w", err) // unreachable: length checked above
	}
	s := &keyState{block: block}
	// Steps 1 and 2 of the C2SP derivation: L = AES-256_K(0^128);
	// K1 = L << 1, xor 0x87 into the last byte if MSB(L) = 1.
	var l [aes.BlockSize]byte
	block.Encrypt(l[:], l[:])
	msb := l[0] >> 7
	for i := 0; i < aes.BlockSize-1; i++ {
		s.k1[i] = l[i]<<1 | l[i+1]>>7
	}
	s.k1[aes.BlockSize-1] = l[aes.BlockSize-1]<<1 ^ (0x87 & -msb) // constant time: -msb is 0x00 or 0xff
	clear(l[:])
	return &Key{s: s}, nil
}

// NewRandomKeyBytes returns 32 fresh bytes from crypto/rand, suitable for
// [NewKey]. It never returns an error in practice (crypto/rand.Read aborts the
// program rather than fail); the error result keeps callers honest.
func NewRandomKeyBytes() ([]byte, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("envelope: random key: %w", err)
	}
	return b, nil
}

// Destroy zeroes the key material the Key holds and makes it unusable. It is
// best effort: the expanded AES key schedule belongs to crypto/aes, which
// offers no way to erase it, so Destroy drops the only reference to it and
// leaves it to the garbage collector. Destroy is idempotent and safe to call
// while other goroutines use k: each operation either completes with the key
// or observes the destruction.
//
// After Destroy, [Key.Open], [Encrypt], [Decrypt] and [UnwrapKey] return
// [ErrDestroyed], and [Key.Seal] and [WrapKey], which have no error result,
// panic.
func (k *Key) Destroy() {
	if k == nil || k.s == nil {
		return
	}
	s := k.s
	s.mu.Lock()
	s.block = nil
	clear(s.k1[:])
	s.mu.Unlock()
}

// String returns "[redacted]".
func (Key) String() string { return redacted }

// GoString returns "[redacted]".
func (Key) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, so %x and %#v print nothing secret either.
func (Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue returns "[redacted]" for log/slog.
func (Key) LogValue() slog.Value { return slog.StringValue(redacted) }

var (
	_ fmt.Stringer   = Key{}
	_ fmt.GoStringer = Key{}
	_ fmt.Formatter  = Key{}
	_ slog.LogValuer = Key{}
)

// aead derives Kx from the first half of a nonce (n = N[:12]) and returns
// AES-256-GCM keyed with it (steps 3 to 5 of the C2SP derivation). The
// caller uses N[12:] as the GCM nonce.
func (k *Key) aead(n []byte) (cipher.AEAD, error) {
	if k == nil || k.s == nil {
		return nil, ErrDestroyed
	}
	s := k.s
	// kx holds M1 || M2, then AES_K(M1 ^ K1) || AES_K(M2 ^ K1), in place.
	var kx [KeySize]byte
	kx[1], kx[2] = 0x01, 'X'
	copy(kx[4:16], n)
	kx[17], kx[18] = 0x02, 'X'
	copy(kx[20:32], n)

	s.mu.RLock()
	if s.block == nil {
		s.mu.RUnlock()
		return nil, ErrDestroyed
	}
	subtle.XORBytes(kx[:16], kx[:16], s.k1[:])
	subtle.XORBytes(kx[16:], kx[16:], s.k1[:])
	s.block.Encrypt(kx[:16], kx[:16])
	s.block.Encrypt(kx[16:], kx[16:])
	s.mu.RUnlock()

	block, err := aes.NewCipher(kx[:])
	clear(kx[:])
	if err != nil {
		panic("envelope: " + err.Error()) // unreachable: kx is 32 bytes
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic("envelope: " + err.Error()) // unreachable: AES has a 16-byte block
	}
	return g, nil
}

// Seal encrypts and authenticates plaintext and aad with a fresh random nonce
// from crypto/rand and appends nonce(24) || ciphertext || tag(16) to dst,
// returning the updated slice. The remaining capacity of dst must not overlap
// plaintext.
//
// Seal panics if k has been destroyed, if dst's spare capacity overlaps
// plaintext, or if plaintext exceeds the AES-GCM limit of about 64 GiB.
func (k *Key) Seal(dst, plaintext, aad []byte) []byte {
	out := slices.Grow(dst, NonceSize+len(plaintext)+TagSize)
	if overlaps(out[len(dst):cap(out)], plaintext) {
		panic("envelope: invalid buffer overlap")
	}
	out = out[:len(dst)+NonceSize]
	nonce := out[len(dst):]
	fillRandom(nonce)
	sealed, err := k.sealNonce(out, nonce, plaintext, aad)
	if err != nil {
		panic("envelope: Seal: " + err.Error())
	}
	return sealed
}

// sealWithNonce is [Key.Seal] with a caller-chosen nonce, for test vectors
// only: reusing a nonce with the same key destroys confidentiality and
// authenticity.
func (k *Key) sealWithNonce(dst []byte, nonce *[NonceSize]byte, plaintext, aad []byte) ([]byte, error) {
	out := append(slices.Grow(dst, NonceSize+len(plaintext)+TagSize), nonce[:]...)
	return k.sealNonce(out, out[len(dst):], plaintext, aad)
}

// sealNonce seals plaintext under nonce and appends ciphertext || tag to out.
// nonce may alias the end of out (it is read before anything is written).
func (k *Key) sealNonce(out, nonce, plaintext, aad []byte) ([]byte, error) {
	g, err := k.aead(nonce[:12])
	if err != nil {
		return nil, err
	}
	return g.Seal(out, nonce[12:], plaintext, aad), nil
}

// Open authenticates and decrypts sealed (as produced by [Key.Seal]) with aad
// and appends the plaintext to dst, returning the updated slice. The remaining
// capacity of dst must not overlap sealed.
//
// Open returns an error wrapping [ErrInvalid] if sealed is shorter than
// NonceSize+TagSize, [ErrAuth] if it does not authenticate under k and aad
// (wrong key, wrong aad, modified bytes) and [ErrDestroyed] if k has been
// destroyed. On error it returns nil and leaves no plaintext in dst.
func (k *Key) Open(dst, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < NonceSize+TagSize {
		return nil, fmt.Errorf("envelope: open: sealed message is %d bytes, want at least %d: %w", len(sealed), NonceSize+TagSize, ErrInvalid)
	}
	return k.openNonce(dst, sealed[:NonceSize], sealed[NonceSize:], aad)
}

func (k *Key) openNonce(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	g, err := k.aead(nonce[:12])
	if err != nil {
		return nil, err
	}
	out, err := g.Open(dst, nonce[12:], ciphertext, aad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

func fillRandom(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("envelope: crypto/rand: " + err.Error()) // unreachable: rand.Read never fails
	}
}

// overlaps reports whether x and y share any memory. It guards against
// writing the header or nonce over a caller's plaintext before crypto/cipher
// gets the chance to detect the overlap.
func overlaps(x, y []byte) bool {
	if len(x) == 0 || len(y) == 0 {
		return false
	}
	x0, x1 := uintptr(unsafe.Pointer(&x[0])), uintptr(unsafe.Pointer(&x[len(x)-1]))
	y0, y1 := uintptr(unsafe.Pointer(&y[0])), uintptr(unsafe.Pointer(&y[len(y)-1]))
	return x0 <= y1 && y0 <= x1
}
