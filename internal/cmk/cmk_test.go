package cmk_test

import (
	"context"
	"fmt"
	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/store/sqlite"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
)

// TestLifecycle walks the customer's whole story: data on the platform key,
// authorize, configure, test, enable; rotate; disable the key and enable it
// again; move back to the platform key.
func TestLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	for _, org := range []string{"acme", "globex"} {
		if _, err := w.keys.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
	}
	before := w.encrypt("acme", "on the platform key")
	other := w.encrypt("globex", "globex stays on the platform key")

	st := w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	if st.ActiveVersion != w.demo.KeyVersion {
		t.Fatalf("active version %s, want %s", st.ActiveVersion, w.demo.KeyVersion)
	}
	// Invariant 3: only the CMK wraps the root key now.
	ws := w.wrappings("acme")
	if len(ws) != 1 || ws[0].Wrapped.Key.Provider != azurekv.Scheme || ws[0].Wrapped.Key.Version != w.demo.KeyVersion {
		t.Fatalf("wrappings after activation = %+v, want exactly one by the CMK", ws)
	}
	if err := w.decryptAll(before, other); err != nil {
		t.Fatalf("old ciphertexts after activation: %v", err)
	}
	during := w.encrypt("acme", "on the CMK")

	// Rotation in the vault is detected by the probe and followed.
	rot := w.rotate()
	st = w.probe("acme", cmk.StateActive)
	if st.ActiveVersion != rot.Version || st.Job == nil || st.Job.Kind != cmk.JobRotate || st.Job.State != cmk.JobDone {
		t.Fatalf("after rotation: version %s job %+v, want %s and a finished rotate job", st.ActiveVersion, st.Job, rot.Version)
	}
	if ws := w.wrappings("acme"); len(ws) != 1 || ws[0].Wrapped.Key.Version != rot.Version {
		t.Fatalf("wrappings after rotation = %+v, want one by version %s", ws, rot.Version)
	}
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("ciphertexts after rotation: %v", err)
	}

	// The customer disables the key: the org is cut off, others are not.
	if _, err := w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(false), nil, nil); err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKDisabled.Code() || !strings.Contains(st.Reason, "contoso-kv") {
		t.Fatalf("revoked reason %s %q, want cmk_key_disabled naming the vault", st.ReasonCode, st.Reason)
	}
	_, err := w.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	wantKind(t, "Encrypt for a revoked org", err, fault.CMKDisabled)
	if err := w.decryptAll(other); err != nil {
		t.Fatalf("another org is affected by acme's revocation: %v", err)
	}
	if _, err := w.cmk.Disable(ctx, "user:alice", "acme"); fault.KindOf(err) != fault.CMKDisabled {
		t.Fatalf("Disable while the CMK is unusable: kind %v, want %v", fault.KindOf(err), fault.CMKDisabled)
	}
	// ... and enables it again.
	w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(true), nil, nil)
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("ciphertexts after re-enabling: %v", err)
	}

	// Back to the platform key.
	if _, err := w.cmk.Disable(ctx, "user:alice", "acme"); err != nil {
		t.Fatal(err)
	}
	w.runJobs("acme", cmk.StateAuthorized)
	if ws := w.wrappings("acme"); len(ws) != 1 || ws[0].Wrapped.Key.Provider != "local" {
		t.Fatalf("wrappings after disable = %+v, want one by the platform key", ws)
	}
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("ciphertexts after disabling the CMK: %v", err)
	}
	// The audit chain tells the story and verifies.
	evs, err := w.st.AuditEvents(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range evs {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"cmk.authorize", "cmk.configure", "cmk.activate.start", "cmk.activate.done", "cmk.rotate.done", "cmk.revoked", "cmk.restored", "cmk.deactivate.done"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit log lacks %s: %v", want, actions)
		}
	}
	if _, err := w.keys.VerifyAudit(ctx, "acme"); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

func TestPermissionRemovedIsNamed(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	s := w.encrypt("acme", "secret")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	if err := w.emu.SetPolicy(azureemu.DemoVault, w.demo.ClientID, []string{"get", "list", "wrapKey"}); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "acme")
	var rt cmk.Check
	for _, c := range rep.Checks {
		if c.ID == "roundtrip" {
			rt = c
		}
	}
	if rep.OK || rt.Status != cmk.Fail || !strings.Contains(rt.Detail, "unwrapKey") || !strings.Contains(rt.Remedy, "Unwrap Key") {
		t.Fatalf("Test with unwrapKey removed: ok=%v roundtrip=%+v, want a failure naming unwrapKey", rep.OK, rt)
	}
	st := w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKPermissionMissing.Code() || !strings.Contains(st.Reason, "unwrapKey") {
		t.Fatalf("revoked %s %q, want cmk_permission_missing naming unwrapKey", st.ReasonCode, st.Reason)
	}
	wantKind(t, "Decrypt without unwrapKey", w.decryptAll(s), fault.CMKPermissionMissing)
	w.emu.SetPolicy(azureemu.DemoVault, w.demo.ClientID, azureemu.DemoPermissions)
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(s); err != nil {
		t.Fatal(err)
	}
}

// TestConsentRevokedRevokes: withdrawn consent has its own reason code: the
// vault's 401 of the cached token makes the driver ask the token endpoint
// again, whose AADSTS700016 names the cause; granting consent again
// restores the org.
func TestConsentRevokedRevokes(t *testing.T) {
	w := newWorld(t)
	w.keys.CreateOrg(t.Context(), "test", "acme", "")
	s := w.encrypt("acme", "before")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	if err := w.emu.RevokeConsent(w.demo.TenantID, w.demo.ClientID); err != nil {
		t.Fatal(err)
	}
	st := w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKConsentRevoked.Code() || !strings.Contains(st.Reason, "consent") {
		t.Fatalf("after consent revoked: %s %q, want cmk_consent_revoked asking to grant consent again", st.ReasonCode, st.Reason)
	}
	wantKind(t, "Decrypt without consent", w.decryptAll(s), fault.CMKConsentRevoked)
	if _, err := w.emu.GrantConsent(w.demo.TenantID, w.demo.ClientID); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(s); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteRecoverAndPurge(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	w.keys.CreateOrg(ctx, "test", "initech", "")
	a := w.encrypt("acme", "recoverable")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")

	// Soft delete: revoked, recoverable until the purge date.
	if _, err := w.emu.DeleteKey(azureemu.DemoVault, w.demo.KeyName); err != nil {
		t.Fatal(err)
	}
	st := w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKDeleted.Code() || st.RecoverableUntil.Before(time.Now().Add(80*24*time.Hour)) || !strings.Contains(st.Reason, "recover") {
		t.Fatalf("after delete: %s %q until %v, want cmk_key_deleted recoverable for ~90 days", st.ReasonCode, st.Reason, st.RecoverableUntil)
	}
	wantKind(t, "Decrypt with a deleted key", w.decryptAll(a), fault.CMKDeleted)
	if _, err := w.emu.RecoverKey(azureemu.DemoVault, w.demo.KeyName); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(a); err != nil {
		t.Fatal(err)
	}

	// A vault without purge protection: delete + purge loses the org's data.
	v, err := w.emu.CreateVault(w.demo.TenantID, "initech-kv", azureemu.VaultOptions{SoftDeleteDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.emu.CreateKey("initech-kv", "cmk", azureemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	w.emu.SetKeyTags("initech-kv", "cmk", "", map[string]string{"orgkms-org": "initech"})
	w.emu.SetPolicy("initech-kv", w.demo.ClientID, azureemu.DemoPermissions)
	i := w.encrypt("initech", "doomed")
	w.consent("initech", w.demo.TenantID, "accept")
	w.cmk.Configure(ctx, "user:bob", "initech", v.URI, "cmk", "")
	rep := w.cmk.Test(ctx, "initech")
	var del cmk.Check
	for _, c := range rep.Checks {
		if c.ID == "deletion" {
			del = c
		}
	}
	if !rep.OK || del.Status != cmk.Warn || !strings.Contains(del.Detail, "purge protection is off") {
		t.Fatalf("Test on a vault without purge protection: ok=%v deletion=%+v, want a warning", rep.OK, del)
	}
	w.cmk.Enable(ctx, "user:bob", "initech")
	w.runJobs("initech", cmk.StateActive)
	w.emu.DeleteKey("initech-kv", "cmk")
	if err := w.emu.PurgeKey("initech-kv", "cmk"); err != nil {
		t.Fatal(err)
	}
	// Proof of purge: absent on several probes spread over time, never
	// one 404.
	for _, gap := range []time.Duration{0, 5 * time.Minute} {
		w.skew.Add(int64(gap))
		if st := w.probe("initech", cmk.StateRevoked); st.ReasonCode != fault.CMKDeleted.Code() || !strings.Contains(st.Reason, "purge not confirmed") {
			t.Fatalf("purged key, before proof: %s %q, want cmk_key_deleted, purge not confirmed", st.ReasonCode, st.Reason)
		}
		wantKind(t, "Decrypt with a deleted key, purge not confirmed", w.decryptAll(i), fault.CMKDeleted)
	}
	w.skew.Add(int64(6 * time.Minute))
	st = w.probe("initech", cmk.StateLost)
	if st.ReasonCode != fault.CMKDestroyed.Code() || !strings.Contains(st.Reason, "unrecoverable") {
		t.Fatalf("after purge: %s %q, want cmk_key_destroyed saying unrecoverable", st.ReasonCode, st.Reason)
	}
	err = w.decryptAll(i)
	wantKind(t, "Decrypt after purge", err, fault.CMKDestroyed)
	if !strings.Contains(fault.Message(err), "unrecoverable") {
		t.Fatalf("data-plane error %q does not say the data is unrecoverable", fault.Message(err))
	}
	// acme is unaffected.
	if err := w.decryptAll(a); err != nil {
		t.Fatal(err)
	}
}

func TestOutageIsNotRevocation(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	s := w.encrypt("acme", "cached") // root key now cached
	for _, f := range []azureemu.Fault{{Outage: true}, {Status: 429, RetryAfter: time.Second}, {Status: 503}} {
		w.emu.SetFault(azureemu.DemoVault, f)
		st := w.probe("acme", cmk.StateActive)
		if !st.Degraded || st.LastProbeError == "" {
			t.Fatalf("fault %+v: degraded=%v error=%q, want degraded", f, st.Degraded, st.LastProbeError)
		}
		if _, _, err := w.keys.Decrypt(ctx, "svc", "acme", "default", s.ct, nil); err != nil {
			t.Fatalf("fault %+v: cached decrypt failed: %v", f, err)
		}
	}
	w.emu.ClearFault(azureemu.DemoVault)
	if st := w.probe("acme", cmk.StateActive); st.Degraded {
		t.Fatal("still degraded after the fault cleared")
	}
}

func TestReplaceKey(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	s := w.encrypt("acme", "moves twice")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	k2, err := w.emu.CreateKey(azureemu.DemoVault, "orgkms-cmk-2", azureemu.KeyOptions{Size: 3072})
	if err != nil {
		t.Fatal(err)
	}
	w.emu.SetKeyTags(azureemu.DemoVault, "orgkms-cmk-2", "", map[string]string{"orgkms-org": "globex, acme"})
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, "orgkms-cmk-2", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatal(err)
	}
	st := w.runJobs("acme", cmk.StateActive)
	if !strings.Contains(st.ActiveKeyURI, "orgkms-cmk-2") || st.ActiveVersion != k2.Version {
		t.Fatalf("after replace: %s@%s, want orgkms-cmk-2@%s", st.ActiveKeyURI, st.ActiveVersion, k2.Version)
	}
	if ws := w.wrappings("acme"); len(ws) != 1 || !strings.Contains(ws[0].Wrapped.Key.ID, "orgkms-cmk-2") {
		t.Fatalf("wrappings after replace = %+v", ws)
	}
	// The old key may now be deleted without effect on the org.
	w.emu.DeleteKey(azureemu.DemoVault, w.demo.KeyName)
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(s); err != nil {
		t.Fatal(err)
	}
}

func TestPinnedVersionThenFollowNewer(t *testing.T) {
	w := newWorld(t)
	w.keys.CreateOrg(t.Context(), "test", "acme", "")
	st := w.activate("acme", w.demo.VaultURI, w.demo.KeyName, w.demo.KeyVersion)
	if st.ActiveVersion != w.demo.KeyVersion || st.KeyVersion != w.demo.KeyVersion {
		t.Fatalf("pinned activation used %s", st.ActiveVersion)
	}
	rot := w.rotate()
	if st := w.probe("acme", cmk.StateActive); st.ActiveVersion != rot.Version {
		t.Fatalf("a newer version was not followed: %s, want %s", st.ActiveVersion, rot.Version)
	}
}

// TestTestManagedKeyDiagnostics: each misconfiguration fails the right
// check with a remedy, never a bare failure.
func TestTestManagedKeyDiagnostics(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if rep := w.cmk.Test(ctx, "acme"); rep.OK || rep.Checks[0].ID != "consent" || rep.Checks[0].Status != cmk.Fail {
		t.Fatalf("Test without consent: %+v", rep.Checks[0])
	}
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(-time.Hour)
	nbf := time.Now().Add(24 * time.Hour)
	w.emu.CreateKey(azureemu.DemoVault, "disabled-key", azureemu.KeyOptions{})
	w.emu.UpdateKey(azureemu.DemoVault, "disabled-key", "", boolp(false), nil, nil)
	w.emu.CreateKey(azureemu.DemoVault, "expired-key", azureemu.KeyOptions{Expires: exp})
	w.emu.CreateKey(azureemu.DemoVault, "future-key", azureemu.KeyOptions{NotBefore: nbf})
	w.emu.CreateKey(azureemu.DemoVault, "sign-only", azureemu.KeyOptions{KeyOps: []string{"sign", "verify"}})
	tests := []struct {
		name, vault, key, version string
		wantCheck                 string
		wantIn                    string
	}{
		{"missing key", w.demo.VaultURI, "no-such-key", "", "key", "not found"},
		{"missing version", w.demo.VaultURI, w.demo.KeyName, "0123456789abcdef0123456789abcdef", "version", "not found"},
		{"disabled", w.demo.VaultURI, "disabled-key", "", "enabled", "disabled"},
		{"expired", w.demo.VaultURI, "expired-key", "", "enabled", "expired"},
		{"not yet valid", w.demo.VaultURI, "future-key", "", "enabled", "not active until"},
		{"key ops", w.demo.VaultURI, "sign-only", "", "operations", "sign, verify"},
		{"unknown vault", "https://nowhere-kv.vault.azure.net/", "k", "", "vault", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := w.cmk.Configure(ctx, "user:alice", "acme", tt.vault, tt.key, tt.version); err != nil {
				t.Fatal(err)
			}
			rep := w.cmk.Test(ctx, "acme")
			if rep.OK {
				t.Fatal("Test passed")
			}
			for _, c := range rep.Checks {
				if c.Status == cmk.Fail {
					if c.ID != tt.wantCheck || !strings.Contains(c.Detail, tt.wantIn) || c.Remedy == "" {
						t.Fatalf("first failure %+v, want check %q mentioning %q with a remedy", c, tt.wantCheck, tt.wantIn)
					}
					return
				}
			}
		})
	}
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, "disabled-key", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); fault.KindOf(err) != fault.CMKDisabled || !strings.Contains(fault.Message(err), "Test Managed Key failed") {
		t.Fatalf("Enable with a failing test: %v, want cmk_key_disabled naming the test", err)
	}
}

func TestConsentRoundTrip(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if _, err := w.consent("acme", w.demo.TenantID, "cancel"); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("cancelled consent: %v, want conflict", err)
	}
	if st, _ := w.cmk.Status(ctx, "acme"); st.State != cmk.StatePlatform {
		t.Fatalf("state after a cancelled consent: %s", st.State)
	}
	c, err := w.consent("acme", w.demo.TenantID, "accept")
	if err != nil || c.Actor != "user:alice" || c.OrgID != "acme" {
		t.Fatalf("consent = %+v, %v", c, err)
	}
	// The state is single use.
	if _, err := w.cmk.Callback(ctx, cmk.ConsentResult{State: c.State, AdminConsent: "True", Tenant: w.demo.TenantID}); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("reused state: %v, want invalid", err)
	}
	if _, err := w.cmk.Authorize(ctx, "user:alice", "acme", "not-a-guid"); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Authorize with a bad tenant: %v", err)
	}
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", "https://evil.example.com/", "k", ""); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Configure with a non-Azure host: %v, want invalid", err)
	}
}

// TestKeyOwnershipTag: consent cannot prove that a key is meant for an org
// (a callback carries no signed assertion, and one vault may serve several
// customers), so a key is used for an org only when its customer tagged it
// for that org.
func TestKeyOwnershipTag(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "evil", "")
	// Org evil gets "consent" for the victim's tenant (even a forged
	// callback would do) and points at the victim's key, tagged for acme.
	if _, err := w.consent("evil", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Configure(ctx, "user:mallory", "evil", w.demo.VaultURI, w.demo.KeyName, ""); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "evil")
	var own cmk.Check
	for _, c := range rep.Checks {
		if c.ID == "ownership" {
			own = c
		}
	}
	if rep.OK || own.Status != cmk.Fail || !strings.Contains(own.Remedy, "orgkms-org = evil") {
		t.Fatalf("Test for an org the key is not tagged for: ok=%v ownership=%+v, want a failure asking for the tag", rep.OK, own)
	}
	if _, err := w.cmk.Enable(ctx, "user:mallory", "evil"); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("Enable of another customer's key: %v, want conflict", err)
	}
	if st, _ := w.cmk.Status(ctx, "evil"); st.State != cmk.StateAuthorized || st.ActiveKeyURI != "" {
		t.Fatalf("evil state %s, active key %q: the key must not be used", st.State, st.ActiveKeyURI)
	}
}

// TestRotationRefusedByTheKeyRevokes: when the customer's key refuses the
// re-wrap of a rotation (here: wrapKey removed), the org is revoked after the
// retries, not left retrying forever while served from cache.
func TestRotationRefusedByTheKeyRevokes(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	s := w.encrypt("acme", "x")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	w.rotate()
	w.emu.SetPolicy(azureemu.DemoVault, w.demo.ClientID, []string{"get", "list", "unwrapKey"})
	if err := w.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	for range 8 { // every retry, past its backoff
		if err := w.cmk.RunPendingJobs(ctx); err != nil {
			t.Fatal(err)
		}
		w.skew.Add(int64(5 * time.Minute))
	}
	st, err := w.cmk.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != cmk.StateRevoked || st.ReasonCode != fault.CMKPermissionMissing.Code() || st.Job == nil || st.Job.State != cmk.JobFailed {
		t.Fatalf("after a refused rotation: state %s reason %s job %+v; want revoked, cmk_permission_missing, failed job", st.State, st.ReasonCode, st.Job)
	}
	if _, _, err := w.keys.Decrypt(ctx, "svc", "acme", "default", s.ct, nil); fault.KindOf(err) != fault.CMKPermissionMissing {
		t.Fatalf("Decrypt of a revoked org kind = %v, want %v", fault.KindOf(err), fault.CMKPermissionMissing)
	}
	if ws := w.wrappings("acme"); len(ws) != 1 {
		t.Fatalf("a failed rotation left %d wrappings, want 1", len(ws))
	}
	// The customer restores the permission: the probe restores the org and
	// follows the rotation.
	w.emu.SetPolicy(azureemu.DemoVault, w.demo.ClientID, azureemu.DemoPermissions)
	w.probe("acme", cmk.StateActive)
	if err := w.cmk.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	w.runJobs("acme", cmk.StateActive)
	if err := w.decryptAll(s); err != nil {
		t.Fatal(err)
	}
}

// TestTestManagedKeyIsRateLimited: an org cannot use up a vault's request
// budget, shared with other orgs, by running Test Managed Key in a loop.
func TestTestManagedKeyIsRateLimited(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	w.keys.CreateOrg(ctx, "test", "globex", "")
	limited := func(org string) bool {
		rep := w.cmk.Test(ctx, org)
		return rep.Checks[0].Status == cmk.Fail && strings.Contains(rep.Checks[0].Detail, "too often")
	}
	n := 0
	for !limited("acme") {
		n++
		if n > 100 {
			t.Fatal("Test Managed Key is not rate limited")
		}
	}
	if n < 5 {
		t.Fatalf("rate limited after %d tests, want a burst of several", n)
	}
	if limited("globex") {
		t.Fatal("one org's tests limit another org")
	}
	w.skew.Add(int64(time.Minute))
	if limited("acme") {
		t.Fatal("still limited a minute later")
	}
}

// staleOnce is the real store, except that its first record write loses a
// race (as when the probe records its run in between).
type staleOnce struct {
	*sqlite.Store
	done atomic.Bool
}

func (s *staleOnce) PutCMK(ctx context.Context, r cmk.Record, ev *audit.Event) error {
	if !s.done.Swap(true) {
		return &fault.Error{Kind: fault.Conflict, Reason: "changed meanwhile", Err: cmk.ErrStale}
	}
	return s.Store.PutCMK(ctx, r, ev)
}

// TestUserActionsSurviveARacingProbe: a user's action whose write races
// the probe is judged again on the fresh record, not refused.
func TestUserActionsSurviveARacingProbe(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	st := &staleOnce{Store: w.st}
	cs, err := cmk.New(cmk.Config{Store: st, Keys: w.keys, Keepers: w.keepers, Clouds: []cmk.Cloud{w.cloud}, CallbackURL: callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, w.demo.KeyName, ""); err != nil {
		t.Fatalf("Configure after a lost race: %v, want success on retry", err)
	}
	if !st.done.Load() {
		t.Fatal("the race was not exercised")
	}
}

// TestDeletionIsNotLostWithoutProofOfPurge: right after a delete, Azure may
// answer 404 for the key and for its deleted entry alike. However far apart
// the probes, an org is not lost on that evidence until enough checks agree
// over enough time; meanwhile it is revoked as deleted.
func TestDeletionIsNotLostWithoutProofOfPurge(t *testing.T) {
	tests := []struct {
		name     string
		lagCalls int           // deleted entry invisible for this many GETs
		gap      time.Duration // between probes
		probes   int           // inside the window
	}{
		{"fewer absent checks than the proof needs", 2, time.Hour, 2},
		{"more checks, but in less time than the proof needs", 1000, time.Minute, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, option{emu: func(c *azureemu.Config) { c.DeletedKeyLagCalls = tt.lagCalls }})
			ctx := t.Context()
			w.keys.CreateOrg(ctx, "test", "acme", "")
			s := w.encrypt("acme", "kept")
			w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
			if _, err := w.emu.DeleteKey(azureemu.DemoVault, w.demo.KeyName); err != nil {
				t.Fatal(err)
			}
			for i := range tt.probes {
				st := w.probe("acme", cmk.StateRevoked)
				if st.ReasonCode != fault.CMKDeleted.Code() || !strings.Contains(st.Reason, "purge not confirmed") || st.PurgeChecks != i+1 {
					t.Fatalf("probe %d inside the delete window: %s %q (checks %d), want cmk_key_deleted, purge not confirmed", i+1, st.ReasonCode, st.Reason, st.PurgeChecks)
				}
				wantKind(t, "Decrypt inside the delete window", w.decryptAll(s), fault.CMKDeleted)
				w.skew.Add(int64(tt.gap))
			}
			if tt.lagCalls > tt.probes {
				return // still inside the window: never lost
			}
			// The deleted entry shows up: recoverable, the evidence is reset.
			st := w.probe("acme", cmk.StateRevoked)
			if st.ReasonCode != fault.CMKDeleted.Code() || st.RecoverableUntil.IsZero() || st.PurgeChecks != 0 || !st.PurgeSuspectedSince.IsZero() {
				t.Fatalf("deleted entry visible: %s until %v checks %d, want recoverable with the evidence reset", st.ReasonCode, st.RecoverableUntil, st.PurgeChecks)
			}
			if _, err := w.emu.RecoverKey(azureemu.DemoVault, w.demo.KeyName); err != nil {
				t.Fatal(err)
			}
			w.probe("acme", cmk.StateActive)
			if err := w.decryptAll(s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSameCauseSameAnswer: a condition of the customer's key gives the same
// code and status from every action, before and after the probe saw it; a
// transient vault condition is retryable, never a 409.
func TestSameCauseSameAnswer(t *testing.T) {
	causes := []struct {
		name  string
		apply func(w *world)
		want  fault.Kind
	}{
		{"key disabled", func(w *world) {
			w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(false), nil, nil)
		}, fault.CMKDisabled},
		{"unwrapKey removed", func(w *world) {
			w.emu.SetPolicy(azureemu.DemoVault, w.demo.ClientID, []string{"get", "list", "wrapKey"})
		}, fault.CMKPermissionMissing},
		{"throttled", func(w *world) {
			w.emu.SetFault(azureemu.DemoVault, azureemu.Fault{Status: 429, RetryAfter: 2 * time.Second})
		}, fault.Unavailable},
		{"server error", func(w *world) { w.emu.SetFault(azureemu.DemoVault, azureemu.Fault{Status: 503}) }, fault.Unavailable},
		{"outage", func(w *world) { w.emu.SetFault(azureemu.DemoVault, azureemu.Fault{Outage: true}) }, fault.Unavailable},
	}
	// Each action starts from its own org: acme is authorized with the
	// demo key configured (enable activates it); the others are active on
	// the demo key, initech with a second key configured (enable replaces).
	actions := []struct {
		name string
		org  string
		do   func(w *world, org string) error
	}{
		{"enable", "acme", func(w *world, org string) error { _, err := w.cmk.Enable(w.t.Context(), "user:alice", org); return err }},
		{"replace", "initech", func(w *world, org string) error { _, err := w.cmk.Enable(w.t.Context(), "user:alice", org); return err }},
		{"disable", "globex", func(w *world, org string) error {
			_, err := w.cmk.Disable(w.t.Context(), "user:alice", org)
			return err
		}},
	}
	for _, c := range causes {
		for _, probed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/probed=%v", c.name, probed), func(t *testing.T) {
				w := newWorld(t)
				ctx := t.Context()
				for _, org := range []string{"acme", "globex", "initech"} {
					w.keys.CreateOrg(ctx, "test", org, "")
				}
				w.activate("globex", w.demo.VaultURI, w.demo.KeyName, "")
				w.activate("initech", w.demo.VaultURI, w.demo.KeyName, "")
				other, err := w.emu.CreateVault(w.demo.TenantID, "other-kv", azureemu.VaultOptions{PurgeProtection: true})
				if err != nil {
					t.Fatal(err)
				}
				w.emu.CreateKey("other-kv", "k2", azureemu.KeyOptions{})
				w.emu.SetKeyTags("other-kv", "k2", "", map[string]string{"orgkms-org": "initech"})
				w.emu.SetPolicy("other-kv", w.demo.ClientID, azureemu.DemoPermissions)
				if _, err := w.cmk.Configure(ctx, "user:alice", "initech", other.URI, "k2", ""); err != nil {
					t.Fatal(err)
				}
				if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
					t.Fatal(err)
				}
				if _, err := w.cmk.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, w.demo.KeyName, ""); err != nil {
					t.Fatal(err)
				}
				w.keys.Cache().PurgeAll() // the root keys are unwrapped through the vault
				c.apply(w)
				if probed {
					for _, org := range []string{"globex", "initech"} {
						if err := w.cmk.Probe(ctx, org); err != nil {
							t.Fatal(err)
						}
					}
				}
				for _, a := range actions {
					err := a.do(w, a.org)
					got := fault.KindOf(err)
					if err == nil || got != c.want || got.HTTPStatus() != c.want.HTTPStatus() {
						t.Errorf("%s: kind %v (status %d, err %v), want %v (%d)", a.name, got, got.HTTPStatus(), err, c.want, c.want.HTTPStatus())
						continue
					}
					if c.want == fault.Unavailable && (!got.Retryable() || fault.As(err).RetryAfter <= 0) {
						t.Errorf("%s: %v is not retryable with a Retry-After", a.name, err)
					}
					if st, _ := w.cmk.Status(ctx, a.org); st.Job != nil && st.Job.State == cmk.JobPending {
						t.Errorf("%s: a refused action started a job %+v", a.name, st.Job)
					}
				}
				// Configure only stores the choice: it answers the same
				// whatever the key's condition and the probe's timing.
				if _, err := w.cmk.Configure(ctx, "user:alice", "globex", other.URI, "k2", ""); err != nil {
					t.Errorf("configure: %v, want success", err)
				}
			})
		}
	}
}

// TestRestartedNodeReclaimsItsJobs: a node that dies holding a job's lease
// takes the job back as soon as it starts again, instead of leaving it
// running until the lease expires; meanwhile status shows it stalled.
func TestRestartedNodeReclaimsItsJobs(t *testing.T) {
	const lease = time.Hour // far beyond the test: only a reclaim frees the job
	w := newWorld(t, option{cmk: func(c *cmk.Config) { c.NodeID, c.JobLease = "node-a", lease }})
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	s := w.encrypt("acme", "moves")
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, w.demo.KeyName, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatal(err)
	}
	// node-a claims the job, then dies before running it.
	if _, err := w.st.ClaimJob(ctx, "node-a/worker-1", time.Now(), lease); err != nil {
		t.Fatal(err)
	}
	jobState := func(cs *cmk.Service) cmk.JobState {
		t.Helper()
		st, err := cs.Status(ctx, "acme")
		if err != nil || st.Job == nil {
			t.Fatalf("Status: %+v, %v", st, err)
		}
		return st.Job.State
	}
	if got := jobState(w.cmk); got != cmk.JobRunning {
		t.Fatalf("job held by the live node-a: %s, want running", got)
	}
	// Seen from another single node: the holder is gone.
	if got := jobState(w.restart("node-b")); got != cmk.JobStalled {
		t.Fatalf("job of node-a seen by node-b: %s, want stalled", got)
	}
	// Seen by node-a itself after the lease: stalled.
	cs := w.restart("node-a")
	w.skew.Store(int64(2 * lease))
	if got := jobState(cs); got != cmk.JobStalled {
		t.Fatalf("job with an expired lease: %s, want stalled", got)
	}
	w.skew.Store(0)

	// node-a starts again: it reclaims and finishes the job at once.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); cs.Run(runCtx, 1) }()
	defer func() { stop(); <-done }()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := cs.Status(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if st.State == cmk.StateActive && st.Job.State == cmk.JobDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted node-a did not reclaim its job: state %s, job %+v", st.State, st.Job)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not a wait for the result
	}
	if err := w.decryptAll(s); err != nil {
		t.Fatal(err)
	}
}

// TestRotationToAnUntaggedVersionIsNotFollowed: every version orgkms wraps
// with must carry the org's ownership tag, like the key at Enable. A newer
// version without it is not followed: the current version keeps wrapping,
// the org stays usable and gets a warning naming the remedy; once the
// customer tags the version, the probe follows it.
func TestRotationToAnUntaggedVersionIsNotFollowed(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	s := w.encrypt("acme", "stays readable")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	rot, err := w.emu.RotateKey(azureemu.DemoVault, w.demo.KeyName) // no tags on the new version
	if err != nil {
		t.Fatal(err)
	}
	st := w.probe("acme", cmk.StateActive)
	if st.ActiveVersion != w.demo.KeyVersion || st.Job.Kind == cmk.JobRotate {
		t.Fatalf("untagged version followed: active %s, job %+v; want %s kept", st.ActiveVersion, st.Job, w.demo.KeyVersion)
	}
	for _, want := range []string{rot.Version, "orgkms-org=acme", "keeps using version " + w.demo.KeyVersion} {
		if !strings.Contains(st.Warning, want) {
			t.Fatalf("warning %q does not say %q", st.Warning, want)
		}
	}
	if ws := w.wrappings("acme"); len(ws) != 1 || ws[0].Wrapped.Key.Version != w.demo.KeyVersion {
		t.Fatalf("wrappings = %+v, want one by version %s", ws, w.demo.KeyVersion)
	}
	if err := w.decryptAll(s); err != nil {
		t.Fatalf("org with an untagged newer version: %v", err)
	}
	// Once per new condition in the audit log.
	w.probe("acme", cmk.StateActive)
	evs, err := w.st.AuditEvents(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == "cmk.rotation_not_followed" && e.Details["version"] == rot.Version {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d cmk.rotation_not_followed events, want 1", n)
	}
	// The customer tags the version: followed, warning gone.
	if _, err := w.emu.SetKeyTags(azureemu.DemoVault, w.demo.KeyName, rot.Version, map[string]string{"orgkms-org": "acme"}); err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateActive)
	if st.ActiveVersion != rot.Version || st.Warning != "" {
		t.Fatalf("after tagging: active %s warning %q, want %s and no warning", st.ActiveVersion, st.Warning, rot.Version)
	}
	if rep := w.cmk.Test(ctx, "acme"); !rep.OK {
		t.Fatalf("Test after following the tagged version: %s", rep.FirstFailure())
	}
	if err := w.decryptAll(s); err != nil {
		t.Fatal(err)
	}
}

// TestStatusAndErrorsNameTheKeyInUse: a newly configured key is only a
// pending choice until enable: status, revocation reasons and errors name
// the key that wraps the org, and show the pending one apart.
func TestStatusAndErrorsNameTheKeyInUse(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	s := w.encrypt("acme", "x")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	other, err := w.emu.CreateVault(w.demo.TenantID, "other-kv", azureemu.VaultOptions{PurgeProtection: true})
	if err != nil {
		t.Fatal(err)
	}
	w.emu.CreateKey("other-kv", "k2", azureemu.KeyOptions{})
	w.emu.SetKeyTags("other-kv", "k2", "", map[string]string{"orgkms-org": "acme"})
	w.emu.SetPolicy("other-kv", w.demo.ClientID, azureemu.DemoPermissions)
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", other.URI, "k2", ""); err != nil {
		t.Fatal(err)
	}
	st, err := w.cmk.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if st.Key == nil || st.Key.VaultURI != w.demo.VaultURI || st.Key.KeyName != w.demo.KeyName {
		t.Fatalf("key in use %+v, want %s %s", st.Key, w.demo.VaultURI, w.demo.KeyName)
	}
	if st.Pending == nil || st.Pending.VaultURI != other.URI || st.Pending.KeyName != "k2" {
		t.Fatalf("pending %+v, want %s k2", st.Pending, other.URI)
	}
	// The key in use is disabled: every answer names it, not the new one.
	w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(false), nil, nil)
	names := func(what, msg string) {
		t.Helper()
		if !strings.Contains(msg, "contoso-kv") || !strings.Contains(msg, w.demo.KeyName) || strings.Contains(msg, "other-kv") || strings.Contains(msg, "k2") {
			t.Errorf("%s %q: want the key in use (contoso-kv, %s), not the pending other-kv/k2", what, msg, w.demo.KeyName)
		}
	}
	w.keys.Cache().PurgeAll()
	_, err = w.cmk.Disable(ctx, "user:alice", "acme")
	names("Disable before the probe", fault.Message(err))
	st = w.probe("acme", cmk.StateRevoked)
	names("revocation reason", st.Reason)
	_, err = w.cmk.Disable(ctx, "user:alice", "acme")
	names("Disable after the probe", fault.Message(err))
	_, err = w.cmk.Enable(ctx, "user:alice", "acme")
	names("Enable (replace) while revoked", fault.Message(err))
	names("data-plane error", fault.Message(w.decryptAll(s)))
	if st.Key == nil || st.Key.VaultURI != w.demo.VaultURI || st.Pending == nil || st.Pending.KeyName != "k2" {
		t.Fatalf("revoked status: key %+v pending %+v", st.Key, st.Pending)
	}

	// The wrong-tenant error names the vault and tenant the customer entered.
	fab, err := w.emu.CreateTenant("fabrikam")
	if err != nil {
		t.Fatal(err)
	}
	fv, err := w.emu.CreateVault(fab.ID, "fabrikam-kv", azureemu.VaultOptions{PurgeProtection: true})
	if err != nil {
		t.Fatal(err)
	}
	w.emu.CreateKey("fabrikam-kv", "k3", azureemu.KeyOptions{})
	w.keys.CreateOrg(ctx, "test", "globex", "")
	if _, err := w.consent("globex", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Configure(ctx, "user:alice", "globex", fv.URI, "k3", ""); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "globex")
	if f := rep.FirstFailure(); !strings.Contains(f, "fabrikam-kv") || !strings.Contains(f, w.demo.TenantID) || strings.Contains(f, "contoso-kv") {
		t.Errorf("wrong-tenant failure %q: want the vault (fabrikam-kv) and tenant (%s) entered", f, w.demo.TenantID)
	}
}

// TestLostOrgFallsBack: an org whose key was purged is not stuck: an
// explicit fallback gives it a new platform root key with the loss
// recorded; old ciphertexts fail with cmk_key_destroyed, new data works.
func TestLostOrgFallsBack(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "initech", "")
	if _, err := w.keys.CreateDataKey(ctx, "test", "initech", "invoices"); err != nil {
		t.Fatal(err)
	}
	old := w.encrypt("initech", "before the loss")
	v, err := w.emu.CreateVault(w.demo.TenantID, "initech-kv", azureemu.VaultOptions{SoftDeleteDays: 7})
	if err != nil {
		t.Fatal(err)
	}
	w.emu.CreateKey("initech-kv", "cmk", azureemu.KeyOptions{})
	w.emu.SetKeyTags("initech-kv", "cmk", "", map[string]string{"orgkms-org": "initech"})
	w.emu.SetPolicy("initech-kv", w.demo.ClientID, azureemu.DemoPermissions)
	w.activate("initech", v.URI, "cmk", "")
	w.emu.DeleteKey("initech-kv", "cmk")
	if err := w.emu.PurgeKey("initech-kv", "cmk"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		w.cmk.Probe(ctx, "initech")
		w.skew.Add(int64(6 * time.Minute))
	}
	if st, _ := w.cmk.Status(ctx, "initech"); st.State != cmk.StateLost {
		t.Fatalf("state %s, want lost", st.State)
	}
	// Every other action points at the way out.
	for name, do := range map[string]func() error{
		"disable": func() error { _, err := w.cmk.Disable(ctx, "user:alice", "initech"); return err },
		"enable":  func() error { _, err := w.cmk.Enable(ctx, "user:alice", "initech"); return err },
	} {
		err := do()
		if fault.KindOf(err) != fault.CMKDestroyed || !strings.Contains(fault.Message(err), "orgkms cmk fallback") {
			t.Errorf("%s of a lost org: %v, want cmk_key_destroyed pointing at the fallback", name, err)
		}
	}
	if _, err := w.cmk.FallBack(ctx, "user:alice", "globex-not-an-org"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("FallBack of a missing org: %v, want not found", err)
	}

	st, err := w.cmk.FallBack(ctx, "user:alice", "initech")
	if err != nil {
		t.Fatalf("FallBack: %v", err)
	}
	if st.State != cmk.StatePlatform || st.DataLostAt.IsZero() || st.Key != nil {
		t.Fatalf("after fallback: state %s data lost at %v key %+v, want platform with the loss date", st.State, st.DataLostAt, st.Key)
	}
	if ws := w.wrappings("initech"); len(ws) != 1 || ws[0].Wrapped.Key.Provider != "local" {
		t.Fatalf("wrappings after fallback = %+v, want one by the platform key", ws)
	}
	check := func(when string) {
		t.Helper()
		err := w.decryptAll(old)
		if fault.KindOf(err) != fault.CMKDestroyed || !strings.Contains(fault.Message(err), "data loss") {
			t.Fatalf("%s: old ciphertext: %v, want cmk_key_destroyed naming the data loss", when, err)
		}
		for _, key := range []string{"default", "invoices"} {
			ct, err := w.keys.Encrypt(ctx, "svc", "initech", key, []byte("after"), nil)
			if err != nil {
				t.Fatalf("%s: encrypt with %s: %v", when, key, err)
			}
			w.keys.Cache().PurgeAll()
			if pt, _, err := w.keys.Decrypt(ctx, "svc", "initech", key, ct.Bytes, nil); err != nil || string(pt) != "after" {
				t.Fatalf("%s: decrypt with %s: %q, %v", when, key, pt, err)
			}
		}
	}
	check("after fallback")
	// Lowering the min decryption version does not bring the lost versions
	// back, nor break the key.
	if _, err := w.keys.SetMinDecryptionVersion(ctx, "test", "initech", "default", 1); err != nil {
		t.Fatal(err)
	}
	check("with the min decryption version lowered")
	// A restarted node knows the loss too.
	cs := w.restart("node-b")
	if err := cs.LoadBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a restart")

	evs, err := w.st.AuditEvents(ctx, "initech", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range evs {
		found = found || e.Action == "cmk.fallback" && e.Actor == "user:alice" && e.Details["data_lost_at"] != ""
	}
	if !found {
		t.Fatal("no cmk.fallback audit event with the loss date")
	}
	if _, err := w.keys.VerifyAudit(ctx, "initech"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.FallBack(ctx, "user:alice", "initech"); fault.KindOf(err) != fault.Conflict {
		t.Fatalf("second FallBack: %v, want conflict", err)
	}
	// The org may start the CMK flow again.
	if _, err := w.consent("initech", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.cmk.Status(ctx, "initech"); st.State != cmk.StateAuthorized || st.DataLostAt.IsZero() {
		t.Fatalf("after authorizing again: %s, loss date %v; want authorized, the loss still recorded", st.State, st.DataLostAt)
	}
}

// TestEnableWhenTestIsRateLimited: Enable runs Test Managed Key; when the
// org ran it too often, Enable is a retryable 429 with Retry-After, not a
// 409 "test failed".
func TestEnableWhenTestIsRateLimited(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	if _, err := w.consent("acme", w.demo.TenantID, "accept"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Configure(ctx, "user:alice", "acme", w.demo.VaultURI, w.demo.KeyName, ""); err != nil {
		t.Fatal(err)
	}
	for n := 0; ; n++ {
		if rep := w.cmk.Test(ctx, "acme"); !rep.OK {
			break
		}
		if n > 100 {
			t.Fatal("Test Managed Key is not rate limited")
		}
	}
	_, err := w.cmk.Enable(ctx, "user:alice", "acme")
	wantKind(t, "Enable right after too many tests", err, fault.RateLimited)
	if fe := fault.As(err); fe.RetryAfter <= 0 || fault.KindOf(err).HTTPStatus() != 429 {
		t.Fatalf("Enable rate limited: %+v, want 429 with Retry-After", fe)
	}
	w.skew.Add(int64(time.Minute))
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatalf("Enable after waiting: %v", err)
	}
}

// The data plane answers a failed customer key with the cmk_* code of its
// cause before the probe has seen it, the same code as after: a deleted key
// is cmk_key_deleted (never master_key_not_found), a disabled one
// cmk_key_disabled.
func TestDataPlaneBeforeTheProbeSameCode(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.keys.CreateOrg(ctx, "test", "acme", "")
	a := w.encrypt("acme", "x")
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")

	off := false
	if _, err := w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", &off, nil, nil); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "Decrypt with a disabled key, before the probe", w.decryptAll(a), fault.CMKDisabled)
	on := true
	if _, err := w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", &on, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.emu.DeleteKey(azureemu.DemoVault, w.demo.KeyName); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "Decrypt with a deleted key, before the probe", w.decryptAll(a), fault.CMKDeleted)
	w.probe("acme", cmk.StateRevoked)
	wantKind(t, "Decrypt with a deleted key, after the probe", w.decryptAll(a), fault.CMKDeleted)
}

// TestRestoreRecordedByAnotherNode runs two services (two nodes) on one
// store: when one node's probe records that a disabled key works again,
// the other node's next probe serves the org again, although the record it
// reads is already active.
func TestRestoreRecordedByAnotherNode(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	other := w.cfg
	other.NodeID = "node-b"
	b, err := cmk.New(other)
	if err != nil {
		t.Fatal(err)
	}
	w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(false), nil, nil)
	w.probe("acme", cmk.StateRevoked)
	if err := b.Probe(ctx, "acme"); err != nil {
		t.Fatalf("Probe on node b: %v", err)
	}
	wantKind(t, "node b's guard of a revoked org", b.Guard(ctx, "acme"), fault.CMKDisabled)

	w.emu.UpdateKey(azureemu.DemoVault, w.demo.KeyName, "", boolp(true), nil, nil)
	w.probe("acme", cmk.StateActive) // node a records the restore
	if err := b.Probe(ctx, "acme"); err != nil {
		t.Fatalf("Probe on node b: %v", err)
	}
	if err := b.Guard(ctx, "acme"); err != nil {
		t.Errorf("node b's guard after the restore, recorded by node a, and a probe on node b: %v; want the org served", err)
	}
}
