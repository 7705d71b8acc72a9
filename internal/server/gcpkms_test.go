//go:build !no_gcpkms

package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/server"
)

// TestPlatformKeyInGCPKMS: with cmk.gcp enabled, the platform master key
// can be a key in Google Cloud KMS: an org's root key is wrapped by Cloud
// KMS (through the official client, against the fake) and data round-trips
// after a restart, which must unwrap the root key again.
func TestPlatformKeyInGCPKMS(t *testing.T) {
	const key = "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/platform"
	fake := gcpkmsemu.New()
	addr, err := fake.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.CreateKey(key, gcpkmsemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cfg := config.Config{DataDir: t.TempDir(), MasterKey: "gcpkms://" + key + "/cryptoKeyVersions/1",
		CMK: config.CMK{GCP: config.GCP{Enabled: true, Endpoint: addr, AllowedLocations: []string{"europe-west4"}}}}
	opts := server.Options{GCPInsecure: true}
	s1 := open(t, cfg, opts)
	if _, err := s1.Keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	ct, err := s1.Keys.Encrypt(ctx, "test", "acme", "default", []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls("Encrypt"); n == 0 {
		t.Fatal("the org root key was not wrapped by Cloud KMS")
	}
	// Every Cloud KMS call drew from the budget of the key's project and
	// location.
	if st, ok := s1.Budget.State(masterkey.Vault{Cloud: "gcp", Name: "acme-prod/europe-west4"}); !ok || st.Calls["load"]["ok"] == 0 {
		t.Fatalf("budget of the key's project and location: %+v, %v; want the calls counted", st, ok)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, cfg, opts)
	decrypts := fake.Calls("Decrypt")
	pt, _, err := s2.Keys.Decrypt(ctx, "test", "acme", "default", ct.Bytes, nil)
	if err != nil || !bytes.Equal(pt, []byte("hello")) {
		t.Fatalf("Decrypt after restart = %q, %v", pt, err)
	}
	if fake.Calls("Decrypt") == decrypts {
		t.Fatal("the restarted server did not unwrap the root key with Cloud KMS")
	}
	// Disabled in Cloud KMS: a server does not start on an unusable
	// platform key, and says which.
	if err := fake.SetState(key, "1", kmspb.CryptoKeyVersion_DISABLED); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Logger, opts.Migrate = slog.New(slog.DiscardHandler), true
	if s3, err := server.Open(ctx, cfg, opts); err == nil {
		s3.Close()
		t.Fatal("Open succeeded with the platform key's version disabled in Cloud KMS")
	} else if !strings.Contains(err.Error(), "not usable") || !strings.Contains(err.Error(), "gcpkms://"+key+"#1") {
		t.Fatalf("Open with the platform key disabled = %v, want it named as not usable", err)
	}
}

// TestGCPKMSOffByDefault: without cmk.gcp.enabled there is no gcpkms
// driver, and a gcpkms master key is refused naming the available ones.
func TestGCPKMSOffByDefault(t *testing.T) {
	cfg := config.Config{DataDir: t.TempDir(), MasterKey: "gcpkms://projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/platform"}
	_, err := server.Open(t.Context(), cfg, server.Options{Migrate: true, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `provider "gcpkms" is not available`) {
		t.Fatalf("Open with a gcpkms master key and cmk.gcp off = %v, want the provider refused", err)
	}
}

// TestGCPCloudOffered: cmk.clouds may offer gcp with cmk.gcp on: the
// server builds the Google cloud, a grant to the configured service
// account, next to Azure.
func TestGCPCloudOffered(t *testing.T) {
	const sa = "orgkms@orgkms-platform.iam.gserviceaccount.com"
	cfg := config.Config{DataDir: t.TempDir(), CMK: config.CMK{Cloud: "gcp", Clouds: []string{"gcp", "azure"},
		Azure: config.Azure{ClientID: "app", ClientSecret: "s"},
		GCP:   config.GCP{Enabled: true, Endpoint: "127.0.0.1:1", ServiceAccount: sa}}}
	s := open(t, cfg, server.Options{GCPInsecure: true})
	clouds := s.CMK.Clouds()
	if len(clouds) != 2 || clouds[0].Name() != "gcp" || clouds[1].Name() != "azure" {
		t.Fatalf("clouds offered = %v, want gcp then azure", clouds)
	}
	a := clouds[0].Authorization("acme")
	if len(a.Values) != 1 || a.Values[0].Value != sa || clouds[0].Scheme() != "gcpkms" {
		t.Errorf("gcp cloud authorization = %+v, want a grant to %s", a, sa)
	}
}
