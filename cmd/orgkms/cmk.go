package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

func cmkCmd(env *cliEnv) *cobra.Command {
	// sub returns a cmk command; run gets the client and the org.
	sub := func(use, short, long string, flags func(*cobra.Command)) (*cobra.Command, *format, *string) {
		cmd := &cobra.Command{Use: use, Short: short, Long: long, Args: argNames()}
		org := orgFlag(cmd)
		if flags != nil {
			flags(cmd)
		}
		return cmd, addFormat(cmd), org
	}
	// start wraps run with --org and the client.
	start := func(cmd *cobra.Command, org *string, run func(c *client.Client, org string) error) {
		cmd.RunE = func(*cobra.Command, []string) error {
			o, err := requireOrg(*org)
			if err != nil {
				return err
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			return missing(env, c, run(c, o), o, "")
		}
	}

	status, statusFmt, statusOrg := sub("status", "show the org's customer managed key state",
		"Shows the org's customer managed key state, key, current version, last probe and job.", nil)
	start(status, statusOrg, func(c *client.Client, org string) error {
		st, err := c.CMKStatus(env.ctx, org)
		if err != nil {
			return err
		}
		return statusFmt.emit(env, st, func(io.Writer) error { printCMKStatus(env, st); return nil })
	})

	var tenant, authCloud string
	authorize, authFmt, authOrg := sub("authorize --tenant TENANT_ID | --cloud CLOUD", "step 1: print the Entra ID admin-consent URL for your tenant, or a cloud's grant instructions",
		"Step 1: prints the Entra ID admin-consent URL for your tenant. With --cloud naming a cloud without a consent page\n"+
			"(aws: an IAM role trusting orgkms with the org's external ID; gcp: a grant to orgkms' service account), prints\n"+
			"what to grant in your own console and the values to copy, and changes nothing: configuring the key then records\n"+
			"the authorization. Needs admin and key_admin.",
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&tenant, "tenant", "", "your Entra ID `tenant` ID (GUID)")
			cmd.Flags().StringVar(&authCloud, "cloud", "", "the `cloud` to authorize orgkms in, one of those offered (orgkms cmk clouds; default: the deployment's own)")
			cmd.PreRunE = func(*cobra.Command, []string) error {
				if tenant == "" && authCloud == "" {
					return usageError{"--tenant is required", "your tenant ID is on the Overview page of Microsoft Entra ID; for AWS or Google give --cloud aws or --cloud gcp"}
				}
				return nil
			}
		})
	start(authorize, authOrg, func(c *client.Client, org string) error {
		r, err := c.CMKAuthorizeIn(env.ctx, org, client.CMKAuthorizeRequest{TenantID: tenant, Cloud: authCloud})
		if err != nil {
			return err
		}
		if r.Method == "grant" && r.Authorization != nil {
			var fields []client.CMKField
			if cl, err := c.CMKClouds(env.ctx, org); err == nil {
				for _, cc := range cl.Clouds {
					if cc.Name == r.Cloud {
						fields = cc.Fields
					}
				}
			}
			return authFmt.emit(env, r, func(w io.Writer) error { return printGrant(w, r, fields, org) })
		}
		return authFmt.emit(env, r, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "Open this URL in a browser and accept as an administrator of tenant %s\n(it expires at %s):\n\n  %s\n\nThen check: orgkms cmk status --org %s\n", tenant, r.ExpiresAt.UTC().Format(time.RFC3339), r.ConsentURL, org)
			return err
		})
	})

	clouds, cloudsFmt, cloudsOrg := sub("clouds", "list the clouds offered, their fields and how to authorize orgkms",
		"Lists the clouds whose key services this orgkms offers (the default first): how to authorize orgkms, "+
			"the fields that name a key (give them to configure as --field NAME=VALUE) and the checks of Test Managed Key.", nil)
	start(clouds, cloudsOrg, func(c *client.Client, org string) error {
		cl, err := c.CMKClouds(env.ctx, org)
		if err != nil {
			return err
		}
		return cloudsFmt.emit(env, cl, func(w io.Writer) error { return printCMKClouds(w, cl, org) })
	})

	var req client.CMKConfigureRequest
	var fields []string
	var keyARN, roleARN string // AWS KMS's fields as flags
	configure, confFmt, confOrg := sub("configure --vault-uri URI --key-name NAME [--key-version V]", "step 2: set the key",
		"Step 2: sets the key. An empty version follows the latest version (rotations are followed).\n\n"+
			"The flags --vault-uri, --key-name and --key-version name a key of Azure Key Vault. A key of any offered cloud "+
			"is named by --cloud and its fields, --field NAME=VALUE once per field (orgkms cmk clouds lists them), e.g.\n"+
			"  orgkms cmk configure --cloud azure --field vault_uri=https://contoso-kv.vault.azure.net/ --field key_name=orgkms-cmk\n"+
			"--key-arn and --role-arn are the fields of an AWS KMS key, e.g.\n"+
			"  orgkms cmk configure --cloud aws --key-arn arn:aws:kms:eu-west-2:111122223333:key/KEY-ID --role-arn arn:aws:iam::111122223333:role/orgkms-cmk\n"+
			"and a key of Google Cloud KMS by its resource name, e.g.\n"+
			"  orgkms cmk configure --cloud gcp --field key_name=projects/P/locations/L/keyRings/R/cryptoKeys/K",
		func(cmd *cobra.Command) {
			cmd.Flags().StringVar(&req.VaultURI, "vault-uri", "", "Key Vault `URI`, e.g. https://contoso-kv.vault.azure.net/")
			cmd.Flags().StringVar(&req.KeyName, "key-name", "", "key `name`")
			cmd.Flags().StringVar(&req.KeyVersion, "key-version", "", "key `version` (empty: follow the latest version)")
			cmd.Flags().StringVar(&req.Cloud, "cloud", "", "the key's `cloud`, one of those offered (default: the deployment's own)")
			cmd.Flags().StringArrayVar(&fields, "field", nil, "a field of the cloud's key as `NAME=VALUE` (repeat per field; orgkms cmk clouds lists them)")
			cmd.Flags().StringVar(&keyARN, "key-arn", "", "AWS KMS key `ARN` (the field key_arn)")
			cmd.Flags().StringVar(&roleARN, "role-arn", "", "ARN of the IAM `role` orgkms assumes for an AWS KMS key (the field role_arn)")
			cmd.PreRunE = func(*cobra.Command, []string) error {
				if len(fields) == 0 && keyARN == "" && roleARN == "" {
					if req.VaultURI == "" || req.KeyName == "" {
						return usageError{"--vault-uri and --key-name are required", "copy them from the key vault in the Azure portal"}
					}
					return nil
				}
				req.Fields = map[string]string{}
				for _, f := range fields {
					name, value, ok := strings.Cut(f, "=")
					if name = strings.TrimSpace(name); !ok || name == "" {
						return usageError{fmt.Sprintf("--field %q must be NAME=VALUE", f), "orgkms cmk clouds lists the fields of each cloud"}
					}
					if _, dup := req.Fields[name]; dup {
						return usageError{fmt.Sprintf("--field %s is given twice", name), ""}
					}
					req.Fields[name] = value
				}
				// The Azure and AWS flags are those clouds' fields.
				for name, v := range map[string]string{"vault_uri": req.VaultURI, "key_name": req.KeyName, "key_version": req.KeyVersion, "key_arn": keyARN, "role_arn": roleARN} {
					if v == "" {
						continue
					}
					if _, dup := req.Fields[name]; dup {
						return usageError{fmt.Sprintf("--field %s and --%s both name the key", name, strings.ReplaceAll(name, "_", "-")), ""}
					}
					req.Fields[name] = v
				}
				req.VaultURI, req.KeyName, req.KeyVersion = "", "", ""
				return nil
			}
		})
	start(configure, confOrg, func(c *client.Client, org string) error {
		st, err := c.CMKConfigure(env.ctx, org, req)
		if err != nil {
			return cmkStepHint(env, c, org, "configure", err)
		}
		return confFmt.emit(env, st, func(w io.Writer) error {
			conf := client.CMKKeyConfig{VaultURI: st.VaultURI, KeyName: st.KeyName, KeyVersion: st.KeyVersion}
			if st.Pending != nil {
				conf = *st.Pending // a replacement: the key in use stays until enable
			}
			if conf.VaultURI == "" && conf.KeyName == "" {
				// A cloud without Azure's vault and key name: its fields.
				_, err := fmt.Fprintf(w, "configured key %s; next: orgkms cmk test --org %s\n", fieldList(st.Fields), org)
				return err
			}
			_, err := fmt.Fprintf(w, "configured key %s in %s (version %s); next: orgkms cmk test --org %s\n", conf.KeyName, conf.VaultURI, orDefault(conf.KeyVersion, "latest"), org)
			return err
		})
	})

	test, testFmt, testOrg := sub("test", "Test Managed Key: run every check",
		"Test Managed Key: runs every check and prints pass/warn/fail with a fix for each problem.", nil)
	start(test, testOrg, func(c *client.Client, org string) error {
		rep, err := c.CMKTest(env.ctx, org)
		if err != nil {
			return err
		}
		if f, _ := testFmt.get(); f == "" {
			return printCMKTest(env.stdout, rep, org)
		}
		if err := testFmt.emit(env, rep, nil); err != nil {
			return err
		}
		if !rep.OK {
			return fmt.Errorf("test managed key failed: %d of %d checks failed", failedChecks(rep), len(rep.Checks))
		}
		return nil
	})

	job := func(verb, short, long string) *cobra.Command {
		var wait bool
		var timeout time.Duration
		cmd, f, org := sub(verb, short, long, func(cmd *cobra.Command) {
			cmd.Flags().BoolVar(&wait, "wait", true, "wait until the job finishes")
			cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait")
		})
		start(cmd, org, func(c *client.Client, org string) error {
			var st client.CMKStatus
			var err error
			if verb == "enable" {
				st, err = c.CMKEnable(env.ctx, org)
			} else {
				st, err = c.CMKDisable(env.ctx, org)
			}
			if err != nil {
				return cmkStepHint(env, c, org, verb, err)
			}
			if verb == "disable" {
				fmt.Fprintln(env.stderr, "orgkms: moving the org's root key back to the platform master key; your key is no longer used afterwards")
			}
			if wait {
				if st, err = waitCMK(env, c, org, timeout); err != nil {
					return err
				}
			}
			return f.emit(env, st, func(io.Writer) error { printCMKStatus(env, st); return nil })
		})
		return cmd
	}
	enable := job("enable", "move the org's root key to your key and wait until active",
		"Moves the org's root key to your key (or to a newly configured one) and waits until active.")
	disable := job("disable", "move the org's root key back to the platform key",
		"Moves the org's root key back to the platform key. Your key must still be usable.")
	var confirm bool
	fallback, fbFmt, fbOrg := sub("fallback --confirm-data-loss", "after a purge (state lost): give the org a new platform root key",
		"After the org's customer managed key was purged (state lost): gives the org a new root key wrapped by the\n"+
			"platform key and a new version of each data key, and records the data loss. Data encrypted before is lost\n"+
			"for good (its ciphertexts fail with cmk_key_destroyed); new data works at once. Needs admin and key_admin.",
		func(cmd *cobra.Command) {
			cmd.Flags().BoolVar(&confirm, "confirm-data-loss", false, "confirm that data encrypted before is unrecoverable")
			cmd.PreRunE = func(*cobra.Command, []string) error {
				if !confirm {
					return usageError{"--confirm-data-loss is required", "data encrypted before the fallback is lost for good; check that \"orgkms cmk status\" says lost"}
				}
				return nil
			}
		})
	start(fallback, fbOrg, func(c *client.Client, org string) error {
		st, err := c.CMKFallback(env.ctx, org)
		if err != nil {
			return err
		}
		return fbFmt.emit(env, st, func(io.Writer) error { printCMKStatus(env, st); return nil })
	})
	return group("cmk <command>", "customer managed keys: status, clouds, authorize, configure, test, enable, disable, fallback, impact, staged revocation",
		append([]*cobra.Command{status, clouds, authorize, configure, test, enable, disable, fallback, impactCmd(env)}, stagedCmds(env)...)...)
}

// printCMKClouds prints the offered clouds for people.
func printCMKClouds(w io.Writer, cl client.CMKClouds, org string) error {
	if len(cl.Clouds) == 0 {
		_, err := fmt.Fprintln(w, "customer managed keys are not enabled on this orgkms")
		return err
	}
	for i, c := range cl.Clouds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		def := ""
		if c.Default {
			def = " (default)"
		}
		fmt.Fprintf(w, "%s: %s%s\n", c.Name, c.DisplayName, def)
		a := c.Authorization
		fmt.Fprintf(w, "  authorize (%s): %s\n", a.Method, a.Instructions)
		if a.Method == "consent" {
			fmt.Fprintf(w, "    orgkms cmk authorize --org %s --tenant TENANT\n", org)
		}
		for _, v := range a.Values {
			fmt.Fprintf(w, "    %s: %s\n", v.Label, v.Value)
		}
		if a.Access != "" {
			fmt.Fprintf(w, "  access: %s\n", a.Access)
		}
		fmt.Fprintln(w, "  fields (--field NAME=VALUE):")
		tw := table(w)
		for _, f := range c.Fields {
			req := "optional"
			if f.Required {
				req = "required"
			}
			fmt.Fprintf(tw, "    %s\t%s\t%s\te.g. %s\t%s\n", f.Name, f.Label, req, f.Example, f.Help)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// printGrant prints a grant cloud's authorization: what to do in the
// customer's console, the values to copy, what to grant on the key, and
// the configure command that follows (by the cloud's fields).
func printGrant(w io.Writer, r client.CMKAuthorizeResponse, fields []client.CMKField, org string) error {
	a := r.Authorization
	fmt.Fprintf(w, "%s has no consent page: authorize orgkms in your own console.\n\n%s\n", a.Service, a.Instructions)
	if len(a.Values) > 0 {
		fmt.Fprintln(w)
		tw := table(w)
		for _, v := range a.Values {
			fmt.Fprintf(tw, "  %s:\t%s\n", v.Label, v.Value)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if a.Access != "" {
		fmt.Fprintf(w, "\n%s\n", a.Access)
	}
	cmd := "orgkms cmk configure --org " + org + " --cloud " + r.Cloud
	for _, f := range fields {
		if !f.Required {
			continue
		}
		switch f.Name {
		case "key_arn":
			cmd += " --key-arn ARN"
		case "role_arn":
			cmd += " --role-arn ARN"
		default:
			cmd += " --field " + f.Name + "=" + strings.ToUpper(f.Name)
		}
	}
	_, err := fmt.Fprintf(w, "\nThen name the key (this records the authorization), test it and enable it:\n  %s\n  orgkms cmk test --org %s && orgkms cmk enable --org %s\n", cmd, org, org)
	return err
}

// fieldList renders a key's fields as NAME=VALUE, in name order.
func fieldList(fields map[string]string) string {
	names := make([]string, 0, len(fields))
	for name, v := range fields {
		if v != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for i, name := range names {
		names[i] = name + "=" + fields[name]
	}
	return strings.Join(names, " ")
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
		return fmt.Errorf("test managed key failed: %d of %d checks failed", failed, len(rep.Checks))
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

// failedChecks counts the checks of rep that failed.
func failedChecks(rep client.CMKTestReport) int {
	n := 0
	for _, ch := range rep.Checks {
		if ch.Status == "fail" {
			n++
		}
	}
	return n
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
	row("cloud", st.Cloud)
	row("state", st.State)
	row("master key", st.MasterKey)
	row("current version", st.CurrentVersion)
	azure := st.Cloud == "" || st.Cloud == "azure"
	if azure {
		row("tenant", st.TenantID)
	} else {
		row("account", st.TenantID) // the role (aws) or project (gcp) orgkms is granted in
	}
	if st.ConsentedAt != nil {
		row("consent", "granted "+st.ConsentedAt.Local().Format(time.RFC3339)+" by "+st.ConsentedBy)
	}
	if azure {
		row("vault", st.VaultURI)
		row("key", st.KeyName)
		if st.KeyName != "" {
			row("key version", orDefault(st.KeyVersion, "latest (rotations followed)"))
		}
	} else {
		// The key in its cloud's own fields, as configure takes them.
		for _, name := range slices.Sorted(maps.Keys(st.Fields)) {
			row(strings.ReplaceAll(name, "_", " "), st.Fields[name])
		}
	}
	if p := st.Pending; p != nil {
		row("pending key", fmt.Sprintf("%s in %s (version %s): not in use until enable", p.KeyName, p.VaultURI, orDefault(p.KeyVersion, "latest")))
	}
	if st.DataLostAt != nil {
		row("data lost", st.DataLostAt.Local().Format(time.RFC3339)+": data encrypted before is unrecoverable")
	}
	if st.LastProbeAt != nil {
		row("last probe", st.LastProbeAt.Local().Format(time.RFC3339)+" "+st.LastProbeResult)
	}
	row("warning", st.Warning)
	if st.Degraded {
		row("degraded", "the key service is throttling or unreachable: serving from cache")
	}
	row("reason", strings.TrimSpace(st.ReasonCode+" "+st.Reason))
	if st.RecoverableUntil != nil {
		row("recoverable until", st.RecoverableUntil.Local().Format(time.RFC3339))
	}
	stagedRows(row, st.Staged) // cmkstaged.go
	if rv := st.Revocation; rv != nil {
		row("key state change", rv.Line())
	}
	if j := st.Job; j != nil {
		row("job", fmt.Sprintf("#%d %s %s, step %s (%d%%), attempts %d %s", j.ID, j.Kind, j.State, orDefault(j.Step, "-"), j.Progress, j.Attempts, j.Error))
	}
	w.Flush()
}

// cmkStepHint explains why the server refused a step of the customer
// managed key flow (configure, enable, disable) in the org's current
// state: it reads the status and names the step to take first.
func cmkStepHint(env *cliEnv, c *client.Client, org, verb string, err error) error {
	if !errors.Is(err, client.CodeConflict) {
		return err
	}
	st, serr := c.CMKStatus(env.ctx, org)
	if serr != nil {
		return err
	}
	var hint string
	switch azure := st.Cloud == "" || st.Cloud == "azure"; {
	case verb == "disable" && st.State == "platform":
		hint = fmt.Sprintf("org %s is on the platform master key already: there is nothing to disable (\"orgkms cmk status --org %s\")", org, org)
	case azure && st.ConsentedAt == nil && verb != "disable":
		hint = fmt.Sprintf("Step 1 first: orgkms cmk authorize --org %s --tenant TENANT (the tenant ID is on the Overview page of Microsoft Entra ID), then accept as an administrator", org)
	case verb == "enable" && len(st.Fields) == 0 && st.KeyName == "":
		hint = fmt.Sprintf("configure the key first: orgkms cmk configure --org %s ... (\"orgkms cmk clouds\" lists the fields), then orgkms cmk test --org %s", org, org)
	default:
		hint = fmt.Sprintf("the org is %s now: \"orgkms cmk status --org %s\" shows its state and what to do", st.State, org)
	}
	return hinted{err: err, hints: []string{hint}, exact: true}
}
