package envelope_test

import (
	"bufio"
	"bytes"
	"crypto/sha3"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/envelope"
)

// Vectors of the orgkms ciphertext format live in testdata/vectors/*.txt, in
// the style of age's testkit: header lines ("name: value"), a blank line, then
// the ciphertext in hex (wrapped at 64 characters). Header lines:
//
//	expect:    success | invalid | auth   (the result of Decrypt)
//	comment:   what the vector checks
//	key:       the 32-byte key, hex
//	org:       Binding.OrgID given to Decrypt
//	keyname:   Binding.KeyName given to Decrypt
//	context:   Binding.Context given to Decrypt, hex, may be empty
//	version:   the key version the ciphertext was generated with
//	plaintext: hex, success vectors only
//
// They are written by "go test -run TestVectors -generate" and never
// regenerated implicitly. Generation is deterministic (nonces come from
// SHAKE-128 of the vector name), so regenerating yields identical files
// unless the format changed, which must never happen silently.
var generate = flag.Bool("generate", false, "rewrite testdata/vectors from the definitions in vectors_test.go")

const vectorDir = "testdata/vectors"

var (
	vectorKey      = "8e0a5f7c1b2d3e4f60718293a4b5c6d7e8f901122334455667788990aabbccdd"
	vectorOtherKey = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
)

type vectorDef struct {
	name    string
	comment string
	expect  string // success, invalid, auth

	plaintext []byte
	gen       envelope.Binding // binding used to encrypt
	dec       *envelope.Binding
	version   uint32
	key       string // key given to Decrypt if not vectorKey
	mutate    func([]byte) []byte
}

func vectorDefs() []vectorDef {
	std := envelope.Binding{OrgID: "org-42", KeyName: "default"}
	withCtx := envelope.Binding{OrgID: "org-42", KeyName: "default", Context: []byte("table=users;column=ssn")}
	pt16 := []byte("sixteen byte msg")
	flip := func(i int, mask byte) func([]byte) []byte {
		return func(ct []byte) []byte {
			if i < 0 {
				i += len(ct)
			}
			ct[i] ^= mask
			return ct
		}
	}
	set := func(i int, v ...byte) func([]byte) []byte {
		return func(ct []byte) []byte { copy(ct[i:], v); return ct }
	}
	truncate := func(n int) func([]byte) []byte {
		return func(ct []byte) []byte {
			if n < 0 {
				n += len(ct)
			}
			return ct[:n]
		}
	}
	bind := func(b envelope.Binding) *envelope.Binding { return &b }
	return []vectorDef{
		{name: "success_empty", comment: "empty plaintext, no context", expect: "success",
			plaintext: []byte{}, gen: std, version: 1},
		{name: "success_1byte_context", comment: "one-byte plaintext with caller context", expect: "success",
			plaintext: []byte{0x2a}, gen: withCtx, version: 7},
		{name: "success_1kib", comment: "1 KiB plaintext, no context", expect: "success",
			plaintext: shake("plaintext 1 KiB", 1024), gen: std, version: 1},
		{name: "success_1kib_context_maxversion", comment: "1 KiB plaintext with context, key version 2^32-1", expect: "success",
			plaintext: shake("plaintext 1 KiB context", 1024), gen: withCtx, version: 0xffffffff},

		{name: "invalid_magic", comment: "first magic byte flipped", expect: "invalid",
			plaintext: pt16, gen: std, version: 1, mutate: flip(0, 0x01)},
		{name: "invalid_format_flipped", comment: "format byte 0x01 flipped to 0x81", expect: "invalid",
			plaintext: pt16, gen: std, version: 1, mutate: flip(3, 0x80)},
		{name: "invalid_format_unknown", comment: "format byte 0x02, not yet defined", expect: "invalid",
			plaintext: pt16, gen: std, version: 1, mutate: set(3, 0x02)},
		{name: "invalid_version_zero", comment: "key version set to 0", expect: "invalid",
			plaintext: pt16, gen: std, version: 1, mutate: set(4, 0, 0, 0, 0)},
		{name: "invalid_truncated_header", comment: "truncated to 47 bytes, one short of the overhead", expect: "invalid",
			plaintext: pt16, gen: std, version: 1, mutate: truncate(envelope.Overhead - 1)},
		{name: "invalid_empty", comment: "empty ciphertext", expect: "invalid",
			plaintext: pt16, gen: std, version: 1, mutate: truncate(0)},

		{name: "auth_version", comment: "key version 1 changed to 0x80000001: the header is in the associated data", expect: "auth",
			plaintext: pt16, gen: std, version: 1, mutate: flip(4, 0x80)},
		{name: "auth_nonce_kdf_half", comment: "nonce byte 0 (the half that derives the key) flipped", expect: "auth",
			plaintext: pt16, gen: std, version: 1, mutate: flip(8, 0x01)},
		{name: "auth_nonce_gcm_half", comment: "nonce byte 12 (the AES-GCM nonce half) flipped", expect: "auth",
			plaintext: pt16, gen: std, version: 1, mutate: flip(20, 0x01)},
		{name: "auth_body", comment: "first ciphertext byte flipped", expect: "auth",
			plaintext: pt16, gen: std, version: 1, mutate: flip(envelope.HeaderSize, 0x01)},
		{name: "auth_tag", comment: "last tag byte flipped", expect: "auth",
			plaintext: pt16, gen: std, version: 1, mutate: flip(-1, 0x80)},
		{name: "auth_truncated_tag", comment: "last byte removed; still longer than the overhead", expect: "auth",
			plaintext: pt16, gen: std, version: 1, mutate: truncate(-1)},
		{name: "auth_wrong_org", comment: "encrypted for org-42, decrypted as org-43", expect: "auth",
			plaintext: pt16, gen: std, version: 1, dec: bind(envelope.Binding{OrgID: "org-43", KeyName: "default"})},
		{name: "auth_wrong_keyname", comment: "encrypted under key name default, decrypted as billing", expect: "auth",
			plaintext: pt16, gen: std, version: 1, dec: bind(envelope.Binding{OrgID: "org-42", KeyName: "billing"})},
		{name: "auth_wrong_context", comment: "encrypted with context, decrypted without", expect: "auth",
			plaintext: pt16, gen: withCtx, version: 1, dec: bind(std)},
		{name: "auth_org_keyname_boundary", comment: "org ab + key name c vs org a + key name bc: the encoding is length-prefixed", expect: "auth",
			plaintext: pt16, gen: envelope.Binding{OrgID: "ab", KeyName: "c"}, version: 1, dec: bind(envelope.Binding{OrgID: "a", KeyName: "bc"})},
		{name: "auth_wrong_key", comment: "decrypted with another key", expect: "auth",
			plaintext: pt16, gen: std, version: 1, key: vectorOtherKey},
	}
}

// shake returns n deterministic bytes derived from label.
func shake(label string, n int) []byte {
	h := sha3.NewSHAKE128()
	h.Write([]byte("orgkms test vector " + label))
	b := make([]byte, n)
	h.Read(b)
	return b
}

func writeVector(t *testing.T, v vectorDef) {
	t.Helper()
	k := mustKey(t, mustHex(t, vectorKey))
	var nonce [envelope.NonceSize]byte
	copy(nonce[:], shake("nonce "+v.name, envelope.NonceSize))
	ct, err := envelope.EncryptWithNonce(nil, k, v.version, v.plaintext, v.gen, &nonce)
	if err != nil {
		t.Fatalf("%s: EncryptWithNonce: %v", v.name, err)
	}
	if v.mutate != nil {
		ct = v.mutate(ct)
	}
	dec, key := v.gen, vectorKey
	if v.dec != nil {
		dec = *v.dec
	}
	if v.key != "" {
		key = v.key
	}
	var buf bytes.Buffer
	header := func(name, value string) {
		if value == "" {
			fmt.Fprintf(&buf, "%s:\n", name) // no trailing space
		} else {
			fmt.Fprintf(&buf, "%s: %s\n", name, value)
		}
	}
	header("expect", v.expect)
	header("comment", v.comment)
	header("key", key)
	header("org", dec.OrgID)
	header("keyname", dec.KeyName)
	header("context", hex.EncodeToString(dec.Context))
	header("version", strconv.FormatUint(uint64(v.version), 10))
	if v.expect == "success" {
		header("plaintext", hex.EncodeToString(v.plaintext))
	}
	buf.WriteString("\n")
	h := hex.EncodeToString(ct)
	for len(h) > 64 {
		buf.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	buf.WriteString(h + "\n")
	if err := os.WriteFile(filepath.Join(vectorDir, v.name+".txt"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type vector struct {
	name      string
	expect    string
	key       []byte
	binding   envelope.Binding
	version   uint32
	plaintext []byte
	ct        []byte
}

func parseVector(name string, data []byte) (vector, error) {
	v := vector{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return v, fmt.Errorf("malformed header line %q", line)
		}
		value = strings.TrimSpace(value)
		if seen[key] {
			return v, fmt.Errorf("duplicate header %q", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "expect":
			v.expect = value
		case "comment":
		case "key":
			v.key, err = hex.DecodeString(value)
		case "org":
			v.binding.OrgID = value
		case "keyname":
			v.binding.KeyName = value
		case "context":
			v.binding.Context, err = hex.DecodeString(value)
		case "version":
			var n uint64
			n, err = strconv.ParseUint(value, 10, 32)
			v.version = uint32(n)
		case "plaintext":
			v.plaintext, err = hex.DecodeString(value)
		default:
			return v, fmt.Errorf("unknown header %q", key)
		}
		if err != nil {
			return v, fmt.Errorf("header %q: %v", key, err)
		}
	}
	var payload strings.Builder
	for sc.Scan() {
		payload.WriteString(strings.TrimSpace(sc.Text()))
	}
	if err := sc.Err(); err != nil {
		return v, err
	}
	var err error
	if v.ct, err = hex.DecodeString(payload.String()); err != nil {
		return v, fmt.Errorf("payload: %v", err)
	}
	for _, h := range []string{"expect", "key", "org", "keyname", "context", "version"} {
		if !seen[h] {
			return v, fmt.Errorf("missing header %q", h)
		}
	}
	switch v.expect {
	case "success":
		if !seen["plaintext"] {
			return v, fmt.Errorf("success vector without plaintext")
		}
	case "invalid", "auth":
	default:
		return v, fmt.Errorf("unknown expect %q", v.expect)
	}
	return v, nil
}

// loadVectors returns every vector in testdata/vectors. It fails the test if
// there are none: a glob that silently matches nothing tests nothing.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no test vectors in %s", vectorDir)
	}
	var vs []vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseVector(strings.TrimSuffix(filepath.Base(f), ".txt"), data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func TestVectors(t *testing.T) {
	if *generate {
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, v := range vectorDefs() {
			writeVector(t, v)
		}
	}
	want := map[string]error{"success": nil, "invalid": envelope.ErrInvalid, "auth": envelope.ErrAuth}
	for _, v := range loadVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			k := mustKey(t, v.key)
			got, err := envelope.Decrypt(nil, k, v.ct, v.binding)
			if !errors.Is(err, want[v.expect]) {
				t.Fatalf("Decrypt err = %v, want %v", err, want[v.expect])
			}
			if v.expect != "success" {
				if got != nil {
					t.Errorf("Decrypt returned %x with an error, want nil", got)
				}
				return
			}
			if !bytes.Equal(got, v.plaintext) {
				t.Errorf("Decrypt = %x, want %x", got, v.plaintext)
			}
			h, err := envelope.ParseHeader(v.ct)
			if err != nil {
				t.Fatalf("ParseHeader: %v", err)
			}
			if h.Format != envelope.FormatXAES256GCM || h.KeyVersion != v.version {
				t.Errorf("ParseHeader = format 0x%02x version %d, want 0x%02x version %d", h.Format, h.KeyVersion, envelope.FormatXAES256GCM, v.version)
			}
			// Our encoder must reproduce the vector from the same inputs and nonce.
			again, err := envelope.EncryptWithNonce(nil, k, v.version, v.plaintext, v.binding, &h.Nonce)
			if err != nil || !bytes.Equal(again, v.ct) {
				t.Errorf("EncryptWithNonce = %x, %v, want the vector ciphertext", again, err)
			}
		})
	}
}

// TestVectorsCoverDefinitions keeps the committed files and the definitions
// in step without regenerating anything.
func TestVectorsCoverDefinitions(t *testing.T) {
	have := map[string]bool{}
	for _, v := range loadVectors(t) {
		have[v.name] = true
	}
	for _, d := range vectorDefs() {
		if !have[d.name] {
			t.Errorf("vector %s is defined but not in %s; run go test -run TestVectors -generate", d.name, vectorDir)
		}
		delete(have, d.name)
	}
	for name := range have {
		t.Errorf("vector %s is in %s but not defined in vectors_test.go", name, vectorDir)
	}
}
