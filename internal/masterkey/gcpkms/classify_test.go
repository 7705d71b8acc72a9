package gcpkms

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/orgkms/orgkms/internal/fault"
)

var testKey = KeyName{Project: "acme-prod", Location: "europe-west4", KeyRing: "orgkms", CryptoKey: "cmk-1"}

// apiError is what the Go client returns for a server status with details:
// an *apierror.APIError wrapping the gRPC status.
func apiError(t *testing.T, c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	t.Helper()
	st := status.New(c, msg)
	if len(details) > 0 {
		var err error
		if st, err = st.WithDetails(details...); err != nil {
			t.Fatal(err)
		}
	}
	ae, ok := apierror.FromError(st.Err())
	if !ok {
		t.Fatalf("apierror.FromError(%v) failed", st.Err())
	}
	return ae
}

func violation(typ string) *errdetails.PreconditionFailure {
	return &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: typ, Subject: testKey.Name() + "/cryptoKeyVersions/2"}}}
}

// TestClassify: every gRPC code Cloud KMS documents (and the client's bare
// context errors) maps to one fault kind; FAILED_PRECONDITION by its
// PreconditionFailure violation, PERMISSION_DENIED naming the permission
// from ErrorInfo when sent, else from the operation.
func TestClassify(t *testing.T) {
	v := testKey.Name() + "/cryptoKeyVersions/2"
	tests := []struct {
		name       string
		op         string
		err        error
		wantKind   fault.Kind
		wantPerm   string
		wantReason string // a substring of the reason
	}{
		{"disabled", opDecrypt, apiError(t, codes.FailedPrecondition, v+" is not enabled, current state is: DISABLED.", violation(violationDisabled)), fault.KeyDisabled, "", "enable version 2"},
		{"destroy scheduled", opDecrypt, apiError(t, codes.FailedPrecondition, v+" is not enabled, current state is: DESTROY_SCHEDULED.", violation(violationDestroyScheduled)), fault.KeyDisabled, "", "restore it"},
		{"destroyed", opEncrypt, apiError(t, codes.FailedPrecondition, v+" is not enabled, current state is: DESTROYED.", violation(violationDestroyed)), fault.KeyDestroyed, "", "unrecoverable"},
		{"precondition without details", opEncrypt, apiError(t, codes.FailedPrecondition, "not enabled"), fault.KeyDisabled, "", "disabled"},
		{"permission with ErrorInfo", opEncrypt, apiError(t, codes.PermissionDenied, "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '"+testKey.Name()+"' (or it may not exist).",
			&errdetails.ErrorInfo{Reason: "IAM_PERMISSION_DENIED", Domain: "cloudkms.googleapis.com", Metadata: map[string]string{"permission": "cloudkms.cryptoKeyVersions.useToEncrypt"}}),
			fault.PermissionDenied, "cloudkms.cryptoKeyVersions.useToEncrypt", "roles/cloudkms.cryptoKeyEncrypterDecrypter"},
		{"permission without details", opDecrypt, apiError(t, codes.PermissionDenied, "Permission denied"), fault.PermissionDenied, "cloudkms.cryptoKeyVersions.useToDecrypt", "roles/cloudkms.cryptoKeyEncrypterDecrypter"},
		{"permission on get", opGet, apiError(t, codes.PermissionDenied, "Permission denied"), fault.PermissionDenied, "cloudkms.cryptoKeys.get", "roles/cloudkms.viewer"},
		{"permission junk metadata", opGet, apiError(t, codes.PermissionDenied, "x", &errdetails.ErrorInfo{Metadata: map[string]string{"permission": "<script>"}}), fault.PermissionDenied, "cloudkms.cryptoKeys.get", ""},
		{"not found", opGet, apiError(t, codes.NotFound, "CryptoKey not found."), fault.KeyNotFound, "", "was not found"},
		{"unauthenticated", opGet, apiError(t, codes.Unauthenticated, "Request had invalid authentication credentials."), fault.CredentialsInvalid, "", "credentials"},
		{"wrong key or aad", opDecrypt, apiError(t, codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey."), fault.Integrity, "", ""},
		{"invalid encrypt", opEncrypt, apiError(t, codes.InvalidArgument, "bad"), fault.Invalid, "", ""},
		{"quota", opEncrypt, apiError(t, codes.ResourceExhausted, "Quota exceeded"), fault.Unavailable, "", "quota"},
		{"unavailable", opEncrypt, apiError(t, codes.Unavailable, "The service is currently unavailable."), fault.Unavailable, "", ""},
		{"deadline status", opDecrypt, apiError(t, codes.DeadlineExceeded, "Deadline exceeded"), fault.Unavailable, "", ""},
		{"internal", opDecrypt, apiError(t, codes.Internal, "internal"), fault.Unavailable, "", ""},
		{"bare status", opGet, status.Error(codes.NotFound, "x"), fault.KeyNotFound, "", ""},
		{"client deadline", opDecrypt, context.DeadlineExceeded, fault.Unavailable, "", ""},
		{"cancelled", opDecrypt, context.Canceled, fault.Unavailable, "", ""},
		{"unknown error", opDecrypt, errors.New("boom"), fault.Unavailable, "", ""},
		{"unimplemented", opGet, apiError(t, codes.Unimplemented, "x"), fault.Invalid, "", "UNIMPLEMENTED"},
		{"typed passthrough", opGet, &fault.Error{Kind: fault.CredentialsInvalid, Reason: "x"}, fault.CredentialsInvalid, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.op, testKey, tt.err)
			fe := fault.As(err)
			if fe == nil || fe.Kind != tt.wantKind {
				t.Fatalf("classify(%s) kind = %v, want %v (%v)", tt.name, fault.KindOf(err), tt.wantKind, err)
			}
			if fe.Permission != tt.wantPerm {
				t.Errorf("classify(%s) permission = %q, want %q", tt.name, fe.Permission, tt.wantPerm)
			}
			if fe.Provider != Scheme || fe.Op != tt.op || fe.Resource == "" {
				t.Errorf("classify(%s) = %+v: want provider, op and resource set", tt.name, fe)
			}
			if !strings.Contains(fe.Reason, tt.wantReason) {
				t.Errorf("classify(%s) reason = %q, want it to contain %q", tt.name, fe.Reason, tt.wantReason)
			}
			if fe.Kind == fault.Unavailable && !fe.Kind.Retryable() {
				t.Errorf("classify(%s): Unavailable must be retryable", tt.name)
			}
			// The customer message never quotes the server's text.
			if msg := fault.Message(err); strings.Contains(msg, "<script>") || strings.Contains(msg, "rpc error") {
				t.Errorf("classify(%s) message %q quotes the server", tt.name, msg)
			}
		})
	}
}
