package masterkey_test

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/azurekv"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
)

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

func TestParseRef(t *testing.T) {
	tests := []struct {
		name, in string
		want     masterkey.Ref
		wantKind fault.Kind // accepted or the error kind
	}{
		{"hierarchical", "azurekv://contoso-kv.vault.azure.net/keys/k?tenant=" + tenant, masterkey.Ref{Provider: "azurekv", ID: "contoso-kv.vault.azure.net/keys/k?tenant=" + tenant}, accepted},
		{"versioned", "azurekv://h/keys/k?tenant=t#0123abcd", masterkey.Ref{Provider: "azurekv", ID: "h/keys/k?tenant=t", Version: "0123abcd"}, accepted},
		{"absolute path", "local:///var/lib/orgkms/master.key", masterkey.Ref{Provider: "local", ID: "/var/lib/orgkms/master.key"}, accepted},
		{"opaque", "local:env:ORGKMS_MASTER_KEY", masterkey.Ref{Provider: "local", ID: "env:ORGKMS_MASTER_KEY"}, accepted},
		{"opaque with slashes", "local://env:ORGKMS_MASTER_KEY", masterkey.Ref{Provider: "local", ID: "env:ORGKMS_MASTER_KEY"}, accepted},
		{"scheme with digits and signs", "pkcs11+v3.x-y:token=hsm;object=kek", masterkey.Ref{Provider: "pkcs11+v3.x-y", ID: "token=hsm;object=kek"}, accepted},
		{"spaces in a path", "local:///a b/k", masterkey.Ref{Provider: "local", ID: "/a b/k"}, accepted},
		{"empty", "", masterkey.Ref{}, fault.Invalid},
		{"no scheme", "/var/lib/master.key", masterkey.Ref{}, fault.Invalid},
		{"empty scheme", "://x", masterkey.Ref{}, fault.Invalid},
		{"uppercase scheme", "AzureKV://h/keys/k", masterkey.Ref{}, fault.Invalid},
		{"scheme starting with a digit", "1x://k", masterkey.Ref{}, fault.Invalid},
		{"empty ID", "local://", masterkey.Ref{}, fault.Invalid},
		{"empty ID with a version", "local://#v1", masterkey.Ref{}, fault.Invalid},
		{"empty version", "fake://k#", masterkey.Ref{}, fault.Invalid},
		{"second #", "fake://k#v1#v2", masterkey.Ref{}, fault.Invalid},
		{"version with a slash", "fake://k#v/1", masterkey.Ref{}, fault.Invalid},
		{"control character", "local:///a\nb", masterkey.Ref{}, fault.Invalid},
		{"invalid UTF-8", "local:///\xff", masterkey.Ref{}, fault.Invalid},
		{"too long", "local:///" + strings.Repeat("a", 2100), masterkey.Ref{}, fault.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := masterkey.ParseRef(tc.in)
			if kind := kindOf(err); kind != tc.wantKind {
				t.Fatalf("ParseRef(%q) kind = %v (err %v), want %v", tc.in, kind, err, tc.wantKind)
			}
			if got != tc.want {
				t.Errorf("ParseRef(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if err == nil {
				if again, err := masterkey.ParseRef(got.String()); err != nil || again != got {
					t.Errorf("ParseRef(%q.String() = %q) = %#v, %v; want %#v", tc.in, got.String(), again, err, got)
				}
			}
		})
	}
}

func TestRefString(t *testing.T) {
	tests := []struct {
		ref  masterkey.Ref
		want string
	}{
		{masterkey.Ref{}, ""},
		{masterkey.Ref{Provider: "local", ID: "/k"}, "local:///k"},
		{masterkey.Ref{Provider: "local", ID: "env:K"}, "local:env:K"},
		{masterkey.Ref{Provider: "local", ID: "env:K", Version: "3f2a"}, "local:env:K#3f2a"},
		{masterkey.Ref{Provider: "pkcs11", ID: "token=hsm;object=kek"}, "pkcs11://token=hsm;object=kek"},
		{masterkey.Ref{Provider: "azurekv", ID: "h/keys/k?tenant=t", Version: "v1"}, "azurekv://h/keys/k?tenant=t#v1"},
	}
	for _, tc := range tests {
		if got := tc.ref.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

// registry has the drivers whose refs orgkms stores: local, azurekv, fake.
func registry(t testing.TB) *masterkey.Registry {
	t.Helper()
	az, err := azurekv.New(azurekv.Config{ClientID: "app", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	r := masterkey.NewRegistry()
	r.Register(localkey.Driver(), nil)
	r.Register(az.Driver(), nil)
	r.Register(masterkeytest.FakeDriver(), nil)
	return r
}

// The registry has each driver check and normalize its refs; every ref it
// returns prints in the one form and parses back to itself.
func TestRegistryParseRef(t *testing.T) {
	r := registry(t)
	azID := "contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=" + tenant
	tests := []struct {
		name, in string
		want     masterkey.Ref
		wantKind fault.Kind // accepted or the error kind
	}{
		{"azure, version after #", "azurekv://" + azID + "#0123abcd", masterkey.Ref{Provider: "azurekv", ID: azID, Version: "0123abcd"}, accepted},
		{"azure, version in the path", "azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk/0123ABCD?tenant=" + tenant, masterkey.Ref{Provider: "azurekv", ID: azID, Version: "0123abcd"}, accepted},
		{"azure, same version twice", "azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk/0123abcd?tenant=" + tenant + "#0123ABCD", masterkey.Ref{Provider: "azurekv", ID: azID, Version: "0123abcd"}, accepted},
		{"azure, host and tenant case", "azurekv://Contoso-KV.Vault.Azure.Net/keys/orgkms-cmk?tenant=" + strings.ToUpper(tenant), masterkey.Ref{Provider: "azurekv", ID: azID}, accepted},
		{"azure, two different versions", "azurekv://contoso-kv.vault.azure.net/keys/orgkms-cmk/aaaa?tenant=" + tenant + "#bbbb", masterkey.Ref{}, fault.Invalid},
		{"azure, not an Azure host", "azurekv://evil.example.com/keys/k?tenant=" + tenant, masterkey.Ref{}, fault.Invalid},
		{"azure, no tenant", "azurekv://contoso-kv.vault.azure.net/keys/k", masterkey.Ref{}, fault.Invalid},
		{"azure, opaque form", "azurekv:contoso-kv.vault.azure.net/keys/orgkms-cmk?tenant=" + tenant, masterkey.Ref{Provider: "azurekv", ID: azID}, accepted},
		{"local, cleaned path", "local:///var/lib/../lib/orgkms/master.key", masterkey.Ref{Provider: "local", ID: "/var/lib/orgkms/master.key"}, accepted},
		{"local, relative path", "local://master.key", masterkey.Ref{}, fault.Invalid},
		{"local, empty variable", "local:env:", masterkey.Ref{}, fault.Invalid},
		{"fake", "fake://k1#v2", masterkey.Ref{Provider: "fake", ID: "k1", Version: "v2"}, accepted},
		{"fake with a path", "fake://k1/x", masterkey.Ref{}, fault.Invalid},
		{"unknown provider", "awskms://alias/orgkms", masterkey.Ref{}, fault.Invalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.ParseRef(tc.in)
			if kind := kindOf(err); kind != tc.wantKind {
				t.Fatalf("Registry.ParseRef(%q) kind = %v (err %v), want %v", tc.in, kind, err, tc.wantKind)
			}
			if got != tc.want {
				t.Errorf("Registry.ParseRef(%q) = %#v, want %#v", tc.in, got, tc.want)
			}
			if err == nil {
				if again, err := r.ParseRef(got.String()); err != nil || again != got {
					t.Errorf("Registry.ParseRef(%q) = %#v, %v; want %#v", got.String(), again, err, got)
				}
			}
		})
	}
}

// FuzzParseRef: ParseRef returns a zero Ref with every error, and a ref
// that prints (String) to a text that parses back to the same ref; the same
// holds for the registry of the real drivers.
func FuzzParseRef(f *testing.F) {
	for _, s := range refSeeds(f) {
		f.Add(s)
	}
	r := registry(f)
	f.Fuzz(func(t *testing.T, s string) {
		for name, parse := range map[string]func(string) (masterkey.Ref, error){"ParseRef": masterkey.ParseRef, "Registry.ParseRef": r.ParseRef} {
			ref, err := parse(s)
			if err != nil {
				if ref != (masterkey.Ref{}) {
					t.Errorf("%s(%q) = %#v with error %v, want a zero Ref", name, s, ref, err)
				}
				if kindOf(err) != fault.Invalid {
					t.Errorf("%s(%q) error kind %v, want Invalid", name, s, kindOf(err))
				}
				continue
			}
			again, err := parse(ref.String())
			if err != nil || again != ref {
				t.Errorf("%s(%q) = %#v; %s of its String %q = %#v, %v", name, s, ref, name, ref.String(), again, err)
			}
		}
	})
}

// refSeeds reads testdata/refs.txt; every seed must parse.
func refSeeds(f *testing.F) []string {
	file, err := os.Open("testdata/refs.txt")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	r := registry(f)
	var seeds []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "# ") || line == "#" {
			continue
		}
		if _, err := r.ParseRef(line); err != nil {
			f.Fatalf("testdata/refs.txt: seed %q does not parse: %v", line, err)
		}
		seeds = append(seeds, line)
	}
	if err := sc.Err(); err != nil {
		f.Fatal(err)
	}
	if len(seeds) == 0 {
		f.Fatal("testdata/refs.txt holds no seed")
	}
	return seeds
}

// accepted is kindOf(nil): no error.
const accepted fault.Kind = -1

func kindOf(err error) fault.Kind {
	if err == nil {
		return accepted
	}
	return fault.KindOf(err)
}
