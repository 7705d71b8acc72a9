package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/testwait"
)

// TestBrowserThrottlingBanner: once the org's vault answers 429 (the
// emulator's service limit, as Key Vault's), every page of the org says the
// vault is throttling orgkms, with the rate orgkms now keeps to and the
// remedy (not that the vault is unreachable: it answers), while encryption
// keeps working from the cache.
func TestBrowserThrottlingBanner(t *testing.T) {
	b := startBrowser(t)
	s := newBrowserStack(t)
	activateCMK(t, s)
	ctx := context.Background()
	if _, err := s.keys.Encrypt(ctx, "billing-svc", demoOrg, "default", []byte("invoice"), nil); err != nil { // loads the cache
		t.Fatal(err)
	}

	// One request a minute: the probes (every second) soon meet a 429.
	if err := s.emu.SetThrottle(azureemu.DemoVault, azureemu.Throttle{Limit: 1, Window: time.Minute}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the vault budget to see the throttling", stateTimeout, func() (bool, string) {
		vb := s.status(t).VaultBudget
		if vb == nil {
			return false, "the org's status has no vault budget"
		}
		return vb.Throttling, fmt.Sprintf("%+v", *vb)
	})
	if _, err := s.keys.Encrypt(ctx, "billing-svc", demoOrg, "default", []byte("invoice"), nil); err != nil {
		t.Errorf("encrypt while the vault throttles = %v, want it served from the cache", err)
	}

	admin := b.newTab(t, "admin")
	admin.signIn(t, s, adminEmail, adminPass)
	for _, page := range []string{"", "keys", "security"} {
		admin.open(t, s.orgURL(page))
		got := oneLine(admin.text(t, "#banner"))
		for _, want := range []string{"Your vault is throttling orgkms.", "Your vault " + azureemu.DemoVault, "requests per second (of", "shared by every org on it"} {
			if !strings.Contains(got, want) {
				t.Errorf("the banner of page %q = %q, want %q", page, got, want)
			}
		}
	}
	if stats, ok := s.emu.ThrottleStats(azureemu.DemoVault); !ok || stats.Throttled == 0 {
		t.Errorf("the emulator throttled no request: %+v", stats)
	}
}
