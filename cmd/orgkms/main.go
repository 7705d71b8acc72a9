// Command orgkms is the orgkms key management service and its CLI.
//
// The command tree is built with github.com/spf13/cobra in [newRootCmd];
// [run] executes one command line and maps its outcome to an exit code:
// 0 for success and for every kind of help (printed on stdout), 2 for a
// usage mistake, 1 for a failed call. Errors are printed once, as one
// "orgkms: error: …" line and "orgkms: hint: …" lines on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// defaultGOGC is the garbage collector target unless GOGC is set: orgkms'
// live heap is small and its per-request garbage large, so the default (100)
// collects far too often; 400 gives ~30% more requests per second for a few
// MB more memory.
const defaultGOGC = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// ORGKMS_CPUPROFILE=FILE writes a CPU profile of the whole run (for
	// performance work with orgkms bench; no effect otherwise).
	if p := os.Getenv("ORGKMS_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}

// Exit codes of run.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed
	exitUsage = 2 // the command line is wrong
)

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &cliEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(env)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && !strings.HasPrefix(args[0], "__") { // __complete: cobra's hidden completion command
		if c, _, err := root.Find(args[:1]); err != nil || c == root {
			// An unknown command stays a usage error even with -h after it
			// (cobra would print the root's help and succeed).
			args = args[:1]
		}
	}
	root.SetArgs(longFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	printError(stderr, withFieldHint(cmd, err))
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, client.CodeInvalidArgument) {
		// The server refused a value the command line gave (an ID's form,
		// a role, a size): a mistake in the command line too.
		return exitUsage
	}
	return exitError
}

// longFlags rewrites "-name" to "--name" where name is a long flag of the
// command that args run: orgkms' flags were parsed by package flag, which
// takes both forms, and scripts written then keep working. Values of flags
// and everything after "--" are left alone.
func longFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd.DisableFlagParsing {
		return args
	}
	out := slices.Clone(args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if a == "--" {
			break
		}
		if len(a) < 3 || a[0] != '-' {
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, hasValue := strings.Cut(name, "=")
		f := cmd.Flags().Lookup(name)
		if f == nil {
			continue
		}
		if a[1] != '-' {
			out[i] = "-" + a
		}
		if !hasValue && f.NoOptDefVal == "" {
			i++ // the next argument is the flag's value
		}
	}
	return out
}

// newRootCmd returns the whole command tree, writing to env.
func newRootCmd(env *cliEnv) *cobra.Command {
	cobra.EnableCommandSorting = false // the order below is the order of the help
	root := &cobra.Command{
		Use:   "orgkms <command>",
		Short: "per-organization key management with customer managed keys",
		Long: "orgkms: per-organization key management with customer managed keys\n\n" +
			"Client commands talk to a running server: set ORGKMS_ADDR and ORGKMS_TOKEN\n" +
			"(\"source DATA/dev.env\" after \"orgkms dev\"), and ORGKMS_ORG for --org.",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Errors (and help) are printed by run and the help command.
		Args: groupArgs,
		RunE: groupRun,
	}
	root.SetIn(env.stdin)
	root.SetOut(env.stdout)
	root.SetErr(env.stderr)
	root.SetVersionTemplate("orgkms {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.SetHelpFunc(printHelp)
	root.SetHelpCommand(helpCmd())
	root.AddGroup(
		&cobra.Group{ID: "server", Title: "Server:"},
		&cobra.Group{ID: "client", Title: "Client (set ORGKMS_ADDR and ORGKMS_TOKEN, e.g. source DATA/dev.env):"},
		&cobra.Group{ID: "emulator", Title: "Azure emulator (Key Vault + Entra ID, for development and tests):"},
	)
	add := func(group string, cmds ...*cobra.Command) {
		for _, c := range cmds {
			c.GroupID = group
			root.AddCommand(c)
		}
	}
	add("server", devCmd(env), serveCmd(env), migrateCmd(env), hsmCmd(env), masterKeyCmd(env), kmsPluginCmd(env))
	add("client", orgCmd(env), keyCmd(env), encryptCmd(env), decryptCmd(env), rewrapCmd(env), dataKeyCmd(env),
		cmkCmd(env), tokenCmd(env), userCmd(env), webhookCmd(env), auditCmd(env), usageCmd(env), cacheCmd(env), nodeCmd(env), vaultBudgetCmd(env), whoAmICmd(env), benchCmd(env))
	add("emulator", emulatorCmd(env))
	root.AddCommand(versionCmd(env), completionCmd(env))
	return root
}

func versionCmd(env *cliEnv) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  argNames(),
	}
	f := addFormat(c)
	c.RunE = func(*cobra.Command, []string) error {
		return f.emit(env, map[string]string{"version": version}, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, "orgkms", version)
			return err
		})
	}
	return c
}

func completionCmd(env *cliEnv) *cobra.Command {
	c := &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "print a shell completion script",
		Long: "Prints the completion script of a shell on stdout. For example:\n\n" +
			"  source <(orgkms completion bash)                         # bash, this shell\n" +
			"  orgkms completion zsh > \"${fpath[1]}/_orgkms\"            # zsh\n" +
			"  orgkms completion fish > ~/.config/fish/completions/orgkms.fish",
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		Args:      argNames("SHELL"),
	}
	c.RunE = func(cmd *cobra.Command, args []string) error {
		root, w := cmd.Root(), env.stdout
		switch args[0] {
		case "bash":
			return root.GenBashCompletionV2(w, true)
		case "zsh":
			return root.GenZshCompletion(w)
		case "fish":
			return root.GenFishCompletion(w, true)
		case "powershell":
			return root.GenPowerShellCompletionWithDesc(w)
		}
		return usageError{fmt.Sprintf("unknown shell %q", args[0]), "use bash, zsh, fish or powershell"}
	}
	return c
}

// helpCmd is "orgkms help [command...]": help on stdout, and a usage error
// for an unknown topic.
func helpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "show help for a command",
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 && !cmd.DisableFlagParsing {
				msg := fmt.Sprintf("unknown help topic %q", strings.Join(args, " "))
				return withHint(usageError{msg, "run \"" + cmd.CommandPath() + " --help\" for its commands"}, suggest(cmd, rest[0])...)
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		},
	}
}
