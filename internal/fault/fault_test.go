package fault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"fault", &Error{Kind: KeyDisabled}, KeyDisabled},
		{"wrapped fault", fmt.Errorf("x: %w", &Error{Kind: Integrity}), Integrity},
		{"deadline", context.DeadlineExceeded, Unavailable},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), Unavailable},
		{"plain", errors.New("boom"), Internal},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("KindOf(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestMessagesNeverLeakUnderlyingErrors: the customer message is built from
// fields, never from Err.
func TestMessagesNeverLeakUnderlyingErrors(t *testing.T) {
	secret := errors.New("SECRET-DETAIL-123")
	for k := Kind(0); int(k) < len(kindNames); k++ {
		e := &Error{Kind: k, Op: "op", Resource: "key k", Err: secret}
		msg := Message(e)
		if msg == "" || strings.Contains(msg, "SECRET") {
			t.Errorf("Message(kind %v) = %q", k, msg)
		}
		if strings.HasSuffix(msg, ".") {
			t.Errorf("Message(kind %v) ends with a period: %q", k, msg)
		}
		if KindFromCode(k.Code()) != k {
			t.Errorf("KindFromCode(%q) != %v", k.Code(), k)
		}
	}
	if !strings.Contains((&Error{Kind: Internal, Err: secret}).Error(), "SECRET") {
		t.Error("Error() must keep the underlying error for logs")
	}
}

func TestCodesAreStable(t *testing.T) {
	// These codes are API: changing one breaks clients.
	want := map[Kind]string{Invalid: "invalid_argument", Integrity: "ciphertext_invalid", NotFound: "not_found",
		KeyDisabled: "master_key_disabled", PermissionDenied: "master_key_permission_missing", Unavailable: "unavailable",
		CMKDisabled: "cmk_key_disabled", CMKPermissionMissing: "cmk_permission_missing", CMKDeleted: "cmk_key_deleted", CMKDestroyed: "cmk_key_destroyed"}
	for k, code := range want {
		if k.Code() != code {
			t.Errorf("%v.Code() = %q, want %q", k, k.Code(), code)
		}
	}
}
