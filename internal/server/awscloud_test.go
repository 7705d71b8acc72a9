package server_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
)

// TestServerOffersAWS: with "aws" in cmk.clouds and the driver enabled, the
// server offers the AWS cloud with orgkms' account and a per-org external
// ID, and the API lists it (GET /v1/orgs/{org}/cmk/clouds, as orgkms cmk
// clouds shows it) and configures a key by its fields.
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

func TestAPIListsAndConfiguresAWS(t *testing.T) {
	ctx := t.Context()
	cfg := config.Config{DataDir: t.TempDir(), CMK: config.CMK{Clouds: []string{"aws"}, AWS: config.AWS{Enabled: true, CredentialsSource: "env",
		AccountID: "444455556666", ExternalIDSecret: strings.Repeat("x", 32)}}}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"}
	s := open(t, cfg, server.Options{Getenv: func(k string) string { return env[k] }})
	srv := httptest.NewServer(s.Handler)
	t.Cleanup(srv.Close)
	if _, err := s.Keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	_, token, err := s.Tokens.Create(ctx, "test", auth.CreateTokenRequest{Principal: "sec", OrgID: "acme", Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Addr: srv.URL, Token: token, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.CMKClouds(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Clouds) != 1 || cl.Clouds[0].Name != "aws" || cl.Clouds[0].DisplayName != "AWS KMS" || cl.Clouds[0].Authorization.Method != "grant" ||
		len(cl.Clouds[0].Fields) != 2 || cl.Clouds[0].Fields[0].Name != "key_arn" || cl.Clouds[0].Fields[1].Name != "role_arn" {
		t.Fatalf("clouds %+v", cl)
	}
	external := ""
	for _, v := range cl.Clouds[0].Authorization.Values {
		if v.Name == "external_id" {
			external = v.Value
		}
	}
	if !strings.HasPrefix(external, "orgkms-") {
		t.Fatalf("no external ID in %+v", cl.Clouds[0].Authorization)
	}
	const keyARN = "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	st, err := c.CMKConfigure(ctx, "acme", client.CMKConfigureRequest{Cloud: "aws", Fields: map[string]string{"key_arn": keyARN, "role_arn": "arn:aws:iam::111122223333:role/orgkms-cmk"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Cloud != "aws" || st.Fields["key_arn"] != keyARN || st.Fields["role_arn"] != "arn:aws:iam::111122223333:role/orgkms-cmk" || st.VaultURI != keyARN || st.TenantID != "arn:aws:iam::111122223333:role/orgkms-cmk" {
		t.Errorf("configured %+v", st)
	}
	if _, err := c.CMKConfigure(ctx, "acme", client.CMKConfigureRequest{Cloud: "aws", Fields: map[string]string{"key_arn": "alias/orgkms", "role_arn": "arn:aws:iam::111122223333:role/orgkms-cmk"}}); err == nil || !strings.Contains(err.Error(), "alias") {
		t.Errorf("configure with an alias: %v", err)
	}
}
