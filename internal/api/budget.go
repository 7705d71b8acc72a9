package api

import (
	"net/http"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/budget"
)

// vaultBudgets lists this node's shared-vault budgets (operator role).
func (h *Handler) vaultBudgets(c *call) error {
	out := client.VaultBudgetList{Vaults: []client.VaultBudget{}}
	if h.budgets != nil {
		for _, s := range h.budgets() {
			out.Vaults = append(out.Vaults, vaultBudgetJSON(s))
		}
	}
	return c.reply(http.StatusOK, out)
}

func vaultBudgetJSON(s budget.State) client.VaultBudget {
	return client.VaultBudget{Cloud: s.Vault.Cloud, Vault: s.Vault.Name, VaultID: s.ID, Ceiling: s.Ceiling, NodeShare: s.Share, Rate: s.Rate,
		Throttling: s.Throttling, PausedUntil: optTime(s.PausedUntil), LastThrottledAt: optTime(s.LastThrottled), Throttled: s.Throttled,
		Waiting: s.Waiting, Calls: s.Calls}
}
