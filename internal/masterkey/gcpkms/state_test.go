package gcpkms

import (
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/orgkms/orgkms/internal/fault"
)

// TestVersionStatus: every CryptoKeyVersion state maps to usable, revoked
// (KeyDisabled, with the remedy and, when scheduled, the destroy date) or
// lost (KeyDestroyed).
func TestVersionStatus(t *testing.T) {
	at := time.Date(2027, 1, 6, 12, 0, 0, 0, time.UTC)
	name := testKey.Name() + "/cryptoKeyVersions/4"
	tests := []struct {
		state      kmspb.CryptoKeyVersion_CryptoKeyVersionState
		destroy    time.Time
		wantUsable bool
		wantKind   fault.Kind
		wantReason string
	}{
		{kmspb.CryptoKeyVersion_ENABLED, time.Time{}, true, fault.Internal, ""},
		{kmspb.CryptoKeyVersion_DISABLED, time.Time{}, false, fault.KeyDisabled, "enable version 4 in the Cloud console: Security → Key Management → key ring orgkms → key cmk-1"},
		{kmspb.CryptoKeyVersion_DESTROY_SCHEDULED, at, false, fault.KeyDisabled, "scheduled for destruction on 2027-01-06 12:00 UTC: restore it before 2027-01-06 12:00 UTC"},
		{kmspb.CryptoKeyVersion_DESTROY_SCHEDULED, time.Time{}, false, fault.KeyDisabled, "restore it"},
		{kmspb.CryptoKeyVersion_DESTROYED, time.Time{}, false, fault.KeyDestroyed, "unrecoverable"},
		{kmspb.CryptoKeyVersion_PENDING_GENERATION, time.Time{}, false, fault.KeyDisabled, "PENDING_GENERATION"},
		{kmspb.CryptoKeyVersion_IMPORT_FAILED, time.Time{}, false, fault.KeyDisabled, "IMPORT_FAILED"},
		{kmspb.CryptoKeyVersion_EXTERNAL_DESTRUCTION_FAILED, time.Time{}, false, fault.KeyDisabled, "EXTERNAL_DESTRUCTION_FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			v := &kmspb.CryptoKeyVersion{Name: name, State: tt.state}
			if !tt.destroy.IsZero() {
				v.DestroyTime = timestamppb.New(tt.destroy)
			}
			st := VersionStatus(testKey, v)
			if st.Usable != tt.wantUsable || (!st.Usable && st.Kind != tt.wantKind) || !st.DestroyAt.Equal(tt.destroy) {
				t.Fatalf("VersionStatus(%v) = %+v, want usable %v, kind %v", tt.state, st, tt.wantUsable, tt.wantKind)
			}
			if !strings.Contains(st.Reason, tt.wantReason) || (tt.wantUsable && st.Reason != "") {
				t.Fatalf("VersionStatus(%v) reason = %q, want %q", tt.state, st.Reason, tt.wantReason)
			}
		})
	}
}
