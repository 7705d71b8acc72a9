package awscloud

import (
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

const (
	keyARN  = "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	roleARN = "arn:aws:iam::111122223333:role/orgkms-cmk"
)

func testCloud() Cloud {
	return Cloud{AccountID: "444455556666", Secret: []byte(strings.Repeat("s", MinSecret))}
}

// TestWordingIsComplete: every reason the lifecycle gives has an AWS text,
// every check has a name, what it verifies and a pass text, no text names a
// value the engine never supplies, and no text speaks Azure's words.
func TestWordingIsComplete(t *testing.T) {
	w := testCloud().Wording()
	for _, r := range []cmk.Reason{cmk.ReasonDisabled, cmk.ReasonNotYetActive, cmk.ReasonExpired, cmk.ReasonUntagged, cmk.ReasonPermissionLost,
		cmk.ReasonUnauthorized, cmk.ReasonDeleted, cmk.ReasonDeletedUnknown, cmk.ReasonDeletedUnlisted, cmk.ReasonPurged, cmk.ReasonNoKeyConfigured} {
		if w.Reasons[r] == "" {
			t.Errorf("no text for reason %s", r)
		}
	}
	known := map[string]bool{}
	for _, v := range strings.Fields("org tenant vault vault_uri key version current tag error remedy by at configured_version rtt date missing permitted labels permission permission_label key_type key_size active period_days next") { // period_days, next: the rotation check's Evaluate
		known[v] = true
	}
	azure := []string{"Azure", "vault's", "Entra", "tenant ID", "access polic"}
	texts := []string{}
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
				texts = append(texts, s)
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
	for _, s := range w.Reasons {
		texts = append(texts, s)
	}
	for _, s := range w.Remedies {
		texts = append(texts, s)
	}
	for _, s := range texts {
		for _, a := range azure {
			if strings.Contains(s, a) {
				t.Errorf("text %q speaks Azure (%q)", s, a)
			}
		}
	}
	for _, id := range []string{"consent", "configured", "token", "vault", "key", "version", "enabled", "type", "operations", "ownership", "roundtrip", "rotation", "latency"} {
		if !ids[id] {
			t.Errorf("no check %s", id)
		}
	}
	if r := w.Reasons[cmk.ReasonDisabled]; !strings.Contains(r, "Key actions → Enable") {
		t.Errorf("disabled reason %q does not say how to enable the key", r)
	}
	if r := w.Reasons[cmk.ReasonDeleted]; !strings.Contains(r, "{date}") || !strings.Contains(r, "CancelKeyDeletion") {
		t.Errorf("deleted reason %q does not name the date and CancelKeyDeletion", r)
	}
}

// TestExternalID: an org's external ID is stable, differs between orgs and
// between platform secrets (it cannot be computed from the org ID alone),
// and is an ID AWS STS accepts.
func TestExternalID(t *testing.T) {
	c := testCloud()
	a := c.ExternalID("acme")
	if a != c.ExternalID("acme") {
		t.Error("the external ID of one org changes")
	}
	if a == c.ExternalID("umbrella") {
		t.Error("two orgs share an external ID")
	}
	other := c
	other.Secret = []byte(strings.Repeat("t", MinSecret))
	if a == other.ExternalID("acme") {
		t.Error("the external ID does not depend on the secret")
	}
	if err := awskms.CheckExternalID(a); err != nil || strings.Contains(a, "acme") {
		t.Errorf("external ID %q: %v", a, err)
	}
	auth := c.Authorization("acme")
	if auth.Method != cmk.AuthGrant {
		t.Errorf("method %s, want grant", auth.Method)
	}
	values := map[string]string{}
	for _, v := range auth.Values {
		values[v.Name] = v.Value
	}
	if values["external_id"] != a || values["account_id"] != "444455556666" {
		t.Errorf("values %v, want the org's external ID and orgkms' account", values)
	}
	for _, s := range []string{"Roles → Create role", "AWS account", "Require external ID"} {
		if !strings.Contains(auth.Instructions, s) {
			t.Errorf("instructions lack %q", s)
		}
	}
	for _, s := range []string{"kms:Encrypt", "kms:Decrypt", "kms:DescribeKey", "kms:ListKeyRotations"} {
		if !strings.Contains(auth.Access, s) {
			t.Errorf("access lacks %q", s)
		}
	}
}

// TestParseKeyNormalizes: the fields a customer enters are validated and
// normalized for the org, errors name the field, the location read back
// from the key URI is the one entered, and the key is the org's only.
func TestParseKeyNormalizes(t *testing.T) {
	c := testCloud()
	c.AllowedRegions = []string{"eu-west-2"}
	ref, loc, err := c.ParseOrgKey("acme", map[string]string{FieldKeyARN: " " + strings.ToUpper(keyARN[:len(keyARN)-36]) + "1234ABCD-12ab-34cd-56ef-1234567890ab ", FieldRoleARN: " " + roleARN}, "")
	if err == nil {
		t.Fatalf("an upper-case ARN prefix was accepted: %v", ref)
	}
	ref, loc, err = c.ParseOrgKey("acme", map[string]string{FieldKeyARN: " arn:aws:kms:eu-west-2:111122223333:key/1234ABCD-12AB-34CD-56EF-1234567890AB ", FieldRoleARN: " " + roleARN}, "")
	if err != nil {
		t.Fatal(err)
	}
	if loc.Container != keyARN || loc.Name != "1234abcd-12ab-34cd-56ef-1234567890ab" || loc.Tenant != roleARN || ref.Version != "" {
		t.Errorf("ParseOrgKey = %+v, %+v", ref, loc)
	}
	back, ok := c.Locate(c.KeyURI(ref))
	if !ok || back != loc {
		t.Errorf("Locate(KeyURI) = %+v, %v, want %+v", back, ok, loc)
	}
	if f := c.KeyFields(loc, ""); f[FieldKeyARN] != keyARN || f[FieldRoleARN] != roleARN {
		t.Errorf("KeyFields = %v", f)
	}
	if !c.OwnsKey("acme", ref) || c.OwnsKey("umbrella", ref) {
		t.Error("the key is not acme's alone")
	}
	if noRole := (awskms.Key{ARN: awskms.KeyARN{Partition: "aws", Region: "eu-west-2", Account: "111122223333", KeyID: loc.Name}}).Ref(); c.OwnsKey("acme", noRole) {
		t.Error("a key without a role is owned by an org")
	}
	for _, tt := range []struct {
		fields map[string]string
		field  string
	}{
		{map[string]string{FieldKeyARN: "alias/orgkms", FieldRoleARN: roleARN}, FieldKeyARN},
		{map[string]string{FieldKeyARN: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab", FieldRoleARN: roleARN}, FieldKeyARN},
		{map[string]string{FieldKeyARN: keyARN}, FieldRoleARN},
		{map[string]string{FieldKeyARN: keyARN, FieldRoleARN: "orgkms-cmk"}, FieldRoleARN},
		{map[string]string{FieldKeyARN: keyARN, FieldRoleARN: roleARN, "vault_uri": "x"}, "vault_uri"},
	} {
		_, _, err := c.ParseOrgKey("acme", tt.fields, "")
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Invalid || fe.Field != tt.field {
			t.Errorf("ParseOrgKey(%v) = %v, want an invalid %s", tt.fields, err, tt.field)
		}
	}
	if _, err := c.NormalizeTenant("orgkms-cmk"); fault.As(err) == nil || fault.As(err).Field != FieldRoleARN {
		t.Errorf("NormalizeTenant(orgkms-cmk) = %v, want an invalid role_arn", err)
	}
}

// TestRotatedByMaterial: a new key material ID is a rotation, the same one
// is not.
func TestRotatedByMaterial(t *testing.T) {
	c := testCloud()
	d := masterkey.Description{Key: masterkey.Ref{Provider: awskms.Scheme, ID: keyARN, Version: "m2"}}
	if !c.Rotated("m1", d) || c.Rotated("m2", d) {
		t.Error("Rotated does not follow the key material ID")
	}
	if st, _, _ := rotation(masterkey.Description{Key: masterkey.Ref{Version: awskms.OriginalMaterial}}, nil); st != cmk.Warn {
		t.Errorf("a key never rotated: %s, want a warning", st)
	}
	if st, _, _ := rotation(d, nil); st != cmk.Pass {
		t.Errorf("a rotated key: %s, want a pass", st)
	}
}

// TestPendingDeletion: a key not enabled with a pending deletion window is
// pending deletion; a disabled key (no window) or an enabled one is not.
func TestPendingDeletion(t *testing.T) {
	c := testCloud()
	for _, tt := range []struct {
		d    masterkey.Description
		want bool
	}{
		{masterkey.Description{Enabled: false, SoftDeleteDays: 7}, true},
		{masterkey.Description{Enabled: false}, false},
		{masterkey.Description{Enabled: true}, false},
	} {
		if got := c.PendingDeletion(tt.d); got != tt.want {
			t.Errorf("PendingDeletion(%+v) = %v, want %v", tt.d, got, tt.want)
		}
	}
}
