package awskms

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/orgkms/orgkms/internal/fault"
)

// Operations, as errors name them.
const (
	opDescribe      = "describe"
	opEncrypt       = "encrypt"
	opDecrypt       = "decrypt"
	opListRotations = "list key rotations"
	opAssumeRole    = "assume role"
)

// permissionOf is the IAM action each operation needs.
var permissionOf = map[string]string{
	opDescribe:      "kms:DescribeKey",
	opEncrypt:       "kms:Encrypt",
	opDecrypt:       "kms:Decrypt",
	opListRotations: "kms:ListKeyRotations",
	opAssumeRole:    "sts:AssumeRole",
}

// retryAfterThrottled is the Retry-After of throttling and outages: the
// SDK's own throttling backoff base.
const retryAfterThrottled = time.Second

// Classify maps an error of the AWS SDK from operation op on key k to a
// *fault.Error. It decides by the API error code (smithy.APIError) and the
// service that answered, never by message text:
//
//   - STS (the AssumeRole under every call with a role): AccessDenied →
//     PermissionDenied sts:AssumeRole, with the trust-policy remedy;
//     ExpiredToken, InvalidClientTokenId, SignatureDoesNotMatch →
//     CredentialsInvalid (the platform's own credentials);
//     RegionDisabledException → CredentialsInvalid (STS off in the Region).
//   - KMS: DisabledException, KMSInvalidStateException → KeyDisabled;
//     AccessDeniedException → PermissionDenied with the IAM action;
//     NotFoundException → KeyNotFound; InvalidCiphertextException,
//     IncorrectKeyException → Integrity; ThrottlingException,
//     LimitExceededException, KMSInternalException,
//     DependencyTimeoutException, KeyUnavailableException, any 5xx →
//     Unavailable (retryable); UnrecognizedClientException and the token
//     errors → CredentialsInvalid; InvalidKeyUsageException,
//     ValidationException → Invalid.
//   - No answer (a cancelled or expired context, a network error, an
//     answer the SDK cannot read) → Unavailable.
func Classify(op string, k Key, err error) error { return classify(op, k, err) }

func classify(op string, k Key, err error) error {
	if err == nil {
		return nil
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Attributed(op, Scheme, resource(k))
	}
	base := fault.Error{Op: op, Provider: Scheme, Resource: resource(k), Err: err}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if fromSTS(err) {
			return classifySTS(base, k, ae)
		}
		return classifyKMS(base, op, k, ae, status(err))
	}
	base.Kind, base.RetryAfter = fault.Unavailable, retryAfterThrottled
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		base.Reason = "AWS KMS did not answer in time"
	case errors.As(err, &netErr):
		base.Reason = "AWS KMS in " + k.ARN.Region + " is unreachable"
	case status(err) >= 500:
		base.Reason = "AWS KMS in " + k.ARN.Region + " is unavailable"
	default:
		base.Reason = "AWS KMS in " + k.ARN.Region + " gave an answer orgkms cannot read"
	}
	if fromSTS(err) {
		base.Reason = strings.Replace(base.Reason, "AWS KMS", "AWS STS", 1)
	}
	return &base
}

// fromSTS reports whether err comes from an STS call (the AssumeRole the
// credential provider makes under a KMS call).
func fromSTS(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if oe, ok := e.(*smithy.OperationError); ok && oe.ServiceID == "STS" {
			return true
		}
	}
	return false
}

func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func classifySTS(base fault.Error, k Key, ae smithy.APIError) error {
	role := k.RoleARN
	switch ae.ErrorCode() {
	case "AccessDenied":
		base.Kind, base.Permission = fault.PermissionDenied, "sts:AssumeRole"
		base.Reason = fmt.Sprintf("orgkms may not assume role %s: in the IAM console (Roles → the role → Trust relationships) let orgkms' AWS principal call sts:AssumeRole with the condition sts:ExternalId = %s", role, k.ExternalID)
	case "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException", "IncompleteSignature":
		base.Kind = fault.CredentialsInvalid
		base.Reason = "AWS STS refused the platform's own AWS credentials: the platform operator must renew them"
	case "RegionDisabledException":
		base.Kind = fault.CredentialsInvalid
		base.Reason = "AWS STS is not activated in Region " + k.ARN.Region + " of orgkms' account: the platform operator must activate it (IAM → Account settings)"
	case "Throttling", "ThrottlingException", "RequestLimitExceeded":
		base.Kind, base.RetryAfter = fault.Unavailable, retryAfterThrottled
		base.Reason = "AWS STS is throttling orgkms"
	case "MalformedPolicyDocument", "MalformedPolicyDocumentException", "PackedPolicyTooLarge", "PackedPolicyTooLargeException", "ValidationError":
		base.Kind, base.Field = fault.Invalid, "role_arn"
		base.Reason = "AWS STS refused the AssumeRole request for role " + role + " (" + ae.ErrorCode() + ")"
	default:
		base.Kind, base.RetryAfter = fault.Unavailable, retryAfterThrottled
		base.Reason = "AWS STS could not issue credentials for role " + role + " (" + safeCode(ae.ErrorCode()) + ")"
	}
	return &base
}

func classifyKMS(base fault.Error, op string, k Key, ae smithy.APIError, httpStatus int) error {
	arn := k.ARN.String()
	who := "orgkms"
	if k.RoleARN != "" {
		who = "role " + k.RoleARN
	}
	switch ae.ErrorCode() {
	case "DisabledException", "KMSInvalidStateException":
		// A Disabled key, or one pending deletion (AWS answers either
		// code for it), or pending import; Provider.explain asks
		// DescribeKey which.
		base.Kind = fault.KeyDisabled
		base.Reason = fmt.Sprintf("key %s is not enabled (disabled, or scheduled for deletion): check it in the AWS KMS console", arn)
	case "AccessDeniedException":
		perm := permissionOf[op]
		base.Kind, base.Permission = fault.PermissionDenied, perm
		base.Reason = fmt.Sprintf("%s may not call %s on key %s: allow it in the key policy (AWS KMS console → the key → Key policy) and in the role's permissions policy", who, perm, arn)
	case "NotFoundException":
		base.Kind = fault.KeyNotFound
		base.Reason = fmt.Sprintf("key %s does not exist in Region %s of account %s: check the key ARN; a deleted key cannot be recovered", arn, k.ARN.Region, k.ARN.Account)
	case "InvalidCiphertextException", "IncorrectKeyException":
		base.Kind = fault.Integrity
		base.Reason = "AWS KMS could not decrypt the org root key with key " + arn + ": it was not produced by this key and context, or was modified"
	case "ThrottlingException", "Throttling", "LimitExceededException", "RequestLimitExceeded", "TooManyRequestsException":
		base.Kind, base.RetryAfter = fault.Unavailable, retryAfterThrottled
		base.Reason = "AWS KMS is throttling requests to key " + arn + " (the key account's request quota)"
	case "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException", "InternalFailure", "ServiceUnavailable":
		base.Kind, base.RetryAfter = fault.Unavailable, retryAfterThrottled
		base.Reason = "AWS KMS in " + k.ARN.Region + " is unavailable"
	case "UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException", "IncompleteSignature", "MissingAuthenticationToken":
		base.Kind = fault.CredentialsInvalid
		base.Reason = "AWS KMS refused orgkms' credentials for key " + arn + " (" + ae.ErrorCode() + ")"
	case "InvalidKeyUsageException":
		base.Kind, base.Field = fault.Invalid, "key_arn"
		base.Reason = "key " + arn + " cannot encrypt and decrypt: orgkms needs a symmetric encryption key"
	case "ValidationException", "InvalidGrantTokenException":
		base.Kind, base.Field = fault.Invalid, "master_key"
		base.Reason = "AWS KMS refused the request to key " + arn + " as invalid"
	default:
		base.Kind, base.RetryAfter = fault.Unavailable, retryAfterThrottled
		base.Reason = "AWS KMS in " + k.ARN.Region + " failed (" + safeCode(ae.ErrorCode()) + ")"
		if httpStatus >= 400 && httpStatus < 500 && ae.ErrorFault() == smithy.FaultClient {
			// A modelled client error orgkms does not expect: not
			// transient, and not the customer's doing.
			base.Kind, base.RetryAfter = fault.Internal, 0
		}
	}
	return &base
}

// safeCode keeps only an identifier-like error code for messages.
func safeCode(code string) string {
	if len(code) > 64 {
		return "unknown"
	}
	for _, c := range code {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_') {
			return "unknown"
		}
	}
	return code
}
