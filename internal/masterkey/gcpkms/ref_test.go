package gcpkms

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

var allowed = []string{"europe-west4", "europe"}

type seed struct {
	ok  bool
	uri string
}

// seeds returns the lines of testdata/refs.txt; it fails the test when
// there are none, so that a fuzz target never silently runs without them.
func seeds(tb testing.TB) []seed {
	tb.Helper()
	f, err := os.Open("testdata/refs.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []seed
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verdict, uri, ok := strings.Cut(line, " ")
		if !ok || (verdict != "ok" && verdict != "bad") {
			tb.Fatalf("testdata/refs.txt: line %q does not start with \"ok \" or \"bad \"", line)
		}
		out = append(out, seed{verdict == "ok", uri})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatal("testdata/refs.txt has no seeds")
	}
	return out
}

func TestParseSeeds(t *testing.T) {
	for _, s := range seeds(t) {
		ref, err := ParseRef(s.uri, allowed)
		if s.ok && err != nil {
			t.Errorf("ParseRef(%q) = %v, want success", s.uri, err)
		}
		if !s.ok {
			if err == nil {
				t.Errorf("ParseRef(%q) = %+v, want an error", s.uri, ref)
			} else if k := fault.KindOf(err); k != fault.Invalid {
				t.Errorf("ParseRef(%q) kind = %v, want %v", s.uri, k, fault.Invalid)
			}
		}
	}
}

func TestParseRefNormalizes(t *testing.T) {
	want := masterkey.Ref{Provider: Scheme, ID: "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1", Version: "3"}
	for _, uri := range []string{
		"gcpkms://projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1#3",
		"gcpkms://projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1/cryptoKeyVersions/3",
		"gcpkms://projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1/cryptoKeyVersions/3#3",
	} {
		got, err := ParseRef(uri, allowed)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", uri, got, err, want)
		}
	}
	if s := want.String(); s != "gcpkms://projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/cmk-1#3" {
		t.Errorf("Ref.String() = %q", s)
	}
}

func TestParseKeyName(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		allowed  []string
		want     KeyName
		wantKind fault.Kind // Internal: success
	}{
		{"key", "projects/p-123456/locations/global/keyRings/r/cryptoKeys/k", nil, KeyName{"p-123456", "global", "r", "k", ""}, fault.Internal},
		{"version and space", "  /projects/p-123456/locations/us-east1/keyRings/r/cryptoKeys/k/cryptoKeyVersions/12 ", nil, KeyName{"p-123456", "us-east1", "r", "k", "12"}, fault.Internal},
		{"allowed location", "projects/p-123456/locations/EUROPE/keyRings/r/cryptoKeys/k", []string{"europe"}, KeyName{}, fault.Invalid},
		{"allowed location case of config", "projects/p-123456/locations/europe/keyRings/r/cryptoKeys/k", []string{" Europe "}, KeyName{"p-123456", "europe", "r", "k", ""}, fault.Internal},
		{"location refused", "projects/p-123456/locations/us-east1/keyRings/r/cryptoKeys/k", []string{"europe"}, KeyName{}, fault.Invalid},
		{"version zero", "projects/p-123456/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/0", nil, KeyName{}, fault.Invalid},
		{"short project", "projects/p1/locations/global/keyRings/r/cryptoKeys/k", nil, KeyName{}, fault.Invalid},
		{"long key id", "projects/p-123456/locations/global/keyRings/r/cryptoKeys/" + strings.Repeat("k", 64), nil, KeyName{}, fault.Invalid},
		{"key ring only", "projects/p-123456/locations/global/keyRings/r", nil, KeyName{}, fault.Invalid},
		{"service prefix", "//cloudkms.googleapis.com/projects/p-123456/locations/global/keyRings/r/cryptoKeys/k", nil, KeyName{}, fault.Invalid},
		{"empty", "", nil, KeyName{}, fault.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeyName(tt.in, tt.allowed)
			if tt.wantKind != fault.Internal {
				if err == nil || fault.KindOf(err) != tt.wantKind {
					t.Fatalf("ParseKeyName(%q) = %+v, %v; want kind %v", tt.in, got, err, tt.wantKind)
				}
				if got != (KeyName{}) {
					t.Fatalf("ParseKeyName(%q) error returned %+v, want the zero KeyName", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseKeyName(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseRef: a gcpkms ref is untrusted input (customer-entered, or read
// back from the database). Parsing never panics; an error is Kind Invalid
// with the zero Ref; a success names an allowed location, is canonical,
// and round-trips through Ref.String and KeyOf.
func FuzzParseRef(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.uri)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		ref, err := ParseRef(uri, allowed)
		if err != nil {
			if ref != (masterkey.Ref{}) || fault.KindOf(err) != fault.Invalid {
				t.Fatalf("ParseRef(%q) = %+v, %v: an error must be Kind Invalid with the zero Ref", uri, ref, err)
			}
			return
		}
		k, err := KeyOf(ref, allowed)
		if err != nil {
			t.Fatalf("KeyOf(ParseRef(%q)) = %v", uri, err)
		}
		if k.Ref() != ref || k.Location != "europe-west4" && k.Location != "europe" {
			t.Fatalf("ParseRef(%q) = %+v: KeyOf gives %+v", uri, ref, k)
		}
		back, err := ParseRef(ref.String(), allowed)
		if err != nil || back != ref {
			t.Fatalf("ParseRef(String()) of %q = %+v, %v; want %+v", uri, back, err, ref)
		}
		if strings.Contains(ref.ID, "cryptoKeyVersions") {
			t.Fatalf("ParseRef(%q) ID %q keeps the version in the path", uri, ref.ID)
		}
	})
}
