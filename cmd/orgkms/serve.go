package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/console"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func cmdServe(env *cliEnv, args []string) error {
	fs := newFlags(env, "serve", "serve [--config FILE] [flags]",
		"Runs the orgkms server. Settings come from the JSON config file, then ORGKMS_*\n"+
			"environment variables (ORGKMS_LISTEN, ORGKMS_DATA_DIR, ORGKMS_DATABASE,\n"+
			"ORGKMS_MASTER_KEY_URI, ORGKMS_CACHE_TTL, ORGKMS_LOG_LEVEL, ORGKMS_LOG_FORMAT,\n"+
			"ORGKMS_TLS_CERT, ORGKMS_TLS_KEY), then flags. On first start it creates the\n"+
			"platform master key (local://DATA_DIR/master.key unless master_key is set)\n"+
			"and an operator token in DATA_DIR/bootstrap-token.")
	cfgPath := fs.String("config", "", "JSON config file")
	addr := fs.String("addr", "", "listen address (default 127.0.0.1:8200)")
	data := fs.String("data", "", "data directory (default ./orgkms-data)")
	migrate := fs.Bool("migrate", false, "apply database schema migrations before serving")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, *addr, *data)
	if err != nil {
		return err
	}
	cfg.AutoMigrate = cfg.AutoMigrate || *migrate
	log := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)
	s, err := openStack(env.ctx, cfg, log, cfg.AutoMigrate)
	if errors.Is(err, sqlite.ErrDataDirInUse) {
		return err
	} else if err != nil {
		return withHint(err, "a new or outdated database needs \"orgkms migrate\" (or serve --migrate)")
	}
	defer s.close()
	if p, err := s.ensureBootstrapToken(env.ctx); err != nil {
		return err
	} else if p != "" {
		log.Warn("created a bootstrap operator token", slog.String("path", p))
	}
	if err := s.listen(); err != nil {
		return err
	}
	log.Info("orgkms serving", slog.String("addr", s.URL()), slog.String("version", version), slog.String("data_dir", cfg.DataDir))
	return s.serve(env.ctx)
}

func loadConfig(path, addr, data string) (config.Config, error) {
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		return cfg, err
	}
	if addr != "" {
		cfg.Addr = addr
	}
	if data != "" {
		cfg.DataDir = data
		cfg.Database, cfg.MasterKey = "", ""
		if c2, _ := config.Load(path, os.Environ()); c2.Database != "" || c2.MasterKey != "" {
			cfg.Database, cfg.MasterKey = c2.Database, c2.MasterKey
		}
	}
	cfg.Defaults()
	return cfg, cfg.Validate()
}

func cmdMigrate(env *cliEnv, args []string) error {
	fs := newFlags(env, "migrate", "migrate [--config FILE] [--data DIR]",
		"Applies the embedded database schema migrations. Safe to run more than once.")
	cfgPath := fs.String("config", "", "JSON config file")
	data := fs.String("data", "", "data directory (default ./orgkms-data)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath, "", *data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Database), 0o700); err != nil {
		return err
	}
	st, err := sqlite.Open(env.ctx, sqlite.Config{Path: cfg.Database, NoMigrate: true})
	if err == nil {
		st.Close()
		fmt.Fprintf(env.stdout, "database %s is up to date\n", cfg.Database)
		return nil
	}
	st, err = sqlite.Open(env.ctx, sqlite.Config{Path: cfg.Database})
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(env.stdout, "database %s migrated\n", cfg.Database)
	return nil
}

func cmdDev(env *cliEnv, args []string) error {
	fs := newFlags(env, "dev", "dev [--addr 127.0.0.1:8200] [--data DIR]",
		"Runs a self-contained orgkms for development: SQLite and a local platform\n"+
			"master key in DIR, schema migrated automatically, and the built-in Azure\n"+
			"Key Vault + Entra ID emulator with a demo customer tenant, vault and key, so\n"+
			"the whole customer managed key flow works offline. It writes DIR/dev.env\n"+
			"(ORGKMS_ADDR and an operator token that may also use keys), so that\n"+
			"  source DIR/dev.env\n"+
			"points the CLI at it. Restarting on the same DIR keeps every org and key.")
	addr := fs.String("addr", "127.0.0.1:8200", "listen address")
	data := fs.String("data", ".orgkms-dev", "data directory")
	emuAddr := fs.String("emulator-addr", "127.0.0.1:0", "listen address of the Azure emulator (port 0: any free port)")
	noEmu := fs.Bool("no-emulator", false, "do not start the Azure emulator (customer managed keys off)")
	probe := fs.Duration("probe-interval", 30*time.Second, "how often customer managed keys are checked")
	logReq := fs.Bool("log-requests", false, "log every request")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return withHint(err, "another process uses that address; pick another with --addr 127.0.0.1:PORT")
		}
		return err
	}
	defer ln.Close()
	cfg := config.Config{Addr: ln.Addr().String(), DataDir: *data, LogFormat: "text", LogRequests: *logReq, AutoMigrate: true}
	cfg.CMK.ProbeInterval = config.Duration(*probe)
	cfg.Defaults()
	log := newLogger(cfg, os.Stderr)
	slog.SetDefault(log)

	var demo azureemu.Demo
	var emu *azureemu.Emulator
	if !*noEmu {
		emu, err = azureemu.Open(env.ctx, azureemu.Config{Dir: filepath.Join(cfg.DataDir, "emulator"), Addr: *emuAddr, Logger: log.With(slog.String("component", "azure-emulator"))})
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
		cln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		consentSrv := &http.Server{Handler: emu.ConsentPageHandler(), ReadHeaderTimeout: 10 * time.Second}
		go consentSrv.Serve(cln)
		defer consentSrv.Close()
		cfg.CMK.Cloud = "azure"
		cfg.CMK.Azure = config.Azure{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/",
			ConsentHost: "http://" + cln.Addr().String() + "/", CAFile: emu.CAFile(), EmulatorAddr: emu.Addr()}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	s, err := openStack(env.ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer s.close()
	if emu != nil {
		s.mount(&console.Demo{TenantID: demo.TenantID, VaultURI: demo.VaultURI, KeyName: demo.KeyName})
	}
	s.useListener(ln)
	// The demo org and users exist before dev.env appears, which scripts
	// wait for.
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
	content := fmt.Sprintf("export ORGKMS_ADDR=%s\nexport ORGKMS_TOKEN=%s\n", s.URL(), token)
	if err := writeFileAtomic(envFile, []byte(content), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, `orgkms dev server listening on %s
  data directory: %s (SQLite database, platform master key)

Web console: %s
`, s.URL(), cfg.DataDir, strings.TrimRight(cfg.PublicURL, "/")+"/console/")
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
		adminEnv, err := devCMKAdmin(env, s, cfg.DataDir)
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
      Step 1: open the printed URL and click Accept (the emulator's CA, for other
      tools: %s)
  orgkms cmk configure --vault-uri %s --key-name %s
      Step 2: key version empty = follow the latest version
  orgkms cmk test && orgkms cmk enable
Act as the customer in their Azure portal:
  source %s
  orgkms emulator key rotate|disable|enable|delete|recover %s %s
  orgkms emulator policy set %s %s get,list,wrapKey      # orgkms' application ID
`, emu.URL(), adminEnv, demo.TenantID, emu.CAFile(), demo.VaultURI, demo.KeyName, emuEnv, azureemu.DemoVault, demo.KeyName, azureemu.DemoVault, demo.ClientID)
	}
	fmt.Fprintln(env.stdout, "\nPress Ctrl-C to stop.")
	return s.serve(env.ctx)
}

// demoOrg is the org that orgkms dev creates for the demo users and token.
const demoOrg = "demo"

// ensureDemoOrg makes sure org "demo" exists.
func ensureDemoOrg(env *cliEnv, s *stack) error {
	if _, err := s.keys.GetOrg(env.ctx, demoOrg); fault.KindOf(err) == fault.NotFound {
		if _, err := s.keys.CreateOrg(env.ctx, "orgkms:dev", demoOrg, "Demo Org"); err != nil {
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
func ensureDemoUsers(env *cliEnv, s *stack, dir string) ([]demoUser, error) {
	existing, err := s.users.List(env.ctx, demoOrg)
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
				if err := s.users.SetPassword(env.ctx, "orgkms:dev", user.ID, pw); err != nil {
					return nil, err
				}
			}
		}
		if user == nil {
			if _, err := s.users.Create(env.ctx, "orgkms:dev", auth.NewUserRequest{OrgID: demoOrg, Email: spec.email, Name: spec.name,
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
func devCMKAdmin(env *cliEnv, s *stack, dir string) (string, error) {
	const org = demoOrg
	p := filepath.Join(dir, "demo-admin.env")
	secret := validTokenIn(env, s, p)
	if secret == "" {
		var err error
		_, secret, err = s.tokens.Create(env.ctx, "orgkms:dev", auth.CreateTokenRequest{Principal: "demo-security-admin", OrgID: org,
			Roles: []auth.Role{auth.RoleAdmin, auth.RoleKeyAdmin}, Description: "orgkms dev: security admin of org demo"})
		if err != nil {
			return "", err
		}
	}
	content := fmt.Sprintf("export ORGKMS_ADDR=%s\nexport ORGKMS_TOKEN=%s\nexport ORGKMS_ORG=%s\n", s.URL(), secret, org)
	return p, writeFileAtomic(p, []byte(content), 0o600)
}

// devToken reuses the token of an existing dev.env when it is still valid,
// and creates a new operator+service token otherwise.
func devToken(env *cliEnv, s *stack, envFile string) (string, error) {
	if tok := validTokenIn(env, s, envFile); tok != "" {
		return tok, nil
	}
	_, secret, err := s.tokens.Create(env.ctx, "orgkms:dev", auth.CreateTokenRequest{
		Principal: "dev-operator", Roles: []auth.Role{auth.RoleOperator, auth.RoleService},
		Description: "orgkms dev: platform operator that may also use every org's keys"})
	return secret, err
}

// writeFileAtomic writes data to a temporary file beside name and renames
// it, so readers never see a partial file.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// validTokenIn returns the ORGKMS_TOKEN of an env file if it is still valid.
func validTokenIn(env *cliEnv, s *stack, file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if tok, ok := strings.CutPrefix(line, "export ORGKMS_TOKEN="); ok {
			tok = strings.TrimSpace(tok)
			if _, err := s.tokens.Authenticate(env.ctx, tok); err == nil {
				return tok
			}
		}
	}
	return ""
}
