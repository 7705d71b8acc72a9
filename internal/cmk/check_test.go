package cmk_test

import (
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

func check(rep cmk.Report, id string) cmk.Check {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return cmk.Check{}
}

// TestTestNamesMissingKeyOperation: a key whose permitted operations
// (key_ops) lack one that orgkms needs fails the operations check, which
// names exactly the missing operation and how to permit it.
func TestTestNamesMissingKeyOperation(t *testing.T) {
	tests := []struct {
		name        string
		ops         []string
		wantMissing []string
		wantLabel   string
	}{
		{"no unwrapKey", []string{"encrypt", "decrypt", "wrapKey"}, []string{"unwrapKey"}, "Unwrap Key"},
		{"no wrapKey", []string{"encrypt", "decrypt", "unwrapKey"}, []string{"wrapKey"}, "Wrap Key"},
		{"neither", []string{"sign", "verify"}, []string{"wrapKey and unwrapKey"}, "Wrap Key and Unwrap Key"},
	}
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "limited-" + string(rune('a'+i))
			if _, err := w.emu.CreateKey(azureemu.DemoVault, name, azureemu.KeyOptions{KeyOps: tt.ops}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.emu.SetKeyTags(azureemu.DemoVault, name, "", map[string]string{cmk.OwnershipTag: "acme"}); err != nil {
				t.Fatal(err)
			}
			if _, err := w.cmk.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, name, ""); err != nil {
				t.Fatal(err)
			}
			rep := w.cmk.Test(ctx, "acme")
			ops := check(rep, "operations")
			if rep.OK || ops.Status != cmk.Fail {
				t.Fatalf("Test with key_ops %v: ok=%v operations=%+v, want a failure", tt.ops, rep.OK, ops)
			}
			for _, m := range tt.wantMissing {
				if !strings.Contains(ops.Detail, "does not permit "+m) {
					t.Errorf("operations detail %q does not name the missing %s", ops.Detail, m)
				}
			}
			if !strings.Contains(ops.Remedy, "add "+tt.wantLabel+" to the permitted operations") {
				t.Errorf("operations remedy %q does not say to permit %s", ops.Remedy, tt.wantLabel)
			}
			if rep.Summary() != "1 of 13 checks failed" {
				t.Errorf("Summary() = %q, want %q", rep.Summary(), "1 of 13 checks failed")
			}
		})
	}
}

// TestTestSummaryCountsWarnings: "All checks passed" is said only when no
// check warned.
func TestTestSummaryCountsWarnings(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	// A vault without purge protection: the deletion check warns.
	v, err := w.emu.CreateVault(w.demo.TenantID, "scratch-kv", azureemu.VaultOptions{SoftDeleteDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.emu.CreateKey("scratch-kv", "cmk", azureemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	w.emu.SetKeyTags("scratch-kv", "cmk", "", map[string]string{cmk.OwnershipTag: "acme"})
	w.emu.SetPolicy("scratch-kv", w.demo.ClientID, azureemu.DemoPermissions)
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", v.URI, "cmk", ""); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "acme")
	warned := rep.Count(cmk.Warn) // deletion, and latency on a slow machine
	if !rep.OK || warned == 0 || check(rep, "deletion").Status != cmk.Warn {
		t.Fatalf("Test on a vault without purge protection: ok=%v checks=%+v, want a warning", rep.OK, rep.Checks)
	}
	want := "Passed with 1 warning"
	if warned > 1 {
		want = "Passed with 2 warnings"
	}
	if got := rep.Summary(); got != want || strings.Contains(got, "All checks passed") {
		t.Fatalf("Summary() = %q, want %q", got, want)
	}
}

// TestTestWhileRevoked: Test Managed Key runs every check while the org is
// revoked (when an admin needs it most) and shows the cause; once the
// customer fixes the key it passes, before the probe restores the org.
func TestTestWhileRevoked(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	if _, err := w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(false), nil, nil); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateRevoked)
	rep := w.cmk.Test(ctx, "acme")
	for _, id := range []string{"consent", "configured", "token", "vault", "key", "version"} {
		if c := check(rep, id); c.Status != cmk.Pass {
			t.Errorf("Test while revoked: check %s = %+v, want pass", id, c)
		}
	}
	if c := check(rep, "enabled"); rep.OK || c.Status != cmk.Fail || !strings.Contains(c.Detail, "disabled") {
		t.Fatalf("Test while revoked: ok=%v enabled=%+v, want the disabled version named", rep.OK, c)
	}
	if _, err := w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(true), nil, nil); err != nil {
		t.Fatal(err)
	}
	if rep := w.cmk.Test(ctx, "acme"); !rep.OK {
		t.Fatalf("Test after the key was enabled, still revoked: %+v", rep.Checks)
	}
	w.probe("acme", cmk.StateActive)
}

// TestVaultURINormalized: the vault URI is stored in its canonical
// spelling, and two spellings of the same vault are one vault: configuring
// the active key again under another spelling is no replacement.
func TestVaultURINormalized(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	canonical := "https://" + azureemu.DemoVault + ".vault.azure.net/"
	if w.demo.VaultURI != canonical {
		t.Fatalf("demo vault URI %q, want %q", w.demo.VaultURI, canonical)
	}
	loud := "  HTTPS://" + strings.ToUpper(azureemu.DemoVault) + ".Vault.Azure.NET:443  "
	st := w.activate("acme", loud, w.demo.KeyName, "")
	if st.VaultURI != canonical {
		t.Fatalf("stored vault URI %q, want %q", st.VaultURI, canonical)
	}
	for _, spelling := range []string{canonical, strings.TrimSuffix(canonical, "/"), "https://" + azureemu.DemoVault + ".vault.azure.net:443"} {
		rec, err := w.cmk.Configure(ctx, "user:alice", "acme", spelling, w.demo.KeyName, "")
		if err != nil {
			t.Fatalf("Configure(%q): %v", spelling, err)
		}
		if rec.VaultURI != canonical || rec.KeyURI != rec.ActiveKeyURI {
			t.Fatalf("Configure(%q): vault %q, key %q (active %q): want the same vault and key", spelling, rec.VaultURI, rec.KeyURI, rec.ActiveKeyURI)
		}
		_, err = w.cmk.Enable(ctx, "user:alice", "acme")
		wantKind(t, "Enable after Configure("+spelling+") of the active key", err, fault.Conflict)
		w.runJobs("acme", cmk.StateActive)
	}
}

// TestTestSaysConsentWithdrawn: when the customer withdrew consent, Test
// Managed Key fails the consent check itself (not only the token) and says
// to grant consent again, even while the vault would still honour a cached
// token.
func TestTestSaysConsentWithdrawn(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	if err := w.emu.RevokeConsent(w.demo.TenantID, w.demo.ClientID); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "acme")
	c := check(rep, "consent")
	if rep.OK || c.Status != cmk.Fail || !strings.Contains(c.Detail, "consent") || !strings.Contains(c.Remedy, "authorize orgkms again") {
		t.Fatalf("Test after consent was withdrawn: ok=%v consent=%+v, want a failed consent check saying to authorize again", rep.OK, c)
	}
	if tok := check(rep, "token"); tok.Status != cmk.Fail {
		t.Fatalf("token check %+v, want fail", tok)
	}
}
