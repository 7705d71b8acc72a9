package gcpcloud

import (
	"regexp"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
)

const (
	keyName = "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/orgkms-cmk"
	sa      = "orgkms@orgkms-platform.iam.gserviceaccount.com"
)

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// TestWordingIsComplete: every reason the lifecycle gives has a Google
// text, every check has a name, what it verifies and a pass text, no text
// names a value the engine never supplies, and the texts speak the Cloud
// console's words, not Azure's.
func TestWordingIsComplete(t *testing.T) {
	w := Cloud{}.Wording()
	for _, r := range []cmk.Reason{cmk.ReasonDisabled, cmk.ReasonNotYetActive, cmk.ReasonExpired, cmk.ReasonUntagged, cmk.ReasonPermissionLost,
		cmk.ReasonUnauthorized, cmk.ReasonDeleted, cmk.ReasonDeletedUnknown, cmk.ReasonDeletedUnlisted, cmk.ReasonPurged, cmk.ReasonNoKeyConfigured} {
		if w.Reasons[r] == "" {
			t.Errorf("no text for reason %s", r)
		}
	}
	known := map[string]bool{}
	// Test Managed Key supplies no {vault} (the reasons have it).
	for _, v := range strings.Fields("org tenant vault_uri key version current tag error remedy by at configured_version rtt date missing permitted labels permission permission_label key_type algorithm protection days active") {
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
				for _, bad := range []string{"Azure", "vault", "Vault", "tenant", "Entra"} {
					if strings.Contains(placeholder.ReplaceAllString(s, ""), bad) {
						t.Errorf("check %s outcome %s speaks of %q: %s", c.ID, outcome, bad, s)
					}
				}
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
	// The engine's generic checks, and Google's own.
	for _, id := range []string{"consent", "configured", "token", "vault", "key", "version", "enabled", "type", "operations", "ownership", "roundtrip", "destruction", "latency"} {
		if !ids[id] {
			t.Errorf("no check %s", id)
		}
	}
	for r, s := range w.Reasons {
		if bare := placeholder.ReplaceAllString(s, ""); strings.Contains(bare, "Azure") || strings.Contains(bare, "vault") {
			t.Errorf("reason %s speaks Azure: %s", r, s)
		}
	}
	if got := cmk.Vars(map[string]string{"key": "k", "vault": "r", "version": "3"}).Expand(w.Reasons[cmk.ReasonDisabled]); !strings.Contains(got, "enable version 3") || !strings.Contains(got, "Versions → Enable") || !strings.Contains(got, "Restore") {
		t.Errorf("disabled reason = %q, want the version to enable and how", got)
	}
}

// TestCheckEvaluations: Google's own checks judge the description: the
// algorithm, and a short destruction schedule warns.
func TestCheckEvaluations(t *testing.T) {
	ok := masterkey.Description{KeyType: "AES-256-HSM", KeySize: 256, Algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", Operations: []string{"encrypt", "decrypt"}, SoftDeleteDays: 30}
	if st, outcome, v := keyType(ok, nil); st != cmk.Pass || outcome != "pass" || v["protection"] != "HSM" {
		t.Errorf("keyType(HSM) = %s %s %v", st, outcome, v)
	}
	bad := ok
	bad.Algorithm = "RSA_DECRYPT_OAEP_2048_SHA256"
	if st, outcome, _ := keyType(bad, nil); st != cmk.Fail || outcome != "fail:type" {
		t.Errorf("keyType(RSA) = %s %s, want a failure", st, outcome)
	}
	if st, _, v := destruction(ok, nil); st != cmk.Pass || v["days"] != "30" {
		t.Errorf("destruction(30 days) = %s %v", st, v)
	}
	short := ok
	short.SoftDeleteDays = 1
	if st, _, _ := destruction(short, nil); st != cmk.Warn {
		t.Errorf("destruction(1 day) = %s, want a warning", st)
	}
	if m := missingOperations(ok); len(m) != 0 {
		t.Errorf("missingOperations(encrypt, decrypt) = %v", m)
	}
	if m := missingOperations(masterkey.Description{Operations: []string{"encrypt"}}); len(m) != 1 || m[0] != "decrypt" {
		t.Errorf("missingOperations(encrypt) = %v", m)
	}
	if l := permissionLabel("cloudkms.cryptoKeyVersions.useToDecrypt"); !strings.Contains(l, RoleEncrypterDecrypter) {
		t.Errorf("permissionLabel(useToDecrypt) = %q", l)
	}
	if l := permissionLabel("cloudkms.cryptoKeys.get"); !strings.Contains(l, RoleViewer) {
		t.Errorf("permissionLabel(get) = %q", l)
	}
}

// TestParseKeyNormalizes: the resource name is validated and normalized (a
// pasted version name gives the key and its version), errors name the
// field, the location is checked against the allowed ones, and the
// location read back from the key URI is the one entered.
func TestParseKeyNormalizes(t *testing.T) {
	c := Cloud{ServiceAccount: sa, AllowedLocations: []string{"europe-west4"}}
	ref, loc, err := c.ParseKey(map[string]string{FieldKeyName: " /" + keyName + " "}, "")
	if err != nil {
		t.Fatal(err)
	}
	if ref.Provider != gcpkms.Scheme || ref.ID != keyName || ref.Version != "" {
		t.Errorf("ParseKey ref = %+v", ref)
	}
	want := cmk.KeyLocation{Container: "projects/acme-prod/locations/europe-west4/keyRings/orgkms", Short: "orgkms", Name: "orgkms-cmk", Tenant: "acme-prod"}
	if loc != want {
		t.Errorf("ParseKey location = %+v, want %+v", loc, want)
	}
	back, ok := c.Locate(c.KeyURI(ref.WithVersion("3")))
	if !ok || back != want {
		t.Errorf("Locate(KeyURI) = %+v, %v, want %+v", back, ok, want)
	}
	if f := c.KeyFields(loc, "3"); f[FieldKeyName] != keyName || f[FieldKeyVersion] != "3" {
		t.Errorf("KeyFields = %v", f)
	}
	// A pasted version name: the key and its version.
	for _, fields := range []map[string]string{
		{FieldKeyName: keyName + "/cryptoKeyVersions/3"},
		{FieldKeyName: keyName + "/cryptoKeyVersions/3", FieldKeyVersion: "3"},
		{FieldKeyName: keyName, FieldKeyVersion: " 3 "},
	} {
		ref, _, err := c.ParseKey(fields, "")
		if err != nil || ref.ID != keyName || ref.Version != "3" {
			t.Errorf("ParseKey(%v) = %+v, %v, want version 3 of the key", fields, ref, err)
		}
	}
	for _, tt := range []struct {
		fields map[string]string
		field  string
	}{
		{map[string]string{}, FieldKeyName},
		{map[string]string{FieldKeyName: "orgkms-cmk"}, FieldKeyName},
		{map[string]string{FieldKeyName: "//cloudkms.googleapis.com/" + keyName}, FieldKeyName},
		{map[string]string{FieldKeyName: strings.Replace(keyName, "europe-west4", "us-east1", 1)}, FieldKeyName},
		{map[string]string{FieldKeyName: keyName, FieldKeyVersion: "latest"}, FieldKeyVersion},
		{map[string]string{FieldKeyName: keyName + "/cryptoKeyVersions/3", FieldKeyVersion: "4"}, FieldKeyVersion},
		{map[string]string{FieldKeyName: keyName, "vault_uri": "x"}, "vault_uri"},
	} {
		_, _, err := c.ParseKey(tt.fields, "")
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Invalid || fe.Field != tt.field {
			t.Errorf("ParseKey(%v) = %v, want an invalid %s", tt.fields, err, tt.field)
		}
	}
	if _, ok := c.Locate("azurekv://contoso.vault.azure.net/keys/k"); ok {
		t.Error("Locate accepted an Azure key")
	}
	if got, err := c.NormalizeTenant(" acme-prod "); err != nil || got != "acme-prod" {
		t.Errorf("NormalizeTenant = %q, %v", got, err)
	}
	if _, err := c.NormalizeTenant("Acme Prod"); fault.As(err) == nil || fault.As(err).Field != "project" {
		t.Errorf("NormalizeTenant(Acme Prod) = %v, want an invalid project", err)
	}
}

// TestAuthorizationIsAGrant: the customer grants orgkms' service account
// two roles on the key in the Cloud console; the service account is the
// value to copy.
func TestAuthorizationIsAGrant(t *testing.T) {
	a := Cloud{ServiceAccount: sa}.Authorization("acme")
	if a.Method != cmk.AuthGrant {
		t.Errorf("method = %s, want grant", a.Method)
	}
	for _, want := range []string{sa, RoleEncrypterDecrypter, RoleViewer, "Cloud KMS CryptoKey Encrypter/Decrypter", "Cloud KMS Viewer", "Permissions → Grant access", "Security → Key Management"} {
		if !strings.Contains(a.Instructions+a.Access, want) {
			t.Errorf("authorization does not mention %q: %s %s", want, a.Instructions, a.Access)
		}
	}
	if len(a.Values) != 1 || a.Values[0].Value != sa {
		t.Errorf("values = %+v, want the service account", a.Values)
	}
	rotated := Cloud{}.Rotated
	if !rotated("1", masterkey.Description{Key: masterkey.Ref{Version: "2"}}) || rotated("2", masterkey.Description{Key: masterkey.Ref{Version: "2"}}) {
		t.Error("Rotated does not follow a new primary version")
	}
}
