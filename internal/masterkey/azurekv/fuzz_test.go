package azurekv

import (
	"bufio"
	"net/http"
	"os"
	"strings"
	"testing"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/orgkms/orgkms/internal/fault"
)

// seeds returns the lines of testdata/kids.txt (comments and blank lines
// skipped); it fails the test when there are none, so that a fuzz target
// never silently runs without its seeds.
func seeds(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("testdata/kids.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatal("testdata/kids.txt has no seeds")
	}
	return out
}

// FuzzParseKID: the key identifiers a vault returns are untrusted input.
// Parsing never panics, an error returns the zero KeyID and a *fault.Error,
// and a success is canonical and round-trips through KID.
func FuzzParseKID(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, kid string) {
		k, err := parseKID(kid, DefaultHostSuffixes)
		if err != nil {
			if k != (KeyID{}) || fault.As(err) == nil {
				t.Fatalf("parseKID(%q) = %+v, %v: an error must return the zero KeyID and a *fault.Error", kid, k, err)
			}
			return
		}
		if k.Tenant != "" || k.Host != strings.ToLower(k.Host) || k.Version != strings.ToLower(k.Version) {
			t.Fatalf("parseKID(%q) = %+v: not canonical", kid, k)
		}
		back, err := parseKID(k.KID(), DefaultHostSuffixes)
		if err != nil || back != k {
			t.Fatalf("parseKID(KID()) of %q = %+v, %v; want %+v", kid, back, err, k)
		}
		if !k.sameKey(back) {
			t.Fatalf("sameKey(%+v) of itself is false", k)
		}
	})
}

// FuzzParseKeyID: a customer's vault URI, key name and version, and an
// azurekv:// reference, are untrusted input. Parsing never panics, an
// error returns the zero KeyID, and a success names an allowed vault host
// and round-trips through VaultURL (one vault, one spelling) and URI.
func FuzzParseKeyID(f *testing.F) {
	const tenant = "3e5126d3-6dfd-418e-804f-b157f9c6aeed"
	for _, s := range seeds(f) {
		f.Add(s, "orgkms-cmk", "", tenant)
		f.Add(s, "k1", "0123456789abcdef0123456789abcdef", strings.ToUpper(tenant))
	}
	f.Fuzz(func(t *testing.T, vaultURI, name, version, tenantID string) {
		k, err := ParseKeyID(vaultURI, name, version, tenantID, DefaultHostSuffixes)
		if err != nil {
			if k != (KeyID{}) || fault.KindOf(err) != fault.Invalid {
				t.Fatalf("ParseKeyID(%q, %q, %q, %q) = %+v, %v: an error must be Invalid with the zero KeyID", vaultURI, name, version, tenantID, k, err)
			}
		} else {
			if checkHost(k.Host, DefaultHostSuffixes) != nil {
				t.Fatalf("ParseKeyID(%q) accepted host %q", vaultURI, k.Host)
			}
			again, err := ParseKeyID(k.VaultURL(), k.Name, k.Version, k.Tenant, DefaultHostSuffixes)
			if err != nil || again != k {
				t.Fatalf("ParseKeyID(VaultURL()) of %q = %+v, %v; want %+v", vaultURI, again, err, k)
			}
			back, err := parseURI(k.URI(), DefaultHostSuffixes)
			if err != nil || back != k {
				t.Fatalf("parseURI(URI()) of %+v = %+v, %v", k, back, err)
			}
		}
		// The same string as an azurekv:// reference.
		r, err := parseURI(vaultURI, DefaultHostSuffixes)
		if err != nil {
			if r != (KeyID{}) {
				t.Fatalf("parseURI(%q) = %+v with error %v, want the zero KeyID", vaultURI, r, err)
			}
			return
		}
		back, err := parseURI(r.URI(), DefaultHostSuffixes)
		if err != nil || back != r {
			t.Fatalf("parseURI(URI()) of %q = %+v, %v; want %+v", vaultURI, back, err, r)
		}
	})
}

// FuzzClassify: the status, body and Retry-After of a vault's or Entra
// ID's error response are untrusted input. Classification never panics,
// always returns a *fault.Error naming the driver and the key, never
// Internal (a vault's answer is not a bug of orgkms), retryable exactly
// when Unavailable, and its customer message is short, printable text.
func FuzzClassify(f *testing.F) {
	bodies := []string{
		`{"error":{"code":"Forbidden","message":"Operation unwrapKey is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}`,
		`{"error":{"code":"Forbidden","message":"...","innererror":{"code":"ForbiddenByPolicy"}}}`,
		`{"error":{"code":"Forbidden","innererror":{"code":"KeyOperationForbidden"}}}`,
		`{"error":{"code":"KeyNotFound","message":"A key with (name/id) cmk was not found in this key vault."}}`,
		`{"error":{"code":"Unauthorized","message":"AKV10032: Invalid issuer."}}`,
		`{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}`,
		`{"error":{"code":"BadParameter","message":"The parameter is incorrect."}}`,
		`{"error":"unauthorized_client","error_description":"AADSTS700016: ...","error_codes":[700016]}`,
		`{"error":"invalid_client","error_codes":[7000215]}`,
		`{"error":{"code":"` + strings.Repeat(`x\u0007`, 300) + `"}}`,
		`{"error":"` + strings.Repeat(`\n\u001b[31m`, 100) + `","error_codes":[1]}`,
		``, `null`, `{"error":[]}`,
	}
	for _, status := range []int{400, 401, 403, 404, 409, 429, 500, 503} {
		for _, b := range bodies {
			f.Add(status, b, "7", false)
			f.Add(status, b, "", true)
		}
	}
	k := KeyID{Host: "contoso-kv.vault.azure.net", Name: "cmk", Version: "0123456789abcdef0123456789abcdef", Tenant: "11111111-2222-3333-4444-555555555555"}
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string, entra bool) {
		if status < 100 || status > 999 {
			return // not an HTTP status: no response carries it
		}
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		var in error = responseError(status, body, h)
		if entra {
			in = &azidentity.AuthenticationFailedError{RawResponse: rawResponse(status, body, h)}
		}
		for _, op := range []string{"get", "wrapKey", "unwrapKey"} {
			err := classify(op, k, in)
			fe := fault.As(err)
			if fe == nil || fe.Provider != Scheme || fe.Resource == "" {
				t.Fatalf("classify(%d, %q) = %v: want a *fault.Error naming the driver and key", status, body, err)
			}
			if fe.Kind == fault.Internal || fe.Kind.Retryable() != (fe.Kind == fault.Unavailable) {
				t.Fatalf("classify(%d, %q) kind = %v", status, body, fe.Kind)
			}
			if fe.Kind == fault.Unavailable && fe.RetryAfter <= 0 {
				t.Fatalf("classify(%d, %q): unavailable without a Retry-After", status, body)
			}
			msg := fault.Message(err)
			if len(msg) > 600 || strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				t.Fatalf("classify(%d, %q) message %q: too long or not printable", status, body, msg)
			}
		}
	})
}

// TestParseKID: the versioned kid a vault returns is recorded beside every
// wrapped root key, so it must name the key orgkms asked for.
func TestParseKID(t *testing.T) {
	asked := KeyID{Host: "contoso-kv.vault.azure.net", Name: "orgkms-cmk"}
	tests := []struct {
		name, kid   string
		wantVersion string
		wantSame    bool
		wantErr     bool
	}{
		{"versioned", "https://contoso-kv.vault.azure.net/keys/orgkms-cmk/E4214C4525754C5EBD672861EF3A8982", "e4214c4525754c5ebd672861ef3a8982", true, false},
		{"name case", "https://CONTOSO-KV.vault.azure.net:443/keys/ORGKMS-CMK/e4214c4525754c5ebd672861ef3a8982", "e4214c4525754c5ebd672861ef3a8982", true, false},
		{"unversioned", "https://contoso-kv.vault.azure.net/keys/orgkms-cmk", "", true, false},
		{"another key", "https://contoso-kv.vault.azure.net/keys/other/e4214c4525754c5ebd672861ef3a8982", "e4214c4525754c5ebd672861ef3a8982", false, false},
		{"another vault", "https://fabrikam-kv.vault.azure.net/keys/orgkms-cmk/e4214c4525754c5ebd672861ef3a8982", "e4214c4525754c5ebd672861ef3a8982", false, false},
		{"not a vault host", "https://evil.example/keys/orgkms-cmk/e4214c4525754c5ebd672861ef3a8982", "", false, true},
		{"secret", "https://contoso-kv.vault.azure.net/secrets/orgkms-cmk/e4214c4525754c5ebd672861ef3a8982", "", false, true},
		{"traversal", "https://contoso-kv.vault.azure.net/keys/orgkms-cmk/../x", "", false, true},
		{"encoded slash", "https://contoso-kv.vault.azure.net/keys/orgkms-cmk%2Fx/v1", "", false, true},
		{"too deep", "https://contoso-kv.vault.azure.net/keys/orgkms-cmk/v1/x", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := parseKID(tt.kid, DefaultHostSuffixes)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseKID(%q) error = %v, want error %v", tt.kid, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if k.Version != tt.wantVersion || asked.sameKey(k) != tt.wantSame {
				t.Fatalf("parseKID(%q) = %+v (same key %v), want version %q, same key %v", tt.kid, k, asked.sameKey(k), tt.wantVersion, tt.wantSame)
			}
		})
	}
}
