package cmk

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// conditionError is the one mapping from a condition of a customer's key to
// the error every CMK action (enable, replace, disable, configure) answers
// with, whether a live call to the vault revealed the condition or the
// probe recorded it before (see [recordedCondition]): the same cause gives
// the same code and status whatever the probe's timing.
//
//   - transient (throttled, 5xx, timeout, outage): Unavailable, 503 with
//     Retry-After; nothing was changed and the caller may retry
//   - disabled, expired or not yet valid: CMKDisabled (424)
//   - a permission missing: CMKPermissionMissing (424); consent withdrawn:
//     CMKConsentRevoked (424)
//   - not found or deleted: CMKDeleted (424)
//   - purged: CMKDestroyed (424)
//
// Any other kind (a fault of orgkms) is kept. reason, when not empty,
// replaces the cause's message.
func conditionError(op string, cause error, reason string) error {
	kind := fault.KindOf(cause)
	out := &fault.Error{Kind: kind, Op: op, Reason: reason, Err: cause}
	if fe := fault.As(cause); fe != nil {
		out.Permission, out.RetryAfter, out.Provider = fe.Permission, fe.RetryAfter, fe.Provider
	}
	if out.Reason == "" {
		out.Reason = fault.Message(cause)
	}
	switch {
	case kind == fault.Unavailable || kind == fault.RateLimited:
		out.Kind = fault.Unavailable
		out.Reason = fault.Message(cause) + "; nothing was changed: retry in a moment"
		if out.RetryAfter <= 0 {
			out.RetryAfter = time.Second
		}
	case customerSide(kind):
		out.Kind = revocationKind(kind)
	}
	return out
}

// recordedCondition is the error of an action refused because the probe
// found the org's key unusable (state revoked or lost): the same kind as
// [conditionError] gives for a live call, and the data plane's.
func recordedCondition(op string, rec Record, reason string) error {
	be := blockError(rec).(*fault.Error)
	return &fault.Error{Kind: be.Kind, Op: op, Resource: be.Resource, Reason: reason}
}

// keyCause finds, by a live wrap and unwrap through the key, the typed
// cause of a failed Test Managed Key: nil when the key works (the failure
// is then one of its properties: type, operations, ownership tag).
func (s *Service) keyCause(ctx context.Context, ref masterkey.Ref) error {
	k, err := s.cfg.Keepers.Keeper(ref)
	if err != nil {
		return err
	}
	if rep := k.Probe(ctx, ref); !rep.OK() {
		return rep.Err
	}
	return nil
}

// testWait reports how long the org must wait before Test Managed Key may
// run again; 0 when it may run now. It takes no token.
func (s *Service) testWait(orgID string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.testLimits[orgID]
	if l == nil {
		return 0
	}
	tokens := l.TokensAt(s.now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(testEvery))
}

// testFailed is Enable's error for a failed Test Managed Key: a missing
// step is a Conflict; otherwise the cause, found by a live call, decides
// ([conditionError]); a key that works but is unfit (type, operations,
// ownership tag) is a Conflict naming the check.
func (s *Service) testFailed(ctx context.Context, rep Report, ref masterkey.Ref) error {
	reason := "Test Managed Key failed: " + rep.FirstFailure() + "; fix it and test again"
	first := ""
	for _, c := range rep.Checks {
		if c.Status == Fail {
			first = c.ID
			break
		}
	}
	switch first {
	case "consent", "configured":
		return &fault.Error{Kind: fault.Conflict, Op: "enable", Reason: reason}
	}
	if cause := s.keyCause(ctx, ref); cause != nil {
		return conditionError("enable", cause, reason)
	}
	switch first {
	case "token", "vault", "key", "version", "roundtrip", "":
		// A remote check failed, and the same calls now pass: the vault
		// answers inconsistently (a transient fault).
		return &fault.Error{Kind: fault.Unavailable, Op: "enable", RetryAfter: time.Second,
			Reason: "the key vault answered inconsistently (" + rep.FirstFailure() + "); nothing was changed: retry in a moment"}
	}
	return &fault.Error{Kind: fault.Conflict, Op: "enable", Reason: reason}
}

// lostReason is the answer to an action on a lost org: its way out.
func lostReason(rec Record) string {
	return orElse(rec.Reason, "the customer managed key was purged: the org's data is unrecoverable") +
		"; to use the org again, fall back to a new platform root key (orgkms cmk fallback --confirm-data-loss, or POST /v1/orgs/" + rec.OrgID + "/cmk/fallback): data encrypted before is lost for good"
}
