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

// The deletion lifecycle, impact and vault-budget commands' mistakes exit
// 2 before any request (the address is a closed server, so a request would
// exit 1), with one error line; their help exits 0 on stdout.
func TestExitCodeOfLifecycleUsage(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	t.Setenv("ORGKMS_ADDR", srv.URL)
	t.Setenv("ORGKMS_TOKEN", "t")
	t.Setenv("ORGKMS_ORG", "")
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"org", "delete", "acme"}, exitUsage},
		{[]string{"org", "delete", "acme", "--yes", "--waiting-days", "6"}, exitUsage},
		{[]string{"org", "delete", "", "--yes"}, exitUsage},
		{[]string{"org", "delete", "acme", "--yes", "--bogus"}, exitUsage},
		{[]string{"org", "cancel-deletion"}, exitUsage},
		{[]string{"org", "cancel-deletion", "a", "b"}, exitUsage},
		{[]string{"key", "disable", "reports"}, exitUsage},
		{[]string{"key", "enable", "--org", "acme"}, exitUsage},
		{[]string{"key", "delete", "--org", "acme", "reports"}, exitUsage},
		{[]string{"key", "delete", "--org", "acme", "--yes", "--waiting-days", "x", "reports"}, exitUsage},
		{[]string{"key", "cancel-deletion", "--org", "acme", ""}, exitUsage},
		{[]string{"cmk", "impact", "--org", "acme"}, exitUsage},
		{[]string{"cmk", "impact", "explode", "--org", "acme"}, exitUsage},
		{[]string{"cmk", "impact", "delete-key", "--org", "acme"}, exitUsage},
		{[]string{"cmk", "impact", "disable", "--org", "acme", "--key", "k"}, exitUsage},
		{[]string{"cmk", "impact", "disable", "--org", "acme", "--format", "xml"}, exitUsage},
		{[]string{"vault-budget"}, exitUsage},
		{[]string{"vault-budget", "list", "extra"}, exitUsage},
		// The same commands well formed reach the (closed) server.
		{[]string{"org", "delete", "acme", "--yes"}, exitError},
		{[]string{"vault-budget", "list"}, exitError},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		got := run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
		if got != tt.want {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tt.args, got, tt.want, stderr.String())
		}
		if n := strings.Count(stderr.String(), "orgkms: error:"); n != 1 {
			t.Errorf("%q: %d error lines, want 1: %q", tt.args, n, stderr.String())
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: stdout %q, want nothing", tt.args, stdout.String())
		}
	}
	for _, cmd := range [][]string{{"org", "delete"}, {"org", "cancel-deletion"}, {"key", "disable"}, {"key", "enable"},
		{"key", "delete"}, {"key", "cancel-deletion"}, {"cmk", "impact"}, {"vault-budget"}, {"vault-budget", "list"}} {
		for _, h := range []string{"-h", "--help"} {
			var stdout, stderr bytes.Buffer
			if got := run(t.Context(), append(cmd, h), strings.NewReader(""), &stdout, &stderr); got != 0 || !strings.HasPrefix(stdout.String(), "Usage: orgkms ") || stderr.Len() != 0 {
				t.Errorf("%q %s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout", cmd, h, got, stdout.String(), stderr.String())
			}
		}
	}
}
