package config

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// GCP configures the gcpkms master-key driver: keys in Google Cloud KMS,
// reached as the platform's own service account. Off by default; when on,
// master_key may be a gcpkms:// ref (the platform master key in Cloud
// KMS). Customer managed keys in Google Cloud KMS (cmk.cloud gcp) are not
// offered yet.
type GCP struct {
	Enabled bool `json:"enabled"` // register the gcpkms driver
	// Endpoint is the Cloud KMS gRPC endpoint, host:port; default
	// cloudkms.googleapis.com:443.
	Endpoint string `json:"endpoint"`
	// CredentialsFile is the platform service account's credentials JSON
	// (service_account, external_account or impersonated_service_account);
	// default Application Default Credentials.
	CredentialsFile string `json:"credentials_file"`
	// AllowedLocations are the Cloud KMS locations whose keys are accepted,
	// e.g. ["europe-west4", "europe"]; default any.
	AllowedLocations []string `json:"allowed_locations"`
	// Timeout bounds each call to Cloud KMS, the client's retries included;
	// default 6s.
	Timeout Duration `json:"timeout"`
}

var gcpLocationRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func (g GCP) validate() error {
	if !g.Enabled {
		if g.Endpoint != "" || g.CredentialsFile != "" || len(g.AllowedLocations) > 0 || g.Timeout != 0 {
			return fmt.Errorf("cmk.gcp is set but cmk.gcp.enabled is false: set \"enabled\": true to use the Google Cloud KMS driver")
		}
		return nil
	}
	if g.Endpoint != "" {
		if _, _, err := net.SplitHostPort(g.Endpoint); err != nil {
			return fmt.Errorf("cmk.gcp.endpoint %q must be host:port, e.g. cloudkms.googleapis.com:443", g.Endpoint)
		}
	}
	if g.CredentialsFile != "" && !strings.HasPrefix(g.CredentialsFile, "/") {
		return fmt.Errorf("cmk.gcp.credentials_file must be an absolute path")
	}
	for _, l := range g.AllowedLocations {
		if !gcpLocationRe.MatchString(l) {
			return fmt.Errorf("cmk.gcp.allowed_locations: %q is not a Cloud KMS location (e.g. europe-west4, europe, global)", l)
		}
	}
	if time.Duration(g.Timeout) < 0 || time.Duration(g.Timeout) > 5*time.Minute {
		return fmt.Errorf("cmk.gcp.timeout must be between 0 (default 6s) and 5m")
	}
	return nil
}
