package config

import (
	"strings"
	"testing"
	"time"
)

// TestGCP: cmk.gcp is off by default, read from the file when enabled, and
// refused with a reason naming the field when malformed.
func TestGCP(t *testing.T) {
	c, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if c.CMK.GCP.Enabled {
		t.Fatal("cmk.gcp.enabled is on by default")
	}
	c, err = Load(Sources{Path: writeConfig(t, `{"cmk":{"gcp":{"enabled":true,"endpoint":"kms.example.test:443","credentials_file":"/etc/orgkms/gcp.json","allowed_locations":["europe-west4","europe"],"timeout":"3s","service_account":"orgkms@orgkms-platform.iam.gserviceaccount.com"}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if g := c.CMK.GCP; !g.Enabled || g.Endpoint != "kms.example.test:443" || g.CredentialsFile != "/etc/orgkms/gcp.json" ||
		len(g.AllowedLocations) != 2 || time.Duration(g.Timeout) != 3*time.Second || g.ServiceAccount != "orgkms@orgkms-platform.iam.gserviceaccount.com" {
		t.Fatalf("cmk.gcp = %+v", g)
	}
	tests := []struct{ name, file, want string }{
		{"set but off", `{"cmk":{"gcp":{"endpoint":"a:1"}}}`, "cmk.gcp.enabled"},
		{"service account but off", `{"cmk":{"gcp":{"service_account":"orgkms@p.iam.gserviceaccount.com"}}}`, "cmk.gcp.enabled"},
		{"bad service account", `{"cmk":{"gcp":{"enabled":true,"service_account":"orgkms at p"}}}`, "cmk.gcp.service_account"},
		{"bad endpoint", `{"cmk":{"gcp":{"enabled":true,"endpoint":"nope"}}}`, "cmk.gcp.endpoint"},
		{"relative credentials", `{"cmk":{"gcp":{"enabled":true,"credentials_file":"gcp.json"}}}`, "cmk.gcp.credentials_file"},
		{"bad location", `{"cmk":{"gcp":{"enabled":true,"allowed_locations":["Europe West"]}}}`, "cmk.gcp.allowed_locations"},
		{"negative timeout", `{"cmk":{"gcp":{"enabled":true,"timeout":"-1s"}}}`, "cmk.gcp.timeout"},
		{"unknown field", `{"cmk":{"gcp":{"enabled":true,"project":"p"}}}`, "project"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(Sources{Path: writeConfig(t, tt.file)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load(%s) = %v, want an error naming %s", tt.file, err, tt.want)
			}
		})
	}
}
