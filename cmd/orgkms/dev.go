//go:build !orgkms_release

package main

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/console"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/server"
)

// This file is the development server and is not in a release build
// (-tags orgkms_release; see release.go): orgkms dev and the Azure emulator
// are for development and tests only.

// azureClientFor returns the azurekv driver's HTTP client for cfg: nil (the
// production client) unless cmk.azure.emulator_addr sends every Azure
// connection to an Azure emulator, which development and tests do.
func azureClientFor(cfg config.Config) (*http.Client, error) {
	a := cfg.CMK.Azure
	if cfg.CMK.Cloud != "azure" || a.EmulatorAddr == "" {
		return nil, nil
	}
	if a.CAFile == "" {
		return nil, fmt.Errorf("cmk.azure.emulator_addr needs cmk.azure.ca_file (the emulator's ca.pem)")
	}
	addr := strings.TrimPrefix(a.EmulatorAddr, "https://")
	return server.AzureHTTPClient(a, func(roots *x509.CertPool) http.RoundTripper { return azureemu.Transport(addr, roots) })
}

const devDescription = `Runs a self-contained orgkms for development: SQLite and a local platform
master key in DIR, schema migrated automatically, and the built-in Azure
Key Vault + Entra ID emulator with a demo customer tenant, vault and key, so
the whole customer managed key flow works offline. It writes DIR/dev.env
(ORGKMS_ADDR and an operator token that may also use keys), so that
  source DIR/dev.env
points the CLI at it. Restarting on the same DIR keeps every org and key.

It reads the same ORGKMS_* variables as orgkms serve (flags win), e.g.
ORGKMS_LISTEN and ORGKMS_DATA_DIR, and ORGKMS_DEV_CONSENT_ADDR for the
consent page (default: the server's port + 1, or any free port if that one
is taken).`

// devBase is orgkms dev's own defaults, under the environment and flags.
func devBase() config.Config {
	c := config.Config{Addr: "127.0.0.1:8200", DataDir: ".orgkms-dev", LogFormat: "text", AutoMigrate: true}
	// Development receivers run on this machine, often over plain HTTP.
	c.Webhooks.AllowHTTP, c.Webhooks.AllowPrivateAddresses = true, true
	return c
}

func devCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "run a self-contained server for development (SQLite, local master key)",
		Long:  devDescription,
		Args:  argNames(),
	}
	fs := cmd.Flags()
	fs.String("addr", "127.0.0.1:8200", "listen `address` (ORGKMS_LISTEN)")
	fs.String("data", ".orgkms-dev", "data `directory` (ORGKMS_DATA_DIR)")
	emuAddr := fs.String("emulator-addr", "127.0.0.1:0", "listen `address` of the Azure emulator (port 0: any free port)")
	consentAddr := fs.String("consent-addr", "", "listen `address` of the emulator's plain-HTTP consent page (ORGKMS_DEV_CONSENT_ADDR; default: the server's port + 1)")
	noEmu := fs.Bool("no-emulator", false, "do not start the Azure emulator (customer managed keys off)")
	fs.Duration("probe-interval", 30*time.Second, "how often customer managed keys are checked (ORGKMS_CMK_PROBE_INTERVAL)")
	fs.Bool("log-requests", false, "log every request (ORGKMS_LOG_REQUESTS)")
	cmd.RunE = func(*cobra.Command, []string) error {
		flags := devFlags(fs)
		if *consentAddr == "" {
			*consentAddr = os.Getenv("ORGKMS_DEV_CONSENT_ADDR")
		}
		return runDev(env, devSettings{environ: os.Environ(), flags: flags, emulatorAddr: *emuAddr, consentAddr: *consentAddr, noEmulator: *noEmu})
	}
	return cmd
}

// devFlags applies the dev flags the user set to a configuration.
func devFlags(fs *pflag.FlagSet) func(*config.Config) {
	return func(c *config.Config) {
		fs.Visit(func(f *pflag.Flag) {
			v := f.Value.String()
			switch f.Name {
			case "addr":
				c.Addr = v
			case "data":
				c.DataDir = v
			case "probe-interval":
				if d, err := time.ParseDuration(v); err == nil {
					c.CMK.ProbeInterval = config.Duration(d)
				}
			case "log-requests":
				c.LogRequests, _ = strconv.ParseBool(v)
			}
		})
	}
}

// devSettings are orgkms dev's inputs once its flags are parsed.
type devSettings struct {
	environ      []string
	flags        func(*config.Config)
	emulatorAddr string
	consentAddr  string // "" = the server's port + 1, or a free port
	noEmulator   bool
}

// runDev is the body of orgkms dev.
func runDev(env *cliEnv, d devSettings) error {
	err := startDev(env, d)
	if err != nil && env.ctx.Err() != nil {
		// Interrupted while starting (creating the demo org, users or
		// tokens): a clean stop, whichever step it was in.
		return nil
	}
	return err
}

// startDev starts the development server and serves until interrupted.
func startDev(env *cliEnv, d devSettings) error {
	load := func(extra func(*config.Config)) (config.Config, error) {
		return config.Load(config.Sources{Base: devBase(), Environ: d.environ, Flags: func(c *config.Config) {
			if d.flags != nil {
				d.flags(c)
			}
			if extra != nil {
				extra(c)
			}
		}})
	}
	cfg, err := load(nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return withHint(err, "another process uses that address; pick another with --addr 127.0.0.1:PORT (make dev ADDR=127.0.0.1:PORT)")
		}
		return err
	}
	defer ln.Close()
	listening := ln.Addr().String()
	withAddr := func(c *config.Config) { c.Addr = listening }
	if cfg, err = load(withAddr); err != nil {
		return err
	}
	log := server.NewLogger(cfg, env.stderr)
	slog.SetDefault(log)

	opts := server.Options{Logger: log, Migrate: true, JobObserver: jobObserver()}
	if opts.Now, err = testClock(); err != nil {
		return err
	}
	var demo azureemu.Demo
	var emu *azureemu.Emulator
	var consentURL string
	if !d.noEmulator {
		emu, err = azureemu.Open(env.ctx, azureemu.Config{Dir: filepath.Join(cfg.DataDir, "emulator"), Addr: d.emulatorAddr, Logger: log.With(slog.String("component", "azure-emulator"))})
		if err != nil {
			return fmt.Errorf("azure emulator: %w", err)
		}
		defer emu.Close()
		if err := emu.Start(); err != nil {
			return fmt.Errorf("azure emulator: %w", err)
		}
		demo, err = azureemu.SeedDemo(emu, []string{cfg.CMK.CallbackURL})
		if err != nil {
			return err
		}
		// The consent page also on plain HTTP (loopback only), so a browser
		// reaches it without a certificate warning; the SDK keeps TLS.
		cln, note, err := listenConsent(d.consentAddr, listening)
		if err != nil {
			return err
		}
		if note != "" {
			fmt.Fprintln(env.stdout, note)
		}
		consentSrv := &http.Server{Handler: emu.ConsentPageHandler(), ReadHeaderTimeout: 10 * time.Second}
		go consentSrv.Serve(cln)
		defer consentSrv.Close()
		consentURL = "http://" + cln.Addr().String() + "/"
		hc := emu.HTTPClient()
		hc.Timeout = 60 * time.Second
		opts.AzureHTTPClient = hc
		opts.Demo = &console.Demo{TenantID: demo.TenantID, VaultURI: demo.VaultURI, KeyName: demo.KeyName}
		// Google Cloud KMS too, on its in-process fake (devgcp.go).
		withGCP, stopGCP, err := devGCP()
		defer stopGCP()
		if err != nil {
			return fmt.Errorf("cloud kms fake: %w", err)
		}
		opts.GCPInsecure = withGCP != nil
		if cfg, err = load(func(c *config.Config) {
			withAddr(c)
			c.CMK.Cloud = "azure"
			c.CMK.Azure = config.Azure{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/", ConsentHost: consentURL}
			if withGCP != nil {
				withGCP(c)
			}
		}); err != nil {
			return err
		}
	}
	s, err := server.Open(env.ctx, cfg, opts)
	if err != nil {
		if env.ctx.Err() != nil {
			return nil // interrupted while starting: a clean stop
		}
		return err
	}
	defer s.Close()
	devURL := s.URL(ln)
	// The demo org and users exist before dev.env appears (at the end),
	// which scripts wait for.
	if err := ensureDemoOrg(env, s); err != nil {
		return err
	}
	demoUsers, err := ensureDemoUsers(env, s, cfg.DataDir)
	if err != nil {
		return err
	}
	envFile := filepath.Join(cfg.DataDir, "dev.env")
	token, err := devToken(env, s, envFile)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, `orgkms dev server listening on %s
  data directory: %s (SQLite database, platform master key)

Web console: %s
`, devURL, cfg.DataDir, strings.TrimRight(cfg.PublicURL, "/")+"/console/")
	for _, u := range demoUsers {
		fmt.Fprintf(env.stdout, "  %-20s password %-26s %s\n", u.email, u.password, u.about)
	}
	fmt.Fprintf(env.stdout, `  (the passwords are kept in %s and %s)

Connect the CLI:
  source %s
  orgkms org create acme
  echo hello | orgkms encrypt --org acme | orgkms decrypt --org acme
`, filepath.Join(cfg.DataDir, demoUserSpecs[0].file), filepath.Join(cfg.DataDir, demoUserSpecs[1].file), envFile)
	if emu != nil {
		adminEnv, err := devCMKAdmin(env, s, cfg.DataDir, devURL)
		if err != nil {
			return err
		}
		emuEnv := filepath.Join(cfg.DataDir, "emulator.env")
		if err := writeFileAtomic(emuEnv, []byte(fmt.Sprintf("export ORGKMS_EMULATOR_URL=%s\nexport ORGKMS_EMULATOR_DATA=%s\n", emu.URL(), filepath.Join(cfg.DataDir, "emulator"))), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, `
Customer managed keys, against the built-in Azure emulator (%s):
  source %s       # ORGKMS_TOKEN: admin + key_admin of org "demo"
  orgkms cmk authorize --tenant %s
      Step 1: open the printed URL and click Accept (the consent page is
      served at %s; the emulator's CA, for other tools: %s)
  orgkms cmk configure --vault-uri %s --key-name %s
      Step 2: key version empty = follow the latest version
  orgkms cmk test && orgkms cmk enable
Act as the customer in their Azure portal:
  source %s
  orgkms emulator key rotate|disable|enable|delete|recover %s %s
  orgkms emulator policy set %s %s get,list,wrapKey      # orgkms' application ID
`, emu.URL(), adminEnv, demo.TenantID, consentURL, emu.CAFile(), demo.VaultURI, demo.KeyName, emuEnv, azureemu.DemoVault, demo.KeyName, azureemu.DemoVault, demo.ClientID)
		if opts.GCPInsecure {
			fmt.Fprintf(env.stdout, `Or against Google Cloud KMS (an in-process fake; no authorize step, the grant is recorded):
  orgkms cmk configure --cloud gcp --field key_name=%s
  orgkms cmk test && orgkms cmk enable
`, devGCPKey)
		}
	}
	// dev.env appears last, when everything above exists and is printed:
	// scripts wait for it (then source demo-admin.env or emulator.env).
	content := fmt.Sprintf("export ORGKMS_ADDR=%s\nexport ORGKMS_TOKEN=%s\n", devURL, token)
	if err := writeFileAtomic(envFile, []byte(content), 0o600); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "\nPress Ctrl-C to stop.")
	return s.Serve(env.ctx, ln)
}

// listenConsent binds the consent page's address: addr when set (an error
// if it is taken), otherwise the server's port + 1 on the server's host,
// and any free port of that host when that one is taken; note then says so.
func listenConsent(addr, serverAddr string) (ln net.Listener, note string, err error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, "", withHint(fmt.Errorf("consent page: %w", err), "pick another address with --consent-addr 127.0.0.1:PORT (or ORGKMS_DEV_CONSENT_ADDR)")
		}
		return ln, "", nil
	}
	host, port, err := net.SplitHostPort(serverAddr)
	if err != nil {
		return nil, "", err
	}
	want := ""
	if p, err := strconv.Atoi(port); err == nil && p > 0 && p < 65535 {
		want = net.JoinHostPort(host, strconv.Itoa(p+1))
		if ln, err := net.Listen("tcp", want); err == nil {
			return ln, "", nil
		}
	}
	ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, "", fmt.Errorf("consent page: %w", err)
	}
	return ln, fmt.Sprintf("consent page: %s is taken, using %s instead (set one with --consent-addr or ORGKMS_DEV_CONSENT_ADDR)", want, ln.Addr()), nil
}

// demoOrg is the org that orgkms dev creates for the demo users and token.
const demoOrg = "demo"

// ensureDemoOrg makes sure org "demo" exists.
func ensureDemoOrg(env *cliEnv, s *server.Server) error {
	if _, err := s.Keys.GetOrg(env.ctx, demoOrg); fault.KindOf(err) == fault.NotFound {
		if _, err := s.Keys.CreateOrg(env.ctx, "orgkms:dev", demoOrg, "Demo Org"); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return nil
}

// demoUserSpecs are the console users orgkms dev creates in org "demo".
var demoUserSpecs = []struct {
	email, name, file, about string
	roles                    []auth.Role
}{
	{"admin@demo.example", "Demo Security Admin", "demo-admin-password", "admin + key_admin of org demo (Settings → Security)", []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}},
	{"member@demo.example", "Demo Member", "demo-member-password", "member of org demo", []auth.Role{auth.RoleMember}},
}

type demoUser struct{ email, password, about string }

// ensureDemoUsers creates the demo console users once, each with a random
// password kept in DIR/<file> (mode 0600) and reused on restarts. A user
// whose password file is missing gets a new password; one whose password
// was changed in the console keeps it.
func ensureDemoUsers(env *cliEnv, s *server.Server, dir string) ([]demoUser, error) {
	existing, err := s.Users.List(env.ctx, demoOrg)
	if err != nil {
		return nil, err
	}
	var out []demoUser
	for _, spec := range demoUserSpecs {
		file := filepath.Join(dir, spec.file)
		pw := ""
		if b, err := os.ReadFile(file); err == nil {
			pw = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		var user *auth.User
		for i := range existing {
			if existing[i].Email == spec.email {
				user = &existing[i]
			}
		}
		if pw != "" && user != nil && !auth.CheckPassword(user.PasswordHash, pw) {
			out = append(out, demoUser{spec.email, "(changed in the console)", spec.about})
			continue
		}
		if pw == "" || auth.ValidatePassword(pw) != nil {
			if pw, err = randomPassword(); err != nil {
				return nil, err
			}
			// The file first: if creating the user fails, the next start
			// reuses this password.
			if err := writeFileAtomic(file, []byte(pw+"\n"), 0o600); err != nil {
				return nil, err
			}
			if user != nil {
				if err := s.Users.SetPassword(env.ctx, "orgkms:dev", user.ID, pw); err != nil {
					return nil, err
				}
			}
		}
		if user == nil {
			if _, err := s.Users.Create(env.ctx, "orgkms:dev", auth.NewUserRequest{OrgID: demoOrg, Email: spec.email, Name: spec.name,
				Roles: spec.roles, Password: pw}); err != nil {
				return nil, err
			}
		}
		out = append(out, demoUser{spec.email, pw, spec.about})
	}
	return out, nil
}

// randomPassword returns a random 24-character password.
func randomPassword() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// devCMKAdmin writes DIR/demo-admin.env with a token holding admin and
// key_admin on org "demo".
func devCMKAdmin(env *cliEnv, s *server.Server, dir, devURL string) (string, error) {
	const org = demoOrg
	p := filepath.Join(dir, "demo-admin.env")
	secret := validTokenIn(env, s, p)
	if secret == "" {
		var err error
		_, secret, err = s.Tokens.Create(env.ctx, "orgkms:dev", auth.CreateTokenRequest{Principal: "demo-security-admin", OrgID: org,
			Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}, Description: "orgkms dev: security admin of org demo"})
		if err != nil {
			return "", err
		}
	}
	content := fmt.Sprintf("export ORGKMS_ADDR=%s\nexport ORGKMS_TOKEN=%s\nexport ORGKMS_ORG=%s\n", devURL, secret, org)
	return p, writeFileAtomic(p, []byte(content), 0o600)
}

// devToken reuses the token of an existing dev.env when it is still valid,
// and creates a new operator+service token otherwise.
func devToken(env *cliEnv, s *server.Server, envFile string) (string, error) {
	if tok := validTokenIn(env, s, envFile); tok != "" {
		return tok, nil
	}
	_, secret, err := s.Tokens.Create(env.ctx, "orgkms:dev", auth.CreateTokenRequest{
		Principal: "dev-operator", Roles: []auth.Role{auth.RoleOperator, auth.RoleService},
		Description: "orgkms dev: platform operator that may also use every org's keys"})
	return secret, err
}

// validTokenIn returns the ORGKMS_TOKEN of an env file if it is still valid.
func validTokenIn(env *cliEnv, s *server.Server, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if tok, ok := strings.CutPrefix(line, "export ORGKMS_TOKEN="); ok {
			tok = strings.TrimSpace(tok)
			if _, err := s.Tokens.Authenticate(env.ctx, tok); err == nil {
				return tok
			}
		}
	}
	return ""
}
