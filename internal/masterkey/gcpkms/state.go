package gcpkms

import (
	"fmt"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/orgkms/orgkms/internal/fault"
)

// Status is what the state of a CryptoKeyVersion means to orgkms.
type Status struct {
	// Usable: the version is ENABLED, the only state that encrypts and
	// decrypts.
	Usable bool
	// Kind of an unusable version: KeyDisabled (revoked: the material is
	// kept and the customer can make it usable again) or KeyDestroyed
	// (lost: data wrapped by it is unrecoverable).
	Kind fault.Kind
	// Reason says why, with the remedy in the Cloud console's words; ""
	// when Usable.
	Reason string
	// DestroyAt is when a DESTROY_SCHEDULED version's material will be
	// destroyed; zero otherwise.
	DestroyAt time.Time
}

// VersionStatus maps the state of version v of key k to orgkms' terms:
// ENABLED → usable; DISABLED → revoked ("enable version V …");
// DESTROY_SCHEDULED → revoked until its destroy_time ("restore it before
// DATE …"); DESTROYED → lost; the pending and failed import, generation and
// external-destruction states → revoked, naming the state.
func VersionStatus(k KeyName, v *kmspb.CryptoKeyVersion) Status {
	kv := k
	if id, ok := parseVersionName(k, v.GetName()); ok {
		kv.Version = id
	}
	ver := "version " + kv.Version
	switch v.GetState() {
	case kmspb.CryptoKeyVersion_ENABLED:
		return Status{Usable: true}
	case kmspb.CryptoKeyVersion_DISABLED:
		return Status{Kind: fault.KeyDisabled, Reason: fmt.Sprintf("%s of key %s is disabled in Cloud KMS: enable %s in the %s → Enable", ver, k.CryptoKey, ver, consolePath(k))}
	case kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
		s := Status{Kind: fault.KeyDisabled}
		if t := v.GetDestroyTime(); t != nil {
			s.DestroyAt = t.AsTime()
			s.Reason = destroyScheduledReason(kv, s.DestroyAt)
		} else {
			s.Reason = fmt.Sprintf("%s of key %s is scheduled for destruction: restore it, then enable it (%s → Restore, Enable)", ver, k.CryptoKey, consolePath(k))
		}
		return s
	case kmspb.CryptoKeyVersion_DESTROYED:
		return Status{Kind: fault.KeyDestroyed, Reason: fmt.Sprintf("%s of key %s was destroyed in Cloud KMS: data wrapped by it is unrecoverable", ver, k.CryptoKey)}
	}
	return Status{Kind: fault.KeyDisabled, Reason: fmt.Sprintf("%s of key %s is in state %s in Cloud KMS, not ENABLED: use an enabled version (%s)", ver, k.CryptoKey, v.GetState(), consolePath(k))}
}

func destroyScheduledReason(k KeyName, at time.Time) string {
	date := at.UTC().Format("2006-01-02 15:04 UTC")
	return fmt.Sprintf("version %s of key %s is scheduled for destruction on %s: restore it before %s, then enable it (%s → Restore, Enable)",
		k.Version, k.CryptoKey, date, date, consolePath(k))
}
