package cmk

import (
	"context"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// TestConditionError: the one mapping from a key condition to the answer,
// for live causes and for the probe's recorded verdicts alike.
func TestConditionError(t *testing.T) {
	live := []struct {
		name      string
		cause     error
		wantKind  fault.Kind
		wantRetry bool
	}{
		{"disabled", &fault.Error{Kind: fault.KeyDisabled}, fault.CMKDisabled, false},
		{"permission", &fault.Error{Kind: fault.PermissionDenied, Permission: "unwrapKey"}, fault.CMKPermissionMissing, false},
		{"credentials", &fault.Error{Kind: fault.CredentialsInvalid}, fault.CMKPermissionMissing, false},
		{"consent revoked", &fault.Error{Kind: fault.CMKConsentRevoked}, fault.CMKConsentRevoked, false},
		{"not found", &fault.Error{Kind: fault.KeyNotFound}, fault.CMKDeleted, false},
		{"destroyed", &fault.Error{Kind: fault.KeyDestroyed}, fault.CMKDestroyed, false},
		{"throttled", &fault.Error{Kind: fault.Unavailable, RetryAfter: 3 * time.Second}, fault.Unavailable, true},
		{"rate limited", &fault.Error{Kind: fault.RateLimited}, fault.Unavailable, true},
		{"timeout", errTimeout{}, fault.Unavailable, true},
		{"orgkms fault", &fault.Error{Kind: fault.Internal}, fault.Internal, false},
	}
	for _, tt := range live {
		t.Run(tt.name, func(t *testing.T) {
			err := conditionError("enable", tt.cause, "")
			fe := fault.As(err)
			if got := fault.KindOf(err); got != tt.wantKind {
				t.Fatalf("conditionError(%v) kind = %v, want %v", tt.cause, got, tt.wantKind)
			}
			if tt.wantRetry != fe.Kind.Retryable() || tt.wantRetry && fe.RetryAfter <= 0 {
				t.Fatalf("conditionError(%v) = %+v: retryable %v with Retry-After, want %v", tt.cause, fe, fe.Kind.Retryable(), tt.wantRetry)
			}
			if src := fault.As(tt.cause); src != nil && src.RetryAfter > 0 && fe.RetryAfter != src.RetryAfter {
				t.Fatalf("Retry-After %v, want the vault's %v", fe.RetryAfter, src.RetryAfter)
			}
		})
	}
	// The probe's verdict gives the kind the live cause gives.
	for _, code := range []fault.Kind{fault.CMKDisabled, fault.CMKPermissionMissing, fault.CMKConsentRevoked, fault.CMKDeleted, fault.CMKDestroyed} {
		rec := Record{OrgID: "acme", State: StateRevoked, ReasonCode: code.Code()}
		if code == fault.CMKDestroyed {
			rec.State = StateLost
		}
		if got := fault.KindOf(recordedCondition("disable", rec, "x")); got != code {
			t.Errorf("recordedCondition(%s) kind = %v, want %v", code.Code(), got, code)
		}
	}
}

type errTimeout struct{}

func (errTimeout) Error() string   { return "timeout" }
func (errTimeout) Unwrap() error   { return context.DeadlineExceeded }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }
