package main

import (
	"strings"
	"testing"

	"github.com/orgkms/orgkms/client"
)

// TestPrintCMKTest: the CLI's summary of Test Managed Key says "all checks
// passed" only when no check warned, counts the warnings otherwise, and
// fails when a check failed.
func TestPrintCMKTest(t *testing.T) {
	pass := client.CMKCheck{ID: "key", Name: "Key exists", Status: "pass", Detail: "ok"}
	warn := client.CMKCheck{ID: "deletion", Name: "Soft delete and purge protection", Status: "warn", Detail: "purge protection is off", Remedy: "turn it on"}
	fail := client.CMKCheck{ID: "operations", Name: "Permitted operations", Status: "fail", Detail: "does not permit unwrapKey", Remedy: "add Unwrap Key"}
	tests := []struct {
		name      string
		rep       client.CMKTestReport
		wantOut   string
		wantErr   string
		forbidOut string
	}{
		{"all passed", client.CMKTestReport{OK: true, Checks: []client.CMKCheck{pass, pass}}, "all checks passed; next: orgkms cmk enable --org acme", "", "warning"},
		{"one warning", client.CMKTestReport{OK: true, Checks: []client.CMKCheck{pass, warn}}, "passed with 1 warning", "", "all checks passed"},
		{"two warnings", client.CMKTestReport{OK: true, Checks: []client.CMKCheck{warn, pass, warn}}, "passed with 2 warnings", "", "all checks passed"},
		{"failed", client.CMKTestReport{OK: false, Checks: []client.CMKCheck{pass, warn, fail}}, "fix: add Unwrap Key", "1 of 3 checks failed", "passed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			err := printCMKTest(&out, tt.rep, "acme")
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("printCMKTest error = %v, want %q", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.wantOut) || strings.Contains(out.String(), tt.forbidOut) {
				t.Fatalf("printCMKTest output:\n%s\nwant %q and not %q", out.String(), tt.wantOut, tt.forbidOut)
			}
		})
	}
}
