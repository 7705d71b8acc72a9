// Command orgkms is the orgkms key management service and its CLI.
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
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `orgkms: per-organization key management with customer managed keys

Usage:
  orgkms <command> [flags] [args]

Server:
  dev        run a self-contained server for development (SQLite, local master key)
  serve      run the server from a config file, environment and flags
  migrate    apply database schema migrations

Client (set ORGKMS_ADDR and ORGKMS_TOKEN, e.g. source DATA/dev.env):
  org        create, list and show orgs
  key        create, list, show, rotate and configure data keys
  encrypt    encrypt stdin under an org's key, print the ciphertext
  decrypt    decrypt a ciphertext read from stdin, write the plaintext
  rewrap     re-encrypt a ciphertext under the latest key version
  datakey    generate a data key for client-side encryption
  cmk        customer managed keys: status, authorize, configure, test, enable, disable
  token      create, list and revoke API tokens
  user       create and list console users (password on stdin)
  audit      list and verify the audit log
  cache      purge unwrapped keys from the server's memory
  whoami     show the current token's principal and roles
  bench      load-test a running server (with an in-process baseline)

Azure emulator (Key Vault + Entra ID, for development and tests):
  emulator   serve the emulator, or act as the customer: vaults, keys, policies, faults

  version    print the version

Run "orgkms <command> -h" for the flags of a command.
`

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

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	env := &cliEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	var err error
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(stdout, "orgkms", version)
		return 0
	case "serve":
		err = cmdServe(env, rest)
	case "dev":
		err = cmdDev(env, rest)
	case "migrate":
		err = cmdMigrate(env, rest)
	case "org":
		err = cmdOrg(env, rest)
	case "key":
		err = cmdKey(env, rest)
	case "encrypt":
		err = cmdEncrypt(env, rest)
	case "decrypt":
		err = cmdDecrypt(env, rest)
	case "rewrap":
		err = cmdRewrap(env, rest)
	case "datakey":
		err = cmdDataKey(env, rest)
	case "token":
		err = cmdToken(env, rest)
	case "audit":
		err = cmdAudit(env, rest)
	case "cache":
		err = cmdCache(env, rest)
	case "whoami":
		err = cmdWhoAmI(env, rest)
	case "cmk":
		err = cmdCMK(env, rest)
	case "user":
		err = cmdUser(env, rest)
	case "bench":
		err = cmdBench(env, rest)
	case "emulator":
		err = cmdEmulator(env.ctx, rest, env.stdout, env.stderr)
	default:
		err = usageError{fmt.Sprintf("unknown command %q", cmd), "run \"orgkms help\" for the list of commands"}
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	printError(stderr, err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }

// hinted attaches hint lines to an error.
type hinted struct {
	err   error
	hints []string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

func withHint(err error, hints ...string) error { return hinted{err, hints} }

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "orgkms: error: %s\n", oneLine(err.Error()))
	var ue usageError
	if errors.As(err, &ue) && ue.hint != "" {
		fmt.Fprintf(w, "orgkms: hint: %s\n", ue.hint)
	}
	var h hinted
	if errors.As(err, &h) {
		for _, s := range h.hints {
			fmt.Fprintf(w, "orgkms: hint: %s\n", s)
		}
	}
	for _, s := range apiHints(err) {
		fmt.Fprintf(w, "orgkms: hint: %s\n", s)
	}
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ") }
