package awskms_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

// sdkError builds an error as the SDK returns it: the operation error
// around the HTTP response error around the API error.
func sdkError(service, op string, status int, api error) error {
	return &smithy.OperationError{ServiceID: service, OperationName: op, Err: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: api}}
}

// stsUnder wraps an STS error as the SDK does when the credential provider
// fails under a KMS call.
func stsUnder(op string, stsErr error) error {
	return &smithy.OperationError{ServiceID: "KMS", OperationName: op,
		Err: fmt.Errorf("failed to refresh cached credentials, %w", fmt.Errorf("get identity: get credentials: %w", stsErr))}
}

func generic(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: "documented message", Fault: smithy.FaultUnknown}
}

// TestClassify maps each documented error shape of AWS KMS and STS
// (service/kms/types/errors.go, the unmodelled AccessDeniedException and
// ThrottlingException, the STS Query API's codes) to its kind.
func TestClassify(t *testing.T) {
	k, err := awskms.ParseKey(testKeyARN, "arn:aws:iam::111122223333:role/orgkms-cmk", "org-acme-ext", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg := "m"
	cases := []struct {
		name  string
		op    string
		err   error
		kind  fault.Kind
		perm  string
		words string // the reason must say this
	}{
		{"disabled", "decrypt", sdkError("KMS", "Decrypt", 400, &types.DisabledException{Message: &msg}), fault.KeyDisabled, "", "not enabled"},
		{"invalid state", "encrypt", sdkError("KMS", "Encrypt", 400, &types.KMSInvalidStateException{Message: &msg}), fault.KeyDisabled, "", "scheduled for deletion"},
		{"not found", "decrypt", sdkError("KMS", "Decrypt", 400, &types.NotFoundException{Message: &msg}), fault.KeyNotFound, "", "does not exist in Region eu-west-2"},
		{"invalid ciphertext", "decrypt", sdkError("KMS", "Decrypt", 400, &types.InvalidCiphertextException{Message: &msg}), fault.Integrity, "", "not produced by this key"},
		{"incorrect key", "decrypt", sdkError("KMS", "Decrypt", 400, &types.IncorrectKeyException{Message: &msg}), fault.Integrity, "", "not produced by this key"},
		{"access denied decrypt", "decrypt", sdkError("KMS", "Decrypt", 400, generic("AccessDeniedException")), fault.PermissionDenied, "kms:Decrypt", "key policy"},
		{"access denied encrypt", "encrypt", sdkError("KMS", "Encrypt", 400, generic("AccessDeniedException")), fault.PermissionDenied, "kms:Encrypt", "role arn:aws:iam::111122223333:role/orgkms-cmk"},
		{"access denied describe", "describe", sdkError("KMS", "DescribeKey", 400, generic("AccessDeniedException")), fault.PermissionDenied, "kms:DescribeKey", ""},
		{"throttling", "decrypt", sdkError("KMS", "Decrypt", 400, generic("ThrottlingException")), fault.Unavailable, "", "throttling"},
		{"limit exceeded", "encrypt", sdkError("KMS", "Encrypt", 400, &types.LimitExceededException{Message: &msg}), fault.Unavailable, "", "throttling"},
		{"internal", "decrypt", sdkError("KMS", "Decrypt", 500, &types.KMSInternalException{Message: &msg}), fault.Unavailable, "", "unavailable"},
		{"dependency timeout", "decrypt", sdkError("KMS", "Decrypt", 503, &types.DependencyTimeoutException{Message: &msg}), fault.Unavailable, "", "unavailable"},
		{"key unavailable", "decrypt", sdkError("KMS", "Decrypt", 500, &types.KeyUnavailableException{Message: &msg}), fault.Unavailable, "", "unavailable"},
		{"unknown 5xx", "decrypt", sdkError("KMS", "Decrypt", 502, generic("BadGateway")), fault.Unavailable, "", ""},
		{"key usage", "encrypt", sdkError("KMS", "Encrypt", 400, &types.InvalidKeyUsageException{Message: &msg}), fault.Invalid, "", "symmetric encryption key"},
		{"validation", "encrypt", sdkError("KMS", "Encrypt", 400, generic("ValidationException")), fault.Invalid, "", ""},
		{"unrecognized client", "decrypt", sdkError("KMS", "Decrypt", 400, generic("UnrecognizedClientException")), fault.CredentialsInvalid, "", ""},
		{"expired token", "decrypt", sdkError("KMS", "Decrypt", 400, generic("ExpiredTokenException")), fault.CredentialsInvalid, "", ""},
		{"sts access denied", "decrypt", stsUnder("Decrypt", sdkError("STS", "AssumeRole", 403, generic("AccessDenied"))), fault.PermissionDenied, "sts:AssumeRole", "sts:ExternalId = org-acme-ext"},
		{"sts platform credentials", "encrypt", stsUnder("Encrypt", sdkError("STS", "AssumeRole", 403, generic("InvalidClientTokenId"))), fault.CredentialsInvalid, "", "platform operator"},
		{"sts expired", "encrypt", stsUnder("Encrypt", sdkError("STS", "AssumeRole", 400, generic("ExpiredTokenException"))), fault.CredentialsInvalid, "", ""},
		{"sts region disabled", "encrypt", stsUnder("Encrypt", sdkError("STS", "AssumeRole", 403, generic("RegionDisabledException"))), fault.CredentialsInvalid, "", "not activated"},
		{"sts throttled", "encrypt", stsUnder("Encrypt", sdkError("STS", "AssumeRole", 400, generic("Throttling"))), fault.Unavailable, "", ""},
		{"sts 5xx", "encrypt", stsUnder("Encrypt", sdkError("STS", "AssumeRole", 500, generic("InternalFailure"))), fault.Unavailable, "", "STS"},
		{"cancelled", "decrypt", &smithy.OperationError{ServiceID: "KMS", OperationName: "Decrypt", Err: context.Canceled}, fault.Unavailable, "", "in time"},
		{"deadline", "decrypt", &smithy.OperationError{ServiceID: "KMS", OperationName: "Decrypt", Err: context.DeadlineExceeded}, fault.Unavailable, "", "in time"},
		{"unreadable answer", "decrypt", &smithy.OperationError{ServiceID: "KMS", OperationName: "Decrypt", Err: &smithy.DeserializationError{Err: errors.New("501 not implemented")}}, fault.Unavailable, "", "cannot read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := awskms.Classify(c.op, k, c.err)
			fe := fault.As(got)
			if fe == nil || fe.Kind != c.kind {
				t.Fatalf("kind of %v = %v, want %v", got, fault.KindOf(got), c.kind)
			}
			if fe.Permission != c.perm {
				t.Errorf("permission = %q, want %q", fe.Permission, c.perm)
			}
			if !strings.Contains(fe.Reason, c.words) {
				t.Errorf("reason %q does not say %q", fe.Reason, c.words)
			}
			if fe.Provider != awskms.Scheme || !errors.Is(got, c.err) {
				t.Errorf("provider %q, or the SDK error is not kept for logs", fe.Provider)
			}
			if fe.Kind.Info().Retryable != (c.kind == fault.Unavailable) {
				t.Errorf("retryable = %v for kind %v", fe.Kind.Info().Retryable, c.kind)
			}
		})
	}
}
