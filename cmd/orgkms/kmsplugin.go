package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/kmsplugin"
)

const kmsPluginDescription = `Serves the Kubernetes KMS v2 plugin API (k8s.io/kms) on a unix socket for
kube-apiserver, encrypting the apiserver's data encryption keys with an
orgkms server: one cluster is one org and one of its data keys, so the
cluster's Secrets are under that org's customer managed key.

It talks to orgkms with the Go client: ORGKMS_ADDR and a token of the org
with the service role, from ORGKMS_TOKEN or --token-file. A socket file
left by an earlier run is replaced; the socket's mode is 0600. SIGTERM or
SIGINT stops it cleanly (in-flight calls finish, the socket is removed).

Status is healthy only while orgkms encrypts for the org and its customer
managed key is not revoked; its key_id changes when the data key rotates or
the org's root key is wrapped by another key (CMK enabled, rotated,
replaced, disabled). See docs/kubernetes.md for the EncryptionConfiguration.`

func kmsPluginCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kms-plugin --listen unix:///path/to.sock --org ORG [--key NAME]",
		Short: "serve the Kubernetes KMS v2 plugin for one org's key",
		Long:  kmsPluginDescription,
		Args:  argNames(),
	}
	fs := cmd.Flags()
	listen := fs.String("listen", "", "`endpoint` of the socket, unix:///path/to.sock (as the EncryptionConfiguration's endpoint)")
	org := orgFlag(cmd)
	key := fs.String("key", kmsplugin.DefaultKey, "the org's data key `name`")
	addr := fs.String("addr", "", "orgkms server `URL` (default $ORGKMS_ADDR)")
	tokenFile := fs.String("token-file", "", "read the API token from `file` (default $ORGKMS_TOKEN)")
	timeout := fs.Duration("timeout", kmsplugin.DefaultCallTimeout, "bound of each call to orgkms; keep it below the EncryptionConfiguration's kms timeout")
	statusTTL := fs.Duration("status-ttl", kmsplugin.DefaultStatusTTL, "how long a Status answer is reused")
	cmd.RunE = func(*cobra.Command, []string) error {
		if *listen == "" {
			return usageError{"--listen is required", "give --listen unix:///var/run/orgkms-kms.sock (the endpoint of the EncryptionConfiguration)"}
		}
		if _, err := kmsplugin.SocketPath(*listen); err != nil {
			return usageError{err.Error(), "give --listen unix:///ABSOLUTE/PATH.sock"}
		}
		o, err := requireOrg(*org)
		if err != nil {
			return err
		}
		if *timeout <= 0 || *statusTTL <= 0 {
			return usageError{"--timeout and --status-ttl must be positive", ""}
		}
		cfg := client.Config{Addr: *addr, Timeout: *timeout}
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return withHint(fmt.Errorf("read --token-file: %w", err), "mount the token of the org's service role there")
			}
			cfg.Token = strings.TrimSpace(string(b))
		}
		if cfg.Addr == "" && os.Getenv("ORGKMS_ADDR") == "" {
			return withHint(fmt.Errorf("no server address: set ORGKMS_ADDR or --addr"), "e.g. --addr https://orgkms.example.com")
		}
		c, err := client.New(cfg)
		if err != nil {
			return withHint(err, "set ORGKMS_ADDR (or --addr) to the server's base URL, e.g. http://127.0.0.1:8200")
		}
		log := slog.New(slog.NewTextHandler(env.stderr, nil))
		p, err := kmsplugin.New(kmsplugin.Config{Client: c, Org: o, Key: *key, CallTimeout: *timeout, StatusTTL: *statusTTL, Logger: log})
		if err != nil {
			return err
		}
		ln, err := kmsplugin.Listen(*listen)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "orgkms kms-plugin: org %s, key %s, orgkms at %s, listening on %s\n", o, *key, c.Addr(), *listen)
		start := time.Now()
		if err := p.Serve(env.ctx, ln); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "orgkms kms-plugin: stopped after %s\n", time.Since(start).Round(time.Second))
		return nil
	}
	return cmd
}
