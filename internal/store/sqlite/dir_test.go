package sqlite

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTightenDir(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     os.FileMode
		want     os.FileMode
		wantWarn string
	}{
		{"private stays", 0o700, 0o700, ""},
		{"world readable", 0o755, 0o700, "tightened it to 0700"},
		{"group writable", 0o770, 0o700, "tightened it to 0700"},
		{"shared sticky left alone", 0o777 | os.ModeSticky, 0o777, "not this process's to tighten"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			if err := TightenDir(dir, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
				t.Fatalf("TightenDir = %v", err)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("mode after TightenDir = %v, want %v", got, tc.want)
			}
			switch {
			case tc.wantWarn == "" && logs.Len() > 0:
				t.Errorf("unexpected warning: %s", logs.String())
			case tc.wantWarn != "" && !strings.Contains(logs.String(), tc.wantWarn):
				t.Errorf("log %q, want a warning with %q", logs.String(), tc.wantWarn)
			}
		})
	}
	if err := TightenDir(filepath.Join(t.TempDir(), "missing"), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("TightenDir(missing) = nil, want an error")
	}
}
