package azurekv_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

// generous is the limit of a test call: far above any bound of the driver
// under test, so that only the driver's own timeouts and retry budget can
// end a hang in time.
const generous = 5 * time.Minute

// outageKeeper returns a keeper over a provider configured by cfg (client
// and emulator fields filled in) whose token and challenge are already
// cached, and the demo key.
func outageKeeper(t *testing.T, emu *azureemu.Emulator, demo azureemu.Demo, cfg azurekv.Config) (*masterkey.Keeper, masterkey.Ref) {
	t.Helper()
	cfg.ClientID, cfg.ClientSecret, cfg.AuthorityHost = demo.ClientID, demo.Secret, emu.URL()+"/"
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = emu.HTTPClient()
	}
	p, err := azurekv.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	keeper := masterkey.NewKeeper(azurekv.Scheme, p, masterkey.KeeperOptions{Logger: slog.New(slog.DiscardHandler), Timeout: generous})
	t.Cleanup(func() { keeper.Close() })
	k, err := azurekv.ParseKeyID(demo.VaultURI, demo.KeyName, "", demo.TenantID, azurekv.DefaultHostSuffixes)
	if err != nil {
		t.Fatal(err)
	}
	return keeper, k.Ref()
}

// TestOutageAnswersFast: an outage answers Unavailable with a Retry-After,
// after a bounded number of attempts ended by the per-attempt timeout or the
// per-call budget, never by the caller's deadline; a Retry-After longer
// than the driver would wait ends the call at once instead of holding it.
func TestOutageAnswersFast(t *testing.T) {
	tests := []struct {
		name           string
		cfg            azurekv.Config
		fault          azureemu.Fault
		wantAttempts   int           // vault requests of the failing call
		wantRetryAfter time.Duration // 0: any positive value
	}{
		{"connection dropped, default retry budget", azurekv.Config{}, azureemu.Fault{Outage: true}, 1 + azurekv.DefaultMaxRetries, 0},
		{"connection dropped, no retries", azurekv.Config{MaxRetries: -1}, azureemu.Fault{Outage: true}, 1, 0},
		{"5xx, two retries", azurekv.Config{MaxRetries: 2, RetryDelay: time.Millisecond}, azureemu.Fault{Status: 503}, 3, 0},
		// A hang only a timeout can end: each attempt is cut by TryTimeout.
		{"hang, each attempt timed out", azurekv.Config{TryTimeout: 500 * time.Millisecond, Timeout: generous, MaxRetries: 2, RetryDelay: time.Millisecond},
			azureemu.Fault{Latency: 24 * time.Hour}, 3, 0},
		// ... or the whole call by Timeout, whatever the retry budget.
		{"hang, call budget spent", azurekv.Config{TryTimeout: generous, Timeout: 100 * time.Millisecond, MaxRetries: 5},
			azureemu.Fault{Latency: 24 * time.Hour}, 1, 0},
		{"throttled beyond the wait limit", azurekv.Config{MaxRetryDelay: time.Second}, azureemu.Fault{Status: 429, RetryAfter: 30 * time.Second}, 1, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, demo := startEmulator(t)
			keeper, ref := outageKeeper(t, emu, demo, tt.cfg)
			ctx, cancel := context.WithTimeout(t.Context(), generous)
			defer cancel()
			// Cache the token and the challenge. Tight per-attempt limits
			// may cut this short on a loaded machine: try until it works.
			for {
				_, err := keeper.Describe(ctx, ref)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("Describe before the outage: %v", err)
				}
			}
			emu.ResetCounters()
			if err := emu.SetFault(azureemu.DemoVault, tt.fault); err != nil {
				t.Fatal(err)
			}
			_, err := keeper.Describe(ctx, ref)
			if ctx.Err() != nil {
				t.Fatalf("Describe was ended by the test's deadline, not by the driver's bounds")
			}
			fe := fault.As(err)
			if fe == nil || fe.Kind != fault.Unavailable {
				t.Fatalf("Describe during the outage kind = %v (%v), want %v", fault.KindOf(err), err, fault.Unavailable)
			}
			if tt.wantRetryAfter != 0 && fe.RetryAfter != tt.wantRetryAfter || fe.RetryAfter <= 0 {
				t.Fatalf("Describe during the outage: Retry-After %v, want %v (positive)", fe.RetryAfter, tt.wantRetryAfter)
			}
			if got := emu.VaultCounters(azureemu.DemoVault)[azureemu.OpGet]; got != tt.wantAttempts {
				t.Fatalf("vault get requests = %d, want %d (the retry budget)", got, tt.wantAttempts)
			}
			if err := emu.ClearFault(azureemu.DemoVault); err != nil {
				t.Fatal(err)
			}
			if _, err := keeper.Describe(ctx, ref); err != nil {
				t.Fatalf("Describe after the outage: %v", err)
			}
		})
	}
}

// TestVaultUnreachable: connections refused (nothing listens where the
// vault and Entra ID are) answer Unavailable with a Retry-After.
func TestVaultUnreachable(t *testing.T) {
	emu, demo := startEmulator(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connections to addr are now refused
	hc := &http.Client{Transport: azureemu.Transport(addr, emu.CAPool())}
	keeper, ref := outageKeeper(t, emu, demo, azurekv.Config{HTTPClient: hc, RetryDelay: time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), generous)
	defer cancel()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"Describe", func() error { _, err := keeper.Describe(ctx, ref); return err }},
		{"Wrap", func() error { _, err := keeper.Wrap(ctx, ref, make([]byte, 32), []byte("org/acme")); return err }},
		{"CheckCredentials", func() error { return keeper.CheckCredentials(ctx, ref) }},
	} {
		err := op.call()
		fe := fault.As(err)
		if ctx.Err() != nil || fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter <= 0 {
			t.Fatalf("%s with the vault unreachable = %v (kind %v), want %v with a Retry-After", op.name, err, fault.KindOf(err), fault.Unavailable)
		}
	}
}
