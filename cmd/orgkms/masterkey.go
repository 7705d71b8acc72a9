package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
)

// rotatedKey is what master-key rotate prints.
type rotatedKey struct {
	Version  string   `json:"version"`  // the new current version
	Versions []string `json:"versions"` // every version in the key file, oldest first
}

func masterKeyCmd(env *cliEnv) *cobra.Command {
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "add a new version to the local platform master key file (on the server's machine)",
		Long: wrapText("Adds a new random version to the platform master key file (master_key = local:///PATH) and makes it the current one. "+
			"The older versions stay in the file, so every root key they wrapped still unwraps; every running node sees the new "+
			"version at its next use, and within platform_key_check one node re-wraps every org on the platform key to it "+
			"(orgkms master-key status shows the progress). The file is replaced atomically, mode 0600. Run it on one node only; "+
			"on a cluster every node must read the same key file. "+
			"A key in an environment variable (local:env:) has one version: to replace it, set master_key to a new key and list the old one in "+
			"previous_master_keys. A PKCS#11 key gets a new version with orgkms hsm new-version.", 80),
		Args: argNames(),
	}
	rotate.Flags().String("config", "", "the server's JSON config `file` (master_key, data_dir)")
	rotate.Flags().String("master-key", "", "the local: `URI` of the key file (default: master_key of the configuration)")
	rotate.Flags().String("data", "", "the server's data `directory`, whose master.key is the default key file (default ./orgkms-data)")
	rotFmt := addFormat(rotate)
	rotate.RunE = func(cmd *cobra.Command, _ []string) error {
		fs := cmd.Flags()
		path, _ := fs.GetString("config")
		uri, _ := fs.GetString("master-key")
		cfg, err := loadConfig(cmd.CommandPath(), config.Sources{Path: path, Environ: os.Environ(), Flags: func(c *config.Config) {
			serverFlags(fs)(c)
			if uri != "" {
				c.MasterKey = uri
			}
		}})
		if err != nil {
			return err
		}
		if strings.HasPrefix(cfg.MasterKey, "pkcs11:") {
			return usageError{"master_key is a PKCS#11 key", "make its next version with: orgkms hsm new-version"}
		}
		ref, err := localkey.ParseRef(cfg.MasterKey)
		if err != nil {
			return usageError{"master_key is not a local key file: " + err.Error(), "a key in a vault rotates there; orgkms detects the new version by itself"}
		}
		if strings.HasPrefix(ref.ID, "env:") {
			return usageError{"master_key " + ref.String() + " is an environment variable, which holds one version",
				"set master_key to a new key and list " + ref.String() + " in previous_master_keys (ORGKMS_PREVIOUS_MASTER_KEY_URIS)"}
		}
		v, err := localkey.AddVersion(ref.ID)
		if err != nil {
			return err
		}
		p := localkey.New(localkey.Config{})
		vs, err := p.Versions(env.ctx, ref)
		if err != nil {
			return err
		}
		out := rotatedKey{Version: v, Versions: vs}
		return rotFmt.emit(env, out, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "version %s of the platform master key is current (%d versions in %s)\n"+
				"the running servers re-wrap every org on the platform key to it within platform_key_check (default 1m); \"orgkms master-key status\" shows the progress\n", v, len(vs), ref.ID)
			return err
		})
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "show the platform master key's current version and how many orgs are on it (operator)",
		Long: wrapText("Shows the platform master key's current version; how many orgs have their root key wrapped by it, "+
			"by an older version or a previous platform key, or are being re-wrapped to it; orgs on a customer managed key "+
			"(a platform rotation leaves them alone); orgs wrapped by a key orgkms is not configured with, and what to configure; "+
			"and the latest re-wrap job (stalled when the node holding it is gone).", 80),
		Args: argNames(),
	}
	stFmt := addFormat(status)
	status.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		st, err := c.PlatformKeyStatus(env.ctx)
		if err != nil {
			return err
		}
		return stFmt.emit(env, st, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintf(tw, "platform key:\t%s, version %s\n", st.Provider, st.Version)
			fmt.Fprintf(tw, "on current version:\t%d orgs\n", st.OnCurrent)
			fmt.Fprintf(tw, "on older versions:\t%d orgs\n", st.OnOlder)
			for _, v := range st.Older {
				which := "older version"
				if v.Previous {
					which = "previous key"
				}
				fmt.Fprintf(tw, "  %s %s:\t%d orgs\n", which, v.Version, v.Orgs)
			}
			fmt.Fprintf(tw, "being re-wrapped:\t%d orgs\n", st.Rewrapping)
			fmt.Fprintf(tw, "on a customer key:\t%d orgs\n", st.CMK)
			if st.Unreadable > 0 {
				fmt.Fprintf(tw, "unreadable:\t%d orgs (%s) wrapped by %s\n", st.Unreadable, strings.Join(st.UnreadableOrgs, ", "), strings.Join(st.UnknownKeys, ", "))
				fmt.Fprintf(tw, "hint:\t%s\n", st.Hint)
			}
			if j := st.Job; j != nil {
				fmt.Fprintf(tw, "re-wrap job:\t%d %s (step %q, attempt %d, updated %s)\n", j.ID, j.State, j.Step, j.Attempts, j.UpdatedAt.UTC().Format(time.RFC3339))
				if j.Error != "" {
					fmt.Fprintf(tw, "job error:\t%s\n", j.Error)
				}
			} else {
				fmt.Fprintf(tw, "re-wrap job:\tnone yet\n")
			}
			return tw.Flush()
		})
	}
	return group("master-key <command>", "rotate the platform master key and watch its re-wrap", rotate, status)
}
