package envelope

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// The orgkms ciphertext format, specified byte by byte in docs/format.md:
//
//	offset  0   3 bytes  magic "okm"
//	offset  3   1 byte   format, 0x01 = XAES-256-GCM
//	offset  4   4 bytes  key version, big-endian uint32, >= 1
//	offset  8  24 bytes  nonce
//	offset 32   n bytes  AES-GCM ciphertext
//	offset 32+n 16 bytes tag
const (
	// FormatXAES256GCM is the format byte of XAES-256-GCM ciphertexts.
	FormatXAES256GCM byte = 0x01
	// HeaderSize is the size of the ciphertext header in bytes.
	HeaderSize = 32
	// Overhead is the number of bytes Encrypt adds to the plaintext.
	Overhead = HeaderSize + TagSize
	// MaxPlaintext is the largest plaintext Encrypt accepts (64 MiB), and
	// MaxPlaintext+Overhead the largest ciphertext Decrypt accepts. AES-GCM
	// itself allows about 64 GiB; the lower cap bounds the memory one request
	// can make orgkms hold, and larger objects belong under a data key
	// encrypted by the caller.
	MaxPlaintext = 64 << 20

	magic = "okm"

	// Limits of the Binding fields; longer fields are rejected with ErrInvalid.
	maxBindingName = math.MaxUint16 // OrgID, KeyName: u16 length prefix
	maxContext     = 64 << 10       // Context: u32 length prefix, capped at 64 KiB

	aadDomain = "orgkms/ciphertext/v1"
)

// Binding is what a ciphertext is bound to, beyond the key itself: it is
// encoded into the associated data, so Decrypt fails with [ErrAuth] unless it
// is given the same Binding that Encrypt was.
//
// OrgID and KeyName must be non-empty and at most 65535 bytes; Context is
// optional caller context of at most 64 KiB. A nil and an empty Context are
// the same binding (both encode as length 0).
type Binding struct {
	OrgID   string
	KeyName string
	Context []byte
}

// Header is the parsed 32-byte header of an orgkms ciphertext.
type Header struct {
	Format     byte   // FormatXAES256GCM
	KeyVersion uint32 // version of the named key that encrypted the message, >= 1
	Nonce      [NonceSize]byte
}

// ParseHeader parses the header of the ciphertext ct, which the caller uses to
// pick the key version before [Decrypt]. It checks the magic, that the format
// is known, that the key version is not 0 and that the length of ct is
// between Overhead and MaxPlaintext+Overhead. It does not authenticate
// anything: only Decrypt does.
//
// ParseHeader returns the zero Header and an error wrapping [ErrInvalid] on
// any error.
func ParseHeader(ct []byte) (Header, error) {
	if err := checkHeader(ct); err != nil {
		return Header{}, err
	}
	h := Header{Format: ct[3], KeyVersion: binary.BigEndian.Uint32(ct[4:8])}
	copy(h.Nonce[:], ct[8:HeaderSize])
	return h, nil
}

func checkHeader(ct []byte) error {
	switch {
	case len(ct) < Overhead:
		return fmt.Errorf("envelope: parse: ciphertext is %d bytes, want at least %d: %w", len(ct), Overhead, ErrInvalid)
	case len(ct) > MaxPlaintext+Overhead:
		return fmt.Errorf("envelope: parse: ciphertext is %d bytes, want at most %d: %w", len(ct), MaxPlaintext+Overhead, ErrInvalid)
	case string(ct[:3]) != magic:
		return fmt.Errorf("envelope: parse: not an orgkms ciphertext: %w", ErrInvalid)
	case ct[3] != FormatXAES256GCM:
		return fmt.Errorf("envelope: parse: unknown format 0x%02x: %w", ct[3], ErrInvalid)
	case binary.BigEndian.Uint32(ct[4:8]) == 0:
		return fmt.Errorf("envelope: parse: key version 0: %w", ErrInvalid)
	}
	return nil
}

// appendHeader appends the 32-byte encoding of h to b.
func (h *Header) appendHeader(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, h.Format)
	b = binary.BigEndian.AppendUint32(b, h.KeyVersion)
	return append(b, h.Nonce[:]...)
}

// Encrypt encrypts plaintext with k, which is version keyVersion of the key
// named by b, and appends the orgkms ciphertext (len(plaintext)+Overhead
// bytes) to dst, returning the updated slice. Each call draws a fresh 192-bit
// nonce from crypto/rand. The remaining capacity of dst must not overlap
// plaintext (Encrypt panics if it does).
//
// Encrypt returns an error wrapping [ErrInvalid] if keyVersion is 0, if
// plaintext is longer than [MaxPlaintext] or if b is invalid (see [Binding]),
// and [ErrDestroyed] if k has been destroyed. On error it returns nil.
func Encrypt(dst []byte, k *Key, keyVersion uint32, plaintext []byte, b Binding) ([]byte, error) {
	return encrypt(dst, k, keyVersion, plaintext, b, nil)
}

// encrypt is Encrypt with a nonce fixed by the caller when nonce is not nil,
// for test vectors only.
func encrypt(dst []byte, k *Key, keyVersion uint32, plaintext []byte, b Binding, nonce *[NonceSize]byte) ([]byte, error) {
	if keyVersion == 0 {
		return nil, fmt.Errorf("envelope: encrypt: key version 0: %w", ErrInvalid)
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("envelope: encrypt: plaintext is %d bytes, want at most %d: %w", len(plaintext), MaxPlaintext, ErrInvalid)
	}
	if err := b.check("encrypt"); err != nil {
		return nil, err
	}
	out := slices.Grow(dst, Overhead+len(plaintext))
	if overlaps(out[len(dst):cap(out)], plaintext) {
		panic("envelope: invalid buffer overlap")
	}
	out = append(out, magic...)
	out = append(out, FormatXAES256GCM)
	out = binary.BigEndian.AppendUint32(out, keyVersion)
	hdr := out[len(dst) : len(dst)+HeaderSize]
	out = out[:len(dst)+HeaderSize]
	if nonce != nil {
		copy(hdr[8:], nonce[:])
	} else {
		fillRandom(hdr[8:])
	}
	out, err := k.sealNonce(out, hdr[8:], plaintext, b.appendAAD(nil, hdr[:8]))
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Decrypt authenticates and decrypts the orgkms ciphertext ct with k and the
// binding b and appends the plaintext to dst, returning the updated slice.
// The caller picks k by ParseHeader(ct).KeyVersion first; the key version
// (with the rest of the header) is authenticated. The remaining capacity of
// dst must not overlap ct.
//
// Decrypt returns an error wrapping [ErrInvalid] if ct is malformed (see
// [ParseHeader]) or b is invalid (see [Binding]), [ErrAuth] if ct does not
// authenticate under k and b (wrong key or key version, another org, key
// name or context, modified bytes), and [ErrDestroyed] if k has been
// destroyed. On error it returns nil and leaves no plaintext in dst.
func Decrypt(dst []byte, k *Key, ct []byte, b Binding) ([]byte, error) {
	if err := checkHeader(ct); err != nil {
		return nil, err
	}
	if err := b.check("decrypt"); err != nil {
		return nil, err
	}
	return k.openNonce(dst, ct[8:HeaderSize], ct[HeaderSize:], b.appendAAD(nil, ct[:8]))
}

func (b *Binding) check(op string) error {
	switch {
	case b.OrgID == "":
		return fmt.Errorf("envelope: %s: empty org ID: %w", op, ErrInvalid)
	case len(b.OrgID) > maxBindingName:
		return fmt.Errorf("envelope: %s: org ID is %d bytes, want at most %d: %w", op, len(b.OrgID), maxBindingName, ErrInvalid)
	case b.KeyName == "":
		return fmt.Errorf("envelope: %s: empty key name: %w", op, ErrInvalid)
	case len(b.KeyName) > maxBindingName:
		return fmt.Errorf("envelope: %s: key name is %d bytes, want at most %d: %w", op, len(b.KeyName), maxBindingName, ErrInvalid)
	case len(b.Context) > maxContext:
		return fmt.Errorf("envelope: %s: context is %d bytes, want at most %d: %w", op, len(b.Context), maxContext, ErrInvalid)
	}
	return nil
}

// appendAAD appends the associated data of a ciphertext with header prefix
// hdr (its first 8 bytes: magic, format, key version) to dst:
//
//	"orgkms/ciphertext/v1" || u16be(len org) || org || u16be(len keyname) || keyname
//	|| u32be(len context) || context || hdr[0:8]
//
// Every variable-length field is length-prefixed and hdr has a fixed length,
// so the encoding is injective. b must have passed check.
func (b *Binding) appendAAD(dst, hdr []byte) []byte {
	n := len(aadDomain) + 2 + len(b.OrgID) + 2 + len(b.KeyName) + 4 + len(b.Context) + len(hdr)
	dst = slices.Grow(dst, n)
	dst = append(dst, aadDomain...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b.OrgID)))
	dst = append(dst, b.OrgID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b.KeyName)))
	dst = append(dst, b.KeyName...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b.Context)))
	dst = append(dst, b.Context...)
	return append(dst, hdr...)
}
