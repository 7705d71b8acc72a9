package envelope

// Test-only access to unexported helpers. Fixed nonces are for test vectors
// only: reusing a nonce under one key is catastrophic.

func SealWithNonce(k *Key, dst []byte, nonce *[NonceSize]byte, plaintext, aad []byte) ([]byte, error) {
	return k.sealWithNonce(dst, nonce, plaintext, aad)
}

func EncryptWithNonce(dst []byte, k *Key, keyVersion uint32, plaintext []byte, b Binding, nonce *[NonceSize]byte) ([]byte, error) {
	return encrypt(dst, k, keyVersion, plaintext, b, nonce)
}

func AppendHeader(dst []byte, h Header) []byte { return h.appendHeader(dst) }

func AppendAAD(dst []byte, b Binding, hdr []byte) []byte { return b.appendAAD(dst, hdr) }

func K1(k *Key) [16]byte { return k.s.k1 }
