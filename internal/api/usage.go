package api

import (
	"encoding/csv"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// otherOrgCaller names, in an org's usage records, a token of another org
// that was refused on this org: its name is that org's, never shown here.
const otherOrgCaller = "(token of another org)"

// usageCaller is the name p is recorded under in org's usage records:
// its own name for the org's own principals and the platform's, never the
// name of another org's token.
func usageCaller(p auth.Principal, org string) string {
	if p.OrgID != "" && p.OrgID != org {
		return otherOrgCaller
	}
	return p.Name
}

// recordRefused counts a data-plane call refused by authorization in the
// org's usage records (an authenticated caller only: an unauthenticated
// request names no caller and proves nothing about the org).
func (h *Handler) recordRefused(c *call, pattern string, err error) {
	if c.p.Name == "" || fault.KindOf(err) != fault.Forbidden {
		return
	}
	op := pattern[strings.LastIndexByte(pattern, '/')+1:]
	h.keys.RecordRefused(c.r.Context(), c.org, c.r.PathValue("key"), op, usageCaller(c.p, c.org), err)
}

// usageParams are the query parameters of the usage routes.
var usageParams = map[string]bool{"since": true, "until": true, "key": true, "caller": true, "op": true, "outcome": true}

// usageFilter reads the filter of a usage route: since (default 24 hours
// ago), until, key, caller, op, outcome, and for listings limit and
// page_token. Unknown parameters are refused, so a misspelt filter never
// silently widens a result.
func usageFilter(q url.Values, listing bool, extra ...string) (keys.UsageFilter, error) {
	for k := range q {
		if !usageParams[k] && !(listing && (k == "limit" || k == "page_token")) && !slices.Contains(extra, k) {
			return keys.UsageFilter{}, fault.Invalidf(k, "unknown query parameter %q; the filters are since, until, key, caller, op, outcome (see /v1/openapi.json)", k)
		}
	}
	f := keys.UsageFilter{Since: time.Now().Add(-24 * time.Hour), Key: q.Get("key"), Caller: q.Get("caller"), Op: q.Get("op"), Outcome: q.Get("outcome")}
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if s := q.Get(p.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return keys.UsageFilter{}, fault.Invalidf(p.name, "%s must be an RFC 3339 time, e.g. 2026-11-29T00:00:00Z", p.name)
			}
			*p.t = t
		}
	}
	if !listing {
		return f, keys.ValidateUsageFilter(f)
	}
	f.Limit = 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > keys.MaxUsagePage {
			return keys.UsageFilter{}, fault.Invalidf("limit", "limit must be between 1 and %d", keys.MaxUsagePage)
		}
		f.Limit = n
	}
	if s := q.Get("page_token"); s != "" {
		after, err := keys.ParseUsageCursor(s)
		if err != nil {
			return keys.UsageFilter{}, err
		}
		f.After = &after
	}
	return f, keys.ValidateUsageFilter(f)
}

func usageJSON(u keys.UsageCount) client.UsageCount {
	return client.UsageCount{Key: u.KeyName, Op: u.Op, Principal: u.Principal, Outcome: u.Outcome, Minute: u.Minute, Count: u.Count, First: u.First, Last: u.Last}
}

// usage lists an org's usage records, newest minute first, one page at a
// time.
func (h *Handler) usage(c *call) error {
	f, err := usageFilter(c.r.URL.Query(), true)
	if err != nil {
		return err
	}
	// One more than the page: whether a next page exists.
	limit := f.Limit
	f.Limit++
	us, err := h.keys.QueryUsage(c.r.Context(), c.org, f)
	if err != nil {
		return err
	}
	out := client.UsageList{Usage: []client.UsageCount{}}
	if len(us) > limit {
		us = us[:limit]
		out.NextPageToken = keys.FormatUsageCursor(us[limit-1])
	}
	for _, u := range us {
		out.Usage = append(out.Usage, usageJSON(u))
	}
	return c.reply(http.StatusOK, out)
}

// usageCSVHeader is the first line of a CSV export.
var usageCSVHeader = []string{"minute", "key", "op", "caller", "outcome", "count", "first", "last"}

// usageExport streams every matching record as CSV or JSON lines, reading
// the store a page at a time.
func (h *Handler) usageExport(c *call) error {
	q := c.r.URL.Query()
	format := q.Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "jsonl" {
		return fault.Invalidf("format", "format must be csv or jsonl")
	}
	f, err := usageFilter(q, false, "format")
	if err != nil {
		return err
	}
	f.Limit = keys.MaxUsagePage
	ctx := c.r.Context()
	// The first page before any byte is written: an unknown org or an
	// unreachable database is an error response, not a truncated file.
	page, err := h.keys.QueryUsage(ctx, c.org, f)
	if err != nil {
		return err
	}
	c.status = http.StatusOK
	hd := c.w.Header()
	hd.Set("Cache-Control", "no-store")
	name := "usage-" + c.org + "." + format
	if format == "csv" {
		hd.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		hd.Set("Content-Type", "application/jsonl")
	}
	hd.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	c.w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(c.w)
	enc := json.NewEncoder(c.w)
	if format == "csv" {
		cw.Write(usageCSVHeader)
	}
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	for {
		for _, u := range page {
			if format == "csv" {
				cw.Write([]string{ts(u.Minute), u.KeyName, u.Op, u.Principal, u.Outcome, strconv.FormatInt(u.Count, 10), ts(u.First), ts(u.Last)})
			} else if err := enc.Encode(usageJSON(u)); err != nil {
				return nil // the client went away
			}
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil // the client went away
		}
		if len(page) < f.Limit {
			return nil
		}
		last := page[len(page)-1]
		f.After = &last
		if page, err = h.keys.QueryUsage(ctx, c.org, f); err != nil {
			// Headers are sent: the export ends short, and the log says why.
			h.log.LogAttrs(ctx, slog.LevelWarn, "usage export failed", slog.String("request_id", c.requestID), slog.String("org_id", c.org), slog.String("kind", fault.KindOf(err).Code()))
			return nil
		}
	}
}
