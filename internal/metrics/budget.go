package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orgkms/orgkms/internal/budget"
)

// RegisterVaultBudgets adds the shared-vault budget metrics, read from
// states at scrape time. A vault is labelled by its cloud and its hash
// (budget.VaultID, 12 hex digits, shown beside the vault's name in an org's
// CMK status and the operator's vault budget route): never by org, and not
// by the customer's vault name, which is theirs. There is one series set per
// vault this node has called, so the series are bounded by the vaults in use.
func (m *Metrics) RegisterVaultBudgets(states func() []budget.State) {
	m.Registry.MustRegister(&budgetCollector{states: states})
}

var (
	vaultCallsDesc = prometheus.NewDesc("orgkms_vault_calls_total",
		"Calls to customer vaults through their shared budget by vault, class (load, test, probe, job) and outcome (ok, throttled, refused: not admitted in time).",
		[]string{"cloud", "vault", "class", "outcome"}, nil)
	vaultRateDesc = prometheus.NewDesc("orgkms_vault_budget_rate",
		"Requests per second this node allows to a vault now (its share of the ceiling, shrunk after throttling).",
		[]string{"cloud", "vault"}, nil)
	vaultShareDesc = prometheus.NewDesc("orgkms_vault_budget_share",
		"This node's share of the cloud's vault ceiling (cmk.vault_budget / live nodes), requests per second.",
		[]string{"cloud", "vault"}, nil)
	vaultThrottledDesc = prometheus.NewDesc("orgkms_vault_throttled_total",
		"Throttled answers from a vault (HTTP 429, AWS ThrottlingException, Google RESOURCE_EXHAUSTED).",
		[]string{"cloud", "vault"}, nil)
	vaultThrottlingDesc = prometheus.NewDesc("orgkms_vault_throttling",
		"1 while a vault is throttling orgkms (a recent throttled answer, or a budget not grown back).",
		[]string{"cloud", "vault"}, nil)
	vaultWaitingDesc = prometheus.NewDesc("orgkms_vault_waiting_calls",
		"Calls waiting for a vault's budget, by class.",
		[]string{"cloud", "vault", "class"}, nil)
)

type budgetCollector struct{ states func() []budget.State }

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{vaultCallsDesc, vaultRateDesc, vaultShareDesc, vaultThrottledDesc, vaultThrottlingDesc, vaultWaitingDesc} {
		ch <- d
	}
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.states() {
		cloud, id := s.Vault.Cloud, s.ID
		ch <- prometheus.MustNewConstMetric(vaultRateDesc, prometheus.GaugeValue, s.Rate, cloud, id)
		ch <- prometheus.MustNewConstMetric(vaultShareDesc, prometheus.GaugeValue, s.Share, cloud, id)
		ch <- prometheus.MustNewConstMetric(vaultThrottledDesc, prometheus.CounterValue, float64(s.Throttled), cloud, id)
		throttling := 0.0
		if s.Throttling {
			throttling = 1
		}
		ch <- prometheus.MustNewConstMetric(vaultThrottlingDesc, prometheus.GaugeValue, throttling, cloud, id)
		for _, class := range budget.Classes {
			name := class.String()
			ch <- prometheus.MustNewConstMetric(vaultWaitingDesc, prometheus.GaugeValue, float64(s.Waiting[name]), cloud, id, name)
			for _, outcome := range []string{budget.OutcomeOK, budget.OutcomeThrottled, budget.OutcomeRefused} {
				ch <- prometheus.MustNewConstMetric(vaultCallsDesc, prometheus.CounterValue, float64(s.Calls[name][outcome]), cloud, id, name, outcome)
			}
		}
	}
}
