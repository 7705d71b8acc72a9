package masterkeytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Harness describes a driver under test.
type Harness struct {
	// Open returns a fresh provider; the suite closes it.
	Open func(t *testing.T) masterkey.Provider
	// Keys returns two distinct keys of that provider.
	Keys func(t *testing.T) (masterkey.Ref, masterkey.Ref)
	// Optional capabilities; nil means the suite skips the cases needing them.
	Disabler interface {
		SetEnabled(t *testing.T, key masterkey.Ref, enabled bool)
	}
	Rotator interface {
		Rotate(t *testing.T, key masterkey.Ref)
	}
	PermissionRevoker interface {
		Revoke(t *testing.T, key masterkey.Ref, permission string)
		Restore(t *testing.T, key masterkey.Ref)
	}
	// Deleter deletes a key for good (past any recovery window); the
	// suite then expects KeyNotFound or KeyDestroyed from Wrap, Unwrap and
	// Describe. It deletes only keys it made with DeletableKey, never
	// those of Keys.
	Deleter interface {
		// DeletableKey returns a fresh key the suite may delete.
		DeletableKey(t *testing.T) masterkey.Ref
		Delete(t *testing.T, key masterkey.Ref)
	}
	// Staller makes the provider stop answering (calls hang) until the
	// returned release is called, to check that a cancelled context ends a
	// call in flight.
	Staller interface {
		Stall(t *testing.T) (release func())
	}
}

func dek(t *testing.T) []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func wantKind(t *testing.T, what string, err error, want fault.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: error = nil, want kind %v", what, want)
	}
	if got := fault.KindOf(err); got != want {
		t.Fatalf("%s: kind = %v, want %v (err: %v)", what, got, want, err)
	}
}

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T) *masterkey.Keeper {
		p := h.Open(t)
		k := masterkey.NewKeeper("test", p, masterkey.KeeperOptions{Timeout: 20 * time.Second})
		t.Cleanup(func() { k.Close() })
		return k
	}
	aad := []byte("org/acme/root/v1")

	t.Run("RoundTrip", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		d := dek(t)
		w, err := k.Wrap(t.Context(), k1, d, aad)
		if err != nil {
			t.Fatalf("Wrap: %v", err)
		}
		if w.Key.Version == "" {
			t.Fatalf("Wrap did not report the key version")
		}
		if bytes.Contains(w.Ciphertext, d) {
			t.Fatalf("wrapped blob contains the plaintext key")
		}
		got, err := k.Unwrap(t.Context(), w, aad)
		if err != nil {
			t.Fatalf("Unwrap: %v", err)
		}
		if !bytes.Equal(got, d) {
			t.Fatalf("Unwrap returned a different key")
		}
	})

	t.Run("WrapsDiffer", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		d := dek(t)
		w1, err := k.Wrap(t.Context(), k1, d, aad)
		if err != nil {
			t.Fatal(err)
		}
		w2, err := k.Wrap(t.Context(), k1, d, aad)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(w1.Ciphertext, w2.Ciphertext) {
			t.Fatalf("two wraps of the same key are identical")
		}
	})

	t.Run("CrossKeyUnwrapFails", func(t *testing.T) {
		k := open(t)
		k1, k2 := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := k.Describe(t.Context(), k2)
		if err != nil {
			t.Fatal(err)
		}
		w.Key = d2.Key
		_, err = k.Unwrap(t.Context(), w, aad)
		if err == nil {
			t.Fatalf("Unwrap with another key succeeded")
		}
		if kind := fault.KindOf(err); kind != fault.Integrity && kind != fault.Invalid {
			t.Fatalf("Unwrap(k2, ct of k1) kind = %v, want %v or %v", kind, fault.Integrity, fault.Invalid)
		}
	})

	t.Run("WrongAAD", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		_, err = k.Unwrap(t.Context(), w, []byte("org/globex/root/v1"))
		wantKind(t, "Unwrap with another org's AAD", err, fault.Integrity)
	})

	t.Run("Tampered", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		n := len(w.Ciphertext)
		cases := []struct {
			name string
			ct   []byte
		}{
			{"first byte flipped", flip(w.Ciphertext, 0)},
			{"last byte flipped", flip(w.Ciphertext, n-1)},
			{"truncated", w.Ciphertext[:n/2]},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				tw := w
				tw.Ciphertext = c.ct
				_, err := k.Unwrap(t.Context(), tw, aad)
				if err == nil {
					t.Fatalf("Unwrap of a tampered blob succeeded")
				}
				if kind := fault.KindOf(err); kind != fault.Integrity && kind != fault.Invalid {
					t.Fatalf("Unwrap(tampered) kind = %v, want %v or %v", kind, fault.Integrity, fault.Invalid)
				}
			})
		}
	})

	t.Run("UnwrapOldVersionAfterRotation", func(t *testing.T) {
		if h.Rotator == nil {
			t.Skip("driver harness has no Rotator: the provider cannot rotate keys")
		}
		k := open(t)
		k1, _ := h.Keys(t)
		d := dek(t)
		w, err := k.Wrap(t.Context(), k1, d, aad)
		if err != nil {
			t.Fatal(err)
		}
		h.Rotator.Rotate(t, k1)
		desc, err := k.Describe(t.Context(), k1)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Key.Version == w.Key.Version {
			t.Fatalf("Describe after rotation reports the old version %q", w.Key.Version)
		}
		w2, err := k.Wrap(t.Context(), k1, d, aad)
		if err != nil {
			t.Fatal(err)
		}
		if w2.Key.Version != desc.Key.Version {
			t.Fatalf("Wrap after rotation used version %q, want current %q", w2.Key.Version, desc.Key.Version)
		}
		got, err := k.Unwrap(t.Context(), w, aad)
		if err != nil {
			t.Fatalf("Unwrap of the old version: %v", err)
		}
		if !bytes.Equal(got, d) {
			t.Fatalf("old version unwrapped to a different key")
		}
	})

	t.Run("Disabled", func(t *testing.T) {
		if h.Disabler == nil {
			t.Skip("driver harness has no Disabler: the provider cannot disable keys")
		}
		k := open(t)
		k1, _ := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		h.Disabler.SetEnabled(t, k1, false)
		t.Cleanup(func() { h.Disabler.SetEnabled(t, k1, true) })
		_, err = k.Unwrap(t.Context(), w, aad)
		wantKind(t, "Unwrap with a disabled key", err, fault.KeyDisabled)
		desc, err := k.Describe(t.Context(), k1)
		if err != nil {
			t.Fatalf("Describe of a disabled key: %v", err)
		}
		if desc.Enabled {
			t.Fatalf("Describe of a disabled key reports Enabled")
		}
		h.Disabler.SetEnabled(t, k1, true)
		if _, err := k.Unwrap(t.Context(), w, aad); err != nil {
			t.Fatalf("Unwrap after re-enabling: %v", err)
		}
	})

	t.Run("PermissionRevoked", func(t *testing.T) {
		if h.PermissionRevoker == nil {
			t.Skip("driver harness has no PermissionRevoker: the provider has no permissions")
		}
		k := open(t)
		k1, _ := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		h.PermissionRevoker.Revoke(t, k1, "unwrapKey")
		t.Cleanup(func() { h.PermissionRevoker.Restore(t, k1) })
		_, err = k.Unwrap(t.Context(), w, aad)
		wantKind(t, "Unwrap without permission", err, fault.PermissionDenied)
		if fe := fault.As(err); fe.Permission == "" {
			t.Fatalf("PermissionDenied error does not name the permission: %v", err)
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := k.Wrap(ctx, k1, dek(t), aad)
		wantKind(t, "Wrap with a cancelled context", err, fault.Unavailable)
	})

	t.Run("CancelledContextEveryCall", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = k.Unwrap(ctx, w, aad)
		wantKind(t, "Unwrap with a cancelled context", err, fault.Unavailable)
		_, err = k.Describe(ctx, k1)
		wantKind(t, "Describe with a cancelled context", err, fault.Unavailable)
	})

	t.Run("CancelInFlight", func(t *testing.T) {
		if h.Staller == nil {
			t.Skip("driver harness has no Staller: the provider cannot be made to hang")
		}
		k := open(t)
		k1, _ := h.Keys(t)
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		release := h.Staller.Stall(t)
		defer release()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { _, err := k.Unwrap(ctx, w, aad); done <- err }()
		cancel()
		select {
		case err := <-done:
			wantKind(t, "Unwrap cancelled in flight", err, fault.Unavailable)
		case <-time.After(time.Minute):
			t.Fatal("Unwrap did not return after its context was cancelled while the provider hung")
		}
	})

	t.Run("VersionReportedOnWrap", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		desc, err := k.Describe(t.Context(), k1)
		if err != nil {
			t.Fatal(err)
		}
		if desc.Key.Version == "" {
			t.Fatal("Describe did not report the current version")
		}
		w, err := k.Wrap(t.Context(), k1, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		if w.Key.Version != desc.Key.Version {
			t.Fatalf("Wrap reported version %q, Describe the current version %q", w.Key.Version, desc.Key.Version)
		}
		if w.Key.Unversioned() != desc.Key.Unversioned() {
			t.Fatalf("Wrap reported key %v, Describe %v", w.Key.Unversioned(), desc.Key.Unversioned())
		}
	})

	t.Run("Deleted", func(t *testing.T) {
		if h.Deleter == nil {
			t.Skip("driver harness has no Deleter: the provider cannot delete keys")
		}
		k := open(t)
		key := h.Deleter.DeletableKey(t)
		w, err := k.Wrap(t.Context(), key, dek(t), aad)
		if err != nil {
			t.Fatal(err)
		}
		h.Deleter.Delete(t, key)
		gone := func(what string, err error) {
			t.Helper()
			if kind := fault.KindOf(err); err == nil || (kind != fault.KeyNotFound && kind != fault.KeyDestroyed) {
				t.Fatalf("%s of a deleted key: err = %v, want kind %v or %v", what, err, fault.KeyNotFound, fault.KeyDestroyed)
			}
		}
		_, err = k.Unwrap(t.Context(), w, aad)
		gone("Unwrap", err)
		_, err = k.Wrap(t.Context(), key, dek(t), aad)
		gone("Wrap", err)
		_, err = k.Describe(t.Context(), key)
		gone("Describe", err)
	})

	t.Run("Concurrent", func(t *testing.T) {
		k := open(t)
		k1, _ := h.Keys(t)
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for range 32 {
			wg.Go(func() {
				d := make([]byte, 32)
				rand.Read(d)
				w, err := k.Wrap(t.Context(), k1, d, aad)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.Unwrap(t.Context(), w, aad)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, d) {
					errs <- &fault.Error{Kind: fault.Integrity, Reason: "round trip mismatch"}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent round trip: %v", err)
		}
	})

	t.Run("CloseTwice", func(t *testing.T) {
		k := open(t)
		if err := k.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := k.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		k1, _ := h.Keys(t)
		_, err := k.Wrap(t.Context(), k1, dek(t), aad)
		wantKind(t, "Wrap after Close", err, fault.Unavailable)
	})
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}
