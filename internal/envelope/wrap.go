package envelope

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

const (
	wrapDomain = "orgkms/wrap/v1"

	// maxKeyMaterial caps what WrapKey wraps and UnwrapKey accepts, so a
	// stored blob's length is bounded (as Tink caps an encrypted DEK at 4096 bytes).
	maxKeyMaterial = 4096
)

// WrapKey encrypts key material for storage at rest under k (a data key
// version under the org root key, or the root key under a local master key)
// and returns nonce(24) || ciphertext || tag(16): [Key.Seal] with the
// associated data
//
//	"orgkms/wrap/v1" || u32be(len aad) || aad
//
// which is domain-separated from ciphertext associated data, so a wrapped key
// never opens as an orgkms ciphertext or the reverse. aad should bind the
// material to its owner, e.g. the org ID, key name and version.
//
// WrapKey panics if k has been destroyed or if material is longer than 4096
// bytes; both are programming errors.
func WrapKey(k *Key, material, aad []byte) []byte {
	if len(material) > maxKeyMaterial {
		panic(fmt.Sprintf("envelope: WrapKey: key material is %d bytes, want at most %d", len(material), maxKeyMaterial))
	}
	if uint64(len(aad)) > math.MaxUint32 {
		panic("envelope: WrapKey: associated data longer than 4 GiB")
	}
	return k.Seal(nil, material, appendWrapAAD(nil, aad))
}

// UnwrapKey is the inverse of [WrapKey]: it returns the key material, in a
// new slice the caller should zero after use.
//
// UnwrapKey returns an error wrapping [ErrInvalid] if wrapped is shorter than
// 40 bytes or longer than 4096+40 bytes, [ErrAuth] if it does not
// authenticate under k and aad, and [ErrDestroyed] if k has been destroyed.
// On error it returns nil.
func UnwrapKey(k *Key, wrapped, aad []byte) ([]byte, error) {
	if n := len(wrapped); n < NonceSize+TagSize || n > NonceSize+maxKeyMaterial+TagSize {
		return nil, fmt.Errorf("envelope: unwrap: wrapped key is %d bytes, want %d to %d: %w",
			n, NonceSize+TagSize, NonceSize+maxKeyMaterial+TagSize, ErrInvalid)
	}
	if uint64(len(aad)) > math.MaxUint32 {
		return nil, fmt.Errorf("envelope: unwrap: associated data too long: %w", ErrInvalid)
	}
	material, err := k.Open(nil, wrapped, appendWrapAAD(nil, aad))
	if err != nil {
		return nil, err
	}
	return material, nil
}

func appendWrapAAD(dst, aad []byte) []byte {
	dst = slices.Grow(dst, len(wrapDomain)+4+len(aad))
	dst = append(dst, wrapDomain...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(aad)))
	return append(dst, aad...)
}
