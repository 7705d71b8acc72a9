package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// auditShown is the most events the Audit page lists; export has them all.
const auditShown = 500

// auditFilter selects audit events by actor, action and time.
type auditFilter struct {
	Actor, Action string
	Since, Until  time.Time // zero = open
}

// timeLayouts are accepted in the since/until fields (UTC): a date, or
// the value of an <input type="datetime-local">.
var timeLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02", time.RFC3339}

func parseFilterTime(field, s string, endOfDay bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			if l == "2006-01-02" && endOfDay {
				t = t.Add(24*time.Hour - time.Nanosecond)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, invalid(field, "enter a date such as 2025-06-30, or a date and time such as 2025-06-30T14:05 (UTC)")
}

func parseAuditFilter(q url.Values) (auditFilter, error) {
	f := auditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action"))}
	var err1, err2 error
	f.Since, err1 = parseFilterTime("since", q.Get("since"), false)
	f.Until, err2 = parseFilterTime("until", q.Get("until"), true)
	if err := errors.Join(err1, err2); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, invalid("until", "must not be before Since")
	}
	return f, nil
}

func (f auditFilter) match(e audit.Event) bool {
	switch {
	case f.Actor != "" && !strings.Contains(strings.ToLower(e.Actor), strings.ToLower(f.Actor)):
		return false
	case f.Action != "" && !strings.Contains(strings.ToLower(e.Action), strings.ToLower(f.Action)):
		return false
	case !f.Since.IsZero() && e.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && e.Time.After(f.Until):
		return false
	}
	return true
}

// auditQuery is the filter part of the page's query, for the links.
func auditQuery(q url.Values) url.Values {
	out := url.Values{}
	for _, k := range []string{"actor", "action", "since", "until"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

type auditRow struct {
	audit.Event
	DetailText string
}

type auditData struct {
	Events     []auditRow
	Total      int // events matching the filter
	All        int // events in the chain
	Truncated  bool
	VerifyURL  string
	ExportURL  string
	Verified   bool
	VerifyOK   bool
	VerifyText string
}

func (h *handler) audit(rq *request) error {
	q := rq.r.URL.Query()
	v := &view{Title: "Audit log", Active: "audit", Form: url.Values{}}
	for _, k := range []string{"actor", "action", "since", "until"} {
		v.Form.Set(k, q.Get(k))
	}
	status := http.StatusOK
	f, ferr := parseAuditFilter(q)
	if ferr != nil {
		// errors.Join of field errors: show each at its field.
		v.Fields = map[string]string{}
		for _, e := range unjoin(ferr) {
			if fe := fault.As(e); fe != nil {
				v.Fields[fe.Field] = fe.Reason
			}
		}
		v.Error = "Check the highlighted filter fields: the list below is not filtered by time."
		f.Since, f.Until = time.Time{}, time.Time{}
		status = http.StatusBadRequest
	}
	evs, err := h.cfg.Keys.AuditEvents(rq.r.Context(), rq.org, 0, 0)
	if err != nil {
		return err
	}
	d := auditData{All: len(evs)}
	for i := len(evs) - 1; i >= 0; i-- { // newest first
		e := evs[i]
		if !f.match(e) {
			continue
		}
		d.Total++
		if len(d.Events) < auditShown {
			d.Events = append(d.Events, auditRow{Event: e, DetailText: detailText(e.Details)})
		}
	}
	d.Truncated = d.Total > len(d.Events)
	fq := auditQuery(q)
	vq := auditQuery(q)
	vq.Set("verify", "1")
	d.VerifyURL = orgPath(rq.org, "audit?"+vq.Encode())
	d.ExportURL = orgPath(rq.org, "audit/export")
	if len(fq) > 0 {
		d.ExportURL += "?" + fq.Encode()
	}
	if q.Get("verify") != "" {
		d.Verified = true
		n, err := h.cfg.Keys.VerifyAudit(rq.r.Context(), rq.org)
		var ve *audit.VerifyError
		switch {
		case err == nil:
			d.VerifyOK, d.VerifyText = true, "chain intact ("+strconv.Itoa(n)+" events)"
		case errors.As(err, &ve):
			d.VerifyText = "chain broken at event " + strconv.FormatInt(ve.Seq, 10) + ": " + ve.Reason
		default:
			h.errStatus(rq, err)
			d.VerifyText = "could not verify: " + fault.Message(err)
		}
	}
	v.Data = d
	h.render(rq, status, "audit", v)
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func detailText(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k + "=" + d[k])
	}
	return b.String()
}

// auditExport downloads the org's audit events matching the filter as
// JSON lines, oldest first, each with its chain fields for verification.
func (h *handler) auditExport(rq *request) error {
	f, err := parseAuditFilter(rq.r.URL.Query())
	if err != nil {
		return err
	}
	evs, err := h.cfg.Keys.AuditEvents(rq.r.Context(), rq.org, 0, 0)
	if err != nil {
		return err
	}
	hd := rq.w.Header()
	hd.Set("Content-Type", "application/x-ndjson; charset=utf-8")
	hd.Set("Content-Disposition", `attachment; filename="orgkms-audit-`+rq.org+`-`+h.now().UTC().Format("20060102T150405Z")+`.jsonl"`)
	bw := bufio.NewWriter(rq.w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, e := range evs {
		if f.match(e) {
			if rq.p.OrgID != "" { // never where the platform master key lives
				e.Target = h.cfg.Keys.RedactPlatformKey(e.Target)
				d := make(map[string]string, len(e.Details))
				for k, v := range e.Details {
					d[k] = h.cfg.Keys.RedactPlatformKey(v)
				}
				e.Details = d
			}
			if err := enc.Encode(e); err != nil {
				return nil // the client went away; headers are sent
			}
		}
	}
	bw.Flush()
	return nil
}
