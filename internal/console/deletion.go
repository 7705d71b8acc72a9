package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/shred"
)

// Org deletion and the data-key lifecycle (disable, enable, scheduled
// deletion): the confirmation page delete.html for both, the banner of a
// pending or done org deletion on every org page, and the form posts. Every
// change goes through the shred service, as the API does, so each one is
// authorized the same way and appends the same audit event.

// lifecycleFlashes are the messages after a lifecycle change.
var lifecycleFlashes = map[string]string{
	"key-disabled":           "Key disabled: encrypt and decrypt with it are refused until you enable it.",
	"key-enabled":            "Key enabled: encrypt and decrypt with it work again.",
	"key-deletion-scheduled": "Key deletion scheduled: the key is refused from now on; cancel the deletion before its date to keep it.",
	"key-deletion-cancelled": "Key deletion cancelled: the key is enabled again.",
	"org-deletion-scheduled": "Org deletion scheduled: every use of the org's keys is refused from now on; cancel the deletion before its date to keep the org.",
	"org-deletion-cancelled": "Org deletion cancelled: the org is served again.",
}

// mayDeleteOrg reports whether the user may schedule or cancel the org's
// deletion: the API's rule (auth.ActOrgDelete: the platform operator), or,
// when the operator allows it (orgs.self_delete), the org's admin with the
// key_admin role.
func (h *handler) mayDeleteOrg(rq *request) bool {
	return rq.allowed(auth.ActOrgDelete) || (h.cfg.SelfDelete && rq.allowed(auth.ActCMKManage))
}

var errNoLifecycle = &fault.Error{Kind: fault.NotFound, Reason: "org and key deletion are not available on this orgkms server"}

// deletionBanner is the notice of an org that is pending deletion or
// deleted, on every page of the org.
type deletionBanner struct {
	Class, Title, Text string
	State, StateText   string // the org's state, for the overview
	By                 string // who scheduled it, and when
	CanCancel          bool
}

func (h *handler) deletionBanner(rq *request) *deletionBanner {
	l := rq.life
	switch l.State {
	case keys.LifecyclePendingDeletion:
		b := &deletionBanner{Class: "banner-revoked", State: orgStateClass(l), StateText: orgLifeText(l), Title: "Org scheduled for deletion on " + fmtTime(l.DeletionDate) + ".",
			Text:      "Every use of the org's keys (encrypt, decrypt, data keys) is refused. On that date orgkms destroys the org's keys for good, and its data can never be decrypted again. Until then the deletion can be cancelled, which restores the service at once.",
			CanCancel: h.cfg.Shred != nil && h.mayDeleteOrg(rq)}
		if l.ChangedBy != "" {
			b.By = "Scheduled by " + l.ChangedBy + " on " + fmtTime(l.ChangedAt) + "."
		}
		if !b.CanCancel {
			b.By = strings.TrimSpace(b.By + " To keep the org, ask the platform operator to cancel the deletion.")
		}
		return b
	case keys.LifecycleDeleted:
		return &deletionBanner{Class: "banner-lost", State: orgStateClass(l), StateText: orgLifeText(l), Title: "Org deleted on " + fmtTime(l.ShreddedAt) + ".",
			Text: "orgkms destroyed the org's keys: its data is unrecoverable, and every use of its keys is refused. Its audit log stays readable."}
	}
	return nil
}

// lifeText is a lifecycle state in words.
func lifeText(l keys.Lifecycle) string {
	switch l.State {
	case keys.LifecycleDisabled:
		return "disabled"
	case keys.LifecyclePendingDeletion:
		return "pending deletion until " + fmtTime(l.DeletionDate)
	case keys.LifecycleDeleted:
		return "deleted on " + fmtTime(l.ShreddedAt)
	}
	return "enabled"
}

// orgLifeText is an org's lifecycle state in words.
func orgLifeText(l keys.Lifecycle) string {
	if l.State == keys.LifecycleEnabled {
		return "active"
	}
	return lifeText(l)
}

// stateClass is the CSS class suffix of a lifecycle state.
func stateClass(l keys.Lifecycle) string {
	switch l.State {
	case keys.LifecycleEnabled:
		return "enabled"
	case keys.LifecyclePendingDeletion:
		return "pending-deletion"
	}
	return string(l.State)
}

// orgStateClass is the CSS class suffix of an org's lifecycle state.
func orgStateClass(l keys.Lifecycle) string {
	if l.State == keys.LifecycleEnabled {
		return "active"
	}
	return stateClass(l)
}

// keyRow is a data key on the Keys page, with its lifecycle.
type keyRow struct {
	keys.DataKey
	Life       keys.Lifecycle
	State      string // enabled, disabled, pending_deletion, deleted
	StateText  string
	StateClass string
}

func (r keyRow) Enabled() bool  { return r.Life.State == keys.LifecycleEnabled }
func (r keyRow) Disabled() bool { return r.Life.State == keys.LifecycleDisabled }
func (r keyRow) Pending() bool  { return r.Life.State == keys.LifecyclePendingDeletion }

func (h *handler) keyRows(rq *request, ks []keys.DataKey) ([]keyRow, error) {
	ls, err := h.cfg.Keys.KeyLifecycles(rq.r.Context(), rq.org)
	if err != nil {
		return nil, err
	}
	rows := make([]keyRow, len(ks))
	for i, k := range ks {
		l := ls[k.Name]
		rows[i] = keyRow{DataKey: k, Life: l, State: orElse(string(l.State), "enabled"), StateText: lifeText(l), StateClass: stateClass(l)}
	}
	return rows, nil
}

// deleteData is the confirmation page of a deletion (delete.html).
type deleteData struct {
	Org        bool   // the org's deletion, else a data key's
	Key        string // the key
	Action     string // the form's path
	Back       string // the Cancel link
	Possible   bool
	Why        string // why it is not possible now
	Days       string // the waiting period in the field
	Min, Max   int
	Default    int
	DefaultsTo string      // the deletion date with the default period, from now
	Impact     *impactView // what the deletion would break now (impact.go)
}

func (h *handler) renderDelete(rq *request, status int, v *view, d deleteData) error {
	d.Min, d.Max, d.Default = shred.MinWaitingDays, shred.MaxWaitingDays, shred.DefaultWaitingDays
	d.DefaultsTo = fmtTime(h.now().Add(time.Duration(d.Default) * 24 * time.Hour))
	d.Days = orElse(v.Value("waiting_days"), strconv.Itoa(d.Default))
	if d.Possible && d.Org {
		d.Impact = h.impact(rq, cmk.ImpactDeleteOrg, "", "Deletion")
	} else if d.Possible {
		d.Impact = h.impact(rq, cmk.ImpactDeleteKey, d.Key, "Deletion of key "+d.Key)
	}
	v.Data = d
	if d.Org {
		v.Title, v.Active = "Delete the org", "overview"
	} else {
		v.Title, v.Active = "Delete key "+d.Key, "keys"
	}
	h.render(rq, status, "delete", v)
	return nil
}

// waitingDays reads the form's waiting period. The service bounds it too;
// the console says it in the customer's words.
func waitingDays(rq *request) (int, error) {
	raw := strings.TrimSpace(rq.r.PostForm.Get("waiting_days"))
	n, err := strconv.Atoi(raw)
	if err != nil || n < shred.MinWaitingDays || n > shred.MaxWaitingDays {
		return 0, badDays()
	}
	return n, nil
}

func badDays() error {
	return invalid("waiting_days", fmt.Sprintf("enter a waiting period of %d to %d days (the default is %d)", shred.MinWaitingDays, shred.MaxWaitingDays, shred.DefaultWaitingDays))
}

// deleteFailed shows err on the confirmation page, the form as typed.
func (h *handler) deleteFailed(rq *request, d deleteData, err error) error {
	if fe := fault.As(err); fe != nil && fe.Kind == fault.Invalid && fe.Field == "waiting_days" {
		err = badDays()
	}
	v := &view{Form: rq.r.PostForm}
	v.formError(err, nil)
	return h.renderDelete(rq, h.errStatus(rq, err), v, d)
}

// The org's deletion.

func (h *handler) orgDeleteData(rq *request) deleteData {
	d := deleteData{Org: true, Action: orgPath(rq.org, "delete"), Back: orgPath(rq.org, "")}
	switch rq.life.State {
	case keys.LifecyclePendingDeletion:
		d.Why = "The org is already scheduled for deletion on " + fmtTime(rq.life.DeletionDate) + "; the banner above can cancel it."
	case keys.LifecycleDeleted:
		d.Why = "The org was deleted on " + fmtTime(rq.life.ShreddedAt) + "."
	default:
		d.Possible = true
	}
	return d
}

func (h *handler) orgDeletePage(rq *request) error {
	if h.cfg.Shred == nil {
		return errNoLifecycle
	}
	return h.renderDelete(rq, http.StatusOK, &view{}, h.orgDeleteData(rq))
}

func (h *handler) deleteOrg(rq *request) error {
	if h.cfg.Shred == nil {
		return errNoLifecycle
	}
	d := h.orgDeleteData(rq)
	days, err := waitingDays(rq)
	if err != nil {
		return h.deleteFailed(rq, d, err)
	}
	if rq.r.PostForm.Get("confirm") != "yes" {
		return h.deleteFailed(rq, d, invalid("confirm", "tick the box to confirm that the org's keys are refused from now on and destroyed at the deletion date"))
	}
	if _, err := h.cfg.Shred.ScheduleOrgDeletion(rq.r.Context(), rq.p.Name, rq.org, days); err != nil {
		return h.deleteFailed(rq, d, err)
	}
	return rq.redirect(orgPath(rq.org, "?done=org-deletion-scheduled"))
}

func (h *handler) cancelOrgDeletion(rq *request) error {
	if h.cfg.Shred == nil {
		return errNoLifecycle
	}
	if err := h.cfg.Shred.CancelOrgDeletion(rq.r.Context(), rq.p.Name, rq.org); err != nil {
		return h.renderOverview(rq, h.errStatus(rq, err), &view{Error: fault.Message(err)})
	}
	return rq.redirect(orgPath(rq.org, "?done=org-deletion-cancelled"))
}

// A data key's lifecycle.

func (h *handler) keyDeleteData(rq *request) (deleteData, error) {
	name := rq.r.PathValue("key")
	if _, err := h.cfg.Keys.GetDataKey(rq.r.Context(), rq.org, name); err != nil {
		return deleteData{}, err
	}
	ls, err := h.cfg.Keys.KeyLifecycles(rq.r.Context(), rq.org)
	if err != nil {
		return deleteData{}, err
	}
	d := deleteData{Key: name, Action: orgPath(rq.org, "keys/"+url.PathEscape(name)+"/delete"), Back: orgPath(rq.org, "keys")}
	switch l := ls[name]; {
	case rq.life.State != keys.LifecycleEnabled:
		d.Why = "The org is " + orgLifeText(rq.life) + ": its keys cannot be changed."
	case l.State == keys.LifecyclePendingDeletion || l.State == keys.LifecycleDeleted:
		d.Why = "The key is already " + lifeText(l) + "."
	default:
		d.Possible = true
	}
	return d, nil
}

func (h *handler) keyDeletePage(rq *request) error {
	if h.cfg.Shred == nil {
		return errNoLifecycle
	}
	d, err := h.keyDeleteData(rq)
	if err != nil {
		return err
	}
	return h.renderDelete(rq, http.StatusOK, &view{}, d)
}

func (h *handler) deleteKey(rq *request) error {
	if h.cfg.Shred == nil {
		return errNoLifecycle
	}
	d, err := h.keyDeleteData(rq)
	if err != nil {
		return err
	}
	days, err := waitingDays(rq)
	if err != nil {
		return h.deleteFailed(rq, d, err)
	}
	if _, err := h.cfg.Shred.ScheduleKeyDeletion(rq.r.Context(), rq.p.Name, rq.org, d.Key, days); err != nil {
		return h.deleteFailed(rq, d, err)
	}
	return rq.redirect(orgPath(rq.org, "keys?done=key-deletion-scheduled"))
}

// keyChange runs one of the shred service's key changes and answers with
// the Keys page: its flash, or the error in the page's banner.
func (h *handler) keyChange(rq *request, change func(s *shred.Service, name string) error, done string) error {
	if h.cfg.Shred == nil {
		return errNoLifecycle
	}
	if err := change(h.cfg.Shred, rq.r.PathValue("key")); err != nil {
		return h.renderKeys(rq, h.errStatus(rq, err), &view{Error: fault.Message(err)}, keysData{})
	}
	return rq.redirect(orgPath(rq.org, "keys?done="+done))
}

func (h *handler) disableKey(rq *request) error {
	return h.keyChange(rq, func(s *shred.Service, name string) error {
		return s.DisableKey(rq.r.Context(), rq.p.Name, rq.org, name)
	}, "key-disabled")
}

func (h *handler) enableKey(rq *request) error {
	return h.keyChange(rq, func(s *shred.Service, name string) error {
		return s.EnableKey(rq.r.Context(), rq.p.Name, rq.org, name)
	}, "key-enabled")
}

func (h *handler) cancelKeyDeletion(rq *request) error {
	return h.keyChange(rq, func(s *shred.Service, name string) error {
		return s.CancelKeyDeletion(rq.r.Context(), rq.p.Name, rq.org, name)
	}, "key-deletion-cancelled")
}
