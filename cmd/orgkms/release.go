//go:build orgkms_release

package main

import (
	"errors"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/internal/config"
)

// A release build (make build-release: -tags orgkms_release) has neither
// the development server nor the Azure emulator: nothing of either is
// linked into it (TestReleaseBuild checks with go list -deps).

// errNotInRelease is what orgkms dev and orgkms emulator say in a release
// build.
func errNotInRelease(cmd string) error {
	return withHint(errors.New("orgkms "+cmd+" is not in this build: this is a release build, without the development server and the Azure emulator"),
		"run the server with \"orgkms serve --config FILE\"; for development, build orgkms without -tags orgkms_release (make build, make dev)")
}

func cmdDev(env *cliEnv, args []string) error { return errNotInRelease("dev") }

// emulatorCmd is "orgkms emulator", which a release build does not have.
func emulatorCmd(*cliEnv) *cobra.Command {
	return &cobra.Command{
		Use:                "emulator",
		Short:              "not in this build (the Azure emulator is for development and tests)",
		DisableFlagParsing: true,
		Args:               groupArgs,
		RunE:               func(*cobra.Command, []string) error { return errNotInRelease("emulator") },
	}
}

// azureClientFor returns nil, the production client of the azurekv driver;
// cmk.azure.emulator_addr is refused.
func azureClientFor(cfg config.Config) (*http.Client, error) {
	if cfg.CMK.Cloud == "azure" && cfg.CMK.Azure.EmulatorAddr != "" {
		return nil, errors.New("cmk.azure.emulator_addr is for development and tests with the Azure emulator, which this release build does not have: remove it")
	}
	return nil, nil
}
