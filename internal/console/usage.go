package console

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// usageShown is the most records the Key use page lists; the export link
// (the API's CSV export, with the same filters) has them all.
const usageShown = 500

var usageFields = []string{"since", "until", "key", "caller", "op", "outcome"}

type usageData struct {
	Records   []keys.UsageCount
	Truncated bool
	ExportCSV string // export URL with the filters
	ExportJSL string
	Retention string
}

// keyUse is the Key use page: who used the org's keys, how, and what was
// refused, with filters and an export link.
func (h *handler) keyUse(rq *request) error {
	q := rq.r.URL.Query()
	v := &view{Title: "Key use", Active: "usage", Form: url.Values{}}
	for _, k := range usageFields {
		v.Form.Set(k, q.Get(k))
	}
	f := keys.UsageFilter{Key: strings.TrimSpace(q.Get("key")), Caller: strings.TrimSpace(q.Get("caller")), Op: q.Get("op"), Outcome: strings.TrimSpace(q.Get("outcome")), Limit: usageShown + 1}
	var err1, err2 error
	f.Since, err1 = parseFilterTime("since", q.Get("since"), false)
	f.Until, err2 = parseFilterTime("until", q.Get("until"), true)
	if f.Since.IsZero() && err1 == nil {
		f.Since = h.now().Add(-24 * time.Hour)
	}
	ferr := errors.Join(err1, err2)
	if ferr == nil {
		ferr = keys.ValidateUsageFilter(f)
	}
	status := http.StatusOK
	var recs []keys.UsageCount
	if ferr != nil {
		v.Fields = map[string]string{}
		for _, e := range unjoin(ferr) {
			if fe := fault.As(e); fe != nil {
				v.Fields[fe.Field] = fe.Reason
			}
		}
		v.Error = "Check the highlighted filter fields."
		status = http.StatusBadRequest
	} else {
		var err error
		if recs, err = h.cfg.Keys.QueryUsage(rq.r.Context(), rq.org, f); err != nil {
			return err
		}
	}
	d := usageData{Retention: h.cfg.Keys.UsageRetention().String()}
	if len(recs) > usageShown {
		recs, d.Truncated = recs[:usageShown], true
	}
	d.Records = recs
	eq := url.Values{}
	if ferr == nil {
		if !f.Since.IsZero() {
			eq.Set("since", f.Since.UTC().Format(time.RFC3339))
		}
		if !f.Until.IsZero() {
			eq.Set("until", f.Until.UTC().Format(time.RFC3339))
		}
		for k, s := range map[string]string{"key": f.Key, "caller": f.Caller, "op": f.Op, "outcome": f.Outcome} {
			if s != "" {
				eq.Set(k, s)
			}
		}
	}
	eq.Set("format", "csv")
	d.ExportCSV = orgPath(rq.org, "usage/export?"+eq.Encode())
	eq.Set("format", "jsonl")
	d.ExportJSL = orgPath(rq.org, "usage/export?"+eq.Encode())
	v.Data = d
	h.render(rq, status, "usage", v)
	return nil
}

// keyUseExport downloads every record matching the filter (RFC 3339
// since/until, as the page's export links carry them) as CSV or JSON lines.
func (h *handler) keyUseExport(rq *request) error {
	q := rq.r.URL.Query()
	format := q.Get("format")
	if format != "csv" && format != "jsonl" {
		return invalid("format", "must be csv or jsonl")
	}
	f := keys.UsageFilter{Key: q.Get("key"), Caller: q.Get("caller"), Op: q.Get("op"), Outcome: q.Get("outcome"), Limit: keys.MaxUsagePage}
	var err1, err2 error
	f.Since, err1 = parseFilterTime("since", q.Get("since"), false)
	f.Until, err2 = parseFilterTime("until", q.Get("until"), false)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	page, err := h.cfg.Keys.QueryUsage(rq.r.Context(), rq.org, f)
	if err != nil {
		return err
	}
	hd := rq.w.Header()
	if format == "csv" {
		hd.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		hd.Set("Content-Type", "application/jsonl")
	}
	hd.Set("Content-Disposition", `attachment; filename="orgkms-usage-`+rq.org+`.`+format+`"`)
	cw := csv.NewWriter(rq.w)
	enc := json.NewEncoder(rq.w)
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	if format == "csv" {
		cw.Write([]string{"minute", "key", "op", "caller", "outcome", "count", "first", "last"})
	}
	for {
		for _, u := range page {
			if format == "csv" {
				cw.Write([]string{ts(u.Minute), u.KeyName, u.Op, u.Principal, u.Outcome, strconv.FormatInt(u.Count, 10), ts(u.First), ts(u.Last)})
			} else if err := enc.Encode(map[string]any{"minute": u.Minute, "key": u.KeyName, "op": u.Op, "principal": u.Principal, "outcome": u.Outcome,
				"count": u.Count, "first": u.First, "last": u.Last}); err != nil {
				return nil // the client went away; headers are sent
			}
		}
		cw.Flush()
		if cw.Error() != nil || len(page) < f.Limit {
			return nil
		}
		last := page[len(page)-1]
		f.After = &last
		if page, err = h.cfg.Keys.QueryUsage(rq.r.Context(), rq.org, f); err != nil {
			return nil // headers are sent: the file ends short
		}
	}
}
