package client

import (
	"context"
	"net/url"
	"strconv"
	"time"
)

// Webhook is an org's registered receiver of signed notifications. Its
// secret is never part of it: only [WebhookCreated] carries it, once.
type Webhook struct {
	ID          string    `json:"id"`
	Org         string    `json:"org"`
	URL         string    `json:"url"`
	Description string    `json:"description,omitempty"`
	Events      []string  `json:"events"` // subscribed types; empty = every type
	CreatedAt   time.Time `json:"created_at"`
	CreatedBy   string    `json:"created_by"`
	// PreviousSecretUntil is set after a secret rotation: the previous
	// secret signs beside the new one until then.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
}

// CreateWebhookRequest registers a webhook.
type CreateWebhookRequest struct {
	URL         string   `json:"url"`
	Description string   `json:"description,omitempty"`
	Events      []string `json:"events,omitempty"`
}

// WebhookCreated is a new webhook with its signing secret: shown this
// once, never again.
type WebhookCreated struct {
	Webhook
	Secret string `json:"secret"`
}

// WebhookSecret is a rotated secret, shown once.
type WebhookSecret struct {
	Secret              string    `json:"secret"`
	PreviousSecretUntil time.Time `json:"previous_secret_until"`
}

// WebhookList is the webhooks of an org.
type WebhookList struct {
	Webhooks []Webhook `json:"webhooks"`
}

// WebhookAttempt is one try of a delivery.
type WebhookAttempt struct {
	Attempt     int        `json:"attempt"`
	Time        time.Time  `json:"time"`
	StatusCode  int        `json:"status_code"` // 0: no response
	LatencyMS   float64    `json:"latency_ms"`
	Error       string     `json:"error,omitempty"`
	Excerpt     string     `json:"response_excerpt,omitempty"`
	NextRetryAt *time.Time `json:"next_retry_at,omitempty"`
}

// WebhookDelivery is one event sent (or to be sent) to a webhook.
type WebhookDelivery struct {
	ID            int64            `json:"id"`
	EventID       string           `json:"event_id"`
	EventType     string           `json:"event_type"`
	State         string           `json:"state"` // pending, delivered, failed
	Attempts      int              `json:"attempts"`
	CreatedAt     time.Time        `json:"created_at"`
	NextAttemptAt *time.Time       `json:"next_attempt_at,omitempty"` // while pending
	LastStatus    int              `json:"last_status_code"`
	LastError     string           `json:"last_error,omitempty"`
	History       []WebhookAttempt `json:"history"`
}

// WebhookDeliveryList is a webhook's delivery history, newest first.
type WebhookDeliveryList struct {
	Deliveries []WebhookDelivery `json:"deliveries"`
}

func webhookPath(org, id string) string { return "/v1/orgs/" + esc(org) + "/webhooks/" + esc(id) }

// CreateWebhook registers a webhook; the result carries its secret, once.
func (c *Client) CreateWebhook(ctx context.Context, org string, req CreateWebhookRequest) (WebhookCreated, error) {
	var w WebhookCreated
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/webhooks", req, &w)
	return w, err
}

// ListWebhooks returns the org's webhooks.
func (c *Client) ListWebhooks(ctx context.Context, org string) ([]Webhook, error) {
	var l WebhookList
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/webhooks", nil, &l)
	return l.Webhooks, err
}

// GetWebhook returns one webhook.
func (c *Client) GetWebhook(ctx context.Context, org, id string) (Webhook, error) {
	var w Webhook
	err := c.do(ctx, "GET", webhookPath(org, id), nil, &w)
	return w, err
}

// DeleteWebhook deletes a webhook with its pending deliveries and history.
func (c *Client) DeleteWebhook(ctx context.Context, org, id string) error {
	return c.do(ctx, "DELETE", webhookPath(org, id), nil, nil)
}

// TestWebhook sends a ping now and returns how it went.
func (c *Client) TestWebhook(ctx context.Context, org, id string) (WebhookDelivery, error) {
	var d WebhookDelivery
	err := c.do(ctx, "POST", webhookPath(org, id)+"/test", nil, &d)
	return d, err
}

// RotateWebhookSecret gives the webhook a new secret, returned once.
func (c *Client) RotateWebhookSecret(ctx context.Context, org, id string) (WebhookSecret, error) {
	var s WebhookSecret
	err := c.do(ctx, "POST", webhookPath(org, id)+"/rotate-secret", nil, &s)
	return s, err
}

// WebhookDeliveries returns the webhook's delivery history, newest first
// (limit 0 = the server's default).
func (c *Client) WebhookDeliveries(ctx context.Context, org, id string, limit int) ([]WebhookDelivery, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	p := webhookPath(org, id) + "/deliveries"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var l WebhookDeliveryList
	err := c.do(ctx, "GET", p, nil, &l)
	return l.Deliveries, err
}
