package azurekv_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

// startEmulatorWith is startEmulator with an emulator configuration.
func startEmulatorWith(t *testing.T, cfg azureemu.Config) (*azureemu.Emulator, azureemu.Demo) {
	t.Helper()
	cfg.Dir, cfg.Logger = t.TempDir(), slog.New(slog.DiscardHandler)
	emu, err := azureemu.Open(context.Background(), cfg)
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

func demoKeeper(t *testing.T, emu *azureemu.Emulator, demo azureemu.Demo) (*masterkey.Keeper, masterkey.Ref) {
	t.Helper()
	k, err := azurekv.ParseKeyID(demo.VaultURI, demo.KeyName, "", demo.TenantID, azurekv.DefaultHostSuffixes)
	if err != nil {
		t.Fatal(err)
	}
	keeper := masterkey.NewKeeper(azurekv.Scheme, newProvider(t, emu, demo), masterkey.KeeperOptions{Logger: slog.New(slog.DiscardHandler), Timeout: 2 * time.Minute})
	t.Cleanup(func() { keeper.Close() })
	return keeper, k.Ref()
}

// TestRefusedTokenIsRenewed: when the vault refuses the cached token (it
// was revoked long before it expires) while consent stands, the driver
// drops it and succeeds with a fresh one instead of reporting a credential
// failure.
func TestRefusedTokenIsRenewed(t *testing.T) {
	emu, demo := startEmulator(t)
	keeper, ref := demoKeeper(t, emu, demo)
	ctx := t.Context()
	w, err := keeper.Wrap(ctx, ref, make([]byte, 32), []byte("org/acme"))
	if err != nil {
		t.Fatalf("Wrap: %v", err)
	}
	if err := emu.RevokeTokens(demo.TenantID, demo.ClientID); err != nil {
		t.Fatal(err)
	}
	if _, err := keeper.Unwrap(ctx, w, []byte("org/acme")); err != nil {
		t.Fatalf("Unwrap after the cached token was revoked: %v, want success with a fresh token", err)
	}
	if _, err := keeper.Describe(ctx, ref); err != nil {
		t.Fatalf("Describe after the cached token was revoked: %v", err)
	}
}

// TestConsentWithdrawn: withdrawn admin consent is reported as
// CMKConsentRevoked (not as a missing access-policy permission) with a
// message telling the admin to grant consent again, as soon as the vault
// refuses the cached token, and by the token check of Test Managed Key at
// once even while the vault still honours the cached token (as Azure does).
func TestConsentWithdrawn(t *testing.T) {
	tests := []struct {
		name         string
		cfg          azureemu.Config
		revokeTokens bool // the tokens issued before are refused too
		wantCalls    fault.Kind
	}{
		{"tokens refused at once", azureemu.Config{}, false, fault.CMKConsentRevoked},
		{"tokens honoured until revoked", azureemu.Config{KeepTokensAfterRevoke: true}, true, fault.CMKConsentRevoked},
		{"tokens still honoured", azureemu.Config{KeepTokensAfterRevoke: true}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, demo := startEmulatorWith(t, tt.cfg)
			keeper, ref := demoKeeper(t, emu, demo)
			ctx := t.Context()
			aad := []byte("org/acme")
			w, err := keeper.Wrap(ctx, ref, make([]byte, 32), aad)
			if err != nil {
				t.Fatalf("Wrap: %v", err)
			}
			if err := emu.RevokeConsent(demo.TenantID, demo.ClientID); err != nil {
				t.Fatal(err)
			}
			if tt.revokeTokens {
				if err := emu.RevokeTokens(demo.TenantID, demo.ClientID); err != nil {
					t.Fatal(err)
				}
			}
			wantConsent := func(what string, err error) {
				t.Helper()
				fe := fault.As(err)
				if fe == nil || fe.Kind != fault.CMKConsentRevoked {
					t.Fatalf("%s kind = %v (%v), want %v", what, fault.KindOf(err), err, fault.CMKConsentRevoked)
				}
				msg := fault.Message(err)
				if !strings.Contains(msg, "consent") || !strings.Contains(msg, demo.TenantID) || !strings.Contains(msg, "Authorize") {
					t.Fatalf("%s message %q: want it to say to grant consent again in tenant %s (Authorize)", what, msg, demo.TenantID)
				}
			}
			// The token check never trusts a cached token.
			wantConsent("CheckCredentials", keeper.CheckCredentials(ctx, ref))
			_, uerr := keeper.Unwrap(ctx, w, aad)
			_, derr := keeper.Describe(ctx, ref)
			if tt.wantCalls == 0 {
				if uerr != nil || derr != nil {
					t.Fatalf("Unwrap, Describe with a still honoured token: %v, %v", uerr, derr)
				}
				return
			}
			wantConsent("Unwrap", uerr)
			wantConsent("Describe", derr)
		})
	}
}
