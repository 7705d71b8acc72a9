package api

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// Org deletion and the data-key lifecycle: DELETE /v1/orgs/{org}, POST
// /v1/orgs/{org}/cancel-deletion, and disable, enable, DELETE and
// cancel-deletion of /v1/orgs/{org}/keys/{key}.

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// withOrgLifecycle adds the org's lifecycle to its JSON form.
func withOrgLifecycle(o client.Org, l keys.Lifecycle) client.Org {
	o.State = "active"
	switch l.State {
	case keys.LifecyclePendingDeletion:
		o.State, o.PendingDeletion, o.DeletionDate = string(l.State), true, timePtr(l.DeletionDate)
	case keys.LifecycleDeleted:
		o.State, o.DeletedAt = string(l.State), timePtr(l.ShreddedAt)
	}
	return o
}

// withKeyLifecycle adds a data key's lifecycle to its JSON form.
func withKeyLifecycle(k client.Key, l keys.Lifecycle) client.Key {
	k.State = "enabled"
	if l.State != keys.LifecycleEnabled {
		k.State = string(l.State)
	}
	if l.State == keys.LifecyclePendingDeletion {
		k.DeletionDate = timePtr(l.DeletionDate)
	}
	if l.State == keys.LifecycleDeleted {
		k.DeletionDate, k.DeletedAt = timePtr(l.DeletionDate), timePtr(l.ShreddedAt)
	}
	return k
}

func (h *Handler) orgReply(c *call, status int) error {
	o, err := h.keys.GetOrg(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	l, err := h.keys.OrgLifecycle(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	return c.reply(status, withOrgLifecycle(orgJSON(o, h.keys.PlatformKey().String()), l))
}

func (h *Handler) keyReply(c *call, name string) error {
	k, err := h.keys.GetDataKey(c.r.Context(), c.org, name)
	if err != nil {
		return err
	}
	ls, err := h.keys.KeyLifecycles(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, withKeyLifecycle(keyJSON(k), ls[name]))
}

// lifecycleOn reports a missing shred service as a missing route.
func (h *Handler) lifecycleOn() error {
	if h.shred == nil {
		return &fault.Error{Kind: fault.NotFound, Reason: "org and key deletion are not available on this server"}
	}
	return nil
}

// waitingDays reads the waiting period from the query (waiting_days=N) or
// an optional JSON body ({"waiting_days": N}); 0 when neither gives one.
func (c *call) waitingDays() (int, error) {
	days := 0
	if v := c.r.URL.Query().Get("waiting_days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days", Reason: "waiting_days must be a whole number of days"}
		}
		if n == 0 {
			return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days", Reason: "waiting_days must be between 7 and 30"}
		}
		days = n
	}
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		return 0, &fault.Error{Kind: fault.Invalid, Reason: "request body could not be read", Err: err}
	}
	if len(bytes.TrimSpace(body)) > 0 {
		c.r.Body = io.NopCloser(bytes.NewReader(body))
		var req client.DeleteRequest
		if err := c.decode(&req); err != nil {
			return 0, err
		}
		if req.WaitingDays != 0 {
			if days != 0 && days != req.WaitingDays {
				return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days", Reason: "waiting_days is given twice (query and body) with different values"}
			}
			days = req.WaitingDays
		}
	}
	return days, nil
}

func (h *Handler) deleteOrg(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	days, err := c.waitingDays()
	if err != nil {
		return err
	}
	if _, err := h.shred.ScheduleOrgDeletion(c.r.Context(), c.actor(), c.org, days); err != nil {
		return err
	}
	return h.orgReply(c, http.StatusAccepted)
}

func (h *Handler) cancelOrgDeletion(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	if err := h.shred.CancelOrgDeletion(c.r.Context(), c.actor(), c.org); err != nil {
		return err
	}
	return h.orgReply(c, http.StatusOK)
}

func (h *Handler) disableKey(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	name := c.r.PathValue("key")
	if err := h.shred.DisableKey(c.r.Context(), c.actor(), c.org, name); err != nil {
		return err
	}
	return h.keyReply(c, name)
}

func (h *Handler) enableKey(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	name := c.r.PathValue("key")
	if err := h.shred.EnableKey(c.r.Context(), c.actor(), c.org, name); err != nil {
		return err
	}
	return h.keyReply(c, name)
}

func (h *Handler) deleteKey(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	days, err := c.waitingDays()
	if err != nil {
		return err
	}
	name := c.r.PathValue("key")
	if _, err := h.shred.ScheduleKeyDeletion(c.r.Context(), c.actor(), c.org, name, days); err != nil {
		return err
	}
	return h.keyReply(c, name)
}

func (h *Handler) cancelKeyDeletion(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	name := c.r.PathValue("key")
	if err := h.shred.CancelKeyDeletion(c.r.Context(), c.actor(), c.org, name); err != nil {
		return err
	}
	return h.keyReply(c, name)
}
