package awskms_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
)

// harness gives the conformance suite the customer's console actions,
// through the official SDK against the proxy.
type harness struct {
	e    *env
	keys [2]masterkey.Ref
}

func (h *harness) SetEnabled(t *testing.T, key masterkey.Ref, enabled bool) {
	id := aws.String(arnOf(t, key))
	// Not t.Context(): the suite also calls this from t.Cleanup, when it is
	// done.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	if enabled {
		_, err = h.e.admin.EnableKey(ctx, &kms.EnableKeyInput{KeyId: id})
	} else {
		_, err = h.e.admin.DisableKey(ctx, &kms.DisableKeyInput{KeyId: id})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func (h *harness) Rotate(t *testing.T, key masterkey.Ref) {
	if _, err := h.e.admin.RotateKeyOnDemand(t.Context(), &kms.RotateKeyOnDemandInput{KeyId: aws.String(arnOf(t, key))}); err != nil {
		t.Fatal(err)
	}
}

// Revoke removes the IAM action of the suite's permission (Key Vault's
// names) from the key policy.
func (h *harness) Revoke(t *testing.T, key masterkey.Ref, perm string) {
	action := map[string]string{"unwrapKey": "kms:Decrypt", "wrapKey": "kms:Encrypt", "get": "kms:DescribeKey"}[perm]
	if action == "" {
		t.Fatalf("no KMS action for permission %q", perm)
	}
	h.e.kms.Deny(arnOf(t, key), action)
}

func (h *harness) Restore(t *testing.T, key masterkey.Ref) { h.e.kms.Allow(arnOf(t, key)) }

func (h *harness) DeletableKey(t *testing.T) masterkey.Ref { return h.e.newKey(t) }

// Delete schedules the key's deletion and ends its waiting period.
func (h *harness) Delete(t *testing.T, key masterkey.Ref) {
	arn := arnOf(t, key)
	if _, err := h.e.admin.ScheduleKeyDeletion(t.Context(), &kms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	h.e.kms.Delete(arn)
}

func (h *harness) Stall(t *testing.T) func() { return h.e.kms.Stall() }

func TestConformance(t *testing.T) {
	e := newEnv(t)
	h := &harness{e: e, keys: [2]masterkey.Ref{e.newKey(t), e.newKey(t)}}
	masterkeytest.Run(t, masterkeytest.Harness{
		Open:              func(t *testing.T) masterkey.Provider { return e.provider(t) },
		Keys:              func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return h.keys[0], h.keys[1] },
		Disabler:          h,
		Rotator:           h,
		PermissionRevoker: h,
		Deleter:           h,
		Staller:           h,
	})
}
