//go:build !orgkms_release

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/internal/azureemu"
)

const emulatorLong = `The Azure Key Vault + Entra ID emulator, for development and tests: "serve"
runs it; the other commands act as the customer in their Azure portal.

Control commands find the emulator with --emulator URL (or ORGKMS_EMULATOR_URL)
and read its admin token and CA from --data DIR (or ORGKMS_EMULATOR_DATA); the
token can also come from ORGKMS_EMULATOR_TOKEN and the CA from ORGKMS_EMULATOR_CA.`

// emulatorCmd is "orgkms emulator ...". Each command parses its own flags
// (package flag, in its body below); cobra only dispatches to it, and its
// help is the body's own -h.
func emulatorCmd(env *cliEnv) *cobra.Command {
	em := &emuCLI{ctx: env.ctx, stdout: env.stdout, stderr: env.stderr}
	leaf := func(use, short string, fn func([]string) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, DisableFlagParsing: true, Args: groupArgs}
		c.RunE = func(_ *cobra.Command, args []string) error { return em.run(fn, args) }
		c.SetHelpFunc(func(*cobra.Command, []string) { _ = em.run(fn, []string{"-h"}) })
		return c
	}
	keyVerb := func(v, short string) *cobra.Command {
		return leaf(v+" VAULT NAME", short, func(a []string) error { return em.keyAction(v, a) })
	}
	c := group("emulator <command>", "serve the emulator, or act as the customer: vaults, keys, policies, faults",
		leaf("serve", "run the emulator (TLS) until interrupted", em.serve),
		group("tenant <command>", "create and list Entra ID tenants",
			leaf("create NAME", "create a tenant", em.tenantCreate),
			leaf("list", "list the tenants", em.tenantList)),
		group("app <command>", "register apps",
			leaf("register --tenant T", "register a multi-tenant app", em.appRegister)),
		group("consent <command>", "grant or revoke admin consent",
			leaf("grant TENANT CLIENTID", "grant admin consent of a tenant for an app", func(a []string) error { return em.consent("grant", a) }),
			leaf("revoke TENANT CLIENTID", "revoke admin consent of a tenant for an app", func(a []string) error { return em.consent("revoke", a) }),
			leaf("revoke-tokens TENANT CLIENTID", "invalidate every token issued to an app in a tenant", func(a []string) error { return em.consent("revoke-tokens", a) })),
		group("vault <command>", "create key vaults",
			leaf("create NAME --tenant T", "create a key vault or Managed HSM", em.vaultCreate)),
		group("key <command>", "create, rotate, disable, enable, delete, recover, purge, show and tag keys",
			leaf("create VAULT NAME", "create a key", em.keyCreate),
			keyVerb("rotate", "add a new version and make it current"),
			keyVerb("disable", "disable a version"),
			keyVerb("enable", "enable a version"),
			keyVerb("delete", "soft-delete a key"),
			keyVerb("recover", "recover a soft-deleted key"),
			keyVerb("purge", "purge a soft-deleted key for good"),
			keyVerb("show", "show a key's versions and state"),
			leaf("tag VAULT NAME [KEY=VALUE...]", "replace the tags of a key version", em.keyTag)),
		group("policy <command>", "set and remove vault access policies",
			leaf("set VAULT PRINCIPAL PERM[,PERM...]", "set an access policy", em.policySet),
			leaf("remove VAULT PRINCIPAL", "remove an access policy", em.policyRemove)),
		group("fault <command>", "make a vault misbehave: latency, errors, outage",
			leaf("set VAULT", "make a vault misbehave", em.faultSet),
			leaf("clear VAULT", "remove a vault's fault", em.faultClear)),
		leaf("counters", "show the number of requests per vault and operation", em.counters),
		leaf("demo", "create the contoso demo tenant, vault, key and app", em.demo),
	)
	c.Long = emulatorLong
	return c
}

type emuCLI struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
	// connection flags, bound by connFlags
	url, data string
	// usage prints the help of the command being run (set by flags)
	usage func(io.Writer)
}

// run runs one command body: its -h prints its help on stdout and succeeds.
func (em *emuCLI) run(fn func([]string) error, args []string) error {
	err := fn(args)
	if errors.Is(err, flag.ErrHelp) {
		if em.usage != nil {
			em.usage(em.stdout)
		}
		return nil
	}
	return err
}

// flags returns a FlagSet whose usage (on -h) prints synopsis and
// description; it prints nothing itself, errors are returned.
func (em *emuCLI) flags(synopsis, description string) *flag.FlagSet {
	var words []string
	for _, w := range strings.Fields(synopsis) {
		if w[0] == '-' || w[0] == '[' || strings.ToUpper(w) == w {
			break
		}
		words = append(words, w)
	}
	fs := flag.NewFlagSet("emulator "+strings.Join(words, " "), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	em.usage = func(w io.Writer) {
		fmt.Fprintf(w, "Usage: orgkms emulator %s\n\n%s\n\nFlags:\n", synopsis, description)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// connFlags adds --emulator and --data.
func (em *emuCLI) connFlags(fs *flag.FlagSet) {
	fs.StringVar(&em.url, "emulator", os.Getenv("ORGKMS_EMULATOR_URL"), "emulator base `URL` (env ORGKMS_EMULATOR_URL)")
	fs.StringVar(&em.data, "data", os.Getenv("ORGKMS_EMULATOR_DATA"), "emulator data `DIR` holding admin-token and ca.pem (env ORGKMS_EMULATOR_DATA)")
}

// parse parses flags placed before or after the positional arguments and
// checks that exactly want positional arguments (described by names) remain.
func (em *emuCLI) parse(fs *flag.FlagSet, args []string, want int, names string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{fs.Name() + ": " + err.Error(), "run \"orgkms " + fs.Name() + " -h\" for usage"}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		return nil, usageError{fmt.Sprintf("%s: want arguments %s, got %d", fs.Name(), names, len(pos)), "run \"orgkms " + fs.Name() + " -h\" for usage"}
	}
	return pos, nil
}

// client connects to the running emulator named by the connection flags.
func (em *emuCLI) client() (*azureemu.ControlClient, error) {
	if em.url == "" {
		return nil, errors.New("emulator URL not set: pass --emulator https://127.0.0.1:PORT or set ORGKMS_EMULATOR_URL")
	}
	token := os.Getenv("ORGKMS_EMULATOR_TOKEN")
	caFile := os.Getenv("ORGKMS_EMULATOR_CA")
	if em.data != "" {
		if token == "" {
			b, err := os.ReadFile(filepath.Join(em.data, "admin-token"))
			if err != nil {
				return nil, fmt.Errorf("read emulator admin token: %w", err)
			}
			token = strings.TrimSpace(string(b))
		}
		if caFile == "" {
			caFile = filepath.Join(em.data, "ca.pem")
		}
	}
	if token == "" || caFile == "" {
		return nil, errors.New("emulator credentials not found: pass --data DIR (the emulator's data dir) or set ORGKMS_EMULATOR_TOKEN and ORGKMS_EMULATOR_CA")
	}
	pool, err := azureemu.CAPoolFromFile(caFile)
	if err != nil {
		return nil, err
	}
	return azureemu.NewControlClient(em.url, token, pool), nil
}

func (em *emuCLI) serve(args []string) error {
	fs := em.flags("serve [--addr 127.0.0.1:8443] [--data DIR]",
		"Runs the Azure Key Vault + Entra ID emulator over TLS until interrupted.\n"+
			"Vault hosts ({vault}.vault.azure.net) and the Entra endpoints share one listener;\n"+
			"clients dial every host to the emulator's address and trust DIR/ca.pem.")
	addr := fs.String("addr", "127.0.0.1:8443", "listen `address`")
	data := fs.String("data", os.Getenv("ORGKMS_EMULATOR_DATA"), "state `DIR` (keys, CA, admin token); empty keeps everything in memory")
	seed := fs.Bool("seed-demo", false, "create the contoso demo world at start (see \"orgkms emulator demo\")")
	verbose := fs.Bool("v", false, "log every request to stderr")
	if _, err := em.parse(fs, args, 0, "none"); err != nil {
		return err
	}
	cfg := azureemu.Config{Dir: *data, Addr: *addr}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(em.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e, err := azureemu.Open(em.ctx, cfg)
	if err != nil {
		return err
	}
	if err := e.Start(); err != nil {
		_ = e.Close()
		return err
	}
	defer e.Close()
	w := em.stdout
	fmt.Fprintf(w, "azure emulator listening on %s\n", e.URL())
	fmt.Fprintf(w, "CA certificate: %s\n", e.CAFile())
	fmt.Fprintf(w, "export ORGKMS_EMULATOR_URL=%s\n", e.URL())
	if *data != "" {
		fmt.Fprintf(w, "export ORGKMS_EMULATOR_DATA=%s\n", *data)
	} else {
		fmt.Fprintf(w, "export ORGKMS_EMULATOR_TOKEN=%s ORGKMS_EMULATOR_CA=%s\n", e.AdminToken(), e.CAFile())
		fmt.Fprintln(w, "state is in memory only: pass --data DIR to keep keys across restarts")
	}
	if *seed {
		d, err := azureemu.SeedDemo(e, nil)
		if err != nil {
			return err
		}
		printDemo(w, e.URL(), d)
	} else {
		fmt.Fprintln(w, "demo: run \"orgkms emulator demo\" to create tenant contoso, vault contoso-kv and key orgkms-cmk")
	}
	<-em.ctx.Done()
	fmt.Fprintln(w, "azure emulator stopping")
	return e.Close()
}

func printDemo(w io.Writer, emulatorURL string, d azureemu.Demo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "customer tenant\t%s (contoso)\n", d.TenantID)
	fmt.Fprintf(tw, "platform app\t%s\n", d.ClientID)
	fmt.Fprintf(tw, "app secret\t%s\n", d.Secret)
	fmt.Fprintf(tw, "vault URI\t%s\n", d.VaultURI)
	fmt.Fprintf(tw, "key\t%s version %s\n", d.KeyName, d.KeyVersion)
	_ = tw.Flush()
	fmt.Fprintf(w, "consent: the contoso admin grants it at %s/%s/adminconsent?client_id=%s&redirect_uri=...\n",
		strings.TrimSuffix(emulatorURL, "/"), d.TenantID, d.ClientID)
	fmt.Fprintf(w, "  or: orgkms emulator consent grant %s %s\n", d.TenantID, d.ClientID)
}

func (em *emuCLI) demo(args []string) error {
	fs := em.flags("demo [--redirect-uri URI]...",
		"Creates, if absent, the platform tenant with the orgkms app, the customer tenant contoso,\n"+
			"the vault contoso-kv (soft delete 90 days, purge protection), the RSA 2048 key orgkms-cmk\n"+
			"and an access policy for the orgkms app (get, list, wrapKey, unwrapKey, encrypt, decrypt).")
	em.connFlags(fs)
	var redirects multiFlag
	fs.Var(&redirects, "redirect-uri", "admin-consent redirect `URI` to register on the app (repeatable; http://127.0.0.1:* allowed)")
	if _, err := em.parse(fs, args, 0, "none"); err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	d, err := c.SeedDemo(em.ctx, redirects)
	if err != nil {
		return err
	}
	printDemo(em.stdout, em.url, d)
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func (em *emuCLI) tenantCreate(args []string) error {
	fs := em.flags("tenant create NAME", "Creates an Entra ID tenant; NAME also gives the domain NAME.onmicrosoft.com.")
	em.connFlags(fs)
	pos, err := em.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	t, err := c.CreateTenant(em.ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "tenant %s created: id %s, domain %s\n", t.Name, t.ID, t.Domain)
	return nil
}

func (em *emuCLI) tenantList(args []string) error {
	fs := em.flags("tenant list", "Lists the tenants.")
	em.connFlags(fs)
	if _, err := em.parse(fs, args, 0, "none"); err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	ts, err := c.Tenants(em.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(em.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tDOMAIN")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.ID, t.Domain)
	}
	return tw.Flush()
}

func (em *emuCLI) appRegister(args []string) error {
	fs := em.flags("app register --tenant T [--name N] [--redirect-uri URI]...",
		"Registers a multi-tenant app in its home tenant and prints its client id and secret.")
	em.connFlags(fs)
	tenant := fs.String("tenant", "", "home `tenant` (GUID, domain or name)")
	name := fs.String("name", "orgkms", "display `name`")
	var redirects multiFlag
	fs.Var(&redirects, "redirect-uri", "admin-consent redirect `URI` (repeatable; http://127.0.0.1:* matches any port)")
	if _, err := em.parse(fs, args, 0, "none"); err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("emulator app register: --tenant is required")
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	a, err := c.RegisterApp(em.ctx, *tenant, azureemu.AppRegistration{Name: *name, RedirectURIs: redirects})
	if err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "app %s registered in tenant %s\nclient id: %s\nsecret:    %s\n", a.Name, a.HomeTenantID, a.ClientID, a.Secret)
	return nil
}

func (em *emuCLI) consent(verb string, args []string) error {
	help := "Grants or revokes admin consent of TENANT for the app CLIENTID\n(revoking deletes the app's service principal in TENANT)."
	if verb == "revoke-tokens" {
		help = "Invalidates every access token issued so far to the app CLIENTID in TENANT:\nvaults answer them with 401; new tokens work while consent stands."
	}
	fs := em.flags("consent "+verb+" TENANT CLIENTID", help)
	em.connFlags(fs)
	pos, err := em.parse(fs, args, 2, "TENANT CLIENTID")
	if err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	if verb == "revoke-tokens" {
		if err := c.RevokeTokens(em.ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(em.stdout, "tokens of app %s in tenant %s revoked\n", pos[1], pos[0])
		return nil
	}
	if verb == "revoke" {
		if err := c.RevokeConsent(em.ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(em.stdout, "consent of app %s revoked in tenant %s\n", pos[1], pos[0])
		return nil
	}
	sp, err := c.GrantConsent(em.ctx, pos[0], pos[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "consent granted: app %s has service principal %s in tenant %s\n", sp.AppID, sp.ObjectID, sp.TenantID)
	return nil
}

func (em *emuCLI) vaultCreate(args []string) error {
	fs := em.flags("vault create NAME --tenant T [--purge-protection] [--soft-delete-days N] [--managed-hsm]",
		"Creates a key vault (or a Managed HSM) owned by a tenant.")
	em.connFlags(fs)
	tenant := fs.String("tenant", "", "owning `tenant` (GUID, domain or name)")
	var opts azureemu.VaultOptions
	fs.BoolVar(&opts.PurgeProtection, "purge-protection", false, "enable purge protection")
	fs.IntVar(&opts.SoftDeleteDays, "soft-delete-days", 90, "soft delete retention `days` (7..90)")
	fs.BoolVar(&opts.ManagedHSM, "managed-hsm", false, "create a Managed HSM ({name}.managedhsm.azure.net)")
	fs.StringVar(&opts.Location, "location", "eastus", "Azure `region` shown in error messages")
	pos, err := em.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	if *tenant == "" {
		return errors.New("emulator vault create: --tenant is required")
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	v, err := c.CreateVault(em.ctx, *tenant, pos[0], opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "vault %s created: %s (tenant %s, soft delete %d days, purge protection %v)\n",
		v.Name, v.URI, v.TenantID, v.SoftDeleteDays, v.PurgeProtection)
	return nil
}

func (em *emuCLI) keyCreate(args []string) error {
	fs := em.flags("key create VAULT NAME [--kty RSA] [--size 2048] [--ops OP,...] [--nbf T] [--exp T]", "Creates a key.")
	em.connFlags(fs)
	var opts azureemu.KeyOptions
	fs.StringVar(&opts.Kty, "kty", "RSA", "key `type`: RSA, RSA-HSM or oct-HSM (Managed HSM)")
	fs.IntVar(&opts.Size, "size", 0, "key size in `bits` (RSA 2048/3072/4096, default 2048; oct-HSM 128/192/256)")
	ops := fs.String("ops", "", "comma-separated key_ops (default: all of the key type)")
	nbf := fs.String("nbf", "", "not-before `time` (RFC 3339)")
	exp := fs.String("exp", "", "expiry `time` (RFC 3339)")
	pos, err := em.parse(fs, args, 2, "VAULT NAME")
	if err != nil {
		return err
	}
	if *ops != "" {
		opts.KeyOps = strings.Split(*ops, ",")
	}
	for _, p := range []struct {
		s   string
		dst *time.Time
	}{{*nbf, &opts.NotBefore}, {*exp, &opts.Expires}} {
		if p.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, p.s)
		if err != nil {
			return fmt.Errorf("emulator key create: %w", err)
		}
		*p.dst = t
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	k, err := c.CreateKey(em.ctx, pos[0], pos[1], opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "key %s created: %s\n", k.Name, k.KID)
	return nil
}

func (em *emuCLI) keyTag(args []string) error {
	fs := em.flags("key tag VAULT NAME [KEY=VALUE...]", "Replaces the tags of a key version (default: the current one); no KEY=VALUE removes them.\n"+
		"orgkms asks customers to tag their key orgkms-org=ORG to prove the key is theirs to use for that org.")
	em.connFlags(fs)
	version := ""
	fs.StringVar(&version, "version", "", "key `version` (default: current)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pos := fs.Args()
	if len(pos) < 2 {
		return fmt.Errorf("key tag needs VAULT NAME [KEY=VALUE...]")
	}
	tags := map[string]string{}
	for _, kv := range pos[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("tag %q must be KEY=VALUE", kv)
		}
		tags[k] = v
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	k, err := c.SetKeyTags(em.ctx, pos[0], pos[1], version, tags)
	if err != nil {
		return err
	}
	pairs := make([]string, 0, len(tags))
	for name, v := range tags {
		pairs = append(pairs, name+"="+v)
	}
	slices.Sort(pairs)
	fmt.Fprintf(em.stdout, "key %s version %s tagged %s\n", k.Name, k.Version, strings.Join(pairs, " "))
	return nil
}

func (em *emuCLI) keyAction(verb string, args []string) error {
	desc := map[string]string{
		"rotate":  "Adds a new version and makes it current.",
		"disable": "Disables a version (default: the current one).",
		"enable":  "Enables a version (default: the current one).",
		"delete":  "Soft-deletes a key (recoverable until purged or the retention ends).",
		"recover": "Recovers a soft-deleted key.",
		"purge":   "Purges a soft-deleted key for good (refused under purge protection).",
		"show":    "Shows a key's current version, state and versions.",
	}[verb]
	fs := em.flags("key "+verb+" VAULT NAME", desc)
	em.connFlags(fs)
	version := ""
	if verb == "disable" || verb == "enable" {
		fs.StringVar(&version, "version", "", "key `version` (default: current)")
	}
	pos, err := em.parse(fs, args, 2, "VAULT NAME")
	if err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	vault, name := pos[0], pos[1]
	var k azureemu.KeyInfo
	switch verb {
	case "rotate":
		k, err = c.RotateKey(em.ctx, vault, name)
	case "disable", "enable":
		on := verb == "enable"
		k, err = c.UpdateKey(em.ctx, vault, name, version, &on, nil, nil)
	case "delete":
		k, err = c.DeleteKey(em.ctx, vault, name)
	case "recover":
		k, err = c.RecoverKey(em.ctx, vault, name)
	case "purge":
		if err := c.PurgeKey(em.ctx, vault, name); err != nil {
			return err
		}
		fmt.Fprintf(em.stdout, "key %s purged from vault %s\n", name, vault)
		return nil
	case "show":
		k, err = c.GetKey(em.ctx, vault, name)
	}
	if err != nil {
		return err
	}
	switch verb {
	case "show":
		printKey(em.stdout, k)
	case "rotate":
		fmt.Fprintf(em.stdout, "key %s rotated: current version %s\n", k.Name, k.Version)
	case "disable", "enable":
		fmt.Fprintf(em.stdout, "key %s version %s %sd\n", k.Name, k.Version, verb)
	case "delete":
		fmt.Fprintf(em.stdout, "key %s deleted: recoverable until %s\n", k.Name, k.ScheduledPurgeDate.Format(time.RFC3339))
	case "recover":
		fmt.Fprintf(em.stdout, "key %s recovered: current version %s\n", k.Name, k.Version)
	}
	return nil
}

func printKey(w io.Writer, k azureemu.KeyInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "kid\t%s\n", k.KID)
	fmt.Fprintf(tw, "type\t%s %d\n", k.Kty, k.Size)
	fmt.Fprintf(tw, "enabled\t%v\n", k.Enabled)
	fmt.Fprintf(tw, "key_ops\t%s\n", strings.Join(k.KeyOps, ", "))
	if k.NotBefore != nil {
		fmt.Fprintf(tw, "not before\t%s\n", k.NotBefore.Format(time.RFC3339))
	}
	if k.Expires != nil {
		fmt.Fprintf(tw, "expires\t%s\n", k.Expires.Format(time.RFC3339))
	}
	if k.Deleted {
		fmt.Fprintf(tw, "deleted\tpurge scheduled %s\n", k.ScheduledPurgeDate.Format(time.RFC3339))
	}
	fmt.Fprintf(tw, "versions\t%s\n", strings.Join(k.Versions, " "))
	_ = tw.Flush()
}

func (em *emuCLI) policySet(args []string) error {
	fs := em.flags("policy set VAULT PRINCIPAL PERM[,PERM...]",
		"Sets the access policy of PRINCIPAL (service principal object id, or app client id) on VAULT.\n"+
			"Permissions: "+strings.Join(azureemu.Permissions, ", ")+".")
	em.connFlags(fs)
	pos, err := em.parse(fs, args, 3, "VAULT PRINCIPAL PERM[,PERM...]")
	if err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	perms := strings.Split(pos[2], ",")
	if err := c.SetPolicy(em.ctx, pos[0], pos[1], perms); err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "access policy of %s on vault %s: %s\n", pos[1], pos[0], strings.Join(perms, ", "))
	return nil
}

func (em *emuCLI) policyRemove(args []string) error {
	fs := em.flags("policy remove VAULT PRINCIPAL", "Removes PRINCIPAL's access policy from VAULT.")
	em.connFlags(fs)
	pos, err := em.parse(fs, args, 2, "VAULT PRINCIPAL")
	if err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	if err := c.RemovePolicy(em.ctx, pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "access policy of %s removed from vault %s\n", pos[1], pos[0])
	return nil
}

func (em *emuCLI) faultSet(args []string) error {
	fs := em.flags("fault set VAULT [--latency 10ms] [--status 429] [--retry-after 2s] [--outage] [--count N]",
		"Makes VAULT misbehave on every request (or the next N) until \"fault clear\".")
	em.connFlags(fs)
	var f azureemu.Fault
	fs.DurationVar(&f.Latency, "latency", 0, "added `delay` per request")
	fs.IntVar(&f.Status, "status", 0, "answer with this HTTP `status` (429 or 5xx)")
	fs.DurationVar(&f.RetryAfter, "retry-after", 0, "Retry-After `duration` sent with --status (0: no header)")
	fs.BoolVar(&f.Outage, "outage", false, "drop connections without answering")
	fs.IntVar(&f.Count, "count", 0, "apply to the next `N` requests only (0: until cleared)")
	pos, err := em.parse(fs, args, 1, "VAULT")
	if err != nil {
		return err
	}
	if f.Latency <= 0 && f.Status == 0 && !f.Outage {
		return usageError{"emulator fault set: no fault given", "give --latency, --status or --outage, e.g. orgkms emulator fault set " + pos[0] + " --status 429 --retry-after 2s"}
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	if err := c.SetFault(em.ctx, pos[0], f); err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "fault set on vault %s\n", pos[0])
	return nil
}

func (em *emuCLI) faultClear(args []string) error {
	fs := em.flags("fault clear VAULT", "Removes VAULT's fault.")
	em.connFlags(fs)
	pos, err := em.parse(fs, args, 1, "VAULT")
	if err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	if err := c.ClearFault(em.ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(em.stdout, "fault cleared on vault %s\n", pos[0])
	return nil
}

func (em *emuCLI) counters(args []string) error {
	fs := em.flags("counters [--reset]", "Shows the number of requests per vault and operation.")
	em.connFlags(fs)
	reset := fs.Bool("reset", false, "set the counters to zero after showing them")
	if _, err := em.parse(fs, args, 0, "none"); err != nil {
		return err
	}
	c, err := em.client()
	if err != nil {
		return err
	}
	m, err := c.Counters(em.ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(em.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VAULT\tOPERATION\tREQUESTS")
	for _, v := range sortedKeys(m) {
		for _, op := range sortedKeys(m[v]) {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", v, op, m[v][op])
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *reset {
		return c.ResetCounters(em.ctx)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
