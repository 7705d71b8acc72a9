package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11"
)

// hsmKey is what the hsm commands print.
type hsmKey struct {
	Key     string `json:"key"`     // the ref, versioned
	Version string `json:"version"` // the CKA_ID
	Enabled bool   `json:"enabled"`
	Type    string `json:"type"`
}

func hsmCmd(env *cliEnv) *cobra.Command {
	// open loads the server's configuration and the pkcs11 provider of the
	// platform master key (or --master-key).
	open := func(cmd *cobra.Command) (*pkcs11.Provider, masterkey.Ref, error) {
		fs := cmd.Flags()
		path, _ := fs.GetString("config")
		uri, _ := fs.GetString("master-key")
		cfg, err := loadConfig(cmd.CommandPath(), config.Sources{Path: path, Environ: os.Environ(), Flags: func(c *config.Config) {
			if uri != "" {
				c.MasterKey = uri
			}
		}})
		if err != nil {
			return nil, masterkey.Ref{}, err
		}
		ref, err := pkcs11.ParseRef(cfg.MasterKey)
		if err != nil {
			msg := err.Error()
			if fe := fault.As(err); fe != nil && fe.Reason != "" {
				msg = fe.Reason // the field is named once, below
			}
			return nil, masterkey.Ref{}, usageError{"master_key: " + msg, "set master_key in the config file (or ORGKMS_MASTER_KEY_URI, or --master-key) to pkcs11:token=TOKEN;object=KEY_LABEL"}
		}
		p, err := pkcs11.New(pkcs11.Config{ModulePath: cfg.PKCS11.ModulePath, PINSource: cfg.PKCS11.PINSource, PoolSize: 1})
		if err != nil {
			return nil, masterkey.Ref{}, err
		}
		return p, ref.Unversioned(), nil
	}
	flags := func(c *cobra.Command) {
		c.Flags().String("config", "", "the server's JSON config `file` (master_key and pkcs11.*)")
		c.Flags().String("master-key", "", "the pkcs11: `URI` of the key (default: master_key of the configuration)")
	}
	print := func(f *format, d masterkey.Description) error {
		k := hsmKey{Key: d.Key.String(), Version: d.Key.Version, Enabled: d.Enabled, Type: fmt.Sprintf("%s-%d", d.KeyType, d.KeySize)}
		return f.emit(env, k, func(w io.Writer) error {
			state := "enabled"
			if !k.Enabled {
				state = "disabled"
			}
			_, err := fmt.Fprintf(w, "version %s of %s (%s, %s)\n", k.Version, d.Key.Unversioned(), k.Type, state)
			return err
		})
	}

	newVersion := &cobra.Command{
		Use:   "new-version",
		Short: "generate the next version of the platform master key inside the HSM",
		Long: wrapText("Generates the next version of the platform master key inside the PKCS#11 token "+
			"(C_GenerateKey: AES-256, sensitive, never extractable; CKA_LABEL the key label, CKA_ID the version, "+
			"1 for the first). From then on orgkms wraps new org keys with it, and the platform key rotation "+
			"re-wraps the existing ones; older versions stay in the token to unwrap what they wrapped. "+
			"Run it on one node only.", 80),
		Args: argNames(),
	}
	flags(newVersion)
	nvFmt := addFormat(newVersion)
	newVersion.RunE = func(cmd *cobra.Command, _ []string) error {
		p, ref, err := open(cmd)
		if err != nil {
			return err
		}
		defer p.Close()
		v, err := p.NewVersion(env.ctx, ref)
		if err != nil {
			return err
		}
		d, err := p.Describe(env.ctx, v)
		if err != nil {
			return err
		}
		return print(nvFmt, d)
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "show the current version of the platform master key in the HSM",
		Args:  argNames(),
	}
	flags(status)
	stFmt := addFormat(status)
	status.RunE = func(cmd *cobra.Command, _ []string) error {
		p, ref, err := open(cmd)
		if err != nil {
			return err
		}
		defer p.Close()
		d, err := p.Describe(env.ctx, ref)
		if err != nil {
			return err
		}
		return print(stFmt, d)
	}
	return group("hsm <command>", "manage the platform master key in a PKCS#11 HSM", newVersion, status)
}
