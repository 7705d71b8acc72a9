package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/masterkey"
)

func TestVaultBudgetMetrics(t *testing.T) {
	zero := func() float64 { return 0 }
	m := New(zero, zero, zero)
	b := budget.New(budget.Config{Ceilings: map[string]float64{"azure": 100}})
	v := masterkey.Vault{Cloud: "azure", Name: "contoso-kv.vault.azure.net"}
	done, err := b.Admit(budget.With(t.Context(), budget.Job, "org-secret-id"), v)
	if err != nil {
		t.Fatal(err)
	}
	done(true, time.Second)
	m.RegisterVaultBudgets(b.States)
	id := budget.VaultID(v)
	want := `
# HELP orgkms_vault_throttled_total Throttled answers from a vault (HTTP 429, AWS ThrottlingException, Google RESOURCE_EXHAUSTED).
# TYPE orgkms_vault_throttled_total counter
orgkms_vault_throttled_total{cloud="azure",vault="` + id + `"} 1
# HELP orgkms_vault_budget_rate Requests per second this node allows to a vault now (its share of the ceiling, shrunk after throttling).
# TYPE orgkms_vault_budget_rate gauge
orgkms_vault_budget_rate{cloud="azure",vault="` + id + `"} 50
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "orgkms_vault_throttled_total", "orgkms_vault_budget_rate"); err != nil {
		t.Fatal(err)
	}
	out, err := testutil.CollectAndFormat(&budgetCollector{states: b.States}, expfmt.TypeTextPlain, "orgkms_vault_calls_total")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `class="job",cloud="azure",outcome="throttled",vault="`+id+`"} 1`) {
		t.Fatalf("calls metric:\n%s", out)
	}
	if strings.Contains(string(out), "org-secret-id") || strings.Contains(string(out), "contoso") {
		t.Fatalf("metrics name an org or the vault:\n%s", out)
	}
}
