package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orgkms/orgkms/client"
)

// usageFilterFlags are the filter flags of usage and usage export.
type usageFilterFlags struct {
	org, since, until, key, caller, op, outcome *string
}

func addUsageFilterFlags(c *cobra.Command) *usageFilterFlags {
	return &usageFilterFlags{
		org:     orgFlag(c),
		since:   c.Flags().String("since", "", "from this `time`: RFC 3339, or an age such as 1h, 7d (default 24h)"),
		until:   c.Flags().String("until", "", "until this `time` (exclusive): RFC 3339, or an age"),
		key:     c.Flags().String("key", "", "only this data `key`"),
		caller:  c.Flags().String("caller", "", "only this `caller` (token or user name)"),
		op:      c.Flags().String("op", "", "only this `operation`: encrypt, decrypt, rewrap, datakey"),
		outcome: c.Flags().String("outcome", "", "ok, denied, or one error `code` (e.g. permission_denied)"),
	}
}

// parseWhen reads an RFC 3339 time or an age ("90m", "7d") before now.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageError{fmt.Sprintf("--%s %q is neither an RFC 3339 time nor an age", flag, s), "e.g. --" + flag + " 2026-11-29T00:00:00Z or --" + flag + " 7d"}
}

// query returns the org (from args, --org or $ORGKMS_ORG) and the filter.
func (f *usageFilterFlags) query(args []string) (string, client.UsageQuery, error) {
	org := orgOrEnv(*f.org)
	if len(args) == 1 {
		if *f.org != "" && *f.org != args[0] {
			return "", client.UsageQuery{}, usageError{"the org is given twice: " + args[0] + " and --org " + *f.org, "give one of them"}
		}
		org = args[0]
	}
	if org == "" {
		return "", client.UsageQuery{}, usageError{"the org is required", "give it as the argument (orgkms usage ORG), with --org, or in $ORGKMS_ORG"}
	}
	now := time.Now()
	since, err := parseWhen("since", *f.since, now)
	if err != nil {
		return "", client.UsageQuery{}, err
	}
	until, err := parseWhen("until", *f.until, now)
	if err != nil {
		return "", client.UsageQuery{}, err
	}
	return org, client.UsageQuery{Since: since, Until: until, Key: *f.key, Caller: *f.caller, Op: *f.op, Outcome: *f.outcome}, nil
}

func usageCmd(env *cliEnv) *cobra.Command {
	list := &cobra.Command{
		Use:   "usage [ORG]",
		Short: "show who used an org's keys, how, and what was refused",
		Long: "Prints an org's key-use records, newest minute first: per minute, caller,\n" +
			"key and operation, the number of calls, the first and last of them, and\n" +
			"the outcome: ok, or the error code of calls that were refused (e.g.\n" +
			"permission_denied, cmk_revoked) or failed (ciphertext_invalid). Records\n" +
			"are written about every 10 s and kept for the server's usage.retention.\n" +
			"--format json prints them as the API returns them; \"orgkms usage export\"\n" +
			"writes every record as CSV or JSON lines.",
		Args: argRange(0, 1, "ORG"),
	}
	lf := addUsageFilterFlags(list)
	limit := list.Flags().Int("limit", 100, "at most this many `records` (1-1000)")
	page := list.Flags().String("page-token", "", "continue after the previous page (its next_page_token)")
	listFmt := addFormat(list)
	list.RunE = func(_ *cobra.Command, args []string) error {
		org, q, err := lf.query(args)
		if err != nil {
			return err
		}
		if *limit < 1 || *limit > 1000 {
			return usageError{"--limit must be between 1 and 1000", "page with --page-token (printed after a full page)"}
		}
		q.Limit, q.PageToken = *limit, *page
		c, err := newClient()
		if err != nil {
			return err
		}
		l, err := c.QueryUsage(env.ctx, org, q)
		if err != nil {
			return missing(env, c, err, org, "")
		}
		return listFmt.emit(env, l, func(w io.Writer) error {
			if len(l.Usage) == 0 {
				fmt.Fprintln(w, "no key use recorded in this period")
				return nil
			}
			tw := table(w)
			fmt.Fprintln(tw, "MINUTE\tCALLER\tKEY\tOP\tOUTCOME\tCOUNT\tFIRST\tLAST")
			for _, u := range l.Usage {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", u.Minute.UTC().Format("2006-01-02T15:04Z"), u.Principal, u.Key, u.Op, u.Outcome, u.Count,
					u.First.UTC().Format("15:04:05.000"), u.Last.UTC().Format("15:04:05.000"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if l.NextPageToken != "" {
				fmt.Fprintf(w, "more: --page-token %s\n", l.NextPageToken)
			}
			return nil
		})
	}

	export := &cobra.Command{
		Use:   "export [ORG]",
		Short: "write every key-use record of an org as CSV or JSON lines",
		Long: "Writes every key-use record of an org matching the filters, newest minute\n" +
			"first, to standard output (or --output FILE): CSV with a header line\n" +
			"(minute,key,op,caller,outcome,count,first,last), or JSON lines.",
		Args: argRange(0, 1, "ORG"),
	}
	ef := addUsageFilterFlags(export)
	format := export.Flags().String("format", "csv", "`format`: csv or jsonl")
	output := export.Flags().StringP("output", "o", "", "write to this `file` instead of standard output")
	_ = export.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]cobra.Completion{"csv", "jsonl"}, cobra.ShellCompDirectiveNoFileComp))
	export.RunE = func(_ *cobra.Command, args []string) error {
		org, q, err := ef.query(args)
		if err != nil {
			return err
		}
		if *format != "csv" && *format != "jsonl" {
			return usageError{fmt.Sprintf("unknown --format %q", *format), "use --format csv or --format jsonl"}
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		w := env.stdout
		if *output != "" {
			f, err := os.Create(*output)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		if err := c.ExportUsage(env.ctx, org, q, *format, w); err != nil {
			return missing(env, c, err, org, "")
		}
		return nil
	}
	list.AddCommand(export)
	return list
}
