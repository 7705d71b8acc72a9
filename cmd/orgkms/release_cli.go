//go:build orgkms_release

package main

import "github.com/spf13/cobra"

// devCmd is "orgkms dev", which a release build does not have (cmdDev in
// release.go says so).
func devCmd(env *cliEnv) *cobra.Command {
	return &cobra.Command{
		Use:                "dev",
		Short:              "not in this build (the development server is for development and tests)",
		DisableFlagParsing: true,
		Args:               groupArgs,
		RunE:               func(_ *cobra.Command, args []string) error { return cmdDev(env, args) },
	}
}
