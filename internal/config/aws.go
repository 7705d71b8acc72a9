package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// AWS configures the AWS KMS master-key driver (cmk.aws). It is off by
// default; when enabled, master-key refs of the awskms scheme resolve (a
// platform master key in AWS KMS, or a customer's key reached by assuming
// a role in the customer's account).
type AWS struct {
	Enabled bool `json:"enabled"` // register the awskms driver; default false
	// Region is the platform's home Region (for its own credentials);
	// default eu-west-1. KMS and STS are called in each key's Region.
	Region string `json:"region"`
	// AllowedRegions, when not empty, are the only Regions whose keys are
	// accepted.
	AllowedRegions []string `json:"allowed_regions"`
	// CredentialsSource is where the platform's own AWS credentials come
	// from: "default" (the AWS SDK's chain: environment, shared files,
	// web identity, container or instance role) or "env" (only
	// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN).
	CredentialsSource string `json:"credentials_source"`
	// KMSEndpoint and STSEndpoint replace AWS's endpoints (emulators,
	// VPC endpoints); "" = AWS's.
	KMSEndpoint string `json:"kms_endpoint"`
	STSEndpoint string `json:"sts_endpoint"`
	// SessionDuration of assumed-role sessions, 15m (default) to 12h.
	SessionDuration Duration `json:"session_duration"`
	// Timeout bounds each driver call, retries included (default 10s);
	// MaxAttempts is the SDK's attempts per call (default 3).
	Timeout     Duration `json:"timeout"`
	MaxAttempts int      `json:"max_attempts"`

	// For customer managed keys in AWS KMS ("aws" in cmk.clouds):
	// AccountID is orgkms' AWS account (12 digits), the trusted entity of
	// the role each customer creates; PrincipalARN, optional, is orgkms'
	// own principal in it, shown to customers who trust a principal only.
	AccountID    string `json:"account_id"`
	PrincipalARN string `json:"principal_arn"`
	// ExternalIDSecret (or ORGKMS_AWS_EXTERNAL_ID_SECRET), at least 32
	// bytes, derives each org's external ID. It must never change: a new
	// secret gives every org a new external ID their role does not trust.
	ExternalIDSecret string `json:"external_id_secret"`
}

var awsAccountRe = regexp.MustCompile(`^[0-9]{12}$`)

// cmkMissing says what "aws" in cmk.clouds (key) needs that is not set;
// "" when nothing is missing.
func (a AWS) cmkMissing(key string) error {
	switch {
	case !a.Enabled:
		return fmt.Errorf("%s offers aws: set cmk.aws.enabled (and the platform's AWS credentials), cmk.aws.account_id and cmk.aws.external_id_secret (or ORGKMS_AWS_EXTERNAL_ID_SECRET)", key)
	case !awsAccountRe.MatchString(a.AccountID):
		return fmt.Errorf("%s offers aws: set cmk.aws.account_id to orgkms' 12-digit AWS account ID (the account customers' roles trust)", key)
	case len(a.ExternalIDSecret) < 32:
		return fmt.Errorf("%s offers aws: set cmk.aws.external_id_secret (or ORGKMS_AWS_EXTERNAL_ID_SECRET) to a random secret of at least 32 bytes; it derives each org's external ID and must never change", key)
	case a.PrincipalARN != "" && !strings.HasPrefix(a.PrincipalARN, "arn:"):
		return fmt.Errorf("cmk.aws.principal_arn must be an ARN like arn:aws:iam::%s:role/orgkms", a.AccountID)
	}
	return nil
}

var awsRegionRe = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

func (a AWS) validate() error {
	if !a.Enabled {
		return nil
	}
	if a.Region != "" && !awsRegionRe.MatchString(a.Region) {
		return fmt.Errorf("cmk.aws.region %q is not an AWS Region name like eu-west-2", a.Region)
	}
	for _, r := range a.AllowedRegions {
		if !awsRegionRe.MatchString(r) {
			return fmt.Errorf("cmk.aws.allowed_regions: %q is not an AWS Region name like eu-west-2", r)
		}
	}
	switch a.CredentialsSource {
	case "", "default", "env":
	default:
		return fmt.Errorf("cmk.aws.credentials_source must be default (the AWS SDK's chain) or env")
	}
	for name, ep := range map[string]string{"cmk.aws.kms_endpoint": a.KMSEndpoint, "cmk.aws.sts_endpoint": a.STSEndpoint} {
		if ep == "" {
			continue
		}
		if u, err := url.Parse(ep); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("%s must be an http(s) URL", name)
		}
	}
	if d := time.Duration(a.SessionDuration); d != 0 && (d < 15*time.Minute || d > 12*time.Hour) {
		return fmt.Errorf("cmk.aws.session_duration must be between 15m and 12h")
	}
	if a.Timeout < 0 || a.MaxAttempts < 0 || a.MaxAttempts > 10 {
		return fmt.Errorf("cmk.aws.timeout must not be negative, and cmk.aws.max_attempts must be between 0 (default 3) and 10")
	}
	return nil
}
