package gcpkms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/orgkms/orgkms/internal/fault"
)

// Operations, named as orgkms reports them; each maps to the IAM
// permission Google checks for it.
const (
	opGet        = "get"
	opGetVersion = "getVersion"
	opEncrypt    = "encrypt"
	opDecrypt    = "decrypt"
)

// permissionOf is the IAM permission of each operation.
var permissionOf = map[string]string{
	opGet:        "cloudkms.cryptoKeys.get",
	opGetVersion: "cloudkms.cryptoKeyVersions.get",
	opEncrypt:    "cloudkms.cryptoKeyVersions.useToEncrypt",
	opDecrypt:    "cloudkms.cryptoKeyVersions.useToDecrypt",
}

// Violation types of google.rpc.PreconditionFailure Cloud KMS sends for a
// version that is not ENABLED (subject: the version's resource name).
const (
	violationDisabled         = "KEY_DISABLED"
	violationDestroyScheduled = "KEY_DESTROY_SCHEDULED"
	violationDestroyed        = "KEY_DESTROYED"
)

// outageRetryAfter is the Retry-After of a transient failure.
const outageRetryAfter = time.Second

// consolePath is where a version's state is changed in the Cloud console.
func consolePath(k KeyName) string {
	return "Cloud console: Security → Key Management → key ring " + k.KeyRing + " → key " + k.CryptoKey + " → Versions"
}

// remedyGrant is what the customer does about a missing permission.
const remedyGrant = "grant orgkms' service account roles/cloudkms.cryptoKeyEncrypterDecrypter (and roles/cloudkms.viewer, to read the key's state) on the key"

// classify maps an error of the Cloud KMS client for operation op on key
// k to a *fault.Error. It decides by the gRPC status code and the typed
// error details (PreconditionFailure violations, ErrorInfo), never by
// message text.
func classify(op string, k KeyName, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Attributed(op, Scheme, k.resource())
	}
	base := fault.Error{Op: op, Provider: Scheme, Resource: k.resource(), Err: err}
	unavailable := func(reason string) error {
		base.Kind, base.Reason, base.RetryAfter = fault.Unavailable, reason, outageRetryAfter
		return &base
	}
	// A context deadline is returned bare by the client (no status).
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return unavailable("Cloud KMS did not answer in time")
	}
	st, ok := status.FromError(err)
	if !ok {
		return unavailable("Cloud KMS could not be reached")
	}
	var ae *apierror.APIError
	errors.As(err, &ae)
	switch st.Code() {
	case codes.OK:
		base.Kind, base.Reason = fault.Internal, "Cloud KMS returned an error without a code"
	case codes.NotFound:
		base.Kind = fault.KeyNotFound
		base.Reason = fmt.Sprintf("%s was not found in Cloud KMS: check the key resource name", k.resource())
	case codes.PermissionDenied:
		base.Kind, base.Permission = fault.PermissionDenied, permissionOf[op]
		if ae != nil && ae.Metadata()["permission"] != "" && validPermission(ae.Metadata()["permission"]) {
			base.Permission = ae.Metadata()["permission"]
		}
		if base.Permission == "" {
			base.Permission = permissionOf[opDecrypt]
		}
		base.Reason = fmt.Sprintf("orgkms' service account lacks permission %s on %s, or the key does not exist: %s",
			base.Permission, k.resource(), remedyGrant)
	case codes.Unauthenticated:
		base.Kind = fault.CredentialsInvalid
		base.Reason = "Google Cloud did not accept orgkms' service-account credentials: the platform operator must renew them (cmk.gcp.credentials_file)"
	case codes.FailedPrecondition:
		return notEnabled(base, k, err)
	case codes.InvalidArgument:
		if op == opDecrypt {
			base.Kind = fault.Integrity
			base.Reason = "Cloud KMS could not decrypt the org root key with " + k.resource() + ": the ciphertext was made by another key, for another org, or was modified"
		} else {
			base.Kind = fault.Invalid
			base.Field = "key_name"
			base.Reason = "Cloud KMS refused the request for " + k.resource() + " (INVALID_ARGUMENT): check the key resource name and that its purpose is symmetric encrypt/decrypt"
		}
	case codes.ResourceExhausted:
		return unavailable("Cloud KMS quota exceeded for " + k.resource() + "; retry in a moment")
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Internal, codes.Unknown, codes.Canceled:
		return unavailable("Cloud KMS is unavailable")
	default:
		base.Kind = fault.Invalid
		base.Reason = fmt.Sprintf("Cloud KMS refused the request for %s (%s)", k.resource(), strings.ToUpper(codeName(st.Code())))
	}
	return &base
}

// notEnabled classifies FAILED_PRECONDITION: a version that is not
// ENABLED, named by the PreconditionFailure violation.
func notEnabled(base fault.Error, k KeyName, err error) error {
	typ, subject := violationOf(err)
	kv := k
	if v, ok := parseVersionName(k, subject); ok {
		kv.Version = v
	}
	base.Resource = kv.resource()
	ver := "the key's version"
	if kv.Version != "" {
		ver = "version " + kv.Version
	}
	switch typ {
	case violationDestroyed:
		base.Kind = fault.KeyDestroyed
		base.Reason = fmt.Sprintf("%s of key %s was destroyed in Cloud KMS: data wrapped by it is unrecoverable", ver, k.CryptoKey)
	case violationDestroyScheduled:
		base.Kind = fault.KeyDisabled
		base.Reason = fmt.Sprintf("%s of key %s is scheduled for destruction: restore it, then enable it (%s → Restore, Enable)", ver, k.CryptoKey, consolePath(k))
	default:
		base.Kind = fault.KeyDisabled
		base.Reason = fmt.Sprintf("%s of key %s is disabled in Cloud KMS: enable %s in the %s → Enable", ver, k.CryptoKey, ver, consolePath(k))
	}
	return &base
}

// violationOf returns the first KEY_* violation of a PreconditionFailure
// in err (type and subject, the version's resource name), or "".
func violationOf(err error) (typ, subject string) {
	var ae *apierror.APIError
	if !errors.As(err, &ae) || ae.Details().PreconditionFailure == nil {
		return "", ""
	}
	for _, v := range ae.Details().PreconditionFailure.GetViolations() {
		if strings.HasPrefix(v.GetType(), "KEY_") {
			return v.GetType(), v.GetSubject()
		}
	}
	return "", ""
}

// validPermission reports whether s looks like a Cloud KMS permission, so
// that a server-sent string reaches a message only in that shape.
func validPermission(s string) bool {
	if len(s) > 80 || !strings.HasPrefix(s, "cloudkms.") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '.') {
			return false
		}
	}
	return true
}

// codeName is the canonical name of c, e.g. "FAILED_PRECONDITION".
func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}
