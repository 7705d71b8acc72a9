package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// impactVerbs is how the summary names each previewed step.
var impactVerbs = map[string]string{
	"disable": "Disabling the customer managed key", "replace": "Replacing the customer managed key", "fallback": "Falling back to a new platform root key",
	"decrypt-only": "Turning on decrypt-only mode", "revoke": "Revoking the org", "delete-org": "Deleting the org", "disable-key": "Disabling the key", "delete-key": "Deleting the key",
}

func impactCmd(env *cliEnv) *cobra.Command {
	actions := strings.Join(client.ImpactActions, ", ")
	cmd := &cobra.Command{
		Use:   "impact ACTION",
		Short: "preview what a destructive step would break now: keys, calls, callers, re-wrap, fall back",
		Long: "Previews a destructive step before you take it, and changes nothing: the org's data keys, their\n" +
			"calls over the last 24 hours and from which callers, the last use, how many of those calls the step\n" +
			"would refuse, the re-wrap it needs with an estimate of its duration, and whether the org can still\n" +
			"fall back to the platform key in the key's current state.\n\n" +
			"ACTION is one of: " + actions + ".\n" +
			"disable-key and delete-key need --key NAME. Usage records are written about every 10 s.\n\n" +
			"Examples:\n" +
			"  orgkms cmk impact disable --org acme\n" +
			"  orgkms cmk impact delete-key --org acme --key billing --format json",
		Args: argNames("ACTION"),
	}
	org := orgFlag(cmd)
	key := cmd.Flags().String("key", "", "the data `key` of disable-key and delete-key")
	f := addFormat(cmd)
	_ = cmd.RegisterFlagCompletionFunc("key", cobra.NoFileCompletions)
	cmd.ValidArgs = client.ImpactActions
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		action := args[0]
		if !slices.Contains(client.ImpactActions, action) {
			return usageError{fmt.Sprintf("unknown action %q", action), "use one of " + actions}
		}
		keyAction := action == "disable-key" || action == "delete-key"
		if keyAction && *key == "" {
			return usageError{action + " needs --key", "name the data key: orgkms cmk impact " + action + " --org ORG --key NAME"}
		}
		if !keyAction && *key != "" {
			return usageError{"--key applies to disable-key and delete-key only", action + " concerns the whole org: drop --key"}
		}
		o, err := requireOrg(*org)
		if err != nil {
			return err
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		im, err := c.CMKImpact(env.ctx, o, action, *key)
		if err != nil {
			return missing(env, c, err, o, *key)
		}
		return f.emit(env, im, func(w io.Writer) error { return printImpact(w, im, time.Now()) })
	}
	return cmd
}

// printImpact prints the summary line, the step's sentence and a table of
// the data keys.
func printImpact(w io.Writer, im client.Impact, now time.Time) error {
	fmt.Fprintln(w, impactSummary(im, now))
	if im.Possible {
		fmt.Fprintln(w, im.WhatBreaks)
	} else {
		// what_breaks says the same ("Nothing: the step is not possible
		// now (...)"): one line is enough.
		fmt.Fprintf(w, "Not possible now: %s\n", im.Blocked)
	}
	fmt.Fprintf(w, "Fall back: %s\n", im.FallbackReason)
	if len(im.DataKeys) == 0 {
		fmt.Fprintln(w, "no data keys")
		return nil
	}
	fmt.Fprintln(w)
	tw := table(w)
	fmt.Fprintln(tw, "KEY\tVERSIONS\tCALLS 24H\tENCRYPT\tDECRYPT\tREFUSED\tLAST USE\tCALLERS")
	for _, k := range im.DataKeys {
		last := "-"
		if k.LastUse != nil {
			last = impactAgo(now.Sub(*k.LastUse)) + " ago"
		}
		var cs []string
		for _, c := range k.Callers {
			cs = append(cs, fmt.Sprintf("%s (%s)", c.Principal, impactThousands(c.Calls)))
		}
		callers := strings.Join(cs, ", ")
		if callers == "" {
			callers = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Versions, impactThousands(k.Calls24h), impactThousands(k.Encrypt24h), impactThousands(k.Decrypt24h), impactThousands(k.Refused24h), last, callers)
	}
	return tw.Flush()
}

// impactSummary is the one line a person reads first, e.g. "Disabling the
// key now would refuse 1,234 calls a day from 3 callers to 1 data key; last
// use 2 min ago; re-wrap: none; fall back: possible".
func impactSummary(im client.Impact, now time.Time) string {
	verb := impactVerbs[im.Action]
	when := "now"
	if im.RefusedFrom != "now" && im.RefusedFrom != "" {
		when = "from " + im.RefusedFrom
	}
	var b strings.Builder
	if im.Possible || im.Blocked == "" {
		fmt.Fprintf(&b, "%s %s would refuse %s a day from %s to %s", verb, when, impactCount(im.Refused24h, "call"), impactCount(int64(im.RefusedCallers), "caller"), impactCount(int64(len(im.DataKeys)), "data key"))
	} else {
		// Not possible now: say so, not "would refuse 0 calls".
		fmt.Fprintf(&b, "%s is not possible now; the org's %s had %s a day from %s", verb, impactCount(int64(len(im.DataKeys)), "data key"), impactCount(im.Calls24h, "call"), impactCount(int64(len(im.Callers)), "caller"))
	}
	var last *time.Time
	for _, k := range im.DataKeys {
		if k.LastUse != nil && (last == nil || k.LastUse.After(*last)) {
			last = k.LastUse
		}
	}
	if last == nil {
		b.WriteString("; no use in the last 24 h")
	} else {
		fmt.Fprintf(&b, "; last use %s ago", impactAgo(now.Sub(*last)))
	}
	if im.Rewrap.Required {
		fmt.Fprintf(&b, "; re-wrap: %s, about %s s", impactCount(int64(im.Rewrap.Wraps), "wrap"), strconv.FormatFloat(im.Rewrap.EstimatedSeconds, 'f', -1, 64))
	} else {
		b.WriteString("; re-wrap: none")
	}
	switch {
	case im.State == "platform" || im.State == "authorized":
		b.WriteString("; fall back: not needed (on the platform key)")
	case im.FallbackPossible:
		b.WriteString("; fall back: possible")
	default:
		b.WriteString("; fall back: not possible")
	}
	return b.String()
}

// impactCount is "1 call", "1,234 calls".
func impactCount(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return impactThousands(n) + " " + noun + "s"
}

// impactThousands writes n with commas: 1,234.
func impactThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// impactAgo is a short duration for people: "12 s", "2 min", "3 h".
func impactAgo(d time.Duration) string {
	switch {
	case d < time.Second:
		return "0 s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return strconv.Itoa(int(d/time.Hour)) + " h"
}
