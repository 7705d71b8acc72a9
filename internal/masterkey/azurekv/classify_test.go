package azurekv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/orgkms/orgkms/internal/fault"
)

func rawResponse(status int, body string, header http.Header) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(bytes.NewReader([]byte(body))),
		Request: &http.Request{Method: "POST", URL: &url.URL{Scheme: "https", Host: "contoso-kv.vault.azure.net", Path: "/keys/cmk/wrapkey"}}}
}

func responseError(status int, body string, header http.Header) error {
	return runtime.NewResponseError(rawResponse(status, body, header))
}

// tokenError is the error azidentity returns for a token endpoint answer
// with AADSTS code aadsts.
func tokenError(status int, code string, aadsts int) error {
	body := fmt.Sprintf(`{"error":%q,"error_description":"AADSTS%d: ...","error_codes":[%d]}`, code, aadsts, aadsts)
	return &azidentity.AuthenticationFailedError{RawResponse: rawResponse(status, body, nil)}
}

func TestClassify(t *testing.T) {
	k := KeyID{Host: "contoso-kv.vault.azure.net", Name: "cmk", Version: "0123456789abcdef0123456789abcdef", Tenant: "11111111-2222-3333-4444-555555555555"}
	tests := []struct {
		name     string
		op       string
		err      error
		wantKind fault.Kind
		wantPerm string
	}{
		{"disabled", "unwrapKey", responseError(403, `{"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}`, nil), fault.KeyDisabled, ""},
		{"policy", "unwrapKey", responseError(403, `{"error":{"code":"Forbidden","message":"... does not have keys unwrapKey permission ...","innererror":{"code":"ForbiddenByPolicy"}}}`, nil), fault.PermissionDenied, "unwrapKey"},
		{"rbac", "wrapKey", responseError(403, `{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}`, nil), fault.PermissionDenied, "wrapKey"},
		{"key ops", "wrapKey", responseError(403, `{"error":{"code":"Forbidden","message":"Operation wrapKey is not permitted on this key.","innererror":{"code":"KeyOperationForbidden"}}}`, nil), fault.PermissionDenied, "wrapKey"},
		{"firewall", "get", responseError(403, `{"error":{"code":"Forbidden","message":"Client address is not authorized","innererror":{"code":"ForbiddenByFirewall"}}}`, nil), fault.PermissionDenied, "network access"},
		{"not found", "get", responseError(404, `{"error":{"code":"KeyNotFound","message":"A key with (name/id) cmk was not found in this key vault."}}`, nil), fault.KeyNotFound, ""},
		{"wrong tenant", "get", responseError(401, `{"error":{"code":"Unauthorized","message":"AKV10032: Invalid issuer."}}`, nil), fault.CredentialsInvalid, ""},
		{"throttled", "unwrapKey", responseError(429, `{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}`, http.Header{"Retry-After": {"7"}}), fault.Unavailable, ""},
		{"server error", "get", responseError(503, ``, nil), fault.Unavailable, ""},
		{"bad unwrap", "unwrapKey", responseError(400, `{"error":{"code":"BadParameter","message":"The parameter is incorrect."}}`, nil), fault.Integrity, ""},
		{"timeout", "get", context.DeadlineExceeded, fault.Unavailable, ""},
		{"typed passthrough", "get", &fault.Error{Kind: fault.CredentialsInvalid, Reason: "x"}, fault.CredentialsInvalid, ""},
		{"unknown", "get", errors.New("boom"), fault.Unavailable, ""},
		{"no such host", "get", &net.DNSError{Err: "no such host", Name: "x.vault.azure.net", IsNotFound: true}, fault.KeyNotFound, ""},
		{"dns timeout", "get", &net.DNSError{Err: "i/o timeout", Name: "x.vault.azure.net", IsTimeout: true}, fault.Unavailable, ""},
		{"consent missing", "get", tokenError(400, "unauthorized_client", 700016), fault.CMKConsentRevoked, ""},
		{"consent required", "get", tokenError(400, "invalid_grant", 65001), fault.CMKConsentRevoked, ""},
		{"app disabled in tenant", "get", tokenError(400, "unauthorized_client", 7000112), fault.CMKConsentRevoked, ""},
		{"platform secret invalid", "get", tokenError(401, "invalid_client", 7000215), fault.CredentialsInvalid, ""},
		{"platform secret expired", "get", tokenError(401, "invalid_client", 7000222), fault.CredentialsInvalid, ""},
		{"tenant not found", "get", tokenError(400, "invalid_request", 90002), fault.CredentialsInvalid, ""},
		{"entra unavailable", "get", tokenError(503, "temporarily_unavailable", 0), fault.Unavailable, ""},
		{"entra garbage", "get", &azidentity.AuthenticationFailedError{RawResponse: rawResponse(400, "not json", nil)}, fault.CredentialsInvalid, ""},
		{"entra unreachable", "get", &azidentity.AuthenticationFailedError{}, fault.Unavailable, ""},
		{"other tenant", "get", &errOtherTenant{vaultTenant: "99999999-2222-3333-4444-555555555555", authorized: k.Tenant}, fault.CredentialsInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classify(tt.op, k, tt.err)
			fe := fault.As(err)
			if fe == nil || fe.Kind != tt.wantKind {
				t.Fatalf("classify(%s) kind = %v, want %v (%v)", tt.name, fault.KindOf(err), tt.wantKind, err)
			}
			if fe.Permission != tt.wantPerm {
				t.Fatalf("classify(%s) permission = %q, want %q", tt.name, fe.Permission, tt.wantPerm)
			}
			if fe.Provider != Scheme || fe.Resource == "" {
				t.Fatalf("classify(%s) lacks provider or resource: %+v", tt.name, fe)
			}
			if tt.name == "throttled" && fe.RetryAfter.Seconds() != 7 {
				t.Fatalf("Retry-After = %v, want 7s", fe.RetryAfter)
			}
		})
	}
}

func TestParseKeyID(t *testing.T) {
	const tenant = "11111111-2222-3333-4444-555555555555"
	tests := []struct {
		name, vault, key, version, tenant string
		wantField                         string
	}{
		{"ok", "https://contoso-kv.vault.azure.net/", "cmk", "", tenant, ""},
		{"ok no slash", "https://contoso-kv.vault.azure.net", "cmk", "0123456789abcdef0123456789abcdef", tenant, ""},
		{"managed hsm", "https://contoso.managedhsm.azure.net/", "cmk", "", tenant, ""},
		{"sovereign", "https://contoso-kv.vault.azure.cn/", "cmk", "", tenant, ""},
		{"http", "http://contoso-kv.vault.azure.net/", "cmk", "", tenant, "vault_uri"},
		{"other host", "https://evil.example.com/", "cmk", "", tenant, "vault_uri"},
		{"suffix trick", "https://vault.azure.net.evil.com/", "cmk", "", tenant, "vault_uri"},
		{"port", "https://contoso-kv.vault.azure.net:8443/", "cmk", "", tenant, "vault_uri"},
		{"default port", "https://contoso-kv.vault.azure.net:443/", "cmk", "", tenant, ""},
		{"spelled loudly", "  HTTPS://Contoso-KV.Vault.Azure.NET:443  ", "cmk", "", tenant, ""},
		{"trailing dot", "https://contoso-kv.vault.azure.net./", "cmk", "", tenant, ""},
		{"double slash", "https://contoso-kv.vault.azure.net//", "cmk", "", tenant, "vault_uri"},
		{"query", "https://contoso-kv.vault.azure.net/?x=1", "cmk", "", tenant, "vault_uri"},
		{"empty port", "https://contoso-kv.vault.azure.net:/", "cmk", "", tenant, ""},
		{"path", "https://contoso-kv.vault.azure.net/keys/cmk", "cmk", "", tenant, "vault_uri"},
		{"userinfo", "https://a@contoso-kv.vault.azure.net/", "cmk", "", tenant, "vault_uri"},
		{"bad key", "https://contoso-kv.vault.azure.net/", "c m k", "", tenant, "key_name"},
		{"bad version", "https://contoso-kv.vault.azure.net/", "cmk", "v1/../x", tenant, "key_version"},
		{"bad tenant", "https://contoso-kv.vault.azure.net/", "cmk", "", "contoso", "tenant_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeyID(tt.vault, tt.key, tt.version, tt.tenant, DefaultHostSuffixes)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("ParseKeyID: %v", err)
				}
				back, err := parseURI(k.URI(), DefaultHostSuffixes)
				if err != nil || back != k {
					t.Fatalf("URI round trip: %+v, %v; want %+v", back, err, k)
				}
				// Every spelling of a vault is one vault.
				if k.Host != strings.ToLower(k.Host) || k.VaultURL() != "https://"+k.Host+"/" || strings.ContainsAny(k.Host, ":/ ") || strings.HasSuffix(k.Host, ".") {
					t.Fatalf("ParseKeyID(%q) host %q, vault URL %q: not canonical", tt.vault, k.Host, k.VaultURL())
				}
				again, err := ParseKeyID(k.VaultURL(), tt.key, tt.version, tt.tenant, DefaultHostSuffixes)
				if err != nil || again != k {
					t.Fatalf("ParseKeyID(VaultURL()) = %+v, %v; want %+v", again, err, k)
				}
				return
			}
			fe := fault.As(err)
			if fe == nil || fe.Kind != fault.Invalid || fe.Field != tt.wantField {
				t.Fatalf("ParseKeyID(%s) = %v, want Invalid on %s", tt.name, err, tt.wantField)
			}
		})
	}
}
