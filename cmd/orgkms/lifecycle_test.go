package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/orgkms/orgkms/client"
)

// TestLifecycleHints: the lifecycle codes get the command that restores
// the org or key, with their names; other errors keep their own hints.
func TestLifecycleHints(t *testing.T) {
	apiErr := func(code client.Code) error {
		return fmt.Errorf("encrypt: %w", &client.Error{Status: 409, Code: string(code), Message: "m"})
	}
	tests := []struct {
		name     string
		err      error
		key      string
		want     string // a substring of the only hint; "" = no hint of its own
		wantSame bool   // the error is returned as it is
	}{
		{"org pending", apiErr(client.CodeOrgPendingDeletion), "default", "orgkms org cancel-deletion acme", false},
		{"org pending, no key", apiErr(client.CodeOrgPendingDeletion), "", "orgkms org cancel-deletion acme", false},
		{"org deleted", apiErr(client.CodeOrgDeleted), "default", "org acme was crypto-shredded", false},
		{"key disabled", apiErr(client.CodeKeyDisabled), "default", "orgkms key enable --org acme default", false},
		{"key pending", apiErr(client.CodeKeyPendingDeletion), "default", "orgkms key cancel-deletion --org acme default", false},
		{"key deleted", apiErr(client.CodeKeyDeleted), "default", "key default was crypto-shredded", false},
		{"key code without a key", apiErr(client.CodeKeyDisabled), "", "", true},
		{"other code", apiErr(client.CodeConflict), "default", "", true},
		{"not an API error", fmt.Errorf("boom"), "default", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lifecycleHints(tt.err, "acme", tt.key)
			if tt.wantSame {
				if got != tt.err {
					t.Errorf("lifecycleHints = %v (hints %q), want the error unchanged", got, errorHints(got))
				}
				return
			}
			hints := errorHints(got)
			if len(hints) != 1 || !strings.Contains(hints[0], tt.want) {
				t.Errorf("hints = %q, want one containing %q", hints, tt.want)
			}
			if got.Error() != tt.err.Error() {
				t.Errorf("error = %q, want %q", got.Error(), tt.err.Error())
			}
		})
	}
}

// recorder is a fake API that records the requests it gets and answers
// each with status and body.
type recorder struct {
	mu     sync.Mutex
	got    []string // "METHOD PATH BODY"
	status int
	body   string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.got = append(r.got, req.Method+" "+req.URL.Path+" "+strings.TrimSpace(string(b)))
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	io.WriteString(w, r.body)
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestDeleteCommandLine: org delete and key delete send nothing without
// --yes or with a waiting period out of bounds (exit 2), and send the
// waiting period they are given.
func TestDeleteCommandLine(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantExit int
		wantReq  string // "" = no request at all
		wantErr  string // in stderr
	}{
		{"org without --yes", []string{"org", "delete", "acme"}, exitUsage, "", "deleting org acme needs --yes"},
		{"org days too few", []string{"org", "delete", "acme", "--yes", "--waiting-days", "6"}, exitUsage, "", "--waiting-days must be between 7 and 30, got 6"},
		{"org days too many", []string{"org", "delete", "acme", "--yes", "--waiting-days", "31"}, exitUsage, "", "between 7 and 30"},
		{"org default", []string{"org", "delete", "acme", "--yes"}, exitOK, `DELETE /v1/orgs/acme {"waiting_days":7}`, ""},
		{"org 30 days", []string{"org", "delete", "--yes", "--waiting-days", "30", "acme"}, exitOK, `DELETE /v1/orgs/acme {"waiting_days":30}`, ""},
		{"key without --yes", []string{"key", "delete", "--org", "acme", "default"}, exitUsage, "", "deleting key default of org acme needs --yes"},
		{"key days", []string{"key", "delete", "--org", "acme", "--yes", "--waiting-days", "9", "default"}, exitOK, `DELETE /v1/orgs/acme/keys/default {"waiting_days":9}`, ""},
		{"key without --org", []string{"key", "delete", "--yes", "default"}, exitUsage, "", "--org is required"},
		{"key without --org and --yes", []string{"key", "delete", "default"}, exitUsage, "", "deleting key default needs --yes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{status: 200, body: `{"id":"acme","name":"acme","state":"pending_deletion","pending_deletion":true,"deletion_date":"2030-01-08T00:00:00Z"}`}
			if tt.args[0] == "key" {
				rec.status, rec.body = 200, `{"name":"default","state":"pending_deletion","deletion_date":"2030-01-08T00:00:00Z"}`
			}
			srv := httptest.NewServer(rec)
			defer srv.Close()
			t.Setenv("ORGKMS_ADDR", srv.URL)
			t.Setenv("ORGKMS_TOKEN", "t")
			t.Setenv("ORGKMS_ORG", "")
			var stdout, stderr bytes.Buffer
			got := run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if got != tt.wantExit {
				t.Errorf("exit %d, want %d (stderr %q)", got, tt.wantExit, stderr.String())
			}
			reqs := rec.requests()
			if tt.wantReq == "" && len(reqs) > 0 {
				t.Errorf("sent %q, want no request", reqs)
			}
			if tt.wantReq != "" && !slices.Equal(reqs, []string{tt.wantReq}) {
				t.Errorf("sent %q, want %q", reqs, tt.wantReq)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantErr)
			}
			if tt.wantExit == exitOK && !strings.Contains(stdout.String(), "2030-01-08T00:00:00Z") {
				t.Errorf("stdout %q does not name the deletion date", stdout.String())
			}
		})
	}
}

// TestExitCodeOfLifecycleRefusals: a refusal by the deletion lifecycle is
// not a mistake in the command line: exit 1.
func TestExitCodeOfLifecycleRefusals(t *testing.T) {
	for _, code := range []client.Code{client.CodeOrgPendingDeletion, client.CodeOrgDeleted, client.CodeKeyDisabled, client.CodeKeyPendingDeletion, client.CodeKeyDeleted} {
		rec := &recorder{status: 409, body: `{"error":{"code":"` + string(code) + `","message":"refused","request_id":"r1"}}`}
		srv := httptest.NewServer(rec)
		t.Setenv("ORGKMS_ADDR", srv.URL)
		t.Setenv("ORGKMS_TOKEN", "t")
		t.Setenv("ORGKMS_MAX_RETRIES", "0")
		var stdout, stderr bytes.Buffer
		got := run(t.Context(), []string{"encrypt", "--org", "acme"}, strings.NewReader("x"), &stdout, &stderr)
		srv.Close()
		if got != exitError {
			t.Errorf("%s: exit %d, want %d (stderr %q)", code, got, exitError, stderr.String())
		}
		if n := strings.Count(stderr.String(), "orgkms: hint:"); n != 1 {
			t.Errorf("%s: %d hint lines, want 1: %q", code, n, stderr.String())
		}
	}
}
