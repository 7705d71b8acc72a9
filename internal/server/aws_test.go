package server

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/metrics"
)

// TestProvidersAWS: the awskms driver is registered only with
// cmk.aws.enabled, and applies cmk.aws.allowed_regions to refs.
func TestProvidersAWS(t *testing.T) {
	zero := func() float64 { return 0 }
	log := slog.New(slog.DiscardHandler)
	r, _, err := providers(config.Config{}, Options{}, log, metrics.New(zero, zero, zero))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(r.Schemes(), "awskms") {
		t.Fatalf("awskms registered by default: %v", r.Schemes())
	}
	cfg := config.Config{CMK: config.CMK{AWS: config.AWS{Enabled: true, AllowedRegions: []string{"eu-west-2"}, CredentialsSource: "env"}}}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"}
	r, _, err = providers(cfg, Options{Getenv: func(k string) string { return env[k] }}, log, metrics.New(zero, zero, zero))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.Schemes(), "awskms") {
		t.Fatalf("awskms not registered with cmk.aws.enabled: %v", r.Schemes())
	}
	arn := "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	if _, err := r.ParseRef("awskms://" + arn); err != nil {
		t.Fatalf("ParseRef of a key in an allowed Region: %v", err)
	}
	if _, err := r.ParseRef("awskms://" + strings.Replace(arn, "eu-west-2", "us-east-1", 1)); fault.KindOf(err) != fault.Invalid {
		t.Fatalf("ParseRef of a key outside the allowed Regions: %v", err)
	}
	_, _, err = providers(cfg, Options{Getenv: func(string) string { return "" }}, log, metrics.New(zero, zero, zero))
	if err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("credentials_source env without the variables: %v", err)
	}
}
