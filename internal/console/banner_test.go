package console

import (
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

func TestBanner(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		rec       cmk.Record
		wantClass string
		wantText  []string
	}{
		{"platform", cmk.Record{State: cmk.StatePlatform}, "", nil},
		{"active", cmk.Record{State: cmk.StateActive}, "", nil},
		{"disabled", cmk.Record{State: cmk.StateRevoked, ReasonCode: fault.CMKDisabled.Code(), Reason: "key k in vault v is disabled; enable it in the Azure portal to restore access"},
			"banner-revoked", []string{"key k in vault v is disabled", "refuses to encrypt or decrypt", "enable the key"}},
		{"permission", cmk.Record{State: cmk.StateRevoked, ReasonCode: fault.CMKPermissionMissing.Code(), Reason: "orgkms lost the unwrapKey permission"},
			"banner-revoked", []string{"unwrapKey", "access policy", "authorize it again"}},
		{"consent withdrawn", cmk.Record{State: cmk.StateRevoked, ReasonCode: fault.CMKConsentRevoked.Code(), Reason: "orgkms is not authorized in Entra ID tenant t (admin consent was withdrawn or never granted)"},
			"banner-revoked", []string{"consent was withdrawn", "grants orgkms admin consent again", "Authorize again"}},
		{"deleted", cmk.Record{State: cmk.StateRevoked, ReasonCode: fault.CMKDeleted.Code(), Reason: "key k was deleted", RecoverableUntil: now.Add(90 * 24 * time.Hour)},
			"banner-revoked", []string{"recover the key", "2025-08-30"}},
		{"lost", cmk.Record{State: cmk.StateLost, ReasonCode: fault.CMKDestroyed.Code(), Reason: "key k was purged from vault v: the org's data is unrecoverable"},
			"banner-lost", []string{"purged", "unrecoverable", "orgkms cmk fallback"}},
		{"fell back", cmk.Record{State: cmk.StatePlatform, DataLostAt: now},
			"banner-lost", []string{"Data lost on", "new platform root key", "unrecoverable"}},
		{"degraded", cmk.Record{State: cmk.StateActive, Degraded: true, LastProbeError: "azurekv is unavailable; retry later"},
			"banner-degraded", []string{"cannot reach", "unavailable", "cache"}},
		{"untagged version", cmk.Record{State: cmk.StateActive, Warning: "key k in vault v has a new version 2 without the tag orgkms-org naming org acme; tag version 2 with orgkms-org=acme"},
			"banner-degraded", []string{"not followed", "tag version 2 with orgkms-org=acme", "keeps working"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bannerOf(tt.rec, now)
			if tt.wantClass == "" {
				if b != nil {
					t.Fatalf("bannerOf = %+v, want none", b)
				}
				return
			}
			if b == nil || b.Class != tt.wantClass {
				t.Fatalf("bannerOf = %+v, want class %s", b, tt.wantClass)
			}
			all := b.Title + " " + b.Text + " " + b.Remedy
			for _, w := range tt.wantText {
				if !strings.Contains(all, w) {
					t.Errorf("banner %q lacks %q", all, w)
				}
			}
		})
	}
}

// TestEveryStateExplained: each lifecycle state has its explanation.
func TestEveryStateExplained(t *testing.T) {
	t.Parallel()
	for _, s := range stateOrder {
		if stateText[s] == "" {
			t.Errorf("state %s has no explanation", s)
		}
	}
	if len(stateText) != len(stateOrder) {
		t.Errorf("%d explanations for %d states", len(stateText), len(stateOrder))
	}
}

func TestVaultAndKey(t *testing.T) {
	for _, tt := range []struct{ uri, vault, key string }{
		{"azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=e71f9a29-8f8d-4d7d-8589-f04ccaf871ab", "contoso-kv", "orgkms-cmk"},
		{"azurekv://hsm1.managedhsm.azure.net/keys/k1", "hsm1", "k1"},
		{"local:///var/lib/orgkms/master.key", "", ""},
		{"nonsense", "", ""},
	} {
		if v, k := vaultAndKey(tt.uri); v != tt.vault || k != tt.key {
			t.Errorf("vaultAndKey(%q) = %q, %q; want %q, %q", tt.uri, v, k, tt.vault, tt.key)
		}
	}
}

// TestStalledJobShown: a job whose worker is gone is still shown, saying
// that it stalled and what happens next.
func TestStalledJobShown(t *testing.T) {
	t.Parallel()
	j := &cmk.Job{Kind: cmk.JobActivate, State: cmk.JobStalled, Step: "copied"}
	v := runningJob(cmk.Status{Record: cmk.Record{State: cmk.StateActivating}, Job: j})
	if v == nil || v.State != "stalled" || !strings.Contains(v.Error, "resumed") {
		t.Fatalf("runningJob(stalled) = %+v, want the job shown as stalled with what happens next", v)
	}
}
