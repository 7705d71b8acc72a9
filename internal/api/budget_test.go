package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/masterkey"
)

func TestVaultBudgetsRoute(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := t.Context()
	op := ts.client(ts.token("ops", "", auth.RoleOperator))
	l, err := op.VaultBudgets(ctx)
	if err != nil || l.Vaults == nil || len(l.Vaults) != 0 {
		t.Fatalf("VaultBudgets before any vault call = %+v, %v; want an empty list", l, err)
	}
	v := masterkey.Vault{Cloud: "azure", Name: "contoso-kv.vault.azure.net"}
	done, err := ts.server.Budget.Admit(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	done(true, 3*time.Second)
	l, err = op.VaultBudgets(ctx)
	if err != nil || len(l.Vaults) != 1 {
		t.Fatalf("VaultBudgets = %+v, %v; want one vault", l, err)
	}
	b := l.Vaults[0]
	if b.Vault != v.Name || b.Cloud != "azure" || !b.Throttling || b.Throttled != 1 || b.PausedUntil == nil || b.LastThrottledAt == nil ||
		b.Ceiling != 100 || b.Rate != 50 || len(b.VaultID) != 12 || b.Calls["load"]["throttled"] != 1 {
		t.Fatalf("vault budget after a 429 = %+v", b)
	}
	if _, err := ts.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	if code, body := ts.raw(http.MethodGet, "/v1/vault-budgets", ts.token("m", "acme", auth.RoleMember), nil); code != http.StatusForbidden {
		t.Fatalf("GET /v1/vault-budgets as an org member: %d %s, want 403", code, body)
	}
	// On the platform key, an org's status has no vault budget.
	st, err := op.CMKStatus(ctx, "acme")
	if err != nil || st.VaultBudget != nil {
		t.Fatalf("CMKStatus of a platform-key org: vault_budget %+v, %v; want none", st.VaultBudget, err)
	}
}
