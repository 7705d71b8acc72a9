package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
)

// A bad action, or a key action without --key, is a usage error: exit 2,
// with the allowed actions, before any request.
func TestImpactUsageErrors(t *testing.T) {
	t.Setenv("ORGKMS_ADDR", "http://127.0.0.1:1") // never called
	t.Setenv("ORGKMS_TOKEN", "t")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cmk", "impact", "explode", "--org", "acme"}, "use one of disable, replace, fallback, decrypt-only, revoke, delete-org, disable-key, delete-key"},
		{[]string{"cmk", "impact", "delete-key", "--org", "acme"}, "delete-key needs --key"},
		{[]string{"cmk", "impact", "revoke", "--org", "acme", "--key", "k"}, "--key applies to disable-key and delete-key only"},
		{[]string{"cmk", "impact", "revoke"}, "--org is required"},
	} {
		var stdout, stderr bytes.Buffer
		if got := run(t.Context(), tt.args, strings.NewReader(""), &stdout, &stderr); got != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tt.args, got, exitUsage, stderr.String())
		}
		if !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("%v: stderr %q, want %q", tt.args, stderr.String(), tt.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if got := run(t.Context(), []string{"cmk", "impact", "--help"}, strings.NewReader(""), &stdout, &stderr); got != 0 {
		t.Errorf("cmk impact --help: exit %d, want 0", got)
	}
}

func TestImpactSummary(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	last := now.Add(-2 * time.Minute)
	im := client.Impact{Action: "disable", Refused24h: 1234, RefusedCallers: 3, RefusedFrom: "now",
		DataKeys:         []client.ImpactKey{{Name: "a", LastUse: &last}, {Name: "b"}},
		Rewrap:           client.ImpactRewrap{Required: true, Wraps: 1, EstimatedSeconds: 0.1},
		FallbackPossible: true}
	want := "Disabling the customer managed key now would refuse 1,234 calls a day from 3 callers to 2 data keys; last use 2 min ago; re-wrap: 1 wrap, about 0.1 s; fall back: possible"
	if got := impactSummary(im, now); got != want {
		t.Errorf("impactSummary =\n%q, want\n%q", got, want)
	}
	im = client.Impact{Action: "revoke", Refused24h: 1, RefusedCallers: 1, RefusedFrom: "2030-01-02T15:04:05Z", DataKeys: []client.ImpactKey{{Name: "a"}}}
	want = "Revoking the org from 2030-01-02T15:04:05Z would refuse 1 call a day from 1 caller to 1 data key; no use in the last 24 h; re-wrap: none; fall back: not possible"
	if got := impactSummary(im, now); got != want {
		t.Errorf("impactSummary =\n%q, want\n%q", got, want)
	}
	im = client.Impact{Action: "disable", State: "platform", Blocked: "customer managed keys are not enabled for this org", Calls24h: 5,
		Callers: []client.ImpactCaller{{Principal: "a"}, {Principal: "b"}}, RefusedFrom: "now", DataKeys: []client.ImpactKey{{Name: "a"}, {Name: "b"}}, FallbackPossible: true}
	want = "Disabling the customer managed key is not possible now; the org's 2 data keys had 5 calls a day from 2 callers; no use in the last 24 h; re-wrap: none; fall back: not needed (on the platform key)"
	if got := impactSummary(im, now); got != want {
		t.Errorf("impactSummary =\n%q, want\n%q", got, want)
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := impactThousands(n); got != want {
			t.Errorf("impactThousands(%d) = %q, want %q", n, got, want)
		}
	}
}
