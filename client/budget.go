package client

import (
	"context"
	"time"
)

// VaultBudget is one node's request budget for a customer vault, which
// every org whose key lives in that vault shares (see docs/shared-vaults.md).
type VaultBudget struct {
	Cloud   string `json:"cloud"`    // azure, aws, gcp
	Vault   string `json:"vault"`    // Azure: the vault host; AWS: ACCOUNT/REGION; Google: PROJECT/LOCATION
	VaultID string `json:"vault_id"` // the vault's hash, as the orgkms_vault_* metrics label it
	// Ceiling is the cloud's ceiling for the whole cluster
	// (cmk.vault_budget), NodeShare this node's part (ceiling / live nodes)
	// and Rate what this node allows now, after throttling shrank it; all
	// in requests per second.
	Ceiling   float64 `json:"ceiling"`
	NodeShare float64 `json:"node_share"`
	Rate      float64 `json:"rate"`
	// Throttling: the vault answered "too many requests" within the last
	// minute, or the budget has not grown back yet. The vault's limit is
	// shared with the customer's own workloads.
	Throttling      bool       `json:"throttling"`
	PausedUntil     *time.Time `json:"paused_until,omitempty"` // no call before (the vault's Retry-After)
	LastThrottledAt *time.Time `json:"last_throttled_at,omitempty"`
	Throttled       uint64     `json:"throttled"` // throttled answers since the node started
	// Waiting counts the calls waiting for the budget by class (load,
	// test, probe, job); Calls counts calls by class and outcome (ok,
	// throttled, refused).
	Waiting map[string]int               `json:"waiting"`
	Calls   map[string]map[string]uint64 `json:"calls,omitempty"`
}

// VaultBudgetList is the body of GET /v1/vault-budgets.
type VaultBudgetList struct {
	Vaults []VaultBudget `json:"vaults"`
}

// VaultBudgets lists this node's budgets of the customer vaults it has
// called (operator role).
func (c *Client) VaultBudgets(ctx context.Context) (VaultBudgetList, error) {
	var l VaultBudgetList
	err := c.do(ctx, "GET", "/v1/vault-budgets", nil, &l)
	return l, err
}
