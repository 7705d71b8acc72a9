package keys_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// TestPreviousPlatformKey moves the platform to another key: an org made
// under the old one keeps decrypting through previous_master_keys, and
// the old key is the platform's in every word an org sees.
func TestPreviousPlatformKey(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := masterkeytest.NewFake()
	oldRef, newRef := fake.CreateKey("old-platform-key"), fake.CreateKey("new-platform-key")
	reg := masterkey.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	reg.Register(masterkeytest.FakeDriver(), masterkey.NewKeeper("fake", fake, masterkey.KeeperOptions{Logger: log}))
	open := func(platform masterkey.Ref, previous ...masterkey.Ref) *keys.Service {
		svc, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, PreviousPlatformKeys: previous, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { svc.Close(context.Background()) })
		return svc
	}
	before := open(oldRef)
	if _, err := before.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	ct, err := before.Encrypt(ctx, "svc", "acme", "default", []byte("secret"), nil)
	if err != nil {
		t.Fatal(err)
	}

	after := open(newRef, oldRef)
	if !after.IsPlatformKey(oldRef.WithVersion("1")) || !after.IsPlatformKey(newRef) {
		t.Fatalf("IsPlatformKey: the old and the new platform key must both be platform keys")
	}
	if got := after.AuditKeyName(oldRef.WithVersion("1")); got != "platform" {
		t.Fatalf("AuditKeyName(previous platform key) = %q, want platform", got)
	}
	if got := after.RedactPlatformKey("unwrap with " + oldRef.String() + " failed"); strings.Contains(got, oldRef.ID) {
		t.Fatalf("RedactPlatformKey left the previous key's ID: %q", got)
	}
	pt, _, err := after.Decrypt(ctx, "svc", "acme", "default", ct.Bytes, nil)
	if err != nil || string(pt) != "secret" {
		t.Fatalf("Decrypt under the previous platform key = %q, %v", pt, err)
	}
	// New orgs get the new key.
	org, err := after.CreateOrg(ctx, "test", "globex", "")
	if err != nil || org.MasterKey != newRef {
		t.Fatalf("CreateOrg after the move: master key %v, %v; want %v", org.MasterKey, err, newRef)
	}
	// The old key failing is a platform key fault, in platform words.
	fake.SetEnabled(oldRef.ID, false)
	after.Cache().PurgeAll()
	_, _, err = after.Decrypt(ctx, "svc", "acme", "default", ct.Bytes, nil)
	if fault.KindOf(err) != fault.KeyDisabled {
		t.Fatalf("Decrypt with the previous key disabled kind = %v, want %v", fault.KindOf(err), fault.KeyDisabled)
	}
	if msg := fault.Message(err); strings.Contains(msg, oldRef.ID) || !strings.Contains(msg, "platform") {
		t.Fatalf("error an org sees names the key's location or not the platform: %q", msg)
	}
}
