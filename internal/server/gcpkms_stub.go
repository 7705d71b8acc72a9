//go:build no_gcpkms

package server

import (
	"errors"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// registerGCP refuses cmk.gcp.enabled in a build without the gcpkms
// driver (-tags no_gcpkms), which leaves out the Google Cloud client.
func registerGCP(_ *masterkey.Registry, cfg config.Config, _ Options, _ masterkey.KeeperOptions) error {
	if cfg.CMK.GCP.Enabled {
		return errors.New("cmk.gcp.enabled: orgkms was built without gcpkms (-tags no_gcpkms)")
	}
	return nil
}

// gcpCloud: no Google Cloud KMS cloud without the driver (registerGCP
// refuses cmk.gcp.enabled).
func gcpCloud(config.Config) cmk.Cloud { return nil }
