package awskms_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/orgkms/orgkms/internal/awsemu"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

var aad = []byte("org/acme/root/v1")

func dek() []byte { return []byte("0123456789abcdef0123456789abcdef") }

func TestAssumeRoleOncePerSession(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t)
	key := e.newKey(t)
	for range 5 {
		w, err := p.Wrap(t.Context(), key, dek(), aad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sts.Calls(); n != 1 {
		t.Fatalf("AssumeRole calls = %d, want 1: the session credentials are cached", n)
	}
}

func TestAssumeRoleRenewedBeforeExpiry(t *testing.T) {
	e := newEnv(t)
	// Sessions shorter than the expiry window are due for renewal at once.
	e.sts.Lifetime = 30 * time.Second
	p := e.provider(t)
	key := e.newKey(t)
	for range 3 {
		if _, err := p.Describe(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	// Each Describe makes two calls (DescribeKey, GetKeyRotationStatus).
	if n := e.sts.Calls(); n != 6 {
		t.Fatalf("AssumeRole calls = %d, want 6: credentials within the expiry window are renewed before each call", n)
	}
}

func TestWrongExternalIDRefused(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t)
	key := e.newKey(t)
	k, _ := awskms.KeyOf(key, nil)
	k.ExternalID = "orgkms-org-globex-000000"
	_, err := p.Wrap(t.Context(), k.Ref(), dek(), aad)
	fe := fault.As(err)
	if fe == nil || fe.Kind != fault.PermissionDenied || fe.Permission != "sts:AssumeRole" || !strings.Contains(fe.Reason, "sts:ExternalId = orgkms-org-globex-000000") {
		t.Fatalf("Wrap with another org's external ID: %v (%+v)", err, fe)
	}
	if err := p.CheckCredentials(t.Context(), k.Ref()); fault.KindOf(err) != fault.PermissionDenied {
		t.Fatalf("CheckCredentials with a wrong external ID: %v", err)
	}
	if err := p.CheckCredentials(t.Context(), key); err != nil {
		t.Fatalf("CheckCredentials: %v", err)
	}
	e.sts.DenyRole(roleARN)
	if err := p.CheckCredentials(t.Context(), key); fault.KindOf(err) != fault.PermissionDenied {
		t.Fatalf("CheckCredentials after the trust policy dropped orgkms: %v", err)
	}
}

func TestRoleOfAnotherAccountDenied(t *testing.T) {
	e := newEnv(t)
	other := "arn:aws:iam::444455556666:role/orgkms-cmk"
	e.sts.AllowRole(other, "orgkms-org-evil-1")
	p := e.provider(t)
	key := e.newKey(t)
	k, _ := awskms.KeyOf(key, nil)
	k.RoleARN, k.ExternalID = other, "orgkms-org-evil-1"
	_, err := p.Wrap(t.Context(), k.Ref(), dek(), aad)
	if fe := fault.As(err); fe == nil || fe.Kind != fault.PermissionDenied || fe.Permission != "kms:DescribeKey" {
		t.Fatalf("a role of another account on the key: %v", err)
	}
}

func TestPlatformKeyWithoutRole(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t)
	k, _ := awskms.KeyOf(e.newKey(t), nil)
	k.RoleARN, k.ExternalID = "", ""
	w, err := p.Wrap(t.Context(), k.Ref(), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); err != nil {
		t.Fatal(err)
	}
	if n := e.sts.Calls(); n != 0 {
		t.Fatalf("AssumeRole calls = %d for a platform key", n)
	}
}

func TestPendingDeletion(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t)
	key := e.newKey(t)
	arn := arnOf(t, key)
	w, err := p.Wrap(t.Context(), key, dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeletedKey(t.Context(), key); fault.KindOf(err) != fault.KeyNotFound {
		t.Fatalf("DeletedKey of an enabled key: %v", err)
	}
	out, err := e.admin.ScheduleKeyDeletion(t.Context(), &kms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	date := out.DeletionDate.UTC().Format(time.RFC3339)
	for name, err := range map[string]error{
		"unwrap": func() error { _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); return err }(),
		"wrap":   func() error { _, err := p.Wrap(t.Context(), key, dek(), aad); return err }(),
	} {
		fe := fault.As(err)
		if fe == nil || fe.Kind != fault.KeyDisabled || !strings.Contains(fe.Reason, "CancelKeyDeletion") || !strings.Contains(fe.Reason, date) {
			t.Fatalf("%s of a key pending deletion: %v", name, err)
		}
	}
	d, err := p.Describe(t.Context(), key)
	if err != nil || d.Enabled || d.SoftDeleteDays != 7 {
		t.Fatalf("Describe of a key pending deletion: %+v, %v", d, err)
	}
	dk, err := p.DeletedKey(t.Context(), key)
	if err != nil || !dk.ScheduledPurge.Equal(*out.DeletionDate) || dk.DeletedAt.IsZero() {
		t.Fatalf("DeletedKey: %+v, %v", dk, err)
	}
	// Cancelling leaves the key Disabled (as AWS does); enabling restores it.
	if _, err := e.admin.CancelKeyDeletion(t.Context(), &kms.CancelKeyDeletionInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	_, err = p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad)
	if fe := fault.As(err); fe == nil || fe.Kind != fault.KeyDisabled || !strings.Contains(fe.Reason, "is disabled") {
		t.Fatalf("Unwrap after CancelKeyDeletion: %v", err)
	}
	if _, err := e.admin.EnableKey(t.Context(), &kms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); err != nil {
		t.Fatalf("Unwrap after re-enabling: %v", err)
	}
}

func TestThrottlingAndOutagesRetryable(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, func(c *awskms.Config) { c.MaxAttempts = 2 })
	key := e.newKey(t)
	w, err := p.Wrap(t.Context(), key, dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		code   string
		status int
	}{{"ThrottlingException", 400}, {"KMSInternalException", 500}, {"KeyUnavailableException", 500}} {
		e.kms.Fail("Decrypt", f.code, f.status, 2)
		before := e.kms.Calls("Decrypt")
		_, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad)
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable || !fe.Kind.Info().Retryable || fe.RetryAfter == 0 {
			t.Fatalf("%s: %v", f.code, err)
		}
		if n := e.kms.Calls("Decrypt") - before; n != 2 {
			t.Fatalf("%s: %d attempts, want 2 (the SDK retries it)", f.code, n)
		}
	}
	// One throttled attempt, then success: the SDK's retry hides it.
	e.kms.Fail("Decrypt", "ThrottlingException", 400, 1)
	if _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); err != nil {
		t.Fatalf("Unwrap after one throttled attempt: %v", err)
	}
	// Key-state errors are never retried.
	e.admin.DisableKey(t.Context(), &kms.DisableKeyInput{KeyId: aws.String(arnOf(t, key))})
	before := e.kms.Calls("Decrypt")
	if _, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); fault.KindOf(err) != fault.KeyDisabled {
		t.Fatalf("Unwrap of a disabled key: %v", err)
	}
	if n := e.kms.Calls("Decrypt") - before; n != 1 {
		t.Fatalf("a disabled key's Decrypt was tried %d times", n)
	}
}

func TestRotationDetectedByMaterialID(t *testing.T) {
	for _, viaList := range []bool{false, true} {
		name := "CurrentKeyMaterialId"
		if viaList {
			name = "ListKeyRotations"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.kms.NoMaterialIDs = viaList
			p := e.provider(t)
			key := e.newKey(t)
			d0, err := p.Describe(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if viaList && d0.Key.Version != awskms.OriginalMaterial {
				t.Fatalf("version of a never rotated key = %q, want %q", d0.Key.Version, awskms.OriginalMaterial)
			}
			w0, err := p.Wrap(t.Context(), key, dek(), aad)
			if err != nil || w0.Key.Version != d0.Key.Version {
				t.Fatalf("Wrap: %v, version %q, want %q", err, w0.Key.Version, d0.Key.Version)
			}
			if _, err := e.admin.RotateKeyOnDemand(t.Context(), &kms.RotateKeyOnDemandInput{KeyId: aws.String(arnOf(t, key))}); err != nil {
				t.Fatal(err)
			}
			v1, err := p.MaterialID(t.Context(), key)
			if err != nil || v1 == d0.Key.Version {
				t.Fatalf("material ID after a rotation: %q, %v (before: %q)", v1, err, d0.Key.Version)
			}
			ids := e.kms.MaterialIDs(arnOf(t, key))
			if !viaList && v1 != ids[len(ids)-1] {
				t.Fatalf("version %q is not AWS's current material ID %q", v1, ids[len(ids)-1])
			}
			if viaList && v1 != ids[len(ids)-1] {
				t.Fatalf("version %q is not the latest rotation's KeyMaterialId %q", v1, ids[len(ids)-1])
			}
			w1, err := p.Wrap(t.Context(), key, dek(), aad)
			if err != nil || w1.Key.Version != v1 {
				t.Fatalf("Wrap after rotation: %v, version %q, want %q", err, w1.Key.Version, v1)
			}
			for _, w := range []masterkey.Wrapped{w0, w1} {
				if got, err := p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad); err != nil || string(got) != string(dek()) {
					t.Fatalf("Unwrap of material %s: %v", w.Key.Version, err)
				}
			}
			// The listing names the new material as current.
			out, err := e.admin.ListKeyRotations(t.Context(), &kms.ListKeyRotationsInput{KeyId: aws.String(arnOf(t, key))})
			if err != nil || len(out.Rotations) != 1 || aws.ToString(out.Rotations[0].KeyMaterialId) != v1 || out.Rotations[0].KeyMaterialState != types.KeyMaterialStateCurrent {
				t.Fatalf("ListKeyRotations: %+v, %v", out, err)
			}
		})
	}
}

func TestRegionNotAllowed(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, func(c *awskms.Config) { c.AllowedRegions = []string{"us-east-1"} })
	_, err := p.Driver().ParseRef(e.newKey(t).String())
	if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "us-east-1") {
		t.Fatalf("a key outside the allowed Regions: %v", err)
	}
	if _, err := p.Wrap(t.Context(), e.newKey(t), dek(), aad); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Wrap with a key outside the allowed Regions: %v", err)
	}
}

func TestErrorsHoldNoKeyMaterial(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t)
	key := e.newKey(t)
	w, err := p.Wrap(t.Context(), key, dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	e.kms.Deny(arnOf(t, key), "kms:Decrypt")
	_, err = p.Unwrap(t.Context(), w.Key, w.Ciphertext, aad)
	if err == nil || strings.Contains(err.Error(), string(dek())) || strings.Contains(err.Error(), "platform-secret") {
		t.Fatalf("error: %v", err)
	}
}

// TestClientCacheBounded: beyond MaxClients the least recently used
// client (and its assumed-role session) is dropped and built again, with a
// new AssumeRole, only when it is used again.
func TestClientCacheBounded(t *testing.T) {
	e := newEnv(t)
	p := e.provider(t, func(c *awskms.Config) { c.MaxClients = 2 })
	key := e.newKey(t)
	arn := arnOf(t, key)
	refs := map[string]masterkey.Ref{}
	for _, name := range []string{"a", "b", "c"} {
		role, ext := "arn:aws:iam::"+awsemu.Account+":role/orgkms-"+name, "orgkms-org-"+name+"-000000"
		e.sts.AllowRole(role, ext)
		k, err := awskms.ParseKey(arn, role, ext, nil)
		if err != nil {
			t.Fatal(err)
		}
		refs[name] = k.Ref()
	}
	// a, b fill the cache; a is used again, so c evicts b (the least
	// recently used), not a; b comes back with a new session.
	for i, name := range []string{"a", "b", "a", "c", "a", "b"} {
		if _, err := p.Describe(t.Context(), refs[name]); err != nil {
			t.Fatalf("call %d (%s): %v", i, name, err)
		}
	}
	if n := e.sts.Calls(); n != 4 {
		t.Fatalf("AssumeRole calls = %d, want 4 (a, b, c, then b again after its eviction)", n)
	}
}
