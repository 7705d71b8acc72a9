package kmsplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orgkms/orgkms/client"
)

// TestGRPCError: every API code of orgkms maps to the gRPC code a KMS v2
// client acts on, with orgkms' code and message in the status message.
func TestGRPCError(t *testing.T) {
	want := map[client.Code]codes.Code{
		client.CodeInternal:                    codes.Internal,
		client.CodeInvalidArgument:             codes.InvalidArgument,
		client.CodeCiphertextInvalid:           codes.InvalidArgument,
		client.CodeNotFound:                    codes.NotFound,
		client.CodeConflict:                    codes.Internal,
		client.CodePayloadTooLarge:             codes.InvalidArgument,
		client.CodeUnauthenticated:             codes.Unauthenticated,
		client.CodePermissionDenied:            codes.PermissionDenied,
		client.CodeMethodNotAllowed:            codes.Internal,
		client.CodeMasterKeyNotFound:           codes.FailedPrecondition,
		client.CodeMasterKeyDisabled:           codes.FailedPrecondition,
		client.CodeMasterKeyDestroyed:          codes.FailedPrecondition,
		client.CodeMasterKeyPermissionMissing:  codes.FailedPrecondition,
		client.CodeMasterKeyCredentialsInvalid: codes.FailedPrecondition,
		client.CodeUnavailable:                 codes.Unavailable,
		client.CodeRateLimited:                 codes.Unavailable,
		client.CodeKeyVersionRetired:           codes.FailedPrecondition,
		client.CodeCMKKeyDisabled:              codes.FailedPrecondition,
		client.CodeCMKPermissionMissing:        codes.FailedPrecondition,
		client.CodeCMKKeyDeleted:               codes.FailedPrecondition,
		client.CodeCMKKeyDestroyed:             codes.FailedPrecondition,
		client.CodeCMKConsentRevoked:           codes.FailedPrecondition,
	}
	for _, c := range client.Codes() {
		w, ok := want[c]
		if !ok { // a code added later: a key the org controls, or orgkms' own failure
			w = codes.Internal
			if strings.HasPrefix(string(c), "cmk_") || strings.HasPrefix(string(c), "master_key_") {
				w = codes.FailedPrecondition
			}
		}
		err := grpcError("encrypt", fmt.Errorf("wrapped: %w", &client.Error{Code: string(c), Message: "the message", RequestID: "r1"}))
		st, _ := status.FromError(err)
		if st.Code() != w {
			t.Errorf("grpcError(%s) code = %v, want %v", c, st.Code(), w)
		}
		if !strings.Contains(st.Message(), string(c)) || !strings.Contains(st.Message(), "the message") || !strings.Contains(st.Message(), "r1") {
			t.Errorf("grpcError(%s) message = %q, want the code, message and request ID", c, st.Message())
		}
	}
	for _, err := range []error{context.DeadlineExceeded, context.Canceled, errors.New("dial tcp: connection refused")} {
		if got := status.Code(grpcError("decrypt", err)); got != codes.Unavailable {
			t.Errorf("grpcError(%v) code = %v, want Unavailable", err, got)
		}
	}
}
