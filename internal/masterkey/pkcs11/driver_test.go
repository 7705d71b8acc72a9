package pkcs11_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11"
)

var aad = []byte("org/acme/root/v1")

func newDEK(t *testing.T) []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func wantKind(t *testing.T, what string, err error, want fault.Kind) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: error = nil, want kind %v", what, want)
	}
	if got := fault.KindOf(err); got != want {
		t.Fatalf("%s: kind = %v, want %v (err: %v)", what, got, want, err)
	}
	return fault.As(err)
}

// Versions: Describe reports the highest CKA_ID, Wrap uses it, Unwrap uses
// exactly the version named, and a blob of one version never unwraps with
// another.
func TestVersions(t *testing.T) {
	_, k1, _ := setup(t)
	p := open(t, pkcs11.Config{})
	defer p.Close()
	ctx := t.Context()
	d := newDEK(t)
	w1, err := p.Wrap(ctx, k1, d, aad)
	if err != nil || w1.Key.Version != "1" {
		t.Fatalf("Wrap = %v, %v; want version 1", w1.Key, err)
	}
	for want := 2; want <= 3; want++ {
		v, err := p.NewVersion(ctx, k1)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := p.Describe(ctx, k1)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Key != v || v.Version != itoa(want) {
			t.Fatalf("after NewVersion %v, Describe reports %v; want version %d", v, desc.Key, want)
		}
	}
	w3, err := p.Wrap(ctx, k1, d, aad)
	if err != nil || w3.Key.Version != "3" {
		t.Fatalf("Wrap after two rotations = %v, %v; want version 3", w3.Key, err)
	}
	// Exactly the version named: each blob with its own version only.
	for _, w := range []masterkey.Wrapped{w1, w3} {
		got, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("Unwrap(%v) = %v", w.Key, err)
		}
	}
	_, err = p.Unwrap(ctx, k1.WithVersion("2"), w1.Ciphertext, aad)
	wantKind(t, "Unwrap of a version-1 blob with version 2", err, fault.Integrity)
	_, err = p.Unwrap(ctx, k1.WithVersion("9"), w1.Ciphertext, aad)
	wantKind(t, "Unwrap with a version that does not exist", err, fault.KeyNotFound)
	// Wrap with a named old version still works (the re-wrap job names none).
	if w, err := p.Wrap(ctx, k1.WithVersion("2"), d, aad); err != nil || w.Key.Version != "2" {
		t.Fatalf("Wrap(version 2) = %v, %v", w.Key, err)
	}
	// Describe of a named version.
	if desc, err := p.Describe(ctx, k1.WithVersion("1")); err != nil || desc.Key.Version != "1" || !desc.Enabled {
		t.Fatalf("Describe(#1) = %+v, %v", desc, err)
	}
	// A second provider (a restart) reads the same versions back.
	p2 := open(t, pkcs11.Config{})
	defer p2.Close()
	if got, err := p2.Unwrap(ctx, w1.Key, w1.Ciphertext, aad); err != nil || !bytes.Equal(got, d) {
		t.Fatalf("Unwrap on a second provider: %v", err)
	}
}

func itoa(n int) string { return string(rune('0' + n)) }

func TestKeyMissing(t *testing.T) {
	tok, _, _ := setup(t)
	p := open(t, pkcs11.Config{})
	defer p.Close()
	_, err := p.Describe(t.Context(), ref(t, tok.URI("no-such-key")))
	fe := wantKind(t, "Describe of a missing key", err, fault.KeyNotFound)
	if !strings.Contains(fe.Error(), "no-such-key") {
		t.Errorf("error does not name the key: %v", err)
	}
	_, err = p.Wrap(t.Context(), ref(t, tok.URI("no-such-key")), newDEK(t), aad)
	wantKind(t, "Wrap with a missing key", err, fault.KeyNotFound)
}

func TestTokenMissing(t *testing.T) {
	tok, _, _ := setup(t)
	p := open(t, pkcs11.Config{})
	defer p.Close()
	uri := strings.Replace(tok.URI("kek-a"), "token=orgkms", "token=elsewhere", 1)
	_, err := p.Describe(t.Context(), ref(t, uri))
	fe := wantKind(t, "Describe on a missing token", err, fault.KeyNotFound)
	if !strings.Contains(fe.Error(), "no token labelled elsewhere") || !strings.Contains(fe.Error(), "orgkms") {
		t.Errorf("error does not say which token is missing and which are present: %v", err)
	}
}

// A wrong PIN is an operator fault with a remedy, and the PIN appears in no
// error.
func TestWrongPIN(t *testing.T) {
	tok, k1, _ := setup(t)
	const wrong = "987654"
	bad := strings.Replace(tok.URI("kek-a"), "pin-source=file:"+tok.PINFile, "pin-source=env:TEST_HSM_PIN", 1)
	p := open(t, pkcs11.Config{Getenv: func(string) string { return wrong }})
	defer p.Close()
	_, err := p.Describe(t.Context(), ref(t, bad))
	fe := wantKind(t, "Describe with a wrong PIN", err, fault.CredentialsInvalid)
	msg := fe.Error()
	if strings.Contains(msg, wrong) || strings.Contains(msg, tok.PIN) {
		t.Fatalf("the error holds the PIN: %v", msg)
	}
	if !strings.Contains(msg, "refused the PIN") || !strings.Contains(msg, "env:TEST_HSM_PIN") {
		t.Errorf("the error names no remedy or PIN source: %v", msg)
	}
	// The right PIN still works after the refused login (not locked).
	good := open(t, pkcs11.Config{})
	if _, err := good.Describe(t.Context(), k1); err != nil {
		t.Fatalf("Describe with the right PIN: %v", err)
	}
	// The login is the process's (PKCS#11 logs in an application, not a
	// session): close every provider so that the next ones log in again.
	good.Close()
	p.Close()
	// An unset variable and a missing file are operator faults too.
	p3 := open(t, pkcs11.Config{Getenv: func(string) string { return "" }})
	_, err = p3.Describe(t.Context(), ref(t, bad))
	wantKind(t, "Describe with an unset PIN variable", err, fault.CredentialsInvalid)
	p3.Close()
	os.Remove(tok.PINFile)
	p4 := open(t, pkcs11.Config{})
	defer p4.Close()
	_, err = p4.Describe(t.Context(), k1)
	fe = wantKind(t, "Describe without the PIN file", err, fault.CredentialsInvalid)
	if !strings.Contains(fe.Error(), tok.PINFile) {
		t.Errorf("error does not name the PIN file: %v", fe)
	}
}

// The module path and PIN source may come from the configuration instead
// of the URI; the ref then names only the token and the key.
func TestConfigDefaults(t *testing.T) {
	tok, _, _ := setup(t)
	k := ref(t, "pkcs11:token=orgkms;object=kek-a")
	p := open(t, pkcs11.Config{ModulePath: tok.Module, PINSource: "file:" + tok.PINFile})
	defer p.Close()
	w, err := p.Wrap(t.Context(), k, newDEK(t), aad)
	if err != nil || w.Key.String() != "pkcs11://token=orgkms;object=kek-a#1" {
		t.Fatalf("Wrap = %v, %v", w.Key, err)
	}
	noModule := open(t, pkcs11.Config{})
	defer noModule.Close()
	_, err = noModule.Describe(t.Context(), k)
	wantKind(t, "Describe without a module", err, fault.Invalid)
	if _, err := pkcs11.New(pkcs11.Config{PINSource: "1234"}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("New with a PIN as pin source: %v, want Invalid", err)
	}
	if _, err := pkcs11.New(pkcs11.Config{ModulePath: "libsofthsm2.so"}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("New with a relative module path: %v, want Invalid", err)
	}
	bad := open(t, pkcs11.Config{ModulePath: tok.Dir + "/missing.so", PINSource: "file:" + tok.PINFile})
	defer bad.Close()
	_, err = bad.Describe(t.Context(), k)
	wantKind(t, "Describe with a missing module", err, fault.Invalid)
}

// The pool bounds the sessions: with a pool of 2, many goroutines share
// two sessions; a caller waiting for a session gives up when its context
// ends.
func TestPoolConcurrency(t *testing.T) {
	_, k1, _ := setup(t)
	p := open(t, pkcs11.Config{PoolSize: 2})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			d := newDEK(t)
			for range 5 {
				w, err := p.Wrap(t.Context(), k1, d, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad)
				if err != nil || !bytes.Equal(got, d) {
					errs <- &fault.Error{Kind: fault.Integrity, Reason: "round trip", Err: err}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent round trip: %v", err)
	}
}

func TestPoolWaitHonoursContext(t *testing.T) {
	_, k1, _ := setup(t)
	p := open(t, pkcs11.Config{PoolSize: 1})
	defer p.Close()
	release := pkcs11.HoldSession(t, p, k1)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Wrap(ctx, k1, newDEK(t), aad)
	wantKind(t, "Wrap while the only session is held", err, fault.Unavailable)
	release()
	if _, err := p.Wrap(t.Context(), k1, newDEK(t), aad); err != nil {
		t.Fatalf("Wrap after the session came back: %v", err)
	}
}

// A key that may leave the HSM is refused by Describe (and so by the start
// probe).
func TestExtractableKeyRefused(t *testing.T) {
	tok, _, _ := setup(t)
	k := ref(t, tok.URI("weak"))
	p := open(t, pkcs11.Config{})
	defer p.Close()
	pkcs11.GenerateExtractable(t, p, k, "1")
	_, err := p.Describe(t.Context(), k)
	fe := wantKind(t, "Describe of an extractable key", err, fault.Invalid)
	if !strings.Contains(fe.Error(), "CKA_EXTRACTABLE") {
		t.Errorf("error names no cause: %v", err)
	}
}
