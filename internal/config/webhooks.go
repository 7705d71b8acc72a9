package config

import (
	"fmt"
	"os"
)

// Webhooks configures the delivery of signed notifications to the
// webhooks orgs register (package notify). Zero values take the defaults
// named.
type Webhooks struct {
	// AllowHTTP accepts http:// webhook URLs (development only; default
	// off: https:// is required).
	AllowHTTP bool `json:"allow_http"`
	// AllowPrivateAddresses accepts receivers whose address is loopback,
	// private (RFC 1918, ULA), link-local or otherwise not public (default
	// off: the SSRF guard refuses them at creation and at every
	// connection).
	AllowPrivateAddresses bool `json:"allow_private_addresses"`
	// CAFile is a PEM file of extra CAs trusted for receivers' certificates
	// (besides the system roots).
	CAFile      string   `json:"ca_file"`
	Timeout     Duration `json:"timeout"`      // one attempt; default 10s
	MaxAttempts int      `json:"max_attempts"` // per delivery; default 30
	MaxAge      Duration `json:"max_age"`      // a delivery is given up this long after its event; default 24h
	Backoff     Duration `json:"backoff"`      // first retry delay, doubled after each failure (with jitter); default 30s
	MaxBackoff  Duration `json:"max_backoff"`  // default 1h
	Poll        Duration `json:"poll"`         // how often each node looks for due deliveries; default 1s
	Workers     int      `json:"workers"`      // deliveries sent at once per node; default 4
}

// validate checks the webhook settings.
func (w Webhooks) validate() error {
	for name, d := range map[string]Duration{"timeout": w.Timeout, "max_age": w.MaxAge, "backoff": w.Backoff, "max_backoff": w.MaxBackoff, "poll": w.Poll} {
		if d < 0 {
			return fmt.Errorf("webhooks.%s must not be negative", name)
		}
	}
	if w.MaxAttempts < 0 || w.Workers < 0 {
		return fmt.Errorf("webhooks.max_attempts and webhooks.workers must not be negative")
	}
	if w.CAFile != "" {
		if _, err := os.Stat(w.CAFile); err != nil {
			return fmt.Errorf("webhooks.ca_file: the file cannot be read")
		}
	}
	return nil
}
