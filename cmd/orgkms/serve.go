package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func cmdServe(env *cliEnv, args []string) error {
	fs := newFlags(env, "serve", "serve [--config FILE] [flags]",
		"Runs the orgkms server. Settings come from the JSON config file, then the\n"+
			"environment variables\n"+envVarList()+"\n"+
			"then flags. On first start it creates the platform master key\n"+
			"(local://DATA_DIR/master.key unless master_key is set) and an operator\n"+
			"token in DATA_DIR/bootstrap-token.")
	cfgPath := fs.String("config", "", "JSON config file")
	fs.String("addr", "", "listen address (default 127.0.0.1:8200)")
	fs.String("data", "", "data directory (default ./orgkms-data)")
	migrate := fs.Bool("migrate", false, "apply database schema migrations before serving")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	cfg, err := config.Load(config.Sources{Path: *cfgPath, Environ: os.Environ(), Flags: serverFlags(fs)})
	if err != nil {
		return err
	}
	return runServe(env.ctx, env, cfg, *migrate)
}

// runServe is the body of orgkms serve once its settings are known.
func runServe(ctx context.Context, env *cliEnv, cfg config.Config, migrate bool) error {
	log := server.NewLogger(cfg, env.stderr)
	slog.SetDefault(log)
	opts := server.Options{Logger: log, Migrate: migrate, OnJobStep: jobStepHook()}
	var err error
	if opts.AzureHTTPClient, err = azureClientFor(cfg); err != nil {
		return err
	}
	s, err := server.Open(ctx, cfg, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: a clean stop
		}
		return withHint(err, "a new or outdated database needs \"orgkms migrate\" (or serve --migrate)")
	}
	defer s.Close()
	if p, err := ensureBootstrapToken(ctx, s); err != nil {
		return err
	} else if p != "" {
		log.Warn("created a bootstrap operator token", slog.String("path", p))
	}
	ln, err := s.Listen()
	if err != nil {
		return err
	}
	log.Info("orgkms serving", slog.String("addr", s.URL(ln)), slog.String("version", version), slog.String("data_dir", cfg.DataDir))
	return s.Serve(ctx, ln)
}

// serverFlags applies the server flags the user set (--addr, --data) to a
// configuration, after the file and the environment.
func serverFlags(fs *flag.FlagSet) func(*config.Config) {
	return func(c *config.Config) {
		fs.Visit(func(f *flag.Flag) {
			switch v := f.Value.String(); f.Name {
			case "addr":
				c.Addr = v
			case "data":
				c.DataDir = v
			}
		})
	}
}

// envVarList names the ORGKMS_* variables the server reads, indented, a
// few per line.
func envVarList() string {
	var b strings.Builder
	line := "  "
	for i, v := range config.EnvVars {
		name := v.Name
		if i < len(config.EnvVars)-1 {
			name += ","
		}
		if len(line)+len(name) > 78 {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = "  "
		}
		line += name + " "
	}
	b.WriteString(strings.TrimRight(line, " "))
	return b.String()
}

func cmdMigrate(env *cliEnv, args []string) error {
	fs := newFlags(env, "migrate", "migrate [--config FILE] [--data DIR]",
		"Applies the embedded database schema migrations. Safe to run more than once.")
	cfgPath := fs.String("config", "", "JSON config file")
	fs.String("data", "", "data directory (default ./orgkms-data)")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	cfg, err := config.Load(config.Sources{Path: *cfgPath, Environ: os.Environ(), Flags: serverFlags(fs)})
	if err != nil {
		return err
	}
	return runMigrate(env, cfg)
}

// runMigrate is the body of orgkms migrate once its settings are known.
func runMigrate(env *cliEnv, cfg config.Config) error {
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
