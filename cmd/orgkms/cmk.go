package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/client"
)

func cmdCMK(env *cliEnv, args []string) error {
	verb, rest, err := subcommand(args, "cmk", "status|authorize|configure|test|enable|disable --org ORG")
	if err != nil {
		return err
	}
	help, ok := cmkHelp[verb]
	if !ok {
		return usageError{"unknown cmk command " + strconv.Quote(verb), "orgkms cmk status|authorize|configure|test|enable|disable"}
	}
	fs := newFlags(env, "cmk "+verb, "cmk "+verb+" --org ORG "+help[0], help[1])
	org := fs.String("org", os.Getenv("ORGKMS_ORG"), "org ID (default $ORGKMS_ORG)")
	asJSON := fs.Bool("json", false, "print JSON")
	var tenant, vault, keyName, keyVersion *string
	var wait *bool
	var timeout *time.Duration
	switch verb {
	case "authorize":
		tenant = fs.String("tenant", "", "your Entra ID tenant ID (GUID)")
	case "configure":
		vault = fs.String("vault-uri", "", "Key Vault URI, e.g. https://contoso-kv.vault.azure.net/")
		keyName = fs.String("key-name", "", "key name")
		keyVersion = fs.String("key-version", "", "key version (empty: follow the latest version)")
	case "enable", "disable":
		wait = fs.Bool("wait", true, "wait until the job finishes")
		timeout = fs.Duration("timeout", 2*time.Minute, "how long to wait")
	}
	if _, err := parse(fs, rest, 0, 0); err != nil {
		return err
	}
	if *org == "" {
		return usageError{"--org is required", "give --org ORG or set ORGKMS_ORG"}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	ctx := env.ctx
	switch verb {
	case "status":
		st, err := c.CMKStatus(ctx, *org)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, st)
		}
		printCMKStatus(env, st)
		return nil
	case "authorize":
		if *tenant == "" {
			return usageError{"--tenant is required", "your tenant ID is on the Overview page of Microsoft Entra ID"}
		}
		r, err := c.CMKAuthorize(ctx, *org, *tenant)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, r)
		}
		fmt.Fprintf(env.stdout, "Open this URL in a browser and accept as an administrator of tenant %s\n(it expires at %s):\n\n  %s\n\nThen check: orgkms cmk status --org %s\n", *tenant, r.ExpiresAt.Local().Format(time.Kitchen), r.ConsentURL, *org)
		return nil
	case "configure":
		if *vault == "" || *keyName == "" {
			return usageError{"--vault-uri and --key-name are required", "copy them from the key vault in the Azure portal"}
		}
		st, err := c.CMKConfigure(ctx, *org, client.CMKConfigureRequest{VaultURI: *vault, KeyName: *keyName, KeyVersion: *keyVersion})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, st)
		}
		fmt.Fprintf(env.stdout, "configured key %s in %s (version %s); next: orgkms cmk test --org %s\n", st.KeyName, st.VaultURI, orDefault(st.KeyVersion, "latest"), *org)
		return nil
	case "test":
		rep, err := c.CMKTest(ctx, *org)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, rep)
		}
		return printCMKTest(env.stdout, rep, *org)
	case "enable", "disable":
		var st client.CMKStatus
		if verb == "enable" {
			st, err = c.CMKEnable(ctx, *org)
		} else {
			fmt.Fprintln(env.stderr, "orgkms: moving the org's root key back to the platform master key; your key is no longer used afterwards")
			st, err = c.CMKDisable(ctx, *org)
		}
		if err != nil {
			return err
		}
		if *wait {
			st, err = waitCMK(env, c, *org, *timeout)
			if err != nil {
				return err
			}
		}
		if *asJSON {
			return printJSON(env.stdout, st)
		}
		printCMKStatus(env, st)
		return nil
	}
	return nil
}

// printCMKTest prints a Test Managed Key report: every check, then a
// summary that says "all checks passed" only when no check warned.
func printCMKTest(w io.Writer, rep client.CMKTestReport, org string) error {
	marks := map[string]string{"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
	warned, failed := 0, 0
	for _, ch := range rep.Checks {
		fmt.Fprintf(w, "%s  %-34s %s\n", marks[ch.Status], ch.Name, ch.Detail)
		if ch.Remedy != "" && ch.Status != "pass" {
			fmt.Fprintf(w, "      fix: %s\n", ch.Remedy)
		}
		switch ch.Status {
		case "warn":
			warned++
		case "fail":
			failed++
		}
	}
	if !rep.OK {
		return fmt.Errorf("Test Managed Key failed: %d of %d checks failed", failed, len(rep.Checks))
	}
	switch warned {
	case 0:
		fmt.Fprintf(w, "all checks passed; next: orgkms cmk enable --org %s\n", org)
	case 1:
		fmt.Fprintf(w, "passed with 1 warning (see WARN above); next: orgkms cmk enable --org %s\n", org)
	default:
		fmt.Fprintf(w, "passed with %d warnings (see WARN above); next: orgkms cmk enable --org %s\n", warned, org)
	}
	return nil
}

var cmkHelp = map[string][2]string{
	"status":    {"", "Shows the org's customer managed key state, key, current version, last probe and job."},
	"authorize": {"--tenant TENANT_ID", "Step 1: prints the Entra ID admin-consent URL for your tenant. Needs admin and key_admin."},
	"configure": {"--vault-uri URI --key-name NAME [--key-version V]", "Step 2: sets the key. An empty version follows the latest version (rotations are followed)."},
	"test":      {"", "Test Managed Key: runs every check and prints pass/warn/fail with a fix for each problem."},
	"enable":    {"[--wait=true]", "Moves the org's root key to your key (or to a newly configured one) and waits until active."},
	"disable":   {"[--wait=true]", "Moves the org's root key back to the platform key. Your key must still be usable."},
}

func waitCMK(env *cliEnv, c *client.Client, org string, timeout time.Duration) (client.CMKStatus, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		st, err := c.CMKStatus(env.ctx, org)
		if err != nil {
			return st, err
		}
		line := st.State
		if st.Job != nil && st.Job.State != "done" {
			line = fmt.Sprintf("%s: job %s %s (%d%%)", st.State, st.Job.Kind, st.Job.State, st.Job.Progress)
		}
		if line != last {
			fmt.Fprintf(env.stderr, "orgkms: %s\n", line)
			last = line
		}
		switch st.State {
		case "active", "authorized", "platform", "revoked", "lost":
			if st.Job != nil && st.Job.State == "failed" {
				return st, fmt.Errorf("%s failed: %s", st.Job.Kind, st.Job.Error)
			}
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, withHint(fmt.Errorf("still %s after %s", st.State, timeout), "check again later: orgkms cmk status --org "+org)
		}
		select {
		case <-env.ctx.Done():
			return st, env.ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func printCMKStatus(env *cliEnv, st client.CMKStatus) {
	w := table(env.stdout)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	row("org", st.Org)
	row("state", st.State)
	row("master key", st.MasterKey)
	row("current version", st.CurrentVersion)
	row("tenant", st.TenantID)
	if st.ConsentedAt != nil {
		row("consent", "granted "+st.ConsentedAt.Local().Format(time.RFC3339)+" by "+st.ConsentedBy)
	}
	row("vault", st.VaultURI)
	row("key", st.KeyName)
	if st.KeyName != "" {
		row("key version", orDefault(st.KeyVersion, "latest (rotations followed)"))
	}
	if st.LastProbeAt != nil {
		row("last probe", st.LastProbeAt.Local().Format(time.RFC3339)+" "+st.LastProbeResult)
	}
	if st.Degraded {
		row("degraded", "the key service is throttling or unreachable: serving from cache")
	}
	row("reason", strings.TrimSpace(st.ReasonCode+" "+st.Reason))
	if st.RecoverableUntil != nil {
		row("recoverable until", st.RecoverableUntil.Local().Format(time.RFC3339))
	}
	if j := st.Job; j != nil {
		row("job", fmt.Sprintf("#%d %s %s, step %s (%d%%), attempts %d %s", j.ID, j.Kind, j.State, orDefault(j.Step, "-"), j.Progress, j.Attempts, j.Error))
	}
	w.Flush()
}
