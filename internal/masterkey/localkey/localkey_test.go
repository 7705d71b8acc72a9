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

func TestAddVersion(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "master.key")
	if _, err := localkey.EnsureFile(path); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(path)
	p := localkey.New(localkey.Config{})
	ref, _ := localkey.ParseRef("local://" + path)
	old, err := p.Wrap(ctx, ref, make([]byte, 32), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	if old.Key.Version != localkey.Version(first) {
		t.Fatalf("Wrap of a single-key file: version %q, want %q", old.Key.Version, localkey.Version(first))
	}
	v2, err := localkey.AddVersion(path)
	if err != nil {
		t.Fatalf("AddVersion = %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 || st.Size() != 64 {
		t.Fatalf("key file after AddVersion: mode %v size %d, want 0600 and 64", st.Mode().Perm(), st.Size())
	}
	// The same provider (a running node) sees the new version at once.
	d, err := p.Describe(ctx, ref)
	if err != nil || d.Key.Version != v2 {
		t.Fatalf("Describe after AddVersion = %q, %v; want %q", d.Key.Version, err, v2)
	}
	vs, err := p.Versions(ctx, ref)
	if err != nil || len(vs) != 2 || vs[0] != old.Key.Version || vs[1] != v2 {
		t.Fatalf("Versions = %v, %v; want [%s %s]", vs, err, old.Key.Version, v2)
	}
	nw, err := p.Wrap(ctx, ref, make([]byte, 32), []byte("aad"))
	if err != nil || nw.Key.Version != v2 {
		t.Fatalf("Wrap after AddVersion: version %q, %v; want %q", nw.Key.Version, err, v2)
	}
	// Both versions unwrap, on this provider and on a fresh one.
	for _, q := range []*localkey.Provider{p, localkey.New(localkey.Config{})} {
		for _, w := range []masterkey.Wrapped{old, nw} {
			if _, err := q.Unwrap(ctx, w.Key, w.Ciphertext, []byte("aad")); err != nil {
				t.Fatalf("Unwrap of version %s = %v", w.Key.Version, err)
			}
		}
	}
	// A blob names its version: under the other version it does not unwrap.
	swapped := old.Key.WithVersion(v2)
	if _, err := p.Unwrap(ctx, swapped, old.Ciphertext, []byte("aad")); fault.KindOf(err) != fault.Integrity {
		t.Fatalf("Unwrap of a version-1 blob as version 2 kind = %v, want %v", fault.KindOf(err), fault.Integrity)
	}
	// Wrap under an explicit old version still works (a re-wrap job never
	// asks for it, but the contract holds).
	if w, err := p.Wrap(ctx, old.Key, make([]byte, 32), []byte("aad")); err != nil || w.Key.Version != old.Key.Version {
		t.Fatalf("Wrap at version %s = %q, %v", old.Key.Version, w.Key.Version, err)
	}
}

func TestKeyFileSizes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		size     int
		wantKind fault.Kind
	}{
		{"one version", 32, 0},
		{"three versions", 96, 0},
		{"empty", 0, fault.Invalid},
		{"torn", 40, fault.Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, tt.name+".key")
			b := make([]byte, tt.size)
			for i := range b {
				b[i] = byte(i*7 + 3)
			}
			os.WriteFile(f, b, 0o600)
			ref, _ := localkey.ParseRef("local://" + f)
			d, err := localkey.New(localkey.Config{}).Describe(t.Context(), ref)
			if fault.KindOf(err) != tt.wantKind && !(tt.wantKind == 0 && err == nil) {
				t.Fatalf("Describe kind = %v, want %v", fault.KindOf(err), tt.wantKind)
			}
			if tt.wantKind == 0 && d.Key.Version != localkey.Version(b[tt.size-32:]) {
				t.Fatalf("current version = %q, want the last 32 bytes' %q", d.Key.Version, localkey.Version(b[tt.size-32:]))
			}
		})
	}
}
