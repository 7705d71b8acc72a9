package console

import (
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// The impact preview on the confirmation pages (disable, fall back,
// decrypt-only and scheduled revocation, org and key deletion): what the step would break if
// taken now, from cmk.Service.Impact, the same figures as GET
// /v1/orgs/{org}/cmk/impact. Its template is templates/impact.html,
// included by the pages as {{template "impact" .}}.

// impactView is one preview for a page.
type impactView struct {
	cmk.Impact
	ID       string // the section's id suffix: impact-disable, impact-revoke, …
	Title    string
	LastUse  string // the org's last use, for people: "12 s ago"
	Estimate string // the re-wrap estimate for people: "1 wrap, about 0.06 s"
	Error    string // the preview could not be computed: why
	Keys     []impactKeyView
}

// impactKeyView is one data key's row.
type impactKeyView struct {
	cmk.KeyImpact
	Callers string // "svc (3), (token of another org) (1)"
	LastUse string
}

// impact previews action for the page (key: the data key of a key
// action, else ""); a failure shows in the section instead of failing the
// page.
func (h *handler) impact(rq *request, action cmk.ImpactAction, key, title string) *impactView {
	if h.cfg.CMK == nil {
		return nil
	}
	v := &impactView{ID: "impact-" + string(action), Title: title}
	im, err := h.cfg.CMK.Impact(rq.r.Context(), rq.org, action, key)
	if err != nil {
		v.Error = fault.Message(err)
		return v
	}
	v.Impact = im
	now := im.Until
	var last time.Time
	for _, k := range im.Keys {
		kv := impactKeyView{KeyImpact: k, LastUse: "no use in the last 24 h"}
		if !k.LastUse.IsZero() {
			kv.LastUse = agoText(now.Sub(k.LastUse))
			if k.LastUse.After(last) {
				last = k.LastUse
			}
		}
		var cs []string
		for _, c := range k.Callers {
			cs = append(cs, c.Principal+" ("+strconv.FormatInt(c.Calls, 10)+")")
		}
		kv.Callers = strings.Join(cs, ", ")
		v.Keys = append(v.Keys, kv)
	}
	v.LastUse = "no use in the last 24 h"
	if !last.IsZero() {
		v.LastUse = agoText(now.Sub(last))
	}
	v.Estimate = "none needed"
	if r := im.Rewrap; r.Required {
		wraps := "1 wrap"
		if r.Wraps != 1 {
			wraps = strconv.Itoa(r.Wraps) + " wraps"
		}
		v.Estimate = wraps + ", about " + strconv.FormatFloat(r.EstimatedSeconds, 'f', -1, 64) + " s (" + strconv.Itoa(r.VaultCalls) + " key calls at the " + r.RateSource + "'s " + strconv.FormatFloat(r.Rate, 'f', -1, 64) + " calls/s)"
	}
	return v
}

// agoText is how long ago, for people.
func agoText(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(max(d, 0)/time.Second)) + " s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min ago"
	}
	return strconv.Itoa(int(d/time.Hour)) + " h ago"
}
