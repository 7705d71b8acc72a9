package azurecloud

import (
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

// TestWordingIsComplete: every reason the lifecycle gives has an Azure
// text, every check has a name, what it verifies and a pass text, and no
// text names a value the engine never supplies.
func TestWordingIsComplete(t *testing.T) {
	w := Cloud{}.Wording()
	for _, r := range []cmk.Reason{cmk.ReasonDisabled, cmk.ReasonNotYetActive, cmk.ReasonExpired, cmk.ReasonUntagged, cmk.ReasonPermissionLost,
		cmk.ReasonUnauthorized, cmk.ReasonDeleted, cmk.ReasonDeletedUnknown, cmk.ReasonDeletedUnlisted, cmk.ReasonPurged, cmk.ReasonNoKeyConfigured} {
		if w.Reasons[r] == "" {
			t.Errorf("no text for reason %s", r)
		}
	}
	known := map[string]bool{}
	for _, v := range strings.Fields("org tenant vault vault_uri key version current tag error remedy by at configured_version rtt date missing permitted labels permission permission_label key_type key_size days active") {
		known[v] = true
	}
	ids := map[string]bool{}
	for _, c := range w.Checks {
		if c.ID == "" || c.Name == "" || c.Verifies == "" {
			t.Errorf("check %+v lacks an ID, name or what it verifies", c)
		}
		if ids[c.ID] {
			t.Errorf("check %s twice", c.ID)
		}
		ids[c.ID] = true
		pass := false
		for outcome, text := range c.Outcomes {
			pass = pass || strings.HasPrefix(outcome, "pass")
			for _, s := range []string{text.Detail, text.Remedy} {
				for _, part := range strings.Split(s, "{")[1:] {
					name, _, _ := strings.Cut(part, "}")
					if !known[name] {
						t.Errorf("check %s outcome %s names {%s}, which the engine never supplies", c.ID, outcome, name)
					}
				}
			}
		}
		if !pass {
			t.Errorf("check %s has no pass text", c.ID)
		}
	}
	for _, id := range []string{"consent", "configured", "token", "vault", "key", "version", "enabled", "type", "operations", "ownership", "roundtrip", "deletion", "latency"} {
		if !ids[id] {
			t.Errorf("no check %s", id)
		}
	}
}

// TestParseKeyNormalizes: the fields a customer enters are validated and
// normalized, errors name the field in the customer's words, and the
// location read back from the key URI is the one entered.
func TestParseKeyNormalizes(t *testing.T) {
	p, err := azurekv.New(azurekv.Config{ClientID: "app", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	c := Cloud{Provider: p}
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	ref, loc, err := c.ParseKey(map[string]string{FieldVaultURI: " HTTPS://Contoso-KV.vault.azure.net:443 ", FieldKeyName: " orgkms-cmk "}, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if loc.Container != "https://contoso-kv.vault.azure.net/" || loc.Short != "contoso-kv" || loc.Name != "orgkms-cmk" || ref.Version != "" {
		t.Errorf("ParseKey = %+v, %+v", ref, loc)
	}
	back, ok := c.Locate(c.KeyURI(ref))
	if !ok || back.Container != loc.Container || back.Name != loc.Name || back.Tenant != tenant {
		t.Errorf("Locate(KeyURI) = %+v, %v, want %+v", back, ok, loc)
	}
	for _, tt := range []struct {
		fields map[string]string
		field  string
	}{
		{map[string]string{FieldVaultURI: "contoso-kv", FieldKeyName: "k"}, FieldVaultURI},
		{map[string]string{FieldVaultURI: "https://contoso-kv.vault.azure.net/", FieldKeyName: "no spaces"}, FieldKeyName},
		{map[string]string{FieldVaultURI: "https://contoso-kv.vault.azure.net/", FieldKeyName: "k", FieldKeyVersion: "not a version"}, FieldKeyVersion},
		{map[string]string{FieldVaultURI: "https://contoso-kv.vault.azure.net/", FieldKeyName: "k", "key_arn": "x"}, "key_arn"},
	} {
		_, _, err := c.ParseKey(tt.fields, tenant)
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Invalid || fe.Field != tt.field {
			t.Errorf("ParseKey(%v) = %v, want an invalid %s", tt.fields, err, tt.field)
		}
	}
	if _, err := c.NormalizeTenant("contoso"); fault.As(err) == nil || fault.As(err).Field != "tenant_id" {
		t.Errorf("NormalizeTenant(contoso) = %v, want an invalid tenant_id", err)
	}
	if got, err := c.NormalizeTenant(" " + strings.ToUpper(tenant) + " "); err != nil || got != tenant {
		t.Errorf("NormalizeTenant = %q, %v", got, err)
	}
}
