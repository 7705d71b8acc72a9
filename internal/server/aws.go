package server

import (
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
)

// registerAWS registers the awskms driver when cmk.aws.enabled is set.
// Every KMS attempt draws from gate (the vault budget; nil for none).
func registerAWS(r *masterkey.Registry, cfg config.AWS, getenv func(string) string, gate masterkey.Gate, kopts masterkey.KeeperOptions) error {
	if !cfg.Enabled {
		return nil
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	c := awskms.Config{AllowedRegions: cfg.AllowedRegions, Region: cfg.Region, KMSEndpoint: cfg.KMSEndpoint,
		STSEndpoint: cfg.STSEndpoint, SessionDuration: time.Duration(cfg.SessionDuration), Timeout: time.Duration(cfg.Timeout),
		MaxAttempts: cfg.MaxAttempts, Gate: gate}
	if cfg.CredentialsSource == "env" {
		id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
		if id == "" || secret == "" {
			return fmt.Errorf("cmk.aws.credentials_source is env: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
		c.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN")))
	}
	p, err := awskms.New(c)
	if err != nil {
		return fmt.Errorf("cmk.aws: %w", err)
	}
	o := kopts
	// The driver bounds every call itself; the keeper's limit is a
	// backstop above it.
	o.Timeout = p.Timeout() + time.Second
	r.Register(p.Driver(), masterkey.NewKeeper(awskms.Scheme, p, o))
	return nil
}
