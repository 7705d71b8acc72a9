package console

import (
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/masterkey"
)

func TestThrottlingBanner(t *testing.T) {
	t.Parallel()
	if b := throttlingBanner(nil); b != nil {
		t.Fatalf("banner without a vault: %+v", b)
	}
	v := masterkey.Vault{Cloud: "azure", Name: "contoso-kv.vault.azure.net"}
	if b := throttlingBanner(&budget.State{Vault: v, Rate: 100, Share: 100}); b != nil {
		t.Fatalf("banner of a vault not throttling: %+v", b)
	}
	b := throttlingBanner(&budget.State{Vault: v, Rate: 25, Share: 100, Throttling: true, PausedUntil: time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)})
	if b == nil {
		t.Fatal("no banner for a throttling vault")
	}
	all := b.Title + " " + b.Text + " " + b.Remedy
	for _, w := range []string{"Your vault is throttling orgkms", "contoso-kv.vault.azure.net", "at most 25 requests per second (of 100)", "2026-12-07 16:00:00 UTC", "shared by every org"} {
		if !strings.Contains(all, w) {
			t.Errorf("banner %q lacks %q", all, w)
		}
	}
}

// TestThrottlingBannerNamesEachCloudsVault: AWS KMS's budget is an account
// and Region, Cloud KMS's a project and location; the banner says so.
func TestThrottlingBannerNamesEachCloudsVault(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v    masterkey.Vault
		want string
	}{
		{masterkey.Vault{Cloud: "aws", Name: "111122223333/eu-west-2"}, "AWS KMS in your account 111122223333, Region eu-west-2, answered orgkms"},
		{masterkey.Vault{Cloud: "gcp", Name: "acme-prod/europe-west4"}, "Cloud KMS in your project acme-prod, location europe-west4, answered orgkms"},
		{masterkey.Vault{Cloud: "azure", Name: "contoso-kv.vault.azure.net"}, "Your vault contoso-kv.vault.azure.net answered orgkms"},
	} {
		b := throttlingBanner(&budget.State{Vault: c.v, Rate: 125, Share: 250, Throttling: true})
		if b == nil || !strings.Contains(b.Text, c.want) || !strings.Contains(b.Text, "at most 125 requests per second (of 250)") {
			t.Errorf("banner of %+v: %+v, want %q", c.v, b, c.want)
		}
	}
}
