package console

import (
	"fmt"
	"strings"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// throttlingBanner says, on every org page, that the org's vault is
// throttling orgkms; nil when it is not (or the org has no vault).
func throttlingBanner(s *budget.State) *banner {
	if s == nil || !s.Throttling {
		return nil
	}
	text := fmt.Sprintf("%s answered orgkms \"too many requests\"; orgkms now sends it at most %.0f requests per second (of %.0f) and grows back slowly.", vaultLabel(s.Vault), s.Rate, s.Share)
	if !s.PausedUntil.IsZero() {
		text += " It waits until " + fmtTime(s.PausedUntil) + ", as the vault asked."
	}
	return &banner{Class: "banner-degraded", Title: "Your vault is throttling orgkms.", Text: text,
		Remedy: "The vault's request limit is shared by every org on it and by your own workloads. Encryption keeps working from orgkms' cache and key loads go first; re-wraps slow down. If it lasts, reduce other traffic to the vault or move some orgs to another vault."}
}

// vaultLabel names a vault as its cloud's customer knows it: an Azure
// vault by host, AWS KMS by account and Region, Cloud KMS by project and
// location (the unit each cloud's request quotas apply to).
func vaultLabel(v masterkey.Vault) string {
	a, b, two := strings.Cut(v.Name, "/")
	switch {
	case v.Cloud == "aws" && two:
		return "AWS KMS in your account " + a + ", Region " + b + ","
	case v.Cloud == "gcp" && two:
		return "Cloud KMS in your project " + a + ", location " + b + ","
	}
	return "Your vault " + v.Name
}
