//go:build !no_gcpkms

package main

import (
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
)

// The development server's Google Cloud KMS key and service account (the
// in-process Cloud KMS fake takes any caller as its anonymous principal).
const (
	devGCPKey            = "projects/orgkms-dev/locations/europe-west4/keyRings/orgkms-dev/cryptoKeys/orgkms-cmk"
	devGCPServiceAccount = "orgkms-dev@orgkms-dev.iam.gserviceaccount.com"
)

// devGCP starts the in-process Cloud KMS fake with a demo key labeled for
// org demo and returns the configuration that offers gcp after the
// deployment's own cloud, and a function that stops the fake.
func devGCP() (func(*config.Config), func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	fake := gcpkmsemu.New()
	addr, err := fake.Start(func(f func()) { stops = append(stops, f) })
	if err != nil {
		return nil, stop, err
	}
	if err := fake.CreateKey(devGCPKey, gcpkmsemu.KeyOptions{Labels: map[string]string{"orgkms-org": "demo"}}); err != nil {
		return nil, stop, err
	}
	return func(c *config.Config) {
		c.CMK.Clouds = []string{c.CMK.Cloud, "gcp"}
		c.CMK.GCP = config.GCP{Enabled: true, Endpoint: addr, ServiceAccount: devGCPServiceAccount}
	}, stop, nil
}
