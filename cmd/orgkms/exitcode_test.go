package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A value the server refuses as invalid_argument is a mistake in the
// command line: exit 2, like a usage error the CLI finds itself; any other
// failed call exits 1.
func TestExitCodeOfRefusedValues(t *testing.T) {
	tests := []struct {
		status int
		code   string
		want   int
	}{
		{400, "invalid_argument", exitUsage},
		{409, "conflict", exitError},
		{400, "ciphertext_invalid", exitError},
		{503, "unavailable", exitError},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(tt.status)
			w.Write([]byte(`{"error":{"code":"` + tt.code + `","message":"id: must be lowercase","field":"id","request_id":"r1"}}`))
		}))
		t.Setenv("ORGKMS_ADDR", srv.URL)
		t.Setenv("ORGKMS_TOKEN", "t")
		t.Setenv("ORGKMS_MAX_RETRIES", "0")
		var stdout, stderr bytes.Buffer
		got := run(t.Context(), []string{"org", "create", "Bad_Name"}, strings.NewReader(""), &stdout, &stderr)
		srv.Close()
		if got != tt.want {
			t.Errorf("%d %s: exit %d, want %d (stderr %q)", tt.status, tt.code, got, tt.want, stderr.String())
		}
		if n := strings.Count(stderr.String(), "orgkms: error:"); n != 1 {
			t.Errorf("%s: %d error lines, want 1: %q", tt.code, n, stderr.String())
		}
	}
}

// A server command started with a config file that is not there is a
// mistake in how it was started: exit 2, with the file named.
func TestExitCodeOfMissingConfig(t *testing.T) {
	for _, cmd := range [][]string{{"serve"}, {"migrate"}, {"master-key", "rotate"}, {"hsm", "status"}} {
		var stdout, stderr bytes.Buffer
		args := append(cmd, "--config", t.TempDir()+"/nope.json")
		if got := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr); got != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", cmd, got, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), "nope.json does not exist") {
			t.Errorf("%v: stderr %q does not name the missing file", cmd, stderr.String())
		}
	}
}
