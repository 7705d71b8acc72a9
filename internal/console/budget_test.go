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
