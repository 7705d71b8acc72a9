package api

import (
	"net/http"
	"strings"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// stagedJSON is the staged revocation part of an org's CMK status; job is
// the scheduled revocation's job, when it was found.
func (h *Handler) stagedJSON(st cmk.Staged, job *cmk.Job, now time.Time) client.CMKStaged {
	out := client.CMKStaged{DecryptOnly: st.DecryptOnly, DecryptOnlyReason: h.redact(st.DecryptOnlyReason), DecryptOnlyBy: st.DecryptOnlyBy,
		DecryptOnlySince: optTime(st.DecryptOnlySince), Revoked: st.Revoked, RevokedReason: h.redact(st.RevokedReason), RevokedBy: st.RevokedBy,
		RevokedSince: optTime(st.RevokedSince)}
	if st.Mode != "" {
		s := &client.CMKScheduledRevocation{Mode: string(st.Mode), At: st.At, Reason: h.redact(st.Reason), ScheduledBy: st.ScheduledBy, ScheduledAt: st.ScheduledAt}
		if left := st.At.Sub(now); left > 0 {
			s.SecondsLeft = int64((left + time.Second - 1) / time.Second)
		}
		if job != nil {
			s.JobState, s.JobError = string(job.State), h.redact(job.Error)
		}
		out.Scheduled = s
	}
	return out
}

// statusWithStaged is the org's CMK status as JSON, with its staged
// revocation and the state of a scheduled revocation's job.
func (h *Handler) statusWithStaged(c *call, st cmk.Status) (client.CMKStatus, error) {
	out := h.cmkJSON(st)
	var job *cmk.Job
	if id := st.Staged.JobID; id != 0 {
		j, err := h.cmk.StagedJob(c.r.Context(), id)
		if err != nil && fault.KindOf(err) != fault.NotFound {
			return client.CMKStatus{}, err
		}
		if err == nil {
			job = &j
		}
	}
	out.Staged = h.stagedJSON(st.Staged, job, h.cmk.Clock())
	return out, nil
}

// replyStaged answers a staged revocation change with the org's status.
func (h *Handler) replyStaged(c *call, status int) error {
	st, err := h.cmk.Status(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	out, err := h.statusWithStaged(c, st)
	if err != nil {
		return err
	}
	return c.reply(status, out)
}

func (h *Handler) cmkDecryptOnly(c *call) error {
	var req client.CMKDecryptOnlyRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.Enabled == nil {
		return &fault.Error{Kind: fault.Invalid, Field: "enabled", Reason: "is required: true turns decrypt-only mode on, false off"}
	}
	if _, err := h.cmk.SetDecryptOnly(c.r.Context(), c.actor(), c.org, *req.Enabled, req.Reason); err != nil {
		return err
	}
	return h.replyStaged(c, http.StatusOK)
}

func (h *Handler) cmkScheduleRevocation(c *call) error {
	var req client.CMKRevocationRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if strings.TrimSpace(req.At) == "" {
		return &fault.Error{Kind: fault.Invalid, Field: "at", Reason: "is required: the time of the revocation, RFC 3339 (e.g. 2030-01-02T15:04:05Z)"}
	}
	at, err := time.Parse(time.RFC3339, req.At)
	if err != nil {
		return &fault.Error{Kind: fault.Invalid, Field: "at", Reason: "must be an RFC 3339 time with a zone, e.g. 2030-01-02T15:04:05Z or 2030-01-02T16:04:05+01:00"}
	}
	if _, err := h.cmk.ScheduleRevocation(c.r.Context(), c.actor(), c.org, at, cmk.StagedMode(req.Mode), req.Reason); err != nil {
		return err
	}
	return h.replyStaged(c, http.StatusCreated)
}

func (h *Handler) cmkCancelRevocation(c *call) error {
	if _, err := h.cmk.CancelRevocation(c.r.Context(), c.actor(), c.org); err != nil {
		return err
	}
	return h.replyStaged(c, http.StatusOK)
}
