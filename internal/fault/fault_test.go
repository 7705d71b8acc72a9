package fault

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"fault", &Error{Kind: KeyDisabled}, KeyDisabled},
		{"wrapped fault", fmt.Errorf("x: %w", &Error{Kind: Integrity}), Integrity},
		{"deadline", context.DeadlineExceeded, Unavailable},
		{"wrapped deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), Unavailable},
		{"plain", errors.New("boom"), Internal},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("KindOf(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestMessagesNeverLeakUnderlyingErrors: the customer message is built from
// fields, never from Err.
func TestMessagesNeverLeakUnderlyingErrors(t *testing.T) {
	secret := errors.New("SECRET-DETAIL-123")
	for _, k := range Kinds() {
		e := &Error{Kind: k, Op: "op", Resource: "key k", Err: secret}
		msg := Message(e)
		if msg == "" || strings.Contains(msg, "SECRET") {
			t.Errorf("Message(kind %v) = %q", k, msg)
		}
		if strings.HasSuffix(msg, ".") {
			t.Errorf("Message(kind %v) ends with a period: %q", k, msg)
		}
		if KindFromCode(k.Code()) != k {
			t.Errorf("KindFromCode(%q) != %v", k.Code(), k)
		}
	}
	if !strings.Contains((&Error{Kind: Internal, Err: secret}).Error(), "SECRET") {
		t.Error("Error() must keep the underlying error for logs")
	}
}

func TestCodesAreStable(t *testing.T) {
	// These codes are API: changing one breaks clients.
	want := map[Kind]string{Invalid: "invalid_argument", Integrity: "ciphertext_invalid", NotFound: "not_found",
		KeyDisabled: "master_key_disabled", PermissionDenied: "master_key_permission_missing", Unavailable: "unavailable",
		CMKDisabled: "cmk_key_disabled", CMKPermissionMissing: "cmk_permission_missing", CMKDeleted: "cmk_key_deleted", CMKDestroyed: "cmk_key_destroyed"}
	for k, code := range want {
		if k.Code() != code {
			t.Errorf("%v.Code() = %q, want %q", k, k.Code(), code)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/table.golden from the error table")

// TestTable checks every row of the error table and pins its text in
// testdata/table.golden: a change of code, status or words is a reviewed
// change of the golden file (go test ./internal/fault -update).
func TestTable(t *testing.T) {
	seen := map[string]Kind{}
	var b strings.Builder
	for _, k := range Kinds() {
		row := k.Info()
		if row.Code == "" || row.Status == 0 || row.Message == "" {
			t.Errorf("kind %d: incomplete row %+v", k, row)
		}
		if prev, ok := seen[row.Code]; ok {
			t.Errorf("code %q used by kinds %d and %d", row.Code, prev, k)
		}
		seen[row.Code] = k
		if want := row.Status == 503 || row.Status == 429; row.Retryable != want {
			t.Errorf("%v: retryable %v with status %d", k, row.Retryable, row.Status)
		}
		if row.Status == 424 && row.Hint == "" {
			t.Errorf("%v: a key the customer controls is unusable, but the row says nothing of what to do", k)
		}
		for _, s := range []string{row.Message, row.Hint} {
			if strings.HasSuffix(s, ".") || (s != "" && strings.ToLower(s[:1]) != s[:1]) {
				t.Errorf("%v: %q: messages are lowercase with no final period", k, s)
			}
		}
		if strings.Contains(row.Message, "%s") != (row.Subject != "") {
			t.Errorf("%v: Subject %q goes with a %%s in the message %q", k, row.Subject, row.Message)
		}
		fmt.Fprintf(&b, "%s\t%d\tretry=%v\n\tmessage: %s\n\thint: %s\n", row.Code, row.Status, row.Retryable,
			Message(&Error{Kind: k}), row.Hint)
	}
	golden := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with go test ./internal/fault -update)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("the error table differs from %s; if the change is meant, run go test ./internal/fault -update and review the diff\ngot:\n%s", golden, got)
	}
}

func TestMessageFillsTheTemplate(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"resource", &Error{Kind: KeyDisabled, Resource: "key k1 in vault contoso-kv"}, "key k1 in vault contoso-kv is disabled or outside its validity period; enable it to restore access"},
		{"subject", &Error{Kind: NotFound}, "object not found"},
		{"permission", &Error{Kind: PermissionDenied, Permission: "unwrapKey", Resource: "key k1"}, "permission missing: unwrapKey on key k1; grant it to orgkms"},
		{"provider", &Error{Kind: CredentialsInvalid, Provider: "azurekv"}, "credentials for azurekv are invalid, expired or not consented"},
		{"reason wins", &Error{Kind: Conflict, Resource: "org a", Reason: "org a is being deleted"}, "org a is being deleted"},
		{"field", &Error{Kind: Invalid, Field: "plaintext", Reason: "must be base64"}, "plaintext: must be base64"},
		{"field named by the reason", &Error{Kind: Invalid, Field: "limit", Reason: "limit must be between 1 and 1000"}, "limit must be between 1 and 1000"},
		{"field merely starting the reason", &Error{Kind: Invalid, Field: "key", Reason: "keys must be named"}, "key: keys must be named"},
		{"template text in a resource is not expanded", &Error{Kind: NotFound, Resource: "key %p"}, "key %p not found"},
		{"internal hides the reason", &Error{Kind: Internal, Reason: "db path /var/x"}, "internal error"},
	}
	for _, tt := range tests {
		if got := Message(tt.err); got != tt.want {
			t.Errorf("%s: Message = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestAttributed: a driver fills in what an inner error leaves empty and
// keeps what it names, on a copy.
func TestAttributed(t *testing.T) {
	inner := &Error{Kind: Unavailable, Op: "get token", Reason: "r"}
	got := inner.Attributed("wrap", "azurekv", "azurekv key v/k")
	if got.Op != "get token" || got.Provider != "azurekv" || got.Resource != "azurekv key v/k" || got.Kind != Unavailable || got.Reason != "r" {
		t.Errorf("Attributed = %+v", got)
	}
	if inner.Provider != "" || inner.Resource != "" {
		t.Errorf("Attributed changed its receiver: %+v", inner)
	}
}
