package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// group returns a command that only groups subs.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: groupArgs, RunE: groupRun}
	c.AddCommand(subs...)
	return c
}

func orgCmd(env *cliEnv) *cobra.Command {
	create := &cobra.Command{
		Use:   "create ORG",
		Short: "create an org with a root key and a data key named \"default\" (operator)",
		Args:  argNames("ORG"),
	}
	name := create.Flags().String("name", "", "display `name` (default: the ID)")
	createFmt := addFormat(create)
	create.RunE = func(_ *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		o, err := c.CreateOrg(env.ctx, args[0], *name)
		if errors.Is(err, client.CodeConflict) {
			return hinted{err: err, exact: true, hints: []string{fmt.Sprintf("\"orgkms org show %s\" shows it", args[0])}}
		}
		if err != nil {
			return err
		}
		return createFmt.emit(env, o, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "created org %s (protected by the %s master key); data key \"default\" is ready\n", o.ID, o.Protection)
			return err
		})
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "list every org (operator)",
		Args:  argNames(),
	}
	listFmt := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		all, err := allOrgs(env, c)
		if err != nil {
			return err
		}
		return listFmt.emit(env, client.OrgList{Orgs: all}, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintln(tw, "ID\tNAME\tPROTECTION\tSTATE\tCREATED")
			for _, o := range all {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.ID, o.Name, o.Protection, orgState(o), o.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}

	show := &cobra.Command{
		Use:               "show ORG",
		Short:             "show an org and its state",
		Args:              argNames("ORG"),
		ValidArgsFunction: orgArg,
	}
	showFmt := addFormat(show)
	show.RunE = func(_ *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		o, err := c.GetOrg(env.ctx, args[0])
		if err != nil {
			return missing(env, c, err, args[0], "")
		}
		return showFmt.emit(env, o, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "id:          %s\nname:        %s\nprotection:  %s\nmaster key:  %s\ncreated:     %s\nstate:       %s\n", o.ID, o.Name, o.Protection, o.MasterKey, o.CreatedAt.Format(time.RFC3339), orgState(o))
			if err == nil && o.State == "pending_deletion" {
				_, err = fmt.Fprintf(w, "             its keys are refused; \"orgkms org cancel-deletion %s\" cancels the deletion\n", o.ID)
			}
			return err
		})
	}
	return group("org <command>", "create, list, show and delete orgs", append([]*cobra.Command{create, list, show}, orgLifecycleCmds(env)...)...)
}

// allOrgs lists every org, page by page.
func allOrgs(env *cliEnv, c *client.Client) ([]client.Org, error) {
	var all []client.Org
	after := ""
	for {
		page, err := c.ListOrgs(env.ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Orgs...)
		if page.NextAfter == "" {
			return all, nil
		}
		after = page.NextAfter
	}
}

// keyVerb is a command acting on one named data key of an org: key
// create, show, rotate, config, and the lifecycle commands.
type keyVerb struct {
	verb, short, long string
	do                func(c *client.Client, org, name string) (client.Key, error)
	flags             func(*cobra.Command)                                      // more flags, or nil
	fail              func(c *client.Client, err error, org, name string) error // the error as the user sees it
	text              func(w io.Writer, org string, k client.Key) error         // the text output
}

func (v keyVerb) command(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{Use: v.verb + " NAME", Short: v.short, Long: v.long, Args: argNames("NAME")}
	if v.verb != "create" {
		cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return completeKeys(cmd, args, toComplete)
		}
	}
	org := orgFlag(cmd)
	if v.flags != nil {
		v.flags(cmd)
	}
	f := addFormat(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		o, err := requireOrg(*org)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		k, err := v.do(c, o, args[0])
		if err != nil {
			return v.fail(c, err, o, args[0])
		}
		return f.emit(env, k, func(w io.Writer) error { return v.text(w, o, k) })
	}
	return cmd
}

func keyCmd(env *cliEnv) *cobra.Command {
	// one returns a command acting on one named key, printing its versions.
	one := func(verb, short string, do func(c *client.Client, org, name string) (client.Key, error), flags func(*cobra.Command)) *cobra.Command {
		return keyVerb{verb: verb, short: short, do: do, flags: flags,
			fail: func(c *client.Client, err error, org, name string) error { return missing(env, c, err, org, name) },
			text: func(w io.Writer, org string, k client.Key) error {
				fmt.Fprintf(w, "key %s in org %s: latest version %d, min decryption version %d\n", k.Name, org, k.LatestVersion, k.MinDecryptionVersion)
				if k.State != "" {
					fmt.Fprintf(w, "  state: %s\n", keyState(k))
				}
				for _, v := range k.Versions {
					fmt.Fprintf(w, "  version %d  created %s\n", v.Version, v.CreatedAt.Format(time.RFC3339))
				}
				return nil
			}}.command(env)
	}
	create := one("create", "create a data key with version 1", func(c *client.Client, org, name string) (client.Key, error) {
		k, err := c.CreateKey(env.ctx, org, name)
		if errors.Is(err, client.CodeConflict) {
			return k, hinted{err: err, exact: true, hints: []string{fmt.Sprintf("\"orgkms key show --org %s %s\" shows it; \"orgkms key rotate --org %s %s\" adds a version", org, name, org, name)}}
		}
		return k, err
	}, nil)
	show := one("show", "show a data key and its versions", func(c *client.Client, org, name string) (client.Key, error) {
		return c.GetKey(env.ctx, org, name)
	}, nil)
	rotate := one("rotate", "add a new version; new ciphertexts use it, old ones still decrypt", func(c *client.Client, org, name string) (client.Key, error) {
		return c.RotateKey(env.ctx, org, name)
	}, nil)
	var minDec uint32
	config := one("config", "set the minimum version allowed to decrypt (retires older versions)", func(c *client.Client, org, name string) (client.Key, error) {
		return c.SetMinDecryptionVersion(env.ctx, org, name, minDec)
	}, func(cmd *cobra.Command) {
		cmd.Flags().Uint32Var(&minDec, "min-decryption-version", 0, "oldest `version` allowed to decrypt")
		cmd.PreRunE = func(*cobra.Command, []string) error {
			if !cmd.Flags().Changed("min-decryption-version") {
				return usageError{"nothing to change", "give --min-decryption-version N"}
			}
			if minDec == 0 {
				return usageError{"--min-decryption-version must be at least 1", "versions are numbered from 1; \"orgkms key show\" lists them"}
			}
			return nil
		}
	})

	list := &cobra.Command{Use: "list", Short: "list the org's data keys", Args: argNames()}
	org := orgFlag(list)
	f := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		o, err := requireOrg(*org)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		ks, err := c.ListKeys(env.ctx, o)
		if err != nil {
			return missing(env, c, err, o, "")
		}
		return f.emit(env, client.KeyList{Keys: ks}, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintln(tw, "NAME\tLATEST\tMIN DECRYPTION\tSTATE\tCREATED")
			for _, k := range ks {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", k.Name, k.LatestVersion, k.MinDecryptionVersion, keyState(k), k.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		})
	}
	return group("key <command>", "create, list, show, rotate, configure, disable and delete data keys", append([]*cobra.Command{create, list, show, rotate, config}, keyLifecycleCmds(env)...)...)
}

// cryptoFlags are the flags shared by encrypt, decrypt, rewrap and datakey.
type cryptoFlags struct {
	org, key, context, in string
}

func addCryptoFlags(c *cobra.Command, withInput bool) *cryptoFlags {
	f := &cryptoFlags{}
	fs := c.Flags()
	fs.StringVar(&f.org, "org", "", "org `ID` (default $ORGKMS_ORG)")
	fs.StringVar(&f.key, "key", "default", "data key `name`")
	_ = c.RegisterFlagCompletionFunc("org", completeOrgs)
	_ = c.RegisterFlagCompletionFunc("key", completeKeys)
	fs.StringVar(&f.context, "context", "", "caller context bound to the ciphertext (must be given again to decrypt)")
	if withInput {
		fs.StringVar(&f.in, "in", "-", "input `file` (- = stdin)")
	}
	return f
}

func (f *cryptoFlags) check() error {
	org, err := requireOrg(f.org)
	f.org = org
	return err
}

func (f *cryptoFlags) ctxBytes() []byte {
	if f.context == "" {
		return nil
	}
	return []byte(f.context)
}

func readInput(env *cliEnv, path string, limit int64) ([]byte, error) {
	var r io.Reader = env.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("input exceeds %d bytes", limit)
	}
	return b, nil
}

// decodeCiphertext decodes the ciphertext the command name (decrypt,
// rewrap) read from its input.
func decodeCiphertext(name string, b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, usageError{"no ciphertext on input", "pipe the output of orgkms encrypt, e.g. orgkms encrypt ... | orgkms " + name + " ..., or give --in FILE"}
	}
	ct, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, usageError{"input is not a base64 ciphertext", "pass the ciphertext exactly as orgkms encrypt printed it"}
	}
	return ct, nil
}

func encryptCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "encrypt",
		Short: "encrypt stdin under an org's key, print the ciphertext",
		Long: "Reads plaintext from stdin (or --in) and prints the base64 ciphertext\n" +
			"(with --format json or table: the ciphertext and the key version).",
		Args: argNames(),
	}
	f := addCryptoFlags(cmd, true)
	out := addFormat(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		if err := f.check(); err != nil {
			return err
		}
		pt, err := readInput(env, f.in, 4<<20)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		ct, v, err := c.Encrypt(env.ctx, f.org, f.key, pt, f.ctxBytes())
		clear(pt)
		if err != nil {
			return missing(env, c, err, f.org, f.key)
		}
		return out.emit(env, client.CryptoResponse{Ciphertext: ct, KeyVersion: v}, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, base64.StdEncoding.EncodeToString(ct))
			return err
		})
	}
	return cmd
}

func decryptCmd(env *cliEnv) *cobra.Command {
	return ciphertextCmd(env, "decrypt", "decrypt a ciphertext read from stdin, write the plaintext",
		"Reads a base64 ciphertext from stdin (or --in) and writes the plaintext to stdout\n"+
			"(with --format json or table: the plaintext in base64).",
		func(c *client.Client, f *cryptoFlags, ct []byte) (client.CryptoResponse, error) {
			pt, err := c.Decrypt(env.ctx, f.org, f.key, ct, f.ctxBytes())
			return client.CryptoResponse{Plaintext: pt}, err
		},
		func(w io.Writer, r client.CryptoResponse) error {
			_, err := w.Write(r.Plaintext)
			return err
		})
}

func rewrapCmd(env *cliEnv) *cobra.Command {
	return ciphertextCmd(env, "rewrap", "re-encrypt a ciphertext under the latest key version",
		"Re-encrypts a ciphertext under the key's latest version, on the server, and\n"+
			"prints the new ciphertext. The plaintext never leaves the server.",
		func(c *client.Client, f *cryptoFlags, ct []byte) (client.CryptoResponse, error) {
			out, v, err := c.Rewrap(env.ctx, f.org, f.key, ct, f.ctxBytes())
			return client.CryptoResponse{Ciphertext: out, KeyVersion: v}, err
		},
		func(w io.Writer, r client.CryptoResponse) error {
			_, err := fmt.Fprintln(w, base64.StdEncoding.EncodeToString(r.Ciphertext))
			return err
		})
}

// ciphertextHint says with which key and context a refused ciphertext was
// tried, and how to name the others: the ciphertext does not say which
// data key made it.
func ciphertextHint(f *cryptoFlags) string {
	with := fmt.Sprintf("tried org %s, key %q", f.org, f.key)
	if f.context == "" {
		with += ", no --context"
	} else {
		with += " and the given --context"
	}
	return with + fmt.Sprintf(": give the --org, --key (\"orgkms key list --org %s\" lists them) and --context it was encrypted with, and the ciphertext unmodified", f.org)
}

// ciphertextCmd is a command that reads a ciphertext (decrypt, rewrap),
// decodes it, calls do and prints the result.
func ciphertextCmd(env *cliEnv, name, short, long string, do func(*client.Client, *cryptoFlags, []byte) (client.CryptoResponse, error), text func(io.Writer, client.CryptoResponse) error) *cobra.Command {
	cmd := &cobra.Command{Use: name, Short: short, Long: long, Args: argNames()}
	f := addCryptoFlags(cmd, true)
	out := addFormat(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		if err := f.check(); err != nil {
			return err
		}
		in, err := readInput(env, f.in, 8<<20)
		if err != nil {
			return err
		}
		ct, err := decodeCiphertext(name, in)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		r, err := do(c, f, ct)
		if errors.Is(err, client.CodeCiphertextInvalid) {
			return hinted{err: err, exact: true, hints: []string{ciphertextHint(f)}}
		}
		if err != nil {
			return missing(env, c, err, f.org, f.key)
		}
		return out.emit(env, r, func(w io.Writer) error { return text(w, r) })
	}
	return cmd
}

func dataKeyCmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "datakey",
		Short: "generate a data key for client-side encryption",
		Long: "Generates a random data key for client-side encryption and prints it as JSON\n" +
			"(or a table with --format table): the plaintext key (base64, unless --wrapped)\n" +
			"and the key encrypted under the org's data key (decrypt it later with\n" +
			"orgkms decrypt).",
		Args: argNames(),
	}
	f := addCryptoFlags(cmd, false)
	bits := cmd.Flags().Int("bits", 256, "key size: 128, 256 or 512")
	wrapped := cmd.Flags().Bool("wrapped", false, "return only the encrypted key")
	out := addFormat(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		if err := f.check(); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		typ := "plaintext"
		if *wrapped {
			typ = "wrapped"
		}
		dk, err := c.DataKey(env.ctx, f.org, f.key, client.DataKeyRequest{Type: typ, Bits: *bits, Context: f.ctxBytes()})
		if err != nil {
			return missing(env, c, err, f.org, f.key)
		}
		return out.emit(env, dk, func(w io.Writer) error { return printJSON(w, dk) })
	}
	return cmd
}

func tokenCmd(env *cliEnv) *cobra.Command {
	create := &cobra.Command{
		Use:   "create --principal NAME --role ROLE[,ROLE]",
		Short: "create an API token and print its secret once (operator)",
		Long: "Creates an API token and prints its secret once (operator). Roles: operator\n" +
			"(platform-wide), service (data plane; with --org for one org, without for all),\n" +
			"admin, key_admin, member (need --org).",
		Args: argNames(),
	}
	principal := create.Flags().String("principal", "", "who uses the token, e.g. billing-service")
	roles := create.Flags().String("role", "", "comma-separated `roles`")
	org := create.Flags().String("org", "", "limit the token to one org")
	ttl := create.Flags().String("ttl", "", "`lifetime`, e.g. 720h (default: no expiry)")
	desc := create.Flags().String("description", "", "free `text`")
	createFmt := addFormat(create)
	create.RunE = func(*cobra.Command, []string) error {
		if *principal == "" || *roles == "" {
			return usageError{"--principal and --role are required", "e.g. orgkms token create --principal billing --role service --org acme"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		t, err := c.CreateToken(env.ctx, client.CreateTokenRequest{Principal: *principal, Org: *org, Roles: strings.Split(*roles, ","), TTL: *ttl, Description: *desc})
		if err != nil {
			return missing(env, c, err, *org, "")
		}
		fmt.Fprintln(env.stderr, "orgkms: store the secret now: it is not shown again")
		return createFmt.emit(env, t, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "token %s for %s (roles %s)\n%s\n", t.ID, t.Principal, strings.Join(t.Roles, ","), t.Secret)
			return err
		})
	}

	list := &cobra.Command{Use: "list", Short: "list API tokens (never their secrets)", Args: argNames()}
	listFmt := addFormat(list)
	listOrg := list.Flags().String("org", "", "only the tokens limited to this org (platform-wide tokens are not shown)")
	listActive := list.Flags().Bool("active", false, "only tokens that are neither revoked nor expired")
	list.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		all, err := c.ListTokens(env.ctx)
		if err != nil {
			return err
		}
		ts := []client.Token{}
		for _, t := range all {
			if (*listOrg == "" || t.Org == *listOrg) && (!*listActive || (t.RevokedAt == nil && (t.ExpiresAt == nil || t.ExpiresAt.After(time.Now())))) {
				ts = append(ts, t)
			}
		}
		return listFmt.emit(env, client.TokenList{Tokens: ts}, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintln(tw, "ID\tPRINCIPAL\tORG\tROLES\tSTATE")
			for _, t := range ts {
				state := "active"
				if t.RevokedAt != nil {
					state = "revoked"
				} else if t.ExpiresAt != nil && t.ExpiresAt.Before(time.Now()) {
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Principal, orDefault(t.Org, "(all)"), strings.Join(t.Roles, ","), state)
			}
			return tw.Flush()
		})
	}

	revoke := &cobra.Command{Use: "revoke ID", Short: "revoke an API token", Args: argNames("ID")}
	revokeFmt := addFormat(revoke)
	revoke.RunE = func(_ *cobra.Command, args []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		if err := c.RevokeToken(env.ctx, args[0]); err != nil {
			if errors.Is(err, client.CodeNotFound) {
				return withHint(err, fmt.Sprintf("there is no token %q; \"orgkms token list\" lists the tokens", args[0]))
			}
			return err
		}
		return revokeFmt.emit(env, apiStatus{Status: "revoked"}, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "revoked token %s\n", args[0])
			return err
		})
	}
	return group("token <command>", "create, list and revoke API tokens", create, list, revoke)
}

func auditCmd(env *cliEnv) *cobra.Command {
	list := &cobra.Command{
		Use:   "list",
		Short: "list an org's audit events",
		Long: "Prints an org's audit events, one per line: sequence number, time, actor,\n" +
			"action, target and details (use --org _platform for the platform's chain).\n" +
			"--format json prints them as the API returns them, with their hashes.",
		Args: argNames(),
	}
	org := orgFlag(list)
	after := list.Flags().Int64("after", 0, "only events after this sequence `number`")
	limit := list.Flags().Int("limit", 1000, "at most this many events")
	listFmt := addFormat(list)
	list.RunE = func(*cobra.Command, []string) error {
		o := orgOrEnv(*org)
		if o == "" {
			return usageError{"--org is required", "give --org ORG (or _platform)"}
		}
		if *limit < 1 || *limit > 1000 || *after < 0 {
			return usageError{"--limit must be between 1 and 1000, and --after not negative", "page with --after SEQ (the last event's seq) and --limit N"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		evs, err := c.Audit(env.ctx, o, *after, *limit)
		if err != nil {
			return missing(env, c, err, o, "")
		}
		return listFmt.emit(env, client.AuditList{Events: evs}, func(w io.Writer) error {
			tw := table(w)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tTARGET\tDETAILS")
			for _, e := range evs {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format(time.RFC3339), e.Actor, e.Action, orDefault(e.Target, "-"), detailsText(e.Details))
			}
			return tw.Flush()
		})
	}

	verify := &cobra.Command{
		Use:   "verify",
		Short: "verify the hash chain of an audit log",
		Long: "Verifies the hash chain of an org's audit log (or of every org and the\n" +
			"platform with --all). Exits 1 if any chain is broken.",
		Args: argNames(),
	}
	vorg := orgFlag(verify)
	all := verify.Flags().Bool("all", false, "verify every org and the platform chain (operator)")
	verifyFmt := addFormat(verify)
	verify.RunE = func(*cobra.Command, []string) error {
		o := orgOrEnv(*vorg)
		if o == "" && !*all {
			return usageError{"give --org ORG or --all", helpHint(verify)}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		orgs := []string{o}
		if *all {
			list, err := allOrgs(env, c)
			if err != nil {
				return err
			}
			orgs = []string{"_platform"}
			for _, o := range list {
				orgs = append(orgs, o.ID)
			}
		}
		var results []auditChain
		broken := 0
		for _, o := range orgs {
			v, err := c.VerifyAudit(env.ctx, o)
			if err != nil {
				return missing(env, c, err, o, "")
			}
			if !v.OK {
				broken++
			}
			results = append(results, auditChain{Org: o, AuditVerify: v})
		}
		var out any = auditChains{Chains: results}
		if !*all {
			out = results[0].AuditVerify
		}
		err = verifyFmt.emit(env, out, func(w io.Writer) error {
			for _, r := range results {
				if r.OK {
					fmt.Fprintf(w, "%s: ok (%d events)\n", r.Org, r.Events)
				} else {
					fmt.Fprintf(w, "%s: BROKEN at event %d: %s\n", r.Org, r.BrokenAt, r.Reason)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if broken > 0 {
			return withHint(fmt.Errorf("%d audit chain(s) failed verification", broken), "the audit log was modified outside orgkms; investigate and restore from backup")
		}
		return nil
	}
	return group("audit <command>", "list and verify the audit log", list, verify)
}

// apiStatus is the API's answer to an action without a result of its own
// (schema Status): {"status":"revoked"}.
type apiStatus struct {
	Status string `json:"status"`
}

// auditChain is one org's result of audit verify --all.
type auditChain struct {
	Org string `json:"org"`
	client.AuditVerify
}

// auditChains is the JSON of audit verify --all.
type auditChains struct {
	Chains []auditChain `json:"chains"`
}

func detailsText(d map[string]string) string {
	if len(d) == 0 {
		return "-"
	}
	var parts []string
	for k, v := range d {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

func cacheCmd(env *cliEnv) *cobra.Command {
	purge := &cobra.Command{
		Use:   "purge",
		Short: "drop unwrapped keys of one org (or all) from the memory of every node (operator)",
		Args:  argNames(),
	}
	org := purge.Flags().String("org", "", "org `ID` (default: all orgs)")
	purgeFmt := addFormat(purge)
	purge.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		if err := c.PurgeCache(env.ctx, *org); err != nil {
			return missing(env, c, err, *org, "")
		}
		return purgeFmt.emit(env, apiStatus{Status: "purged"}, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, "purged")
			return err
		})
	}
	return group("cache <command>", "purge unwrapped keys from the server's memory", purge)
}

func whoAmICmd(env *cliEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "show the current token's principal and roles",
		Long:  "Shows the principal, org scope and roles of ORGKMS_TOKEN.",
		Args:  argNames(),
	}
	f := addFormat(cmd)
	cmd.RunE = func(*cobra.Command, []string) error {
		c, err := newClient()
		if err != nil {
			return err
		}
		w, err := c.WhoAmI(env.ctx)
		if err != nil {
			return err
		}
		return f.emit(env, w, func(out io.Writer) error {
			_, err := fmt.Fprintf(out, "principal: %s\ntoken:     %s\nscope:     %s\nroles:     %s\n", w.Principal, w.TokenID, orDefault(w.Org, "platform (all orgs)"), strings.Join(w.Roles, ", "))
			return err
		})
	}
	return cmd
}
