package gcpkms_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
)

const (
	key1 = "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1"
	key2 = "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-2"
)

// env is one fake Cloud KMS with two keys and the driver's config for it.
type env struct {
	srv  *gcpkmsemu.Server
	addr string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := gcpkmsemu.New()
	addr, err := srv.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{key1, key2} {
		if err := srv.CreateKey(k, gcpkmsemu.KeyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return &env{srv: srv, addr: addr}
}

func (e *env) config() gcpkms.Config {
	return gcpkms.Config{Endpoint: e.addr, Insecure: true, AllowedLocations: []string{"europe-west4", "europe"}}
}

func (e *env) open(t *testing.T) *gcpkms.Provider {
	t.Helper()
	p, err := gcpkmsOpen(t, e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gcpkmsOpen opens the driver on e's fake, closed when tb ends.
func gcpkmsOpen(tb testing.TB, e *env) (*gcpkms.Provider, error) {
	p, err := gcpkms.Open(tb.Context(), e.config())
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { p.Close() })
	return p, nil
}

func ref(name string) masterkey.Ref { return masterkey.Ref{Provider: gcpkms.Scheme, ID: name} }

// disabler disables (and re-enables) every version of a key.
type disabler struct{ e *env }

func (d disabler) SetEnabled(t *testing.T, key masterkey.Ref, enabled bool) {
	st := kmspb.CryptoKeyVersion_DISABLED
	if enabled {
		st = kmspb.CryptoKeyVersion_ENABLED
	}
	for _, v := range d.e.srv.Versions(key.ID) {
		if err := d.e.srv.SetState(key.ID, v, st); err != nil {
			t.Fatal(err)
		}
	}
}

type rotator struct{ e *env }

func (r rotator) Rotate(t *testing.T, key masterkey.Ref) {
	if _, err := r.e.srv.Rotate(key.ID); err != nil {
		t.Fatal(err)
	}
}

// revoker takes the IAM permission matching the suite's operation name
// from the caller (the fake's anonymous principal).
type revoker struct{ e *env }

func permissionFor(op string) string {
	switch {
	case strings.HasPrefix(strings.ToLower(op), "unwrap"), strings.HasPrefix(strings.ToLower(op), "decrypt"):
		return gcpkmsemu.PermDecrypt
	case strings.HasPrefix(strings.ToLower(op), "wrap"), strings.HasPrefix(strings.ToLower(op), "encrypt"):
		return gcpkmsemu.PermEncrypt
	}
	return gcpkmsemu.PermGetKey
}

func (r revoker) Revoke(t *testing.T, key masterkey.Ref, permission string) {
	if err := r.e.srv.Revoke(key.ID, gcpkmsemu.Anonymous, permissionFor(permission)); err != nil {
		t.Fatal(err)
	}
}

func (r revoker) Restore(t *testing.T, key masterkey.Ref) {
	perms := append(append([]string{}, gcpkmsemu.EncrypterDecrypter...), gcpkmsemu.Viewer...)
	if err := r.e.srv.Grant(key.ID, gcpkmsemu.Anonymous, perms...); err != nil {
		t.Fatal(err)
	}
}

// deleter makes fresh keys and destroys every version of one, as the end
// of Google's destroy schedule does (the fake's clock is not moved, so
// the other keys are untouched).
type deleter struct {
	e *env
	n *atomic.Int64
}

func (d deleter) DeletableKey(t *testing.T) masterkey.Ref {
	name := fmt.Sprintf("projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/deletable-%d", d.n.Add(1))
	if err := d.e.srv.CreateKey(name, gcpkmsemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	return ref(name)
}

func (d deleter) Delete(t *testing.T, key masterkey.Ref) {
	for _, v := range d.e.srv.Versions(key.ID) {
		if err := d.e.srv.SetState(key.ID, v, kmspb.CryptoKeyVersion_DESTROYED); err != nil {
			t.Fatal(err)
		}
	}
}

// staller makes every call of the fake wait (until its caller gives up).
type staller struct{ e *env }

func (s staller) Stall(t *testing.T) func() {
	s.e.srv.SetLatency(time.Hour)
	return func() { s.e.srv.SetLatency(0) }
}

// TestConformance runs the shared master-key suite against the driver and
// the fake, through the official client over a real gRPC connection.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	masterkeytest.Run(t, masterkeytest.Harness{
		Open:              func(t *testing.T) masterkey.Provider { return e.open(t) },
		Keys:              func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return ref(key1), ref(key2) },
		Disabler:          disabler{e},
		Rotator:           rotator{e},
		PermissionRevoker: revoker{e},
		Deleter:           deleter{e, new(atomic.Int64)},
		Staller:           staller{e},
	})
}
