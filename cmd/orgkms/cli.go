package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/orgkms/orgkms/client"
)

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

func cmdOrg(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "org", "create ORG [--name NAME] | list | show ORG")
	if err != nil {
		return err
	}
	switch verb {
	case "create":
		fs := newFlags(env, "org create", "org create ORG [--name NAME] [--json]", "Creates an org with a root key and a data key named \"default\" (operator).")
		name := fs.String("name", "", "display name (default: the ID)")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parse(fs, rest, 1, 1)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		o, err := c.CreateOrg(env.ctx, pos[0], *name)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, o)
		}
		fmt.Fprintf(env.stdout, "created org %s (protected by the %s master key); data key \"default\" is ready\n", o.ID, o.Protection)
		return nil
	case "list":
		fs := newFlags(env, "org list", "org list [--json]", "Lists every org (operator).")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		var all []client.Org
		after := ""
		for {
			page, err := c.ListOrgs(env.ctx, after, 1000)
			if err != nil {
				return err
			}
			all = append(all, page.Orgs...)
			if page.NextAfter == "" {
				break
			}
			after = page.NextAfter
		}
		if *asJSON {
			return printJSON(env.stdout, all)
		}
		tw := table(env.stdout)
		fmt.Fprintln(tw, "ID\tNAME\tPROTECTION\tCREATED")
		for _, o := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", o.ID, o.Name, o.Protection, o.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "show":
		fs := newFlags(env, "org show", "org show ORG [--json]", "Shows an org.")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parse(fs, rest, 1, 1)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		o, err := c.GetOrg(env.ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, o)
		}
		fmt.Fprintf(env.stdout, "id:          %s\nname:        %s\nprotection:  %s\nmaster key:  %s\ncreated:     %s\n", o.ID, o.Name, o.Protection, o.MasterKey, o.CreatedAt.Format(time.RFC3339))
		return nil
	}
	return usageError{"unknown org command " + strconv.Quote(verb), "orgkms org create|list|show"}
}

func cmdKey(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "key", "create|list|show|rotate|config --org ORG [NAME]")
	if err != nil {
		return err
	}
	fs := newFlags(env, "key "+verb, "key "+verb+" --org ORG [NAME]", keyHelp[verb])
	org := fs.String("org", os.Getenv("ORGKMS_ORG"), "org ID (default $ORGKMS_ORG)")
	asJSON := fs.Bool("json", false, "print JSON")
	var minDec *uint
	if verb == "config" {
		minDec = fs.Uint("min-decryption-version", 0, "oldest version allowed to decrypt")
	}
	if _, ok := keyHelp[verb]; !ok {
		return usageError{"unknown key command " + strconv.Quote(verb), "orgkms key create|list|show|rotate|config"}
	}
	minArgs, maxArgs := 1, 1
	if verb == "list" {
		minArgs, maxArgs = 0, 0
	}
	pos, err := parse(fs, rest, minArgs, maxArgs)
	if err != nil {
		return err
	}
	if *org == "" {
		return usageError{"--org is required", "give --org ORG or set ORGKMS_ORG"}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	var k client.Key
	switch verb {
	case "list":
		ks, err := c.ListKeys(env.ctx, *org)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, ks)
		}
		tw := table(env.stdout)
		fmt.Fprintln(tw, "NAME\tLATEST\tMIN DECRYPTION\tCREATED")
		for _, k := range ks {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", k.Name, k.LatestVersion, k.MinDecryptionVersion, k.CreatedAt.Format(time.RFC3339))
		}
		return tw.Flush()
	case "create":
		k, err = c.CreateKey(env.ctx, *org, pos[0])
	case "show":
		k, err = c.GetKey(env.ctx, *org, pos[0])
	case "rotate":
		k, err = c.RotateKey(env.ctx, *org, pos[0])
	case "config":
		if *minDec == 0 {
			return usageError{"nothing to change", "give --min-decryption-version N"}
		}
		k, err = c.SetMinDecryptionVersion(env.ctx, *org, pos[0], uint32(*minDec))
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, k)
	}
	fmt.Fprintf(env.stdout, "key %s in org %s: latest version %d, min decryption version %d\n", k.Name, *org, k.LatestVersion, k.MinDecryptionVersion)
	for _, v := range k.Versions {
		fmt.Fprintf(env.stdout, "  version %d  created %s\n", v.Version, v.CreatedAt.Format(time.RFC3339))
	}
	return nil
}

var keyHelp = map[string]string{
	"create": "Creates a data key with version 1.",
	"list":   "Lists the org's data keys.",
	"show":   "Shows a data key and its versions.",
	"rotate": "Adds a new version; new ciphertexts use it, old ones still decrypt.",
	"config": "Sets the minimum version allowed to decrypt (retires older versions).",
}

// cryptoFlags are the flags shared by encrypt, decrypt, rewrap and datakey.
type cryptoFlags struct {
	org, key, context *string
	in                *string
}

func addCryptoFlags(fs interface {
	String(name, value, usage string) *string
}) cryptoFlags {
	return cryptoFlags{
		org:     fs.String("org", os.Getenv("ORGKMS_ORG"), "org ID (default $ORGKMS_ORG)"),
		key:     fs.String("key", "default", "data key name"),
		context: fs.String("context", "", "caller context bound to the ciphertext (must be given again to decrypt)"),
		in:      fs.String("in", "-", "input file (- = stdin)"),
	}
}

func (f cryptoFlags) check() error {
	if *f.org == "" {
		return usageError{"--org is required", "give --org ORG or set ORGKMS_ORG"}
	}
	return nil
}

func (f cryptoFlags) ctxBytes() []byte {
	if *f.context == "" {
		return nil
	}
	return []byte(*f.context)
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

func decodeCiphertext(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, usageError{"no ciphertext on input", "pipe the output of orgkms encrypt, e.g. orgkms encrypt ... | orgkms decrypt ..."}
	}
	ct, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, usageError{"input is not a base64 ciphertext", "pass the ciphertext exactly as orgkms encrypt printed it"}
	}
	return ct, nil
}

func cmdEncrypt(env *cliEnv, args []string) error {
	fs := newFlags(env, "encrypt", "encrypt --org ORG [--key NAME] [--context TEXT] [--in FILE]",
		"Reads plaintext from stdin (or --in) and prints the base64 ciphertext.")
	f := addCryptoFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON with the key version")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	pt, err := readInput(env, *f.in, 4<<20)
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	ct, v, err := c.Encrypt(env.ctx, *f.org, *f.key, pt, f.ctxBytes())
	clear(pt)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, client.CryptoResponse{Ciphertext: ct, KeyVersion: v})
	}
	fmt.Fprintln(env.stdout, base64.StdEncoding.EncodeToString(ct))
	return nil
}

func cmdDecrypt(env *cliEnv, args []string) error {
	return ciphertextCommand(env, args, "decrypt", "Reads a base64 ciphertext from stdin (or --in) and writes the plaintext to stdout.",
		func(c *client.Client, f cryptoFlags, ct []byte) error {
			pt, err := c.Decrypt(env.ctx, *f.org, *f.key, ct, f.ctxBytes())
			if err != nil {
				return err
			}
			_, err = env.stdout.Write(pt)
			return err
		})
}

func cmdRewrap(env *cliEnv, args []string) error {
	return ciphertextCommand(env, args, "rewrap", "Re-encrypts a ciphertext under the key's latest version, on the server, and\nprints the new ciphertext. The plaintext never leaves the server.",
		func(c *client.Client, f cryptoFlags, ct []byte) error {
			out, _, err := c.Rewrap(env.ctx, *f.org, *f.key, ct, f.ctxBytes())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(env.stdout, base64.StdEncoding.EncodeToString(out))
			return err
		})
}

// ciphertextCommand parses the flags of a command that reads a ciphertext
// (decrypt, rewrap), reads and decodes it, and runs do.
func ciphertextCommand(env *cliEnv, args []string, name, help string, do func(*client.Client, cryptoFlags, []byte) error) error {
	fs := newFlags(env, name, name+" --org ORG [--key NAME] [--context TEXT] [--in FILE]", help)
	f := addCryptoFlags(fs)
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	in, err := readInput(env, *f.in, 8<<20)
	if err != nil {
		return err
	}
	ct, err := decodeCiphertext(in)
	if err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	return do(c, f, ct)
}

func cmdDataKey(env *cliEnv, args []string) error {
	fs := newFlags(env, "datakey", "datakey --org ORG [--key NAME] [--bits 256] [--wrapped] [--context TEXT]",
		"Generates a random data key for client-side encryption and prints it as JSON:\n"+
			"the plaintext key (base64, unless --wrapped) and the key encrypted under the\n"+
			"org's data key (decrypt it later with orgkms decrypt).")
	f := addCryptoFlags(fs)
	bits := fs.Int("bits", 256, "key size: 128, 256 or 512")
	wrapped := fs.Bool("wrapped", false, "return only the encrypted key")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
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
	dk, err := c.DataKey(env.ctx, *f.org, *f.key, client.DataKeyRequest{Type: typ, Bits: *bits, Context: f.ctxBytes()})
	if err != nil {
		return err
	}
	return printJSON(env.stdout, dk)
}

func cmdToken(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "token", "create --principal NAME --role ROLE[,ROLE] [--org ORG] [--ttl 720h] | list | revoke ID")
	if err != nil {
		return err
	}
	switch verb {
	case "create":
		fs := newFlags(env, "token create", "token create --principal NAME --role ROLE[,ROLE] [--org ORG] [--ttl DURATION] [--description TEXT]",
			"Creates an API token and prints its secret once (operator). Roles: operator\n"+
				"(platform-wide), service (data plane; with --org for one org, without for all),\n"+
				"admin, key_admin, member (need --org).")
		principal := fs.String("principal", "", "who uses the token, e.g. billing-service")
		roles := fs.String("role", "", "comma-separated roles")
		org := fs.String("org", "", "limit the token to one org")
		ttl := fs.String("ttl", "", "lifetime, e.g. 720h (default: no expiry)")
		desc := fs.String("description", "", "free text")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		if *principal == "" || *roles == "" {
			return usageError{"--principal and --role are required", "e.g. orgkms token create --principal billing --role service --org acme"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		t, err := c.CreateToken(env.ctx, client.CreateTokenRequest{Principal: *principal, Org: *org, Roles: strings.Split(*roles, ","), TTL: *ttl, Description: *desc})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, t)
		}
		fmt.Fprintf(env.stdout, "token %s for %s (roles %s)\n%s\n", t.ID, t.Principal, strings.Join(t.Roles, ","), t.Secret)
		fmt.Fprintln(env.stderr, "orgkms: store the secret now: it is not shown again")
		return nil
	case "list":
		fs := newFlags(env, "token list", "token list [--json]", "Lists API tokens (never their secrets).")
		asJSON := fs.Bool("json", false, "print JSON")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		ts, err := c.ListTokens(env.ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, ts)
		}
		tw := table(env.stdout)
		fmt.Fprintln(tw, "ID\tPRINCIPAL\tORG\tROLES\tSTATE")
		for _, t := range ts {
			state := "active"
			if t.RevokedAt != nil {
				state = "revoked"
			} else if t.ExpiresAt != nil && t.ExpiresAt.Before(time.Now()) {
				state = "expired"
			}
			org := t.Org
			if org == "" {
				org = "(all)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Principal, org, strings.Join(t.Roles, ","), state)
		}
		return tw.Flush()
	case "revoke":
		fs := newFlags(env, "token revoke", "token revoke ID", "Revokes an API token.")
		pos, err := parse(fs, rest, 1, 1)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		if err := c.RevokeToken(env.ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "revoked token %s\n", pos[0])
		return nil
	}
	return usageError{"unknown token command " + strconv.Quote(verb), "orgkms token create|list|revoke"}
}

func cmdAudit(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "audit", "list --org ORG | verify [--org ORG | --all]")
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		fs := newFlags(env, "audit list", "audit list --org ORG [--after SEQ] [--limit N]",
			"Prints audit events as JSON lines (use --org _platform for the platform's chain).")
		org := fs.String("org", os.Getenv("ORGKMS_ORG"), "org ID")
		after := fs.Int64("after", 0, "only events after this sequence number")
		limit := fs.Int("limit", 1000, "at most this many events")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		if *org == "" {
			return usageError{"--org is required", "give --org ORG (or _platform)"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		evs, err := c.Audit(env.ctx, *org, *after, *limit)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(env.stdout)
		enc := json.NewEncoder(w)
		for _, e := range evs {
			enc.Encode(e)
		}
		return w.Flush()
	case "verify":
		fs := newFlags(env, "audit verify", "audit verify [--org ORG | --all]",
			"Verifies the hash chain of an org's audit log (or of every org and the\nplatform with --all). Exits 1 if any chain is broken.")
		org := fs.String("org", os.Getenv("ORGKMS_ORG"), "org ID")
		all := fs.Bool("all", false, "verify every org and the platform chain (operator)")
		if _, err := parse(fs, rest, 0, 0); err != nil {
			return err
		}
		if *org == "" && !*all {
			return usageError{"give --org ORG or --all", ""}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		orgs := []string{*org}
		if *all {
			orgs = []string{"_platform"}
			after := ""
			for {
				page, err := c.ListOrgs(env.ctx, after, 1000)
				if err != nil {
					return err
				}
				for _, o := range page.Orgs {
					orgs = append(orgs, o.ID)
				}
				if page.NextAfter == "" {
					break
				}
				after = page.NextAfter
			}
		}
		broken := 0
		for _, o := range orgs {
			v, err := c.VerifyAudit(env.ctx, o)
			if err != nil {
				return err
			}
			if v.OK {
				fmt.Fprintf(env.stdout, "%s: ok (%d events)\n", o, v.Events)
			} else {
				broken++
				fmt.Fprintf(env.stdout, "%s: BROKEN at event %d: %s\n", o, v.BrokenAt, v.Reason)
			}
		}
		if broken > 0 {
			return withHint(fmt.Errorf("%d audit chain(s) failed verification", broken), "the audit log was modified outside orgkms; investigate and restore from backup")
		}
		return nil
	}
	return usageError{"unknown audit command " + strconv.Quote(verb), "orgkms audit list|verify"}
}

func cmdCache(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "cache", "purge [--org ORG]")
	if err != nil {
		return err
	}
	if verb != "purge" {
		return usageError{"unknown cache command " + strconv.Quote(verb), "orgkms cache purge [--org ORG]"}
	}
	fs := newFlags(env, "cache purge", "cache purge [--org ORG]", "Drops unwrapped keys of one org (or all) from the server's memory (operator).")
	org := fs.String("org", "", "org ID (default: all orgs)")
	if _, err := parse(fs, rest, 0, 0); err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	if err := c.PurgeCache(env.ctx, *org); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, "purged")
	return nil
}

func cmdWhoAmI(env *cliEnv, args []string) error {
	fs := newFlags(env, "whoami", "whoami", "Shows the principal, org scope and roles of ORGKMS_TOKEN.")
	if _, err := parse(fs, args, 0, 0); err != nil {
		return err
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	w, err := c.WhoAmI(env.ctx)
	if err != nil {
		return err
	}
	scope := w.Org
	if scope == "" {
		scope = "platform (all orgs)"
	}
	fmt.Fprintf(env.stdout, "principal: %s\ntoken:     %s\nscope:     %s\nroles:     %s\n", w.Principal, w.TokenID, scope, strings.Join(w.Roles, ", "))
	return nil
}
