package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// The deletion lifecycle of orgs and data keys: org delete and
// cancel-deletion, key disable, enable, delete and cancel-deletion.

// Bounds of a deletion's waiting period, in days. The server checks them
// too and stays authoritative; the CLI checks them first so that a typo
// is a usage error before anything is sent.
const (
	minWaitingDays     = 7
	maxWaitingDays     = 30
	defaultWaitingDays = 7
)

// orgState is an org's lifecycle for people: active, pending deletion
// until DATE, deleted at DATE.
func orgState(o client.Org) string {
	switch o.State {
	case "pending_deletion":
		return "pending deletion until " + timeText(o.DeletionDate)
	case "deleted":
		return "deleted at " + timeText(o.DeletedAt)
	case "":
		return "active"
	}
	return o.State
}

// keyState is a data key's lifecycle for people: enabled, disabled,
// pending deletion until DATE, deleted at DATE.
func keyState(k client.Key) string {
	switch k.State {
	case "pending_deletion":
		return "pending deletion until " + timeText(k.DeletionDate)
	case "deleted":
		return "deleted at " + timeText(k.DeletedAt)
	case "":
		return "enabled"
	}
	return k.State
}

func timeText(t *time.Time) string {
	if t == nil {
		return "(unknown)"
	}
	return t.UTC().Format(time.RFC3339)
}

// daysUntil is the whole number of days from now until t, for "in N days".
func daysUntil(t *time.Time) int {
	if t == nil {
		return 0
	}
	return int(math.Round(time.Until(*t).Hours() / 24))
}

// addDeleteFlags adds --waiting-days and --yes to a delete command and
// checks them before it runs: what names the object ("org acme", "key
// default of org acme") for the message, cancel the command that cancels.
func addDeleteFlags(cmd *cobra.Command, what func(args []string) (string, string)) *int {
	days := cmd.Flags().Int("waiting-days", defaultWaitingDays, fmt.Sprintf("`days` before the crypto-shred, %d to %d", minWaitingDays, maxWaitingDays))
	yes := cmd.Flags().Bool("yes", false, "confirm the deletion (required)")
	cmd.PreRunE = func(_ *cobra.Command, args []string) error {
		if *days < minWaitingDays || *days > maxWaitingDays {
			return usageError{fmt.Sprintf("--waiting-days must be between %d and %d, got %d", minWaitingDays, maxWaitingDays, *days),
				fmt.Sprintf("the waiting period is %d days by default and at least %d, so that a mistake can be cancelled; give --waiting-days N with N from %d to %d", defaultWaitingDays, minWaitingDays, minWaitingDays, maxWaitingDays)}
		}
		if !*yes {
			obj, cancel := what(args)
			return usageError{"deleting " + obj + " needs --yes",
				fmt.Sprintf("from the moment it is scheduled %s is refused, and after %d days it is destroyed for good; add --yes to confirm (\"%s\" cancels it before then)", obj, *days, cancel)}
		}
		return nil
	}
	return days
}

// orgArg completes the ORG argument of a command.
func orgArg(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeOrgs(cmd, args, toComplete)
}

// orgLifecycleCmds are org delete and org cancel-deletion.
func orgLifecycleCmds(env *cliEnv) []*cobra.Command {
	del := &cobra.Command{
		Use:   "delete ORG --yes [--waiting-days N]",
		Short: "schedule an org's deletion (crypto-shred) after a waiting period",
		Long: "Schedules the org's deletion. From now on every use of its keys (encrypt, decrypt,\n" +
			"rewrap, datakey) is refused with org_pending_deletion, on every node. After the\n" +
			"waiting period (--waiting-days, 7 to 30, default 7) a job destroys its root key\n" +
			"and every data key version: its ciphertexts can never be decrypted again. Until\n" +
			"then \"orgkms org cancel-deletion ORG\" restores service at once. The audit log\n" +
			"stays, and the org ID is never reused.\n\n" +
			"Needs the operator, or admin and key_admin on the org where the operator allows\n" +
			"it (orgs.self_delete). --yes is required.",
		Args:              argNames("ORG"),
		ValidArgsFunction: orgArg,
	}
	days := addDeleteFlags(del, func(args []string) (string, string) {
		return "org " + args[0], "orgkms org cancel-deletion " + args[0]
	})
	delFmt := addFormat(del)
	del.RunE = func(_ *cobra.Command, args []string) error {
		org := args[0]
		c, err := newClient()
		if err != nil {
			return err
		}
		o, err := c.DeleteOrg(env.ctx, org, *days)
		if err != nil {
			return orgLifecycleError(env, c, err, org, "delete")
		}
		return delFmt.emit(env, o, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "org %s is scheduled for deletion on %s (in %d days)\n"+
				"from now on every encrypt, decrypt, rewrap and datakey call of the org is refused with org_pending_deletion\n"+
				"on that date its root key and every data key version are destroyed: its data becomes unrecoverable\n"+
				"to cancel before then: orgkms org cancel-deletion %s\n",
				o.ID, timeText(o.DeletionDate), daysUntil(o.DeletionDate), o.ID)
			return err
		})
	}

	cancel := &cobra.Command{
		Use:   "cancel-deletion ORG",
		Short: "cancel an org's scheduled deletion and restore its service",
		Long: "Cancels the org's scheduled deletion: its keys are served again at once, on every\n" +
			"node. Possible until the deletion date (not once the shred has started).",
		Args:              argNames("ORG"),
		ValidArgsFunction: orgArg,
	}
	cancelFmt := addFormat(cancel)
	cancel.RunE = func(_ *cobra.Command, args []string) error {
		org := args[0]
		c, err := newClient()
		if err != nil {
			return err
		}
		o, err := c.CancelOrgDeletion(env.ctx, org)
		if err != nil {
			return orgLifecycleError(env, c, err, org, "cancel")
		}
		return cancelFmt.emit(env, o, func(w io.Writer) error {
			// A key disabled or pending its own deletion stays so: name it
			// rather than claim every key is served.
			ks, kerr := c.ListKeys(env.ctx, o.ID)
			if kerr != nil {
				_, err := fmt.Fprintf(w, "the deletion of org %s is cancelled: its keys are served again (state %s), except any key disabled or pending its own deletion (\"orgkms key list --org %s\" shows them)\n", o.ID, orgState(o), o.ID)
				return err
			}
			var still []string
			for _, k := range ks {
				if k.State != "" && k.State != "enabled" {
					still = append(still, fmt.Sprintf("key %s is still %s: \"orgkms key show --org %s %s\"", k.Name, keyState(k), o.ID, k.Name))
				}
			}
			if len(still) == 0 {
				_, err := fmt.Fprintf(w, "the deletion of org %s is cancelled: its keys are served again (state %s)\n", o.ID, orgState(o))
				return err
			}
			_, err := fmt.Fprintf(w, "the deletion of org %s is cancelled: its keys are served again (state %s), except:\n  %s\n", o.ID, orgState(o), strings.Join(still, "\n  "))
			return err
		})
	}
	return []*cobra.Command{del, cancel}
}

// orgLifecycleError explains a refused org delete or cancel-deletion: a
// conflict names the org's state and the command that applies to it.
func orgLifecycleError(env *cliEnv, c *client.Client, err error, org, verb string) error {
	if !errors.Is(err, client.CodeConflict) {
		return missing(env, c, err, org, "")
	}
	o, oerr := c.GetOrg(env.ctx, org)
	if oerr != nil {
		return err
	}
	var hint string
	switch {
	case o.State == "pending_deletion" && verb == "delete":
		hint = fmt.Sprintf("org %s is already scheduled for deletion on %s; \"orgkms org cancel-deletion %s\" cancels it (then delete it again to choose another waiting period)", org, timeText(o.DeletionDate), org)
	case o.State == "pending_deletion":
		hint = fmt.Sprintf("org %s is pending deletion until %s and its shred has started or is about to: it can no longer be cancelled", org, timeText(o.DeletionDate))
	case o.State == "deleted":
		hint = fmt.Sprintf("org %s was deleted at %s: its keys are destroyed and its ID stays taken; create a new org with another ID", org, timeText(o.DeletedAt))
	case verb == "cancel":
		hint = fmt.Sprintf("org %s is %s: there is no deletion to cancel (\"orgkms org show %s\" shows its state)", org, orgState(o), org)
	default:
		hint = fmt.Sprintf("\"orgkms org show %s\" shows its state", org)
	}
	return hinted{err: err, exact: true, hints: []string{hint}}
}

// lifecycleHints attaches the hints of the lifecycle codes with the org's
// and the key's names in place of the error table's placeholders; other
// errors are returned as they are.
func lifecycleHints(err error, org, key string) error {
	var hint string
	switch {
	case errors.Is(err, client.CodeOrgPendingDeletion):
		hint = fmt.Sprintf("cancelling the deletion before its date restores service at once: orgkms org cancel-deletion %s (the operator, or the org's admin with key_admin where orgs.self_delete is on)", org)
	case errors.Is(err, client.CodeOrgDeleted):
		hint = fmt.Sprintf("org %s was crypto-shredded: data encrypted for it cannot be recovered, and its ID is not reused", org)
	case key == "":
		return err
	case errors.Is(err, client.CodeKeyDisabled):
		hint = fmt.Sprintf("enable the key: orgkms key enable --org %s %s (needs key_admin)", org, key)
	case errors.Is(err, client.CodeKeyPendingDeletion):
		hint = fmt.Sprintf("cancelling the deletion before its date enables the key again: orgkms key cancel-deletion --org %s %s (needs key_admin)", org, key)
	case errors.Is(err, client.CodeKeyDeleted):
		hint = fmt.Sprintf("key %s was crypto-shredded: its ciphertexts cannot be recovered; create a new key with another name (\"orgkms key create --org %s NAME\")", key, org)
	default:
		return err
	}
	return hinted{err: err, exact: true, hints: []string{hint}}
}

// keyLifecycleCmds are key disable, enable, delete and cancel-deletion.
func keyLifecycleCmds(env *cliEnv) []*cobra.Command {
	one := func(verb, short, long string, do func(c *client.Client, org, name string) (client.Key, error), flags func(*cobra.Command), text func(w io.Writer, org string, k client.Key) error) *cobra.Command {
		return keyVerb{verb: verb, short: short, long: long, do: do, flags: flags, text: text,
			fail: func(c *client.Client, err error, org, name string) error {
				return keyLifecycleError(env, c, err, org, name, verb)
			}}.command(env)
	}

	disable := one("disable", "disable a data key: encrypt and decrypt with it are refused",
		"Disables a data key: encrypt, decrypt, rewrap and datakey with it are refused with\n"+
			"key_disabled until \"orgkms key enable\". Nothing is destroyed. Needs key_admin\n"+
			"on the org, or the operator.",
		func(c *client.Client, org, name string) (client.Key, error) { return c.DisableKey(env.ctx, org, name) }, nil,
		func(w io.Writer, org string, k client.Key) error {
			_, err := fmt.Fprintf(w, "key %s of org %s is disabled: encrypt and decrypt with it are refused with key_disabled\nto enable it again: orgkms key enable --org %s %s\n", k.Name, org, org, k.Name)
			return err
		})
	enable := one("enable", "enable a disabled data key",
		"Enables a disabled data key: it encrypts and decrypts again at once. Needs key_admin\n"+
			"on the org, or the operator.",
		func(c *client.Client, org, name string) (client.Key, error) { return c.EnableKey(env.ctx, org, name) }, nil,
		func(w io.Writer, org string, k client.Key) error {
			_, err := fmt.Fprintf(w, "key %s of org %s is %s\n", k.Name, org, keyState(k))
			return err
		})
	var days *int
	del := one("delete", "schedule a data key's deletion (crypto-shred) after a waiting period",
		"Schedules the deletion of a data key. From now on encrypt and decrypt with it are\n"+
			"refused with key_pending_deletion. After the waiting period (--waiting-days, 7 to\n"+
			"30, default 7) a job destroys every version of it: its ciphertexts can never be\n"+
			"decrypted again, and its name stays taken. Until then \"orgkms key cancel-deletion\"\n"+
			"restores it. Needs key_admin on the org, or the operator. --yes is required.",
		func(c *client.Client, org, name string) (client.Key, error) {
			return c.DeleteKey(env.ctx, org, name, *days)
		},
		func(cmd *cobra.Command) {
			days = addDeleteFlags(cmd, func(args []string) (string, string) {
				org, _ := cmd.Flags().GetString("org")
				if org = orgOrEnv(org); org == "" {
					return "key " + args[0], "orgkms key cancel-deletion --org ORG " + args[0]
				}
				return fmt.Sprintf("key %s of org %s", args[0], org), fmt.Sprintf("orgkms key cancel-deletion --org %s %s", org, args[0])
			})
		},
		func(w io.Writer, org string, k client.Key) error {
			_, err := fmt.Fprintf(w, "key %s of org %s is scheduled for deletion on %s (in %d days)\n"+
				"from now on encrypt and decrypt with it are refused with key_pending_deletion\n"+
				"on that date every version of it is destroyed: its ciphertexts become unrecoverable\n"+
				"to cancel before then: orgkms key cancel-deletion --org %s %s\n",
				k.Name, org, timeText(k.DeletionDate), daysUntil(k.DeletionDate), org, k.Name)
			return err
		})
	cancel := one("cancel-deletion", "cancel a data key's scheduled deletion",
		"Cancels a data key's scheduled deletion: it is enabled again at once. Possible until\n"+
			"the deletion date (not once the shred has started). Needs key_admin on the org,\n"+
			"or the operator.",
		func(c *client.Client, org, name string) (client.Key, error) {
			return c.CancelKeyDeletion(env.ctx, org, name)
		}, nil,
		func(w io.Writer, org string, k client.Key) error {
			_, err := fmt.Fprintf(w, "the deletion of key %s of org %s is cancelled: it is %s again\n", k.Name, org, keyState(k))
			return err
		})
	del.Use = "delete NAME --yes [--waiting-days N]"
	return []*cobra.Command{disable, enable, del, cancel}
}

// keyLifecycleError explains a refused key disable, enable, delete or
// cancel-deletion: a conflict names the key's state and the command that
// applies to it.
func keyLifecycleError(env *cliEnv, c *client.Client, err error, org, name, verb string) error {
	if !errors.Is(err, client.CodeConflict) {
		return missing(env, c, err, org, name)
	}
	k, kerr := c.GetKey(env.ctx, org, name)
	if kerr != nil {
		return err
	}
	show := fmt.Sprintf("\"orgkms key show --org %s %s\" shows its state", org, name)
	var hint string
	switch {
	case k.State == "deleted":
		hint = fmt.Sprintf("key %s was deleted at %s: its versions are destroyed and its name stays taken; create a new key with another name", name, timeText(k.DeletedAt))
	case k.State == "pending_deletion" && verb == "cancel-deletion":
		hint = fmt.Sprintf("the shred of key %s has started or is about to: it can no longer be cancelled", name)
	case k.State == "pending_deletion":
		hint = fmt.Sprintf("key %s is scheduled for deletion on %s; \"orgkms key cancel-deletion --org %s %s\" cancels it (the key is enabled again)", name, timeText(k.DeletionDate), org, name)
	case k.State == "disabled" && verb == "disable":
		hint = fmt.Sprintf("key %s is already disabled; \"orgkms key enable --org %s %s\" enables it", name, org, name)
	case k.State == "disabled":
		hint = fmt.Sprintf("key %s is disabled; \"orgkms key enable --org %s %s\" enables it", name, org, name)
	case verb == "enable":
		hint = fmt.Sprintf("key %s is %s: there is nothing to enable", name, keyState(k))
	case verb == "cancel-deletion":
		hint = fmt.Sprintf("key %s is %s: there is no deletion to cancel", name, keyState(k))
	default:
		hint = show
	}
	return hinted{err: err, exact: true, hints: []string{hint}}
}
