package awskms

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/orgkms/orgkms/internal/masterkey"
)

// Cloud is the cloud of this driver's vaults in a [masterkey.Vault].
const Cloud = "aws"

// VaultOf is the vault of key k for its request budget: its account and
// Region ("111122223333/eu-west-2"), the unit of AWS KMS's request quotas.
func VaultOf(k Key) masterkey.Vault {
	return masterkey.Vault{Cloud: Cloud, Name: k.ARN.Account + "/" + k.ARN.Region}
}

// Vault names the vault of ref for its request budget (see [VaultOf]);
// false when ref is not a key of this driver.
func (p *Provider) Vault(ref masterkey.Ref) (masterkey.Vault, bool) {
	k, err := p.key(ref)
	if err != nil {
		return masterkey.Vault{}, false
	}
	return VaultOf(k), true
}

var _ masterkey.VaultNamer = (*Provider)(nil)

// gateMiddlewareID names the gate's middleware in the SDK's stack.
const gateMiddlewareID = "OrgkmsVaultBudget"

// gated returns the per-call option that puts every HTTP attempt of one
// KMS call on key k through Config.Gate; a no-op without a gate. The
// middleware sits in the Finalize step right after the SDK's retry
// middleware, so each attempt (the first and every retry) is admitted
// once, and its answer reported once.
func (r *remote) gated(k Key) func(*kms.Options) {
	g := r.gate
	if g == nil {
		return func(*kms.Options) {}
	}
	m := &gateMiddleware{gate: g, vault: VaultOf(k)}
	return func(o *kms.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Finalize.Insert(m, "Retry", middleware.After)
		})
	}
}

// gateMiddleware admits one attempt through the gate and reports the
// answer: throttled for AWS's throttling codes and an HTTP 429.
type gateMiddleware struct {
	gate  masterkey.Gate
	vault masterkey.Vault
}

func (*gateMiddleware) ID() string { return gateMiddlewareID }

func (m *gateMiddleware) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	out middleware.FinalizeOutput, md middleware.Metadata, err error,
) {
	done, err := m.gate.Admit(ctx, m.vault)
	if err != nil {
		return out, md, &notAdmitted{err}
	}
	out, md, err = next.HandleFinalize(ctx, in)
	throttled, after := throttledAnswer(err)
	done(throttled, after)
	return out, md, err
}

// notAdmitted is the gate's refusal of an attempt (a *fault.Error
// Unavailable with the vault's Retry-After): the SDK must not retry it,
// the budget already waited as long as the call's deadline allows.
type notAdmitted struct{ err error }

func (e *notAdmitted) Error() string        { return e.err.Error() }
func (e *notAdmitted) Unwrap() error        { return e.err }
func (e *notAdmitted) RetryableError() bool { return false }

// throttlingCodes are the error codes of AWS's request-rate throttling
// (the SDK's throttle list as it applies to KMS and STS).
var throttlingCodes = map[string]bool{
	"ThrottlingException": true, "Throttling": true, "LimitExceededException": true,
	"RequestLimitExceeded": true, "TooManyRequestsException": true,
}

// throttledAnswer reports whether err is a throttled answer of AWS KMS
// (HTTP 400 with a throttling code, or any 429), with the Retry-After it
// named: AWS KMS sends none, so it is 0 (the budget's default pause)
// unless the answer has an x-amz-retry-after (milliseconds) or
// Retry-After (seconds) header.
func throttledAnswer(err error) (bool, time.Duration) {
	if err == nil {
		return false, 0
	}
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	hasResp := errors.As(err, &re) && re.Response != nil
	throttled := errors.As(err, &ae) && throttlingCodes[ae.ErrorCode()]
	if hasResp && re.HTTPStatusCode() == http.StatusTooManyRequests {
		throttled = true
	}
	if !throttled || !hasResp {
		return throttled, 0
	}
	h := re.Response.Header
	if ms, err := strconv.ParseInt(strings.TrimSpace(h.Get("x-amz-retry-after")), 10, 64); err == nil && ms > 0 {
		return true, min(time.Duration(ms)*time.Millisecond, maxRetryAfter)
	}
	if s, err := strconv.ParseInt(strings.TrimSpace(h.Get("Retry-After")), 10, 64); err == nil && s > 0 {
		return true, min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return true, 0
}

// maxRetryAfter bounds a Retry-After the vault names.
const maxRetryAfter = 5 * time.Minute
