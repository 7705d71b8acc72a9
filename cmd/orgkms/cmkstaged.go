package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// stagedCmds are the staged revocation commands of orgkms cmk:
// decrypt-only, schedule-revocation and cancel-revocation. Each takes the
// org as its last argument or by --org.
func stagedCmds(env *cliEnv) []*cobra.Command {
	// run resolves the org (argument, else --org, else $ORGKMS_ORG), then
	// runs f and prints the status it returns.
	// orgAt is the index of the optional ORG argument.
	run := func(cmd *cobra.Command, org *string, f *format, orgAt int, call func(c *client.Client, org string, args []string) (client.CMKStatus, error), text func(w io.Writer, st client.CMKStatus) error) {
		cmd.RunE = func(_ *cobra.Command, args []string) error {
			o := *org
			if len(args) > orgAt {
				if o != "" && o != args[orgAt] {
					return usageError{fmt.Sprintf("the org is given twice: %s and --org %s", args[orgAt], o), ""}
				}
				o, args = args[orgAt], args[:orgAt]
			}
			o, err := requireOrg(o)
			if err != nil {
				return withHint(err, "or give the org as the last argument")
			}
			c, err := newClient()
			if err != nil {
				return err
			}
			st, err := call(c, o, args)
			if err != nil {
				return missing(env, c, err, o, "")
			}
			return f.emit(env, st, func(w io.Writer) error { return text(w, st) })
		}
	}

	var reason string
	decryptOnly := &cobra.Command{Use: "decrypt-only on|off [ORG]", Short: "turn the org's decrypt-only mode on or off",
		Long: "Turns the org's decrypt-only mode on or off. While it is on, existing data stays readable (decrypt), and\n" +
			"encrypt, rewrap and datakey are refused with org_decrypt_only on every node. It works for every org,\n" +
			"on a customer managed key or on the platform key. Needs admin and key_admin.\n\n" +
			"  orgkms cmk decrypt-only on acme --reason \"key ceremony\"\n  orgkms cmk decrypt-only off acme",
		Args: argRange(1, 2, "on|off", "ORG")}
	doOrg, doFmt := orgFlag(decryptOnly), addFormat(decryptOnly)
	decryptOnly.Flags().StringVar(&reason, "reason", "", "why, shown in the status and the audit log (at most 200 characters)")
	run(decryptOnly, doOrg, doFmt, 1, func(c *client.Client, org string, args []string) (client.CMKStatus, error) {
		var on bool
		switch strings.ToLower(args[0]) {
		case "on":
			on = true
		case "off":
		default:
			return client.CMKStatus{}, usageError{fmt.Sprintf("decrypt-only takes on or off, not %q", args[0]), "orgkms cmk decrypt-only on ORG, or off ORG"}
		}
		return c.CMKDecryptOnly(env.ctx, org, on, reason)
	}, func(w io.Writer, st client.CMKStatus) error {
		if st.Staged.DecryptOnly {
			_, err := fmt.Fprintf(w, "org %s is in decrypt-only mode: decrypt works, encrypt, rewrap and datakey are refused (org_decrypt_only)\n", st.Org)
			return err
		}
		_, err := fmt.Fprintf(w, "org %s is not in decrypt-only mode\n", st.Org)
		return err
	})

	var at, mode, schedReason string
	var in time.Duration
	schedule := &cobra.Command{Use: "schedule-revocation [ORG] --at TIME [--mode revoke|decrypt_only]", Short: "schedule the org's revocation at a time",
		Long: "Schedules the org's revocation at --at (RFC 3339, e.g. 2030-01-02T15:04:05Z) or --in a duration from now\n" +
			"(at least 5 minutes by default, at most 90 days). At that time orgkms applies it once, for every node:\n" +
			"  --mode revoke (default)   every use of the org's keys is refused (org_revoked) until you lift it\n" +
			"                            with orgkms cmk cancel-revocation\n" +
			"  --mode decrypt_only       the org enters decrypt-only mode\n" +
			"Until then, orgkms cmk cancel-revocation cancels it; orgkms cmk status shows the countdown and who\n" +
			"scheduled it. Needs admin and key_admin.\n\n" +
			"  orgkms cmk schedule-revocation acme --at 2030-01-02T15:04:05Z --reason \"contract ends\"\n" +
			"  orgkms cmk schedule-revocation acme --in 72h --mode decrypt_only",
		Args: argRange(0, 1, "ORG")}
	schedOrg, schedFmt := orgFlag(schedule), addFormat(schedule)
	schedule.Flags().StringVar(&at, "at", "", "when, RFC 3339 `TIME` with a zone, e.g. 2030-01-02T15:04:05Z")
	schedule.Flags().DurationVar(&in, "in", 0, "when, as a `duration` from now, e.g. 72h (instead of --at)")
	schedule.Flags().StringVar(&mode, "mode", "revoke", "what happens then: revoke or decrypt_only")
	schedule.Flags().StringVar(&schedReason, "reason", "", "why, shown in the status and the audit log (at most 200 characters)")
	schedule.PreRunE = func(*cobra.Command, []string) error {
		switch {
		case at == "" && in == 0:
			return usageError{"--at or --in is required", "e.g. --at 2030-01-02T15:04:05Z, or --in 72h"}
		case at != "" && in != 0:
			return usageError{"give --at or --in, not both", ""}
		case in != 0:
			at = time.Now().Add(in).UTC().Format(time.RFC3339)
		}
		return nil
	}
	run(schedule, schedOrg, schedFmt, 0, func(c *client.Client, org string, _ []string) (client.CMKStatus, error) {
		return c.CMKScheduleRevocation(env.ctx, org, client.CMKRevocationRequest{At: at, Mode: mode, Reason: schedReason})
	}, func(w io.Writer, st client.CMKStatus) error {
		s := st.Staged.Scheduled
		if s == nil {
			return nil
		}
		_, err := fmt.Fprintf(w, "scheduled %s of org %s at %s (in %s); cancel it until then: orgkms cmk cancel-revocation %s\n",
			s.Mode, st.Org, s.At.UTC().Format(time.RFC3339), countdown(s.SecondsLeft), st.Org)
		return err
	})

	cancel := &cobra.Command{Use: "cancel-revocation [ORG]", Short: "cancel the org's scheduled revocation, or lift one in effect",
		Long: "Cancels the org's scheduled revocation until its time. With none scheduled, lifts a revocation that took\n" +
			"effect (mode revoke): the org is served again on every node. A decrypt-only mode ends with\n" +
			"orgkms cmk decrypt-only off. Needs admin and key_admin.",
		Args: argRange(0, 1, "ORG")}
	cancelOrg, cancelFmt := orgFlag(cancel), addFormat(cancel)
	run(cancel, cancelOrg, cancelFmt, 0, func(c *client.Client, org string, _ []string) (client.CMKStatus, error) {
		return c.CMKCancelRevocation(env.ctx, org)
	}, func(w io.Writer, st client.CMKStatus) error {
		_, err := fmt.Fprintf(w, "org %s: no revocation scheduled or in effect\n", st.Org)
		if st.Staged.Revoked {
			_, err = fmt.Fprintf(w, "org %s: the scheduled revocation was cancelled; the revocation in effect stays (run cancel-revocation again to lift it)\n", st.Org)
		}
		return err
	})
	return []*cobra.Command{decryptOnly, schedule, cancel}
}

// countdown is a number of seconds for people: 2d3h, 4h5m, 6m7s.
func countdown(secs int64) string {
	d := time.Duration(secs) * time.Second
	switch {
	case d <= 0:
		return "now"
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dm%ds", d/time.Minute, d%time.Minute/time.Second)
}

// stagedRows adds the staged revocation rows to cmk status.
func stagedRows(row func(k, v string), s client.CMKStaged) {
	if s.DecryptOnly {
		v := "on: decrypt works, encrypt, rewrap and datakey are refused"
		if s.DecryptOnlySince != nil {
			v += "; since " + s.DecryptOnlySince.Local().Format(time.RFC3339) + " by " + s.DecryptOnlyBy
		}
		if s.DecryptOnlyReason != "" {
			v += " (" + s.DecryptOnlyReason + ")"
		}
		row("decrypt-only", v)
	}
	if s.Revoked {
		v := "in effect: every use of the org's keys is refused"
		if s.RevokedSince != nil {
			v += "; since " + s.RevokedSince.Local().Format(time.RFC3339) + ", scheduled by " + s.RevokedBy
		}
		if s.RevokedReason != "" {
			v += " (" + s.RevokedReason + ")"
		}
		row("revoked", v)
	}
	if r := s.Scheduled; r != nil {
		v := fmt.Sprintf("%s at %s (in %s), scheduled by %s at %s", r.Mode, r.At.Local().Format(time.RFC3339), countdown(r.SecondsLeft), r.ScheduledBy, r.ScheduledAt.Local().Format(time.RFC3339))
		if r.Reason != "" {
			v += " (" + r.Reason + ")"
		}
		if r.JobState == "failed" {
			v += "; the job failed: " + r.JobError
		}
		row("scheduled revocation", v)
	}
}
