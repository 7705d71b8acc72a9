package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// The staged revocation page (Settings → Security → Staged revocation):
// decrypt-only mode with a confirmation, the schedule form, the countdown
// and who scheduled it, the cancel button. Its own template, staged.html;
// the Security page shows a summary card that links here.

// stagedFlashes are the staged page's messages after a change.
var stagedFlashes = map[string]string{
	"decrypt-only-on":  "Decrypt-only mode is on: new encryptions are refused on every node.",
	"decrypt-only-off": "Decrypt-only mode is off.",
	"scheduled":        "Revocation scheduled.",
	"cancelled":        "The scheduled revocation was cancelled.",
	"lifted":           "The revocation was lifted: the org is served again.",
}

// stagedView is an org's staged revocation state for the console.
type stagedView struct {
	cmk.Staged
	Countdown string // "2d 3h 4m" until the scheduled time; "due" once it passed
	JobFailed string // the scheduled revocation's job failed: why
	MinLead   string // the shortest lead allowed, e.g. "5m0s"
	MinAt     string // the earliest time the form accepts, as datetime-local in UTC
	// The previews of decrypt-only mode and of a revocation (impact.go);
	// nil when the org is in that state already.
	DecryptOnlyImpact, RevokeImpact *impactView
}

// countdownText is d for people.
func countdownText(d time.Duration) string {
	if d <= 0 {
		return "due now"
	}
	d = d.Round(time.Minute)
	days, hours, mins := d/(24*time.Hour), d%(24*time.Hour)/time.Hour, d%time.Hour/time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("in %dd %dh %dm", days, hours, mins)
	case hours > 0:
		return fmt.Sprintf("in %dh %dm", hours, mins)
	}
	return fmt.Sprintf("in %dm", max(mins, 1))
}

func (h *handler) stagedView(rq *request) stagedView {
	st := rq.status.Staged
	v := stagedView{Staged: st}
	now := h.cfg.CMK.Clock()
	if st.Mode != "" {
		v.Countdown = countdownText(st.At.Sub(now))
		if j, err := h.cfg.CMK.StagedJob(rq.r.Context(), st.JobID); err == nil && j.State == cmk.JobFailed {
			v.JobFailed = j.Error
		}
	}
	lead := h.cfg.CMK.RevocationMinLead()
	v.MinLead = lead.String()
	v.MinAt = now.Add(lead + time.Minute).UTC().Format("2006-01-02T15:04")
	if !st.DecryptOnly {
		v.DecryptOnlyImpact = h.impact(rq, cmk.ImpactDecryptOnly, "", "Decrypt-only mode")
	}
	if !st.Revoked {
		v.RevokeImpact = h.impact(rq, cmk.ImpactRevoke, "", "Revocation")
	}
	return v
}

func (h *handler) stagedPage(rq *request) error {
	return h.renderStaged(rq, http.StatusOK, &view{Flash: stagedFlashes[rq.r.URL.Query().Get("done")]})
}

func (h *handler) renderStaged(rq *request, status int, v *view) error {
	if h.cfg.CMK == nil {
		return &fault.Error{Kind: fault.NotFound, Resource: "page"}
	}
	v.Title, v.Active, v.Data = "Settings → Security → Staged revocation", "security", h.stagedView(rq)
	h.render(rq, status, "staged", v)
	return nil
}

// stagedFailed renders the page again with err, its form as typed.
func (h *handler) stagedFailed(rq *request, err error) error {
	v := &view{Form: rq.r.PostForm}
	v.formError(err, map[string]string{"at": "at", "mode": "mode", "reason": "reason"})
	if st, serr := h.cmkStatus(rq); serr == nil {
		rq.status = st
	}
	return h.renderStaged(rq, h.errStatus(rq, err), v)
}

// setDecryptOnly turns decrypt-only mode on (with the confirmation box
// ticked) or off.
func (h *handler) setDecryptOnly(rq *request) error {
	f := rq.r.PostForm
	on := f.Get("enabled") == "on"
	if on && f.Get("confirm") != "yes" {
		return h.stagedFailed(rq, invalid("confirm", "tick the box to confirm that new encryptions of the org will be refused"))
	}
	if _, err := h.cfg.CMK.SetDecryptOnly(rq.r.Context(), rq.p.Name, rq.org, on, f.Get("reason")); err != nil {
		return h.stagedFailed(rq, err)
	}
	done := "decrypt-only-off"
	if on {
		done = "decrypt-only-on"
	}
	return rq.redirect(orgPath(rq.org, "security/staged?done="+done))
}

// scheduleRevocation schedules a revocation at the form's time, read as
// UTC (the form says so).
func (h *handler) scheduleRevocation(rq *request) error {
	f := rq.r.PostForm
	raw := strings.TrimSpace(f.Get("at"))
	if raw == "" {
		return h.stagedFailed(rq, invalid("at", "choose the date and time of the revocation (UTC)"))
	}
	at, err := time.ParseInLocation("2006-01-02T15:04", raw, time.UTC)
	if err != nil {
		if at, err = time.Parse(time.RFC3339, raw); err != nil {
			return h.stagedFailed(rq, invalid("at", "must be a date and time, e.g. 2030-01-02T15:04 (UTC)"))
		}
	}
	if _, err := h.cfg.CMK.ScheduleRevocation(rq.r.Context(), rq.p.Name, rq.org, at, cmk.StagedMode(f.Get("mode")), f.Get("reason")); err != nil {
		return h.stagedFailed(rq, err)
	}
	return rq.redirect(orgPath(rq.org, "security/staged?done=scheduled"))
}

// cancelRevocation cancels the scheduled revocation, or lifts one in
// effect.
func (h *handler) cancelRevocation(rq *request) error {
	scheduled := rq.status.Staged.Mode != ""
	if _, err := h.cfg.CMK.CancelRevocation(rq.r.Context(), rq.p.Name, rq.org); err != nil {
		return h.stagedFailed(rq, err)
	}
	done := "lifted"
	if scheduled {
		done = "cancelled"
	}
	return rq.redirect(orgPath(rq.org, "security/staged?done="+done))
}
