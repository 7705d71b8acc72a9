package server_test

import (
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
)

// TestServerOffersAWS: with "aws" in cmk.clouds and the driver enabled, the
// server offers the AWS cloud with orgkms' account and a per-org external
// ID.
func TestServerOffersAWS(t *testing.T) {
	cfg := config.Config{DataDir: t.TempDir(), CMK: config.CMK{Clouds: []string{"aws"}, AWS: config.AWS{Enabled: true, CredentialsSource: "env",
		AllowedRegions: []string{"eu-west-2"}, AccountID: "444455556666", ExternalIDSecret: strings.Repeat("x", 32)}}}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"}
	s := open(t, cfg, server.Options{Getenv: func(k string) string { return env[k] }})
	clouds := s.CMK.Clouds()
	if len(clouds) != 1 || clouds[0].Name() != "aws" || clouds[0].Scheme() != "awskms" {
		t.Fatalf("clouds offered: %v", clouds)
	}
	auth := clouds[0].Authorization("acme")
	values := map[string]string{}
	for _, v := range auth.Values {
		values[v.Name] = v.Value
	}
	if auth.Method != cmk.AuthGrant || values["account_id"] != "444455556666" || values["external_id"] == "" || values["external_id"] == clouds[0].Authorization("umbrella").Values[1].Value {
		t.Errorf("authorization %+v", auth)
	}
}
