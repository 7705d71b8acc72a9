package azurekv_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
)

// emuHarness runs the conformance suite against the Azure emulator over
// TLS, through the official SDK, exactly as against Azure.
type emuHarness struct {
	emu    *azureemu.Emulator
	demo   azureemu.Demo
	vault  string
	hsm    bool
	keyIDs [2]string
}

func (h *emuHarness) ref(t *testing.T, name string) masterkey.Ref {
	v, err := h.emu.Vault(h.vault)
	if err != nil {
		t.Fatal(err)
	}
	k, err := azurekv.ParseKeyID(v.URI, name, "", h.demo.TenantID, azurekv.DefaultHostSuffixes)
	if err != nil {
		t.Fatal(err)
	}
	return k.Ref()
}

func (h *emuHarness) SetEnabled(t *testing.T, key masterkey.Ref, enabled bool) {
	for _, n := range h.keyIDs {
		if key == h.ref(t, n) {
			if _, err := h.emu.UpdateKey(h.vault, n, "", &enabled, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func (h *emuHarness) name(t *testing.T, key masterkey.Ref) string {
	for _, n := range h.keyIDs {
		if key.Unversioned() == h.ref(t, n) {
			return n
		}
	}
	t.Fatalf("unknown key %v", key)
	return ""
}

func (h *emuHarness) Rotate(t *testing.T, key masterkey.Ref) {
	if _, err := h.emu.RotateKey(h.vault, h.name(t, key)); err != nil {
		t.Fatal(err)
	}
}

func (h *emuHarness) Revoke(t *testing.T, key masterkey.Ref, perm string) {
	perms := slices.DeleteFunc(slices.Clone(azureemu.DemoPermissions), func(p string) bool { return p == perm })
	if err := h.emu.SetPolicy(h.vault, h.demo.ClientID, perms); err != nil {
		t.Fatal(err)
	}
}

func (h *emuHarness) Restore(t *testing.T, key masterkey.Ref) {
	if err := h.emu.SetPolicy(h.vault, h.demo.ClientID, azureemu.DemoPermissions); err != nil {
		t.Fatal(err)
	}
}

func startEmulator(t *testing.T) (*azureemu.Emulator, azureemu.Demo) {
	t.Helper()
	emu, err := azureemu.Open(context.Background(), azureemu.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	demo, err := azureemu.SeedDemo(emu, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.GrantConsent(demo.TenantID, demo.ClientID); err != nil {
		t.Fatal(err)
	}
	return emu, demo
}

func newProvider(t *testing.T, emu *azureemu.Emulator, demo azureemu.Demo) *azurekv.Provider {
	p, err := azurekv.New(azurekv.Config{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/",
		HTTPClient: emu.HTTPClient(), MaxRetries: 1, RetryDelay: 10 * time.Millisecond,
		// Generous: 32 concurrent first calls on a loaded machine; the
		// outage tests set their own bounds.
		Timeout: 2 * time.Minute, TryTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformanceKeyVault(t *testing.T) {
	emu, demo := startEmulator(t)
	if _, err := emu.CreateKey(azureemu.DemoVault, "second", azureemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	h := &emuHarness{emu: emu, demo: demo, vault: azureemu.DemoVault, keyIDs: [2]string{demo.KeyName, "second"}}
	masterkeytest.Run(t, masterkeytest.Harness{
		Open:              func(t *testing.T) masterkey.Provider { return newProvider(t, emu, demo) },
		Keys:              func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return h.ref(t, h.keyIDs[0]), h.ref(t, h.keyIDs[1]) },
		Disabler:          h,
		Rotator:           h,
		PermissionRevoker: h,
	})
}

func TestConformanceManagedHSM(t *testing.T) {
	emu, demo := startEmulator(t)
	if _, err := emu.CreateVault(demo.TenantID, "contoso-hsm", azureemu.VaultOptions{ManagedHSM: true, PurgeProtection: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"aes-1", "aes-2"} {
		if _, err := emu.CreateKey("contoso-hsm", n, azureemu.KeyOptions{Kty: "oct-HSM", Size: 256}); err != nil {
			t.Fatal(err)
		}
	}
	if err := emu.SetPolicy("contoso-hsm", demo.ClientID, azureemu.DemoPermissions); err != nil {
		t.Fatal(err)
	}
	h := &emuHarness{emu: emu, demo: demo, vault: "contoso-hsm", hsm: true, keyIDs: [2]string{"aes-1", "aes-2"}}
	masterkeytest.Run(t, masterkeytest.Harness{
		Open:              func(t *testing.T) masterkey.Provider { return newProvider(t, emu, demo) },
		Keys:              func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return h.ref(t, "aes-1"), h.ref(t, "aes-2") },
		Disabler:          h,
		Rotator:           h,
		PermissionRevoker: h,
	})
}

// TestVaultOfAnotherTenantIsRefused: a vault in a tenant orgkms was not
// authorized for is refused before any token is minted for it.
func TestVaultOfAnotherTenantIsRefused(t *testing.T) {
	emu, demo := startEmulator(t)
	other, _ := emu.CreateTenant("fabrikam")
	emu.GrantConsent(other.ID, demo.ClientID)
	v, err := emu.CreateVault(other.ID, "fabrikam-kv", azureemu.VaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	emu.CreateKey("fabrikam-kv", "k", azureemu.KeyOptions{})
	emu.SetPolicy("fabrikam-kv", demo.ClientID, azureemu.DemoPermissions)
	// The org claims tenant contoso but points at fabrikam's vault.
	k, err := azurekv.ParseKeyID(v.URI, "k", "", demo.TenantID, azurekv.DefaultHostSuffixes)
	if err != nil {
		t.Fatal(err)
	}
	keeper := masterkey.NewKeeper("azurekv", newProvider(t, emu, demo), masterkey.KeeperOptions{})
	_, err = keeper.Describe(t.Context(), k.Ref())
	if fault.KindOf(err) != fault.CredentialsInvalid {
		t.Fatalf("Describe of another tenant's vault kind = %v (%v), want %v", fault.KindOf(err), err, fault.CredentialsInvalid)
	}
}
