package cmk_test

import (
	"maps"
	"testing"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
)

// otherWords is the Azure cloud with other words for two checks: what
// Test Managed Key says must come from the cloud's table, not from cmk.
type otherWords struct{ cmk.Cloud }

func (c otherWords) Wording() *cmk.Wording {
	w := *c.Cloud.Wording()
	w.Checks = append([]cmk.CheckSpec(nil), w.Checks...)
	for i := range w.Checks {
		switch w.Checks[i].ID {
		case "consent":
			w.Checks[i].Name = "Access granted"
		case "ownership":
			w.Checks[i].Name = "Key labelled for this org"
			w.Checks[i].Outcomes = maps.Clone(w.Checks[i].Outcomes)
			w.Checks[i].Outcomes["fail"] = cmk.Text{Detail: "key {key} has no label {tag}={org}", Remedy: "label {key} in your console"}
		}
	}
	return &w
}

// TestWordingComesFromTheCloud: the check engine decides each outcome and
// takes the names, details and remedies from the cloud's table.
func TestWordingComesFromTheCloud(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	cs, err := cmk.New(cmk.Config{Store: w.st, Keys: w.keys, Keepers: w.keepers, Clouds: []cmk.Cloud{otherWords{w.cloud}}, CallbackURL: callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.emu.CreateKey(azureemu.DemoVault, "untagged", azureemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, "untagged", ""); err != nil {
		t.Fatal(err)
	}
	rep := cs.Test(ctx, "acme")
	if c := check(rep, "consent"); c.Name != "Access granted" || c.Status != cmk.Pass {
		t.Errorf("consent check = %+v, want the cloud's name and a pass", c)
	}
	own := check(rep, "ownership")
	if own.Name != "Key labelled for this org" || own.Status != cmk.Fail || own.Detail != "key untagged has no label orgkms-org=acme" || own.Remedy != "label untagged in your console" {
		t.Errorf("ownership check = %+v, want the cloud's words", own)
	}
	if rep.OK || check(rep, "roundtrip").Status != cmk.Skip {
		t.Errorf("after a failed ownership check: ok=%v roundtrip=%+v, want a failure and the rest skipped", rep.OK, check(rep, "roundtrip"))
	}
	// The same org through the Azure cloud: Azure's words.
	if own := check(w.cmk.Test(ctx, "acme"), "ownership"); own.Name != "Key tagged for this org" {
		t.Errorf("Azure's ownership check is named %q", own.Name)
	}
}
