package localkey_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
)

func TestConformance(t *testing.T) {
	dir := t.TempDir()
	var refs [2]masterkey.Ref
	for i := range refs {
		p := filepath.Join(dir, []string{"a.key", "b.key"}[i])
		if _, err := localkey.EnsureFile(p); err != nil {
			t.Fatal(err)
		}
		r, err := localkey.ParseRef("local://" + p)
		if err != nil {
			t.Fatal(err)
		}
		refs[i] = r
	}
	masterkeytest.Run(t, masterkeytest.Harness{
		Open: func(t *testing.T) masterkey.Provider { return localkey.New(localkey.Config{}) },
		Keys: func(t *testing.T) (masterkey.Ref, masterkey.Ref) { return refs[0], refs[1] },
	})
}

func TestEnsureFileMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "master.key")
	created, err := localkey.EnsureFile(p)
	if err != nil || !created {
		t.Fatalf("EnsureFile = %v, %v; want true, nil", created, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != 32 {
		t.Fatalf("master key file mode %v size %d, want 0600 and 32", st.Mode().Perm(), st.Size())
	}
	before, _ := os.ReadFile(p)
	created, err = localkey.EnsureFile(p)
	after, _ := os.ReadFile(p)
	if err != nil || created || string(before) != string(after) {
		t.Fatalf("second EnsureFile changed the key or reported creation")
	}
}

func TestParseRef(t *testing.T) {
	tests := []struct {
		uri      string
		wantID   string
		wantKind fault.Kind
	}{
		{"local:///var/lib/orgkms/master.key", "/var/lib/orgkms/master.key", 0},
		{"local:env:ORGKMS_MASTER_KEY", "env:ORGKMS_MASTER_KEY", 0},
		{"local:relative/path", "", fault.Invalid},
		{"local:env:", "", fault.Invalid},
		{"local://env:", "", fault.Invalid},
		{"azurekv://x", "", fault.Invalid},
	}
	for _, tt := range tests {
		ref, err := localkey.ParseRef(tt.uri)
		if tt.wantKind != 0 {
			if fault.KindOf(err) != tt.wantKind {
				t.Errorf("ParseRef(%q) kind = %v, want %v", tt.uri, fault.KindOf(err), tt.wantKind)
			}
			continue
		}
		if err != nil || ref.ID != tt.wantID {
			t.Errorf("ParseRef(%q) = %+v, %v; want ID %q", tt.uri, ref, err, tt.wantID)
		}
		if got := localkey.URI(ref); got != tt.uri {
			t.Errorf("URI(ParseRef(%q)) = %q", tt.uri, got)
		}
		// The generic rendering parses back to the same ref.
		if back, err := localkey.ParseRef(ref.String()); err != nil || back != ref {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", ref.String(), back, err, ref)
		}
	}
}

func TestEnvKeyAndBadModes(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	env := map[string]string{"K": base64.StdEncoding.EncodeToString(raw), "SHORT": "AAAA"}
	p := localkey.New(localkey.Config{Getenv: func(k string) string { return env[k] }})
	k := masterkey.NewKeeper("local", p, masterkey.KeeperOptions{})
	ref, _ := localkey.ParseRef("local:env:K")
	w, err := k.Wrap(t.Context(), ref, raw, []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if w.Key.Version != localkey.Version(raw) {
		t.Fatalf("version = %q, want key check value %q", w.Key.Version, localkey.Version(raw))
	}
	short, _ := localkey.ParseRef("local:env:SHORT")
	if _, err := k.Wrap(t.Context(), short, raw, []byte("aad")); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Wrap with a short env key kind = %v, want %v", fault.KindOf(err), fault.Invalid)
	}
	missing, _ := localkey.ParseRef("local:env:MISSING")
	if _, err := k.Wrap(t.Context(), missing, raw, []byte("aad")); fault.KindOf(err) != fault.KeyNotFound {
		t.Fatalf("Wrap with a missing env key kind = %v, want %v", fault.KindOf(err), fault.KeyNotFound)
	}
	f := filepath.Join(t.TempDir(), "open.key")
	os.WriteFile(f, raw, 0o644)
	open, _ := localkey.ParseRef("local://" + f)
	if _, err := k.Wrap(t.Context(), open, raw, []byte("aad")); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("Wrap with a world-readable key file kind = %v, want %v", fault.KindOf(err), fault.Invalid)
	}
	// A different version must not unwrap.
	w.Key.Version = "0000000000000000"
	if _, err := k.Unwrap(t.Context(), w, []byte("aad")); fault.KindOf(err) != fault.KeyNotFound {
		t.Fatalf("Unwrap of an unknown version kind = %v, want %v", fault.KindOf(err), fault.KeyNotFound)
	}
}
