package console

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/orgkms/orgkms/internal/events"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/notify"
)

// The Notifications page: the org's webhooks (package notify). An admin
// adds one (its secret is shown once, on the page that answers the form,
// never in a URL), sends a test ping, reads the delivery history and
// deletes it.

type eventChoice struct {
	Type  events.Type
	Label string
}

var webhookEventChoices = []eventChoice{
	{events.StateChanged, "Key state changed (active, revoked, lost, fallen back)"},
	{events.RotationFollowed, "Key rotation followed"},
	{events.JobFailed, "Background job failed"},
	{events.DeletionScheduled, "Deletion scheduled"},
}

type webhooksData struct {
	Hooks        []notify.Webhook
	Choices      []eventChoice
	Secret       string // a new secret, shown this once
	SecretHook   string
	TestHook     string // the webhook of TestResult
	TestResult   string
	TestOK       bool
	Max          int
	ReplayWindow time.Duration
}

type webhookData struct {
	Hook       notify.Webhook
	Deliveries []notify.Delivery
}

var errNoWebhooks = &fault.Error{Kind: fault.NotFound, Reason: "notifications are not available on this server"}

func (h *handler) webhooks(rq *request) error {
	return h.renderWebhooks(rq, http.StatusOK, &view{Flash: flashes[rq.r.URL.Query().Get("done")]}, webhooksData{})
}

func (h *handler) renderWebhooks(rq *request, status int, v *view, d webhooksData) error {
	if h.cfg.Webhooks == nil {
		return errNoWebhooks
	}
	hooks, err := h.cfg.Webhooks.List(rq.r.Context(), rq.org)
	if err != nil {
		return err
	}
	d.Hooks, d.Choices, d.Max, d.ReplayWindow = hooks, webhookEventChoices, notify.MaxWebhooks, notify.ReplayWindow
	v.Title, v.Active, v.Data = "Notifications", "webhooks", d
	h.render(rq, status, "webhooks", v)
	return nil
}

func (h *handler) createWebhook(rq *request) error {
	if h.cfg.Webhooks == nil {
		return errNoWebhooks
	}
	f := rq.r.PostForm
	w, secret, err := h.cfg.Webhooks.Create(rq.r.Context(), rq.org, rq.p.Name, notify.CreateRequest{URL: f.Get("url"), Description: f.Get("description"), Events: f["event"]})
	if err != nil {
		v := &view{Form: url.Values{"url": {f.Get("url")}, "description": {f.Get("description")}, "event": f["event"]}}
		v.formError(err, map[string]string{"events": "event"})
		if k := fault.KindOf(err); k == fault.WebhookURLInsecure || k == fault.WebhookAddressForbidden {
			v.Fields = map[string]string{"url": reasonOf(err)}
		}
		return h.renderWebhooks(rq, h.errStatus(rq, err), v, webhooksData{})
	}
	// The secret is on this page only: not in a redirect, not kept.
	return h.renderWebhooks(rq, http.StatusOK, &view{Flash: "Webhook added. Copy its signing secret now: it is not shown again."},
		webhooksData{Secret: secret, SecretHook: w.ID})
}

func (h *handler) testWebhook(rq *request) error {
	if h.cfg.Webhooks == nil {
		return errNoWebhooks
	}
	id := rq.r.PathValue("id")
	d, err := h.cfg.Webhooks.Test(rq.r.Context(), rq.org, id, rq.p.Name)
	if err != nil {
		return err
	}
	a := d.History[len(d.History)-1]
	res := fmt.Sprintf("Ping delivered: the receiver answered %d in %d ms.", a.StatusCode, a.Latency.Milliseconds())
	if d.State != notify.Delivered {
		res = "Ping failed: " + a.Error + "."
	}
	return h.renderWebhooks(rq, http.StatusOK, &view{}, webhooksData{TestHook: id, TestResult: res, TestOK: d.State == notify.Delivered})
}

func (h *handler) deleteWebhook(rq *request) error {
	if h.cfg.Webhooks == nil {
		return errNoWebhooks
	}
	if err := h.cfg.Webhooks.Delete(rq.r.Context(), rq.org, rq.r.PathValue("id"), rq.p.Name); err != nil {
		return err
	}
	return rq.redirect(orgPath(rq.org, "webhooks?done=webhook-deleted"))
}

func (h *handler) webhookHistory(rq *request) error {
	if h.cfg.Webhooks == nil {
		return errNoWebhooks
	}
	id := rq.r.PathValue("id")
	w, err := h.cfg.Webhooks.Get(rq.r.Context(), rq.org, id)
	if err != nil {
		return err
	}
	ds, err := h.cfg.Webhooks.Deliveries(rq.r.Context(), rq.org, id, 100)
	if err != nil {
		return err
	}
	v := &view{Title: "Webhook deliveries", Active: "webhooks", Data: webhookData{Hook: w, Deliveries: ds}}
	h.render(rq, http.StatusOK, "webhook", v)
	return nil
}
