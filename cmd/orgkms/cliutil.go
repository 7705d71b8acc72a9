package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/orgkms/orgkms/client"
)

// cliEnv is what a command may use.
type cliEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// newFlags returns a FlagSet whose -h prints synopsis and the flags.
func newFlags(env *cliEnv, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: orgkms %s\n\n%s\n", synopsis, description)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintf(env.stderr, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses flags that may appear before or after positional arguments
// and checks the number of positional arguments.
func parse(fs *flag.FlagSet, args []string, minArgs, maxArgs int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error(), "run \"orgkms " + fs.Name() + " -h\" for usage"}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		return nil, usageError{fmt.Sprintf("wrong number of arguments (%d)", len(pos)), "run \"orgkms " + fs.Name() + " -h\" for usage"}
	}
	return pos, nil
}

// subcommand splits "org create ..." into the verb and its args.
func subcommand(args []string, group string, verbs string) (string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return "", nil, usageError{"missing " + group + " command", "orgkms " + group + " " + verbs}
	}
	return args[0], args[1:], nil
}

func newClient() (*client.Client, error) {
	c, err := client.New(client.Config{})
	if err != nil {
		return nil, withHint(err, "start a server with \"orgkms dev\", then \"source DATA/dev.env\"")
	}
	return c, nil
}

// apiHints returns hints for well-known API errors.
func apiHints(err error) []string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return []string{"is orgkms running? start one with \"orgkms dev\" and check ORGKMS_ADDR"}
	}
	switch client.ErrorCode(err) {
	case "unauthenticated":
		return []string{"set ORGKMS_TOKEN to a valid API token (orgkms dev writes one to DATA/dev.env)"}
	case "permission_denied":
		return []string{"use a token with the needed role; \"orgkms whoami\" shows the current one"}
	case "ciphertext_invalid":
		return []string{"decrypt with the same --org, --key and --context that encrypted it, and pass the ciphertext unmodified"}
	case "key_version_retired":
		return []string{"lower the key's minimum decryption version: orgkms key config --min-decryption-version N"}
	case "not_found":
		var e *client.Error
		if errors.As(err, &e) && strings.Contains(e.Message, "org ") {
			return []string{"list orgs with \"orgkms org list\""}
		}
	case "unavailable":
		return []string{"retry in a moment"}
	case "cmk_key_disabled", "cmk_permission_missing", "cmk_consent_revoked", "cmk_key_deleted":
		return []string{"the org's customer managed key is unusable; its security admins can see why with \"orgkms cmk status\""}
	case "cmk_key_destroyed":
		return []string{"the org's customer managed key was purged; data encrypted for this org cannot be recovered"}
	}
	return nil
}
