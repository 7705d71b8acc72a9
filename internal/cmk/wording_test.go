package cmk_test

import (
	"maps"
	"testing"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
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

// grantCloud is the Azure cloud authorized without a consent round trip
// (as AWS and Google are): the customer grants access in their console and
// names the account in the key's fields.
type grantCloud struct{ cmk.Cloud }

func (grantCloud) Authorization(string) cmk.Authorization {
	return cmk.Authorization{Method: cmk.AuthGrant, Instructions: "grant orgkms access in your console",
		Values: []cmk.Value{{Name: "external_id", Label: "External ID", Value: "x"}}}
}

func (c grantCloud) ParseKey(fields map[string]string, _ string) (masterkey.Ref, cmk.KeyLocation, error) {
	f := maps.Clone(fields)
	tenant := f["account"]
	delete(f, "account")
	return c.Cloud.ParseKey(f, tenant)
}

// TestGrantCloudIsAuthorizedByConfigure: a cloud without consent has no
// Authorize step; configuring its key authorizes the org for the key's
// account (audited in the same event), Authorize is refused, and Test
// Managed Key's consent check passes once the grant is made.
func TestGrantCloudIsAuthorizedByConfigure(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	cs, err := cmk.New(cmk.Config{Store: w.st, Keys: w.keys, Keepers: w.keepers, Clouds: []cmk.Cloud{grantCloud{w.cloud}}, CallbackURL: callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Authorize(ctx, "user:alice", "acme", w.demo.TenantID); fault.KindOf(err) != fault.Conflict {
		t.Errorf("Authorize on a grant cloud = %v, want a conflict", err)
	}
	rec, err := cs.ConfigureKey(ctx, "user:alice", "acme", "", map[string]string{"vault_uri": w.demo.VaultURI, "key_name": w.demo.KeyName, "account": w.demo.TenantID})
	if err != nil {
		t.Fatalf("ConfigureKey from state platform: %v", err)
	}
	if rec.State != cmk.StateAuthorized || rec.TenantID != w.demo.TenantID || rec.ConsentedAt.IsZero() || rec.ConsentedBy != "user:alice" {
		t.Errorf("after ConfigureKey: %+v, want authorized for the key's account", rec)
	}
	evs, err := w.st.AuditEvents(ctx, "acme", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || ev.Action == "cmk.configure" && ev.Details["authorized"] == "grant" && ev.Details["tenant_id"] == w.demo.TenantID
	}
	if !found {
		t.Errorf("no cmk.configure audit event recording the grant: %+v", evs)
	}
	// Test Managed Key proves the grant: refused until the customer made
	// it in their console, then passed.
	if c := check(cs.Test(ctx, "acme"), "consent"); c.Status != cmk.Fail {
		t.Errorf("consent check before the grant = %+v, want a failure", c)
	}
	if _, err := w.emu.GrantConsent(w.demo.TenantID, w.demo.ClientID); err != nil {
		t.Fatal(err)
	}
	if c := check(cs.Test(ctx, "acme"), "consent"); c.Status != cmk.Pass {
		t.Errorf("consent check after the grant = %+v, want a pass", c)
	}
}

// orgBoundCloud is a grant cloud whose key refs name the org (as AWS's
// external ID does): it records the org it parsed for and owns keys for
// the org bound only.
type orgBoundCloud struct {
	grantCloud
	bound  string
	parsed *string
}

func (c orgBoundCloud) ParseOrgKey(orgID string, fields map[string]string, tenant string) (masterkey.Ref, cmk.KeyLocation, error) {
	*c.parsed = orgID
	return c.ParseKey(fields, tenant)
}

func (c orgBoundCloud) OwnsKey(orgID string, _ masterkey.Ref) bool { return orgID == c.bound }

// TestOrgBoundCloudOwnsItsKeys: a cloud whose refs name the org parses the
// key for the org configuring it, and its own proof, not the ownership
// tag, decides Test Managed Key's ownership check.
func TestOrgBoundCloudOwnsItsKeys(t *testing.T) {
	for _, bound := range []string{"acme", "other"} {
		w := newWorld(t)
		ctx := t.Context()
		w.keys.CreateOrg(ctx, "test", "acme", "")
		var parsed string
		cs, err := cmk.New(cmk.Config{Store: w.st, Keys: w.keys, Keepers: w.keepers, Clouds: []cmk.Cloud{orgBoundCloud{grantCloud{w.cloud}, bound, &parsed}}, CallbackURL: callbackURL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.ConfigureKey(ctx, "user:alice", "acme", "", map[string]string{"vault_uri": w.demo.VaultURI, "key_name": w.demo.KeyName, "account": w.demo.TenantID}); err != nil {
			t.Fatal(err)
		}
		if parsed != "acme" {
			t.Errorf("ParseOrgKey got org %q, want acme", parsed)
		}
		if _, err := w.emu.GrantConsent(w.demo.TenantID, w.demo.ClientID); err != nil {
			t.Fatal(err)
		}
		want := cmk.Pass
		if bound != "acme" {
			want = cmk.Fail
		}
		if c := check(cs.Test(ctx, "acme"), "ownership"); c.Status != want {
			t.Errorf("bound to %s: ownership check = %+v, want %s", bound, c, want)
		}
	}
}
