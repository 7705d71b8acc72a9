package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// budgetClasses are the call classes, highest priority first, as the
// WAITING column lists them.
var budgetClasses = []string{"load", "test", "probe", "job"}

func vaultBudgetCmd(env *cliEnv) *cobra.Command {
	list := &cobra.Command{Use: "list", Short: "list this node's request budget of every customer vault it has called (operator)",
		Long: "Lists the request budget the answering node keeps for each customer vault (Azure: vault host; AWS: account/Region;\n" +
			"Google: project/location) it has called, shared by every org on that vault:\n" +
			"CEILING is the cloud's ceiling for the whole cluster (cmk.vault_budget), SHARE this node's part of it and\n" +
			"RATE_NOW what it allows now, all in requests per second; THROTTLING is yes while the vault has throttled\n" +
			"orgkms within the last minute or the budget has not grown back; PAUSED_UNTIL is the vault's Retry-After;\n" +
			"WAITING counts the calls waiting for the budget by class (load, test, probe, job; loads go first).\n" +
			"--format json has the calls by class and outcome too. See docs/shared-vaults.md.",
		Args: argNames()}
	listFmt := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		l, err := c.VaultBudgets(env.ctx)
		if err != nil {
			return err
		}
		return listFmt.emit(env, l, func(w io.Writer) error {
			if len(l.Vaults) == 0 {
				_, err := fmt.Fprintln(w, "this node has called no customer vault yet")
				return err
			}
			tw := table(w)
			fmt.Fprintln(tw, "VAULT\tCEILING\tSHARE\tRATE_NOW\tTHROTTLING\tPAUSED_UNTIL\tWAITING")
			for _, v := range l.Vaults {
				fmt.Fprintf(tw, "%s %s\t%s/s\t%s/s\t%s/s\t%s\t%s\t%s\n", v.Cloud, v.Vault, budgetRate(v.Ceiling), budgetRate(v.NodeShare), budgetRate(v.Rate),
					budgetYesNo(v.Throttling), budgetPausedUntil(v), budgetWaiting(v))
			}
			return tw.Flush()
		})
	}
	return group("vault-budget <command>", "show the request budgets of the customer vaults shared by several orgs", list)
}

func budgetRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

func budgetYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func budgetPausedUntil(v client.VaultBudget) string {
	if v.PausedUntil == nil || v.PausedUntil.IsZero() {
		return "-"
	}
	return v.PausedUntil.UTC().Format(time.RFC3339)
}

func budgetWaiting(v client.VaultBudget) string {
	parts := make([]string, 0, len(budgetClasses))
	for _, c := range budgetClasses {
		parts = append(parts, c+"="+strconv.Itoa(v.Waiting[c]))
	}
	return strings.Join(parts, " ")
}
