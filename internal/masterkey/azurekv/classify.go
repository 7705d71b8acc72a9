package azurekv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/orgkms/orgkms/internal/fault"
)

// kvError is the error envelope of Key Vault.
type kvError struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

// entraError is the error body of the Entra ID token endpoint.
type entraError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
}

// classify maps an SDK error of operation op (the access-policy permission
// name: get, wrapKey, unwrapKey) on key k to a *fault.Error. It decides by
// HTTP status and innererror.code, never by message text.
func classify(op string, k KeyID, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		return fe.Attributed(op, Scheme, resource(k))
	}
	base := fault.Error{Op: op, Provider: Scheme, Resource: resource(k), Err: err}
	var other *errOtherTenant
	if errors.As(err, &other) {
		base.Kind, base.Resource = fault.CredentialsInvalid, "vault "+k.Host
		base.Reason = fmt.Sprintf("vault %s belongs to Entra ID tenant %s, not to tenant %s in which orgkms is authorized: authorize orgkms in the vault's tenant (Step 1), or use a vault of tenant %s",
			k.Host, strings.ToLower(other.vaultTenant), k.Tenant, k.Tenant)
		return &base
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return classifyEntra(base, k, authErr)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return classifyVault(base, op, k, re)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		base.Kind, base.Reason, base.RetryAfter = fault.Unavailable, "vault "+k.Vault()+" did not answer in time", outageRetryAfter
		return &base
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		// Only a definite "no such host" means the vault does not exist; a
		// resolver timeout or failure is an outage, never revocation.
		base.Kind, base.Reason = fault.KeyNotFound, "vault host "+k.Host+" does not resolve: check the Key Vault URI"
		return &base
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		base.Kind, base.Reason, base.RetryAfter = fault.Unavailable, "vault "+k.Vault()+" is unreachable", outageRetryAfter
		return &base
	}
	base.Kind, base.Reason, base.RetryAfter = fault.Unavailable, "vault "+k.Vault()+" could not be reached", outageRetryAfter
	return &base
}

// outageRetryAfter is the Retry-After of an outage or a timeout, when the
// vault named none.
const outageRetryAfter = 2 * time.Second

// Entra ID error codes (AADSTS...) that mean the customer's tenant does not,
// or no longer, let orgkms' application in: consent was never granted or was
// withdrawn (the service principal deleted), or the application was
// disabled in that tenant. The customer fixes these by granting consent.
const (
	aadConsentRequired = 65001   // the user or administrator has not consented to use the application
	aadAppNotInTenant  = 700016  // application not found in the directory: no service principal
	aadAppDisabled     = 7000112 // the application is disabled in the tenant
	aadTenantNotFound  = 90002
	aadSecretInvalid   = 7000215
	aadSecretExpired   = 7000222
	aadNoSecret        = 7000216
	aadCertInvalid     = 700027
)

func classifyEntra(base fault.Error, k KeyID, authErr *azidentity.AuthenticationFailedError) error {
	if authErr.RawResponse == nil {
		// Entra ID did not answer (refused, dropped, timed out): an outage,
		// never a verdict on the credentials.
		base.Kind, base.Reason, base.RetryAfter = fault.Unavailable, "Entra ID could not be reached to obtain a token for tenant "+k.Tenant, outageRetryAfter
		return &base
	}
	base.Kind = fault.CredentialsInvalid
	var body entraError
	if authErr.RawResponse != nil {
		if b, err := runtime.Payload(authErr.RawResponse); err == nil {
			json.Unmarshal(b, &body)
		}
		if authErr.RawResponse.StatusCode == http.StatusTooManyRequests || authErr.RawResponse.StatusCode >= 500 {
			base.Kind, base.Reason = fault.Unavailable, "Entra ID is unavailable; retry later"
			base.RetryAfter = orOutage(retryAfter(authErr.RawResponse))
			return &base
		}
	}
	code := 0
	if len(body.Codes) > 0 {
		code = body.Codes[0]
	}
	grantAgain := "an administrator of that tenant must grant admin consent again (Settings → Security → Step 1, Authorize; or orgkms cmk authorize --tenant " + k.Tenant + ")"
	switch code {
	case aadConsentRequired, aadAppNotInTenant:
		base.Kind = fault.CMKConsentRevoked
		base.Reason = "orgkms is not authorized in Entra ID tenant " + k.Tenant + " (admin consent was withdrawn or never granted): " + grantAgain
	case aadAppDisabled:
		base.Kind = fault.CMKConsentRevoked
		base.Reason = "orgkms' application is disabled in Entra ID tenant " + k.Tenant + ": enable it for sign-in (Enterprise applications → orgkms → Properties), or " + grantAgain
	case aadTenantNotFound:
		base.Reason = "Entra ID tenant " + k.Tenant + " does not exist: check the tenant ID"
	case aadSecretInvalid, aadSecretExpired, aadNoSecret, aadCertInvalid:
		base.Reason = "the platform's Entra ID application credentials are invalid or expired: the platform operator must renew them"
	default:
		base.Reason = "orgkms could not obtain a token in Entra ID tenant " + k.Tenant
		if c := safeCode(body.Error); c != "" {
			base.Reason += " (" + c + ")"
		}
	}
	return &base
}

func classifyVault(base fault.Error, op string, k KeyID, re *azcore.ResponseError) error {
	var body kvError
	if re.RawResponse != nil {
		if b, err := runtime.Payload(re.RawResponse); err == nil {
			json.Unmarshal(b, &body)
		}
	}
	code := body.Error.Code
	if code == "" {
		code = re.ErrorCode
	}
	inner := ""
	if body.Error.InnerError != nil {
		inner = body.Error.InnerError.Code
	}
	vault := k.Vault()
	switch {
	case re.StatusCode == http.StatusUnauthorized:
		base.Kind = fault.CredentialsInvalid
		if strings.HasPrefix(body.Error.Message, "AKV10032") {
			base.Reason = "vault " + vault + " belongs to another Entra ID tenant than " + k.Tenant + ": use the vault's tenant ID"
		} else {
			base.Reason = "vault " + vault + " did not accept orgkms' token"
		}
	case re.StatusCode == http.StatusForbidden && inner == "KeyDisabled":
		base.Kind, base.Reason = fault.KeyDisabled, fmt.Sprintf("key %s in vault %s is disabled; enable it in the Azure portal to restore access", k.Name, vault)
	case re.StatusCode == http.StatusForbidden && inner == "KeyOperationForbidden":
		base.Kind, base.Permission = fault.PermissionDenied, op
		base.Reason = fmt.Sprintf("key %s does not allow the %s operation: enable it in the key's permitted operations", k.Name, op)
	case re.StatusCode == http.StatusForbidden && inner == "ForbiddenByFirewall":
		base.Kind, base.Permission = fault.PermissionDenied, "network access"
		base.Reason = "vault " + vault + "'s firewall refuses orgkms: allow orgkms' addresses in Networking"
	case re.StatusCode == http.StatusForbidden:
		base.Kind, base.Permission = fault.PermissionDenied, op
		base.Reason = fmt.Sprintf("orgkms lacks the %s permission on vault %s: add it to orgkms' access policy (or assign Key Vault Crypto Service Encryption User)", op, vault)
	case re.StatusCode == http.StatusNotFound:
		base.Kind, base.Reason = fault.KeyNotFound, fmt.Sprintf("key %s was not found in vault %s: check the name and version, or recover it if it was deleted", k.Name, vault)
	case re.StatusCode == http.StatusTooManyRequests || code == "Throttled":
		base.Kind, base.Reason = fault.Unavailable, "vault "+vault+" is throttling requests"
		base.RetryAfter = orOutage(retryAfter(re.RawResponse))
	case re.StatusCode >= 500:
		base.Kind, base.Reason = fault.Unavailable, "vault "+vault+" is unavailable"
		base.RetryAfter = orOutage(retryAfter(re.RawResponse))
	case re.StatusCode == http.StatusBadRequest && op == "unwrapKey":
		base.Kind, base.Reason = fault.Integrity, "the vault could not unwrap the org root key with key "+k.Name+" version "+k.Version
	default:
		base.Kind, base.Reason = fault.Invalid, fmt.Sprintf("vault %s refused the request (%s)", vault, orElse(safeCode(code), "HTTP "+strconv.Itoa(re.StatusCode)))
	}
	return &base
}

// safeCode is an error code from a response body as a customer may read
// it: at most 64 letters, digits, '_', '-' and '.', "" when none. A body is
// untrusted: its text never reaches a message (or a terminal) verbatim.
func safeCode(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() == 64 {
			break
		}
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// orOutage is d, or outageRetryAfter when the service named no delay.
func orOutage(d time.Duration) time.Duration {
	if d <= 0 {
		return outageRetryAfter
	}
	return d
}

func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
