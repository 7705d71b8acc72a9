package api

import (
	"bytes"
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	ls, err := h.keyLifecycles(c)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, withKeyLifecycle(keyJSON(k), ls(name)))
}

// keyLifecycles returns the lifecycle of c.org's data keys by name: a key
// of a deleted org is deleted with it (its versions were erased), not
// "enabled" as its own record, untouched by the org's shred, says.
func (h *Handler) keyLifecycles(c *call) (func(name string) keys.Lifecycle, error) {
	ol, err := h.keys.OrgLifecycle(c.r.Context(), c.org)
	if err != nil {
		return nil, err
	}
	ls, err := h.keys.KeyLifecycles(c.r.Context(), c.org)
	if err != nil {
		return nil, err
	}
	return func(name string) keys.Lifecycle {
		if l := ls[name]; ol.State != keys.LifecycleDeleted || l.State == keys.LifecycleDeleted {
			return l
		}
		return keys.Lifecycle{State: keys.LifecycleDeleted, DeletionDate: ol.DeletionDate, ShreddedAt: ol.ShreddedAt}
	}, nil
}

// lifecycleOn reports a missing shred service as a missing route.
func (h *Handler) lifecycleOn() error {
	if h.shred == nil {
		return &fault.Error{Kind: fault.NotFound, Reason: "org and key deletion are not available on this server"}
	}
	return nil
}

// waitingDaysReason is what a bad waiting period is told.
const waitingDaysReason = "must be a whole number of days between 7 and 30 (default 7), e.g. {\"waiting_days\": 7}"

// readBody reads the request body whole: TooLarge past [MaxBodyBytes].
func (c *call) readBody() ([]byte, error) {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, &fault.Error{Kind: fault.TooLarge, Reason: "request body exceeds " + strconv.Itoa(MaxBodyBytes>>20) + " MiB; this route takes at most {\"waiting_days\": N}"}
		}
		return nil, &fault.Error{Kind: fault.Invalid, Reason: "request body could not be read", Err: err}
	}
	return bytes.TrimSpace(body), nil
}

// onlyParams refuses query parameters other than allowed, and any given
// more than once or empty: a typo (waiting_day=30) must not fall back to
// the default.
func (c *call) onlyParams(allowed ...string) error {
	for k, v := range c.r.URL.Query() {
		if !slices.Contains(allowed, k) {
			hint := "this route takes no query parameters"
			if len(allowed) > 0 {
				hint = "this route takes only " + strings.Join(allowed, ", ")
			}
			return &fault.Error{Kind: fault.Invalid, Field: k, Reason: "is not a parameter of this route: " + hint}
		}
		if len(v) > 1 {
			return &fault.Error{Kind: fault.Invalid, Field: k, Reason: "is given more than once: give it once"}
		}
		if v[0] == "" {
			return &fault.Error{Kind: fault.Invalid, Field: k, Reason: "is empty: give a value or leave the parameter out"}
		}
	}
	return nil
}

// noBody checks the request of a route that takes neither a body nor
// query parameters: an empty body or {} (what the client sends) only.
func (c *call) noBody() error {
	if err := c.onlyParams(); err != nil {
		return err
	}
	body, err := c.readBody()
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return nil
	}
	var v map[string]jsontext.Value
	if err := jsonv2.Unmarshal(body, &v); err != nil || v == nil {
		return &fault.Error{Kind: fault.Invalid, Reason: "this route takes no request body: send none (or {})"}
	}
	for k := range v {
		return &fault.Error{Kind: fault.Invalid, Reason: "unknown field " + strconv.Quote(k) + ": this route takes no request body: send none (or {})"}
	}
	return nil
}

// waitingDays reads the waiting period from the query (waiting_days=N) or
// an optional JSON body ({"waiting_days": N}); 0 when neither gives one.
// Anything but a whole number (a string, 7.5, 1e9, null) is refused here,
// the range by the shred service.
func (c *call) waitingDays() (int, error) {
	if err := c.onlyParams("waiting_days"); err != nil {
		return 0, err
	}
	days := 0
	if v := c.r.URL.Query().Get("waiting_days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days", Reason: waitingDaysReason}
		}
		days = n
	}
	body, err := c.readBody()
	if err != nil {
		return 0, err
	}
	if len(body) == 0 {
		return days, nil
	}
	if body[0] != '{' {
		return 0, &fault.Error{Kind: fault.Invalid, Field: "body", Reason: "must be a JSON object, e.g. {\"waiting_days\": 7}, or empty"}
	}
	var req struct {
		WaitingDays jsontext.Value `json:"waiting_days"`
	}
	if err := jsonv2.Unmarshal(body, &req, jsonv2.RejectUnknownMembers(true)); err != nil {
		return 0, decodeError(err)
	}
	if len(req.WaitingDays) == 0 {
		return days, nil
	}
	n, err := strconv.Atoi(string(req.WaitingDays))
	if err != nil || n == 0 {
		return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days", Reason: waitingDaysReason}
	}
	if days != 0 && days != n {
		return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days", Reason: "is given twice (query and body) with different values: give it once"}
	}
	return n, nil
}

// orgState checks that the org's lifecycle allows a deletion (want
// enabled) or its cancellation (want pending deletion): a deleted org is
// 410 org_deleted on every route, a wrong state a Conflict that says what
// to do. The store checks again, atomically.
func (h *Handler) orgState(c *call, want keys.LifecycleState) error {
	if _, err := h.keys.GetOrg(c.r.Context(), c.org); err != nil {
		return err
	}
	l, err := h.keys.OrgLifecycle(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	switch {
	case l.State == keys.LifecycleDeleted:
		return keys.OrgRefusal(c.org, l)
	case l.State == want:
		return nil
	case l.State == keys.LifecyclePendingDeletion:
		return &fault.Error{Kind: fault.Conflict,
			Reason: "org " + c.org + " is already scheduled for deletion on " + l.DeletionDate.UTC().Format(time.RFC3339) + ": to change the waiting period, cancel the deletion (POST /v1/orgs/" + c.org + "/cancel-deletion) and delete it again"}
	default:
		return &fault.Error{Kind: fault.Conflict, Reason: "org " + c.org + " is not scheduled for deletion: there is nothing to cancel"}
	}
}

// keyState checks that data key name's lifecycle is one of want (and its
// org neither deleted nor pending deletion), with a Conflict that says
// what to do otherwise. The store checks again, atomically.
func (h *Handler) keyState(c *call, name string, want ...keys.LifecycleState) error {
	if _, err := h.keys.GetOrg(c.r.Context(), c.org); err != nil {
		return err
	}
	ol, err := h.keys.OrgLifecycle(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	if err := keys.OrgRefusal(c.org, ol); err != nil {
		return err
	}
	if _, err := h.keys.GetDataKey(c.r.Context(), c.org, name); err != nil {
		return err
	}
	ls, err := h.keys.KeyLifecycles(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	l := ls[name]
	if slices.Contains(want, l.State) {
		return nil
	}
	res := "key " + name + " in org " + c.org
	switch l.State {
	case keys.LifecycleDeleted:
		return keys.KeyRefusal(c.org, name, l)
	case keys.LifecyclePendingDeletion:
		return &fault.Error{Kind: fault.Conflict,
			Reason: res + " is scheduled for deletion on " + l.DeletionDate.UTC().Format(time.RFC3339) + ": cancel the deletion first (POST /v1/orgs/" + c.org + "/keys/" + name + "/cancel-deletion)"}
	case keys.LifecycleDisabled:
		return &fault.Error{Kind: fault.Conflict, Reason: res + " is disabled already: enable it (POST /v1/orgs/" + c.org + "/keys/" + name + "/enable) or schedule its deletion"}
	}
	if slices.Contains(want, keys.LifecyclePendingDeletion) {
		return &fault.Error{Kind: fault.Conflict, Reason: res + " is not scheduled for deletion: there is nothing to cancel"}
	}
	return &fault.Error{Kind: fault.Conflict, Reason: res + " is enabled already: nothing to do"}
}

func (h *Handler) deleteOrg(c *call) error {
	if err := h.lifecycleOn(); err != nil {
		return err
	}
	days, err := c.waitingDays()
	if err != nil {
		return err
	}
	if err := h.orgState(c, keys.LifecycleEnabled); err != nil {
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
	if err := c.noBody(); err != nil {
		return err
	}
	if err := h.orgState(c, keys.LifecyclePendingDeletion); err != nil {
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
	if err := c.noBody(); err != nil {
		return err
	}
	if err := h.keyState(c, name, keys.LifecycleEnabled); err != nil {
		return err
	}
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
	if err := c.noBody(); err != nil {
		return err
	}
	if err := h.keyState(c, name, keys.LifecycleDisabled); err != nil {
		return err
	}
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
	if err := h.keyState(c, name, keys.LifecycleEnabled, keys.LifecycleDisabled); err != nil {
		return err
	}
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
	if err := c.noBody(); err != nil {
		return err
	}
	if err := h.keyState(c, name, keys.LifecyclePendingDeletion); err != nil {
		return err
	}
	if err := h.shred.CancelKeyDeletion(c.r.Context(), c.actor(), c.org, name); err != nil {
		return err
	}
	return h.keyReply(c, name)
}
