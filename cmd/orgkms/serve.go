package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func serveCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "run the server from a config file, environment and flags",
		Long: wrapText("Runs the orgkms server. Settings come from the JSON config file, then ORGKMS_* "+
			"environment variables ("+envVarList()+"), then flags. On first start it creates the platform "+
			"master key (local://DATA_DIR/master.key unless master_key is set) and an operator token in "+
			"DATA_DIR/bootstrap-token.", 80),
		Args: argNames(),
	}
	fs := cmd.Flags()
	cfgPath := fs.String("config", "", "JSON config `file`")
	fs.String("addr", "", "listen `address` (default 127.0.0.1:8200)")
	fs.String("data", "", "data `directory` (default ./orgkms-data)")
	migrate := fs.Bool("migrate", false, "apply database schema migrations before serving")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(cmd.CommandPath(), config.Sources{Path: *cfgPath, Environ: os.Environ(), Flags: serverFlags(fs)})
		if err != nil {
			return err
		}
		return runServe(env.ctx, env, cfg, *migrate)
	}
	return cmd
}

// startHints says what an operator checks when the server cannot start:
// the database when it is unreachable, the migrations when its schema is
// not this binary's.
func startHints(err error) []string {
	fe := fault.As(err)
	if fe == nil {
		return nil
	}
	switch fe.Kind {
	case fault.Unavailable:
		return []string{"check that the database is running and reachable at the address of \"database\" (ORGKMS_DATABASE_URL), and that its user and password are right"}
	case fault.Conflict:
		return []string{"apply the migrations with \"orgkms migrate\", or start with \"orgkms serve --migrate\" (config auto_migrate)"}
	}
	return nil
}

// runServe is the body of orgkms serve once its settings are known.
func runServe(ctx context.Context, env *cliEnv, cfg config.Config, migrate bool) error {
	log := server.NewLogger(cfg, env.stderr)
	slog.SetDefault(log)
	opts := server.Options{Logger: log, Migrate: migrate, JobObserver: jobObserver()}
	var err error
	if opts.Now, err = testClock(); err != nil {
		return err
	}
	if opts.AzureHTTPClient, err = azureClientFor(cfg); err != nil {
		return err
	}
	s, err := server.Open(ctx, cfg, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: a clean stop
		}
		if errors.Is(err, sqlite.ErrDataDirInUse) {
			return err // a second server: a migration would not help
		}
		return withHint(err, startHints(err)...)
	}
	defer s.Close()
	if p, err := ensureBootstrapToken(ctx, s); err != nil {
		return err
	} else if p != "" {
		log.Warn("created a bootstrap operator token", slog.String("path", p))
	}
	if tok, left, err := s.Tokens.BootstrapTokenLeft(ctx, filepath.Join(cfg.DataDir, "bootstrap-token")); err != nil {
		log.Warn("cannot check the bootstrap token", slog.String("error", err.Error()))
	} else if left {
		log.Warn("the bootstrap operator token is still valid although other operator tokens exist: revoke it (orgkms token revoke ID) and delete its file",
			slog.String("token_id", tok.ID), slog.String("path", filepath.Join(cfg.DataDir, "bootstrap-token")))
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
func serverFlags(fs *pflag.FlagSet) func(*config.Config) {
	return func(c *config.Config) {
		fs.Visit(func(f *pflag.Flag) {
			switch v := f.Value.String(); f.Name {
			case "addr":
				c.Addr = v
			case "data":
				c.DataDir = v
			}
		})
	}
}

// envVarList names the ORGKMS_* variables the server reads.
func envVarList() string {
	var names []string
	for _, v := range config.EnvVars {
		names = append(names, v.Name)
	}
	return strings.Join(names, ", ")
}

func migrateCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "apply database schema migrations",
		Long: "Applies the embedded database schema migrations to the database of the\n" +
			"configuration (\"database\" in the config file, ORGKMS_DATABASE_URL for\n" +
			"PostgreSQL, or DATA_DIR/orgkms.db), in order, each once. Safe to run more\n" +
			"than once, and from several nodes at the same time: one applies them.\n" +
			"orgkms serve --migrate (config auto_migrate) does the same at start.",
		Args: argNames(),
	}
	fs := cmd.Flags()
	cfgPath := fs.String("config", "", "JSON config `file`")
	fs.String("data", "", "data `directory` (default ./orgkms-data)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(cmd.CommandPath(), config.Sources{Path: *cfgPath, Environ: os.Environ(), Flags: serverFlags(fs)})
		if err != nil {
			return err
		}
		return runMigrate(env, cfg)
	}
	return cmd
}

// runMigrate is the body of orgkms migrate once its settings are known.
// A PostgreSQL database is named without its password.
func runMigrate(env *cliEnv, cfg config.Config) error {
	if !cfg.Postgres() {
		if err := os.MkdirAll(filepath.Dir(cfg.Database), 0o700); err != nil {
			return err
		}
	}
	log := slog.New(slog.DiscardHandler)
	st, err := server.OpenStore(env.ctx, cfg, log, false)
	if err == nil {
		st.Close()
		fmt.Fprintf(env.stdout, "database %s is up to date\n", cfg.DatabaseName())
		return nil
	}
	st, err = server.OpenStore(env.ctx, cfg, log, true)
	if err != nil {
		if fe := fault.As(err); fe != nil && fe.Kind == fault.Unavailable {
			return withHint(err, startHints(err)...)
		}
		return err
	}
	defer st.Close()
	fmt.Fprintf(env.stdout, "database %s migrated\n", cfg.DatabaseName())
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
