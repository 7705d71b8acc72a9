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
// KMS), and cmk.clouds may offer "gcp": customer managed keys in Google
// Cloud KMS, granted by the customer to ServiceAccount.
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
	// ServiceAccount is the e-mail of the service account orgkms calls
	// Cloud KMS as (the one of CredentialsFile or of the Application
	// Default Credentials): customers grant it access to their keys.
	// Required when cmk.clouds offers gcp.
	ServiceAccount string `json:"service_account"`
}

var (
	gcpLocationRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	// A service account e-mail: NAME@PROJECT.iam.gserviceaccount.com, or
	// another e-mail for Google-managed service accounts.
	gcpServiceAccountRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}@[a-z0-9][a-z0-9.-]{0,200}\.[a-z]{2,}$`)
)

func (g GCP) validate() error {
	if !g.Enabled {
		if g.Endpoint != "" || g.CredentialsFile != "" || len(g.AllowedLocations) > 0 || g.Timeout != 0 || g.ServiceAccount != "" {
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
	if g.ServiceAccount != "" && !gcpServiceAccountRe.MatchString(g.ServiceAccount) {
		return fmt.Errorf("cmk.gcp.service_account %q must be a service account e-mail, e.g. orgkms@PROJECT.iam.gserviceaccount.com", g.ServiceAccount)
	}
	if time.Duration(g.Timeout) < 0 || time.Duration(g.Timeout) > 5*time.Minute {
		return fmt.Errorf("cmk.gcp.timeout must be between 0 (default 6s) and 5m")
	}
	return nil
}
