package azureemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// keySpec is the type, size and operations of a key version.
type keySpec struct {
	kty  string // as reported
	size int
	ops  []string
}

var (
	rsaOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	octOps = []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
)

// newKeySpec validates a requested key type, size and operations.
func newKeySpec(hsm bool, kty string, size int, ops []string) (keySpec, error) {
	if kty == "" {
		kty = "RSA"
	}
	var s keySpec
	var allowed []string
	switch strings.ToUpper(kty) {
	case "RSA", "RSA-HSM":
		s.kty = "RSA"
		if strings.EqualFold(kty, "RSA-HSM") || hsm {
			// A Managed HSM reports RSA keys as RSA-HSM.
			s.kty = "RSA-HSM"
		}
		if size == 0 {
			size = 2048
		}
		if size != 2048 && size != 3072 && size != 4096 {
			return keySpec{}, fmt.Errorf("RSA key size %d: want 2048, 3072 or 4096: %w", size, ErrInvalid)
		}
		allowed = rsaOps
	case "OCT-HSM", "OCT":
		if !hsm {
			return keySpec{}, fmt.Errorf("key type %s is supported only by Managed HSM: %w", kty, ErrInvalid)
		}
		s.kty = "oct-HSM"
		if size == 0 {
			size = 256
		}
		if size != 128 && size != 192 && size != 256 {
			return keySpec{}, fmt.Errorf("AES key size %d: want 128, 192 or 256: %w", size, ErrInvalid)
		}
		allowed = octOps
	default:
		return keySpec{}, fmt.Errorf("key type %q: want RSA, RSA-HSM or oct-HSM: %w", kty, ErrInvalid)
	}
	s.size = size
	if len(ops) == 0 {
		s.ops = slices.Clone(allowed)
		return s, nil
	}
	var bad []string
	for _, op := range ops {
		c := canonicalOp(op, allowed)
		if c == "" {
			bad = append(bad, `"`+op+`"`)
			continue
		}
		if !slices.Contains(s.ops, c) {
			s.ops = append(s.ops, c)
		}
	}
	if len(bad) > 0 {
		quoted := make([]string, len(allowed))
		for i, a := range allowed {
			quoted[i] = `"` + a + `"`
		}
		return keySpec{}, fmt.Errorf("unsupported key operation(s): %s. Supported values are %s: %w",
			strings.Join(bad, ", "), strings.Join(quoted, ", "), ErrInvalid)
	}
	return s, nil
}

func canonicalOp(op string, allowed []string) string {
	for _, a := range allowed {
		if strings.EqualFold(a, op) {
			return a
		}
	}
	return ""
}

// newVersion generates key material for a new version. It does not hold
// e.mu: RSA key generation is slow.
func (e *Emulator) newVersion(s keySpec, nbf, exp *int64, tags map[string]string) (*keyVersion, error) {
	now := e.nowUnix()
	kv := &keyVersion{
		ID: newHexID(16), Kty: s.kty, Size: s.size, KeyOps: slices.Clone(s.ops), Enabled: true,
		NBF: nbf, EXP: exp, Created: now, Updated: now, Tags: tags,
	}
	if strings.HasPrefix(s.kty, "RSA") {
		k, err := e.rsaKeyGen(s.size)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("encode RSA key: %w", err)
		}
		kv.PKCS8, kv.rsa = der, k
		return kv, nil
	}
	kv.Oct = randomBytes(s.size / 8)
	return kv, nil
}

// errCrypto is a failure of the cryptographic operation itself (bad
// ciphertext, bad length); the data plane maps it to 400 BadParameter.
var errCrypto = errors.New("crypto")

// opParams are the fields of KeyOperationsParameters.
type opParams struct {
	alg  string
	data []byte
	iv   []byte
	aad  []byte
	tag  []byte
}

// opResult is the cryptographic part of KeyOperationResult.
type opResult struct {
	value []byte
	iv    []byte
	tag   []byte
	aad   []byte
}

// algorithmFits reports whether alg applies to kv.
func algorithmFits(kv *keyVersion, alg string) bool {
	if strings.HasPrefix(kv.Kty, "RSA") {
		switch alg {
		case "RSA-OAEP", "RSA-OAEP-256", "RSA1_5":
			return true
		}
		return false
	}
	switch alg {
	case "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD":
		return true
	case "A128KW", "A128GCM":
		return kv.Size == 128
	case "A192KW", "A192GCM":
		return kv.Size == 192
	case "A256KW", "A256GCM":
		return kv.Size == 256
	}
	return false
}

// doCrypto runs op (wrapkey, unwrapkey, encrypt, decrypt) with kv.
func doCrypto(kv *keyVersion, op string, p opParams) (opResult, error) {
	encrypting := op == OpWrapKey || op == OpEncrypt
	if strings.HasPrefix(kv.Kty, "RSA") {
		pub := &kv.rsa.PublicKey
		var out []byte
		var err error
		if !encrypting {
			if pt, ok := rsaMemo.get(kv.rsa, p.alg, p.data); ok {
				return opResult{value: pt}, nil
			}
		}
		switch p.alg {
		case "RSA-OAEP-256":
			if encrypting {
				out, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, p.data, nil)
			} else {
				out, err = rsa.DecryptOAEP(sha256.New(), nil, kv.rsa, p.data, nil)
			}
		case "RSA-OAEP":
			if encrypting {
				out, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, p.data, nil)
			} else {
				out, err = rsa.DecryptOAEP(sha1.New(), nil, kv.rsa, p.data, nil)
			}
		case "RSA1_5":
			if encrypting {
				//lint:ignore SA1019 Key Vault offers RSA1_5, so the emulator must too.
				out, err = rsa.EncryptPKCS1v15(rand.Reader, pub, p.data) //nolint:staticcheck // as above
			} else {
				//lint:ignore SA1019 Key Vault offers RSA1_5, so the emulator must too.
				out, err = rsa.DecryptPKCS1v15(nil, kv.rsa, p.data) //nolint:staticcheck // as above
			}
		}
		if err != nil {
			return opResult{}, fmt.Errorf("%w: %v", errCrypto, err)
		}
		if encrypting {
			rsaMemo.put(kv.rsa, p.alg, out, p.data)
		}
		return opResult{value: out}, nil
	}
	block, err := aes.NewCipher(kv.Oct)
	if err != nil {
		return opResult{}, fmt.Errorf("%w: %v", errCrypto, err)
	}
	switch p.alg {
	case "A128KW", "A192KW", "A256KW", "CKM_AES_KEY_WRAP":
		if encrypting {
			out, err := aesKeyWrap(block, p.data)
			return opResult{value: out}, err
		}
		out, err := aesKeyUnwrap(block, p.data)
		return opResult{value: out}, err
	case "CKM_AES_KEY_WRAP_PAD":
		if encrypting {
			out, err := aesKeyWrapPad(block, p.data)
			return opResult{value: out}, err
		}
		out, err := aesKeyUnwrapPad(block, p.data)
		return opResult{value: out}, err
	default: // A*GCM
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return opResult{}, fmt.Errorf("%w: %v", errCrypto, err)
		}
		if encrypting {
			iv := randomBytes(gcm.NonceSize())
			sealed := gcm.Seal(nil, iv, p.data, p.aad)
			n := len(sealed) - gcm.Overhead()
			return opResult{value: sealed[:n], iv: iv, tag: sealed[n:], aad: p.aad}, nil
		}
		if len(p.iv) != gcm.NonceSize() || len(p.tag) != gcm.Overhead() {
			return opResult{}, fmt.Errorf("%w: bad iv or tag length", errCrypto)
		}
		out, err := gcm.Open(nil, p.iv, append(slices.Clone(p.data), p.tag...), p.aad)
		if err != nil {
			return opResult{}, fmt.Errorf("%w: %v", errCrypto, err)
		}
		return opResult{value: out}, nil
	}
}

var kwIV = []byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// aesKeyWrap is RFC 3394 key wrap.
func aesKeyWrap(b cipher.Block, plain []byte) ([]byte, error) {
	if len(plain) < 16 || len(plain)%8 != 0 {
		return nil, fmt.Errorf("%w: key wrap input must be a multiple of 8 bytes, at least 16", errCrypto)
	}
	return kwWrap(b, kwIV, plain), nil
}

func kwWrap(b cipher.Block, iv, plain []byte) []byte {
	n := len(plain) / 8
	r := make([]byte, len(plain))
	copy(r, plain)
	a := slices.Clone(iv)
	buf := make([]byte, 16)
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf, a)
			copy(buf[8:], r[i*8:i*8+8])
			b.Encrypt(buf, buf)
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(buf[:8])^t)
			copy(r[i*8:], buf[8:])
		}
	}
	return append(a, r...)
}

func kwUnwrap(b cipher.Block, wrapped []byte) (iv, plain []byte) {
	n := len(wrapped)/8 - 1
	a := slices.Clone(wrapped[:8])
	r := slices.Clone(wrapped[8:])
	buf := make([]byte, 16)
	for j := 5; j >= 0; j-- {
		for i := n - 1; i >= 0; i-- {
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(buf, binary.BigEndian.Uint64(a)^t)
			copy(buf[8:], r[i*8:i*8+8])
			b.Decrypt(buf, buf)
			copy(a, buf[:8])
			copy(r[i*8:], buf[8:])
		}
	}
	return a, r
}

func aesKeyUnwrap(b cipher.Block, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("%w: bad wrapped key length", errCrypto)
	}
	a, r := kwUnwrap(b, wrapped)
	if subtle.ConstantTimeCompare(a, kwIV) != 1 {
		return nil, fmt.Errorf("%w: key unwrap integrity check failed", errCrypto)
	}
	return r, nil
}

// aesKeyWrapPad is RFC 5649 key wrap with padding.
func aesKeyWrapPad(b cipher.Block, plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, fmt.Errorf("%w: empty input", errCrypto)
	}
	aiv := []byte{0xa6, 0x59, 0x59, 0xa6, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(plain)))
	padded := slices.Clone(plain)
	for len(padded)%8 != 0 {
		padded = append(padded, 0)
	}
	if len(padded) == 8 {
		out := make([]byte, 16)
		copy(out, aiv)
		copy(out[8:], padded)
		b.Encrypt(out, out)
		return out, nil
	}
	return kwWrap(b, aiv, padded), nil
}

func aesKeyUnwrapPad(b cipher.Block, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("%w: bad wrapped key length", errCrypto)
	}
	var a, r []byte
	if len(wrapped) == 16 {
		out := make([]byte, 16)
		b.Decrypt(out, wrapped)
		a, r = out[:8], out[8:]
	} else {
		a, r = kwUnwrap(b, wrapped)
	}
	if a[0] != 0xa6 || a[1] != 0x59 || a[2] != 0x59 || a[3] != 0xa6 {
		return nil, fmt.Errorf("%w: key unwrap integrity check failed", errCrypto)
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli > len(r) || mli <= len(r)-8 {
		return nil, fmt.Errorf("%w: key unwrap integrity check failed", errCrypto)
	}
	for _, c := range r[mli:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: key unwrap integrity check failed", errCrypto)
		}
	}
	return r[:mli], nil
}

// rsaMemo remembers the plaintext of the RSA ciphertexts the emulator
// produced, so that decrypting one of them again skips the private-key
// operation (about 2 ms of CPU for RSA-2048, most of the emulator's cost in
// a mass re-wrap, which unwraps every copy it just wrapped). It is
// faithful: RSA decryption is a function of the key and the ciphertext, and
// for a ciphertext this key produced from m it returns m, so a hit answers
// exactly what the private-key operation would. Every other ciphertext
// (from elsewhere, tampered, or forgotten) takes the real operation, and
// every check before the cryptography (key state, permissions, faults,
// counters) runs as before. The memo lives in memory only and is bounded.
var rsaMemo = &memo{m: map[memoKey][]byte{}}

// memoLimit bounds rsaMemo: a mass re-wrap of 10,000 orgs fits; past it the
// memo starts afresh (misses cost only time).
const memoLimit = 1 << 16

type memoKey struct {
	key *rsa.PrivateKey // the key version's material, unique per version
	alg string
	ct  string
}

type memo struct {
	mu sync.Mutex
	m  map[memoKey][]byte
}

func (c *memo) get(k *rsa.PrivateKey, alg string, ct []byte) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pt, ok := c.m[memoKey{k, alg, string(ct)}]
	return bytes.Clone(pt), ok
}

func (c *memo) put(k *rsa.PrivateKey, alg string, ct, pt []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= memoLimit {
		clear(c.m)
	}
	c.m[memoKey{k, alg, string(ct)}] = bytes.Clone(pt)
}
