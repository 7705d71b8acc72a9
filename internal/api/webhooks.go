package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/notify"
)

// The webhook routes (package notify): an org's admins register receivers
// of signed notifications, test them and read their delivery history.

func (h *Handler) webhooksOn() error {
	if h.webhooks == nil {
		return &fault.Error{Kind: fault.NotFound, Reason: "webhooks are not available on this server"}
	}
	return nil
}

func webhookJSON(w notify.Webhook) client.Webhook {
	out := client.Webhook{ID: w.ID, Org: w.OrgID, URL: w.URL, Description: w.Description, Events: []string{}, CreatedAt: w.CreatedAt, CreatedBy: w.CreatedBy}
	for _, t := range w.Events {
		out.Events = append(out.Events, string(t))
	}
	if !w.PreviousUntil.IsZero() && len(w.Previous.Ciphertext) > 0 {
		u := w.PreviousUntil
		out.PreviousSecretUntil = &u
	}
	return out
}

func deliveryJSON(d notify.Delivery) client.WebhookDelivery {
	out := client.WebhookDelivery{ID: d.ID, EventID: d.EventID, EventType: string(d.EventType), State: string(d.State), Attempts: d.Attempts,
		CreatedAt: d.CreatedAt, LastStatus: d.LastStatus, LastError: d.LastError, History: []client.WebhookAttempt{}}
	if d.State == notify.Pending {
		t := d.NextAttemptAt
		out.NextAttemptAt = &t
	}
	for _, a := range d.History {
		wa := client.WebhookAttempt{Attempt: a.N, Time: a.Time, StatusCode: a.StatusCode, LatencyMS: float64(a.Latency.Microseconds()) / 1000, Error: a.Error, Excerpt: a.Excerpt}
		if !a.NextRetryAt.IsZero() {
			t := a.NextRetryAt
			wa.NextRetryAt = &t
		}
		out.History = append(out.History, wa)
	}
	return out
}

func (h *Handler) createWebhook(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	var req client.CreateWebhookRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	w, secret, err := h.webhooks.Create(c.r.Context(), c.org, c.actor(), notify.CreateRequest{URL: req.URL, Description: req.Description, Events: req.Events})
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/orgs/"+c.org+"/webhooks/"+w.ID)
	return c.reply(http.StatusCreated, client.WebhookCreated{Webhook: webhookJSON(w), Secret: secret})
}

func (h *Handler) listWebhooks(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	ws, err := h.webhooks.List(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	out := client.WebhookList{Webhooks: []client.Webhook{}}
	for _, w := range ws {
		out.Webhooks = append(out.Webhooks, webhookJSON(w))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) getWebhook(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	w, err := h.webhooks.Get(c.r.Context(), c.org, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, webhookJSON(w))
}

func (h *Handler) deleteWebhook(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	if err := h.webhooks.Delete(c.r.Context(), c.org, c.r.PathValue("id"), c.actor()); err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]string{"status": "deleted"})
}

func (h *Handler) testWebhook(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	d, err := h.webhooks.Test(c.r.Context(), c.org, c.r.PathValue("id"), c.actor())
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, deliveryJSON(d))
}

func (h *Handler) rotateWebhookSecret(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	secret, err := h.webhooks.RotateSecret(c.r.Context(), c.org, c.r.PathValue("id"), c.actor())
	if err != nil {
		return err
	}
	w, err := h.webhooks.Get(c.r.Context(), c.org, c.r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, client.WebhookSecret{Secret: secret, PreviousSecretUntil: w.PreviousUntil.UTC().Truncate(time.Microsecond)})
}

func (h *Handler) webhookDeliveries(c *call) error {
	if err := h.webhooksOn(); err != nil {
		return err
	}
	limit := 0
	if v := c.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return fault.Invalidf("limit", "limit must be a number from 1 to 500")
		}
		limit = n
	}
	ds, err := h.webhooks.Deliveries(c.r.Context(), c.org, c.r.PathValue("id"), limit)
	if err != nil {
		return err
	}
	out := client.WebhookDeliveryList{Deliveries: []client.WebhookDelivery{}}
	for _, d := range ds {
		out.Deliveries = append(out.Deliveries, deliveryJSON(d))
	}
	return c.reply(http.StatusOK, out)
}
