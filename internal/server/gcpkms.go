//go:build !no_gcpkms

package server

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/gcpcloud"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
)

// registerGCP registers the gcpkms driver when cmk.gcp.enabled is on. The
// client dials lazily: nothing reaches Google until a gcpkms key is used.
// Every Cloud KMS attempt draws from the vault budget (opts.gate).
func registerGCP(r *masterkey.Registry, cfg config.Config, opts Options, kopts masterkey.KeeperOptions) error {
	g := cfg.CMK.GCP
	if !g.Enabled {
		return nil
	}
	// The constructor dials lazily and keeps no context: Background only
	// builds the client.
	p, err := gcpkms.Open(context.Background(), gcpkms.Config{Endpoint: g.Endpoint, CredentialsFile: g.CredentialsFile,
		Insecure: opts.GCPInsecure, AllowedLocations: g.AllowedLocations, Timeout: time.Duration(g.Timeout), Gate: opts.gate})
	if err != nil {
		return err
	}
	gOpts := kopts
	// The driver bounds every call itself (cmk.gcp.timeout, retries
	// included); the keeper's limit is only a backstop above it.
	gOpts.Timeout = p.Timeout() + time.Second
	r.Register(p.Driver(), masterkey.NewKeeper(gcpkms.Scheme, p, gOpts))
	return nil
}

// gcpCloud is the Google Cloud KMS cloud of customer managed keys when
// cmk.gcp.enabled is on (config.Validate requires it, and a service
// account, for cmk.clouds to offer gcp); nil otherwise.
func gcpCloud(cfg config.Config) cmk.Cloud {
	g := cfg.CMK.GCP
	if !g.Enabled {
		return nil
	}
	return gcpcloud.Cloud{ServiceAccount: g.ServiceAccount, AllowedLocations: g.AllowedLocations}
}
