package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/events"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/notify"
)

var _ notify.Store = (*Store)(nil)

func webhookRes(orgID, id string) string { return "webhook " + id + " of org " + orgID }

// enqueueNotification writes, in tx, one outbox row per webhook of the
// event's org subscribed to the notification the stored audit event ev
// reports (events.FromAudit); nothing when it reports none.
func (s *Store) enqueueNotification(ctx context.Context, tx *sql.Tx, op string, ev audit.Event) error {
	n, ok := events.FromAudit(ev)
	if !ok {
		return nil
	}
	at := timeArg(ev.Time)
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (org_id, webhook_id, event_id, event_type, body, created_at, state, next_attempt_at, updated_at)
		SELECT org_id, id, ?, ?, ?, ?, 'pending', ?, ? FROM webhooks
		WHERE org_id = ? AND (events = '' OR instr(',' || events || ',', ?) > 0)`,
		n.ID, string(n.Type), n.Body(), at, at, at, ev.OrgID, ","+string(n.Type)+",")
	return classify(ctx, op, "webhook outbox of org "+ev.OrgID, err)
}

func eventsArg(ts []events.Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

func parseEvents(s string) []events.Type {
	if s == "" {
		return nil
	}
	var ts []events.Type
	for _, p := range strings.Split(s, ",") {
		ts = append(ts, events.Type(p))
	}
	return ts
}

func checkWebhookEvent(op, orgID string, ev audit.Event) (audit.Event, error) {
	return eventFor(op, orgID, ev)
}

// CreateWebhook stores w and appends ev in one transaction; Conflict if
// the org has a webhook with w.ID, Invalid if w has no org, ID or URL.
func (s *Store) CreateWebhook(ctx context.Context, w notify.Webhook, ev audit.Event) error {
	const op = "create webhook"
	if w.OrgID == "" || w.ID == "" || w.URL == "" {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "webhook", Reason: "webhook needs an org, an ID and a URL"}
	}
	ev, err := checkWebhookEvent(op, w.OrgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		k := w.Secret.Key
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (org_id, id, url, description, events, secret_provider, secret_key_id, secret_key_version, secret_ciphertext, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.OrgID, w.ID, w.URL, w.Description, eventsArg(w.Events), k.Provider, k.ID, k.Version, nonNil(w.Secret.Ciphertext), timeArg(w.CreatedAt), w.CreatedBy)
		if err != nil {
			return classify(ctx, op, webhookRes(w.OrgID, w.ID), err)
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

const webhookCols = `org_id, id, url, description, events, secret_provider, secret_key_id, secret_key_version, secret_ciphertext,
	previous_provider, previous_key_id, previous_key_version, previous_ciphertext, previous_until, created_at, created_by`

func scanWebhook(rows interface{ Scan(...any) error }) (notify.Webhook, error) {
	var w notify.Webhook
	var evs string
	var prev []byte
	err := rows.Scan(&w.OrgID, &w.ID, &w.URL, &w.Description, &evs, &w.Secret.Key.Provider, &w.Secret.Key.ID, &w.Secret.Key.Version, &w.Secret.Ciphertext,
		&w.Previous.Key.Provider, &w.Previous.Key.ID, &w.Previous.Key.Version, &prev, scanTime(&w.PreviousUntil), scanTime(&w.CreatedAt), &w.CreatedBy)
	w.Events = parseEvents(evs)
	if len(prev) > 0 {
		w.Previous.Ciphertext = prev
	}
	return w, err
}

// GetWebhook returns the org's webhook id; NotFound otherwise.
func (s *Store) GetWebhook(ctx context.Context, orgID, id string) (notify.Webhook, error) {
	const op = "read webhook"
	w, err := scanWebhook(s.r.QueryRowContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE org_id = ? AND id = ?`, orgID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return notify.Webhook{}, &fault.Error{Kind: fault.NotFound, Op: op, Resource: webhookRes(orgID, id)}
	}
	return w, classify(ctx, op, webhookRes(orgID, id), err)
}

// ListWebhooks returns the org's webhooks ordered by creation, then ID.
func (s *Store) ListWebhooks(ctx context.Context, orgID string) ([]notify.Webhook, error) {
	const op = "list webhooks"
	rows, err := s.r.QueryContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE org_id = ? ORDER BY created_at, id`, orgID)
	if err != nil {
		return nil, classify(ctx, op, "webhooks of org "+orgID, err)
	}
	ws, err := collect(rows, func(rows *sql.Rows) (notify.Webhook, error) { return scanWebhook(rows) })
	return ws, classify(ctx, op, "webhooks of org "+orgID, err)
}

// DeleteWebhook deletes the webhook, its deliveries and their attempts,
// and appends ev, in one transaction; NotFound if it does not exist.
func (s *Store) DeleteWebhook(ctx context.Context, orgID, id string, ev audit.Event) error {
	const op = "delete webhook"
	ev, err := checkWebhookEvent(op, orgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE org_id = ? AND id = ?`, orgID, id)
		if err != nil {
			return classify(ctx, op, webhookRes(orgID, id), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return classify(ctx, op, webhookRes(orgID, id), err)
		} else if n == 0 {
			return &fault.Error{Kind: fault.NotFound, Op: op, Resource: webhookRes(orgID, id)}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_attempts WHERE delivery_id IN
			(SELECT id FROM webhook_deliveries WHERE org_id = ? AND webhook_id = ?)`, orgID, id); err != nil {
			return classify(ctx, op, webhookRes(orgID, id), err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE org_id = ? AND webhook_id = ?`, orgID, id); err != nil {
			return classify(ctx, op, webhookRes(orgID, id), err)
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// RotateWebhookSecret makes secret the webhook's secret and the current
// one its previous secret until previousUntil, and appends ev, in one
// transaction; NotFound if the webhook does not exist.
func (s *Store) RotateWebhookSecret(ctx context.Context, orgID, id string, secret masterkey.Wrapped, previousUntil time.Time, ev audit.Event) error {
	const op = "rotate webhook secret"
	ev, err := checkWebhookEvent(op, orgID, ev)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		k := secret.Key
		res, err := tx.ExecContext(ctx, `UPDATE webhooks SET previous_provider = secret_provider, previous_key_id = secret_key_id,
			previous_key_version = secret_key_version, previous_ciphertext = secret_ciphertext, previous_until = ?,
			secret_provider = ?, secret_key_id = ?, secret_key_version = ?, secret_ciphertext = ?
			WHERE org_id = ? AND id = ?`, timeArg(previousUntil), k.Provider, k.ID, k.Version, nonNil(secret.Ciphertext), orgID, id)
		if err != nil {
			return classify(ctx, op, webhookRes(orgID, id), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return classify(ctx, op, webhookRes(orgID, id), err)
		} else if n == 0 {
			return &fault.Error{Kind: fault.NotFound, Op: op, Resource: webhookRes(orgID, id)}
		}
		_, err = s.appendAudit(ctx, tx, op, ev)
		return err
	})
}

// AddDelivery stores a finished delivery with its attempts and returns
// its ID; Invalid if d is pending.
func (s *Store) AddDelivery(ctx context.Context, d notify.Delivery, attempts []notify.Attempt) (int64, error) {
	const op = "add webhook delivery"
	if d.State == notify.Pending {
		return 0, &fault.Error{Kind: fault.Invalid, Op: op, Field: "state", Reason: "only a finished delivery is added"}
	}
	var id int64
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO webhook_deliveries (org_id, webhook_id, event_id, event_type, body, created_at, state, attempts, next_attempt_at, last_status, last_error, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			d.OrgID, d.WebhookID, d.EventID, string(d.EventType), nonNil(d.Body), timeArg(d.CreatedAt), string(d.State), len(attempts),
			timeArg(d.NextAttemptAt), d.LastStatus, d.LastError, timeArg(d.UpdatedAt)).Scan(&id)
		if err != nil {
			return classify(ctx, op, webhookRes(d.OrgID, d.WebhookID), err)
		}
		for _, a := range attempts {
			a.DeliveryID = id
			if err := insertAttempt(ctx, tx, op, a); err != nil {
				return err
			}
		}
		return nil
	})
	return id, err
}

func insertAttempt(ctx context.Context, tx *sql.Tx, op string, a notify.Attempt) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_attempts (delivery_id, attempt, time, status_code, latency_us, error, excerpt, next_retry_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.DeliveryID, a.N, timeArg(a.Time), a.StatusCode, a.Latency.Microseconds(), a.Error, a.Excerpt, nullTimeArg(a.NextRetryAt))
	return classify(ctx, op, fmt.Sprintf("attempt %d of webhook delivery %d", a.N, a.DeliveryID), err)
}

const deliveryCols = `id, org_id, webhook_id, event_id, event_type, body, created_at, state, attempts, next_attempt_at, owner, fence, lease_until, last_status, last_error, updated_at`

func scanDelivery(rows interface{ Scan(...any) error }) (notify.Delivery, error) {
	var d notify.Delivery
	var typ, state string
	err := rows.Scan(&d.ID, &d.OrgID, &d.WebhookID, &d.EventID, &typ, &d.Body, scanTime(&d.CreatedAt), &state, &d.Attempts, scanTime(&d.NextAttemptAt),
		&d.Owner, &d.Fence, scanTime(&d.LeaseUntil), &d.LastStatus, &d.LastError, scanTime(&d.UpdatedAt))
	d.EventType, d.State = events.Type(typ), notify.DeliveryState(state)
	return d, err
}

// ClaimDeliveries leases up to limit due pending deliveries to owner until
// now+lease, raising their fences, in one write.
func (s *Store) ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]notify.Delivery, error) {
	const op = "claim webhook deliveries"
	if owner == "" || limit <= 0 || lease <= 0 {
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "claim", Reason: "a claim needs an owner, a positive lease and a positive limit"}
	}
	var out []notify.Delivery
	err := s.inTx(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE webhook_deliveries SET owner = ?, fence = fence + 1, lease_until = ?
			WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ?
				AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, id LIMIT ?)
			RETURNING `+deliveryCols, owner, timeArg(now.Add(lease)), timeArg(now), timeArg(now), limit)
		if err != nil {
			return classify(ctx, op, "webhook outbox", err)
		}
		out, err = collect(rows, func(rows *sql.Rows) (notify.Delivery, error) { return scanDelivery(rows) })
		return classify(ctx, op, "webhook outbox", err)
	})
	if err != nil {
		return nil, err
	}
	sortDeliveries(out)
	return out, nil
}

// RecordAttempt stores a and moves d to state, releasing its lease, only
// while d.Owner holds d under d.Fence (Conflict otherwise).
func (s *Store) RecordAttempt(ctx context.Context, d notify.Delivery, a notify.Attempt, state notify.DeliveryState) error {
	const op = "record webhook attempt"
	a.DeliveryID = d.ID
	next := d.NextAttemptAt
	if state == notify.Pending {
		next = a.NextRetryAt
	}
	return s.inTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, lease_until = NULL,
			last_status = ?, last_error = ?, updated_at = ?
			WHERE id = ? AND owner = ? AND fence = ? AND state = 'pending'`,
			string(state), a.N, timeArg(next), a.StatusCode, a.Error, timeArg(a.Time), d.ID, d.Owner, d.Fence)
		if err != nil {
			return classify(ctx, op, fmt.Sprintf("webhook delivery %d", d.ID), err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return classify(ctx, op, fmt.Sprintf("webhook delivery %d", d.ID), err)
		} else if n == 0 {
			return &fault.Error{Kind: fault.Conflict, Op: op, Resource: fmt.Sprintf("webhook delivery %d", d.ID), Reason: "the delivery's lease was lost: another node holds it, or it was deleted"}
		}
		return insertAttempt(ctx, tx, op, a)
	})
}

// Deliveries returns the webhook's deliveries, newest first, at most
// limit (0 = 50), each with its attempts.
func (s *Store) Deliveries(ctx context.Context, orgID, webhookID string, limit int) ([]notify.Delivery, error) {
	const op = "list webhook deliveries"
	if limit < 0 {
		return nil, &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: "limit must not be negative"}
	}
	if limit == 0 {
		limit = 50
	}
	res := "deliveries of " + webhookRes(orgID, webhookID)
	rows, err := s.r.QueryContext(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE org_id = ? AND webhook_id = ? ORDER BY id DESC LIMIT ?`, orgID, webhookID, limit)
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	ds, err := collect(rows, func(rows *sql.Rows) (notify.Delivery, error) { return scanDelivery(rows) })
	if err != nil || len(ds) == 0 {
		return ds, classify(ctx, op, res, err)
	}
	idx := make(map[int64]int, len(ds))
	for i, d := range ds {
		idx[d.ID] = i
	}
	rows, err = s.r.QueryContext(ctx, `SELECT a.delivery_id, a.attempt, a.time, a.status_code, a.latency_us, a.error, a.excerpt, a.next_retry_at
		FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
		WHERE d.org_id = ? AND d.webhook_id = ? AND d.id >= ? ORDER BY a.delivery_id, a.attempt`, orgID, webhookID, ds[len(ds)-1].ID)
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	as, err := collect(rows, func(rows *sql.Rows) (notify.Attempt, error) {
		var a notify.Attempt
		var us int64
		err := rows.Scan(&a.DeliveryID, &a.N, scanTime(&a.Time), &a.StatusCode, &us, &a.Error, &a.Excerpt, scanTime(&a.NextRetryAt))
		a.Latency = time.Duration(us) * time.Microsecond
		return a, err
	})
	if err != nil {
		return nil, classify(ctx, op, res, err)
	}
	for _, a := range as {
		if i, ok := idx[a.DeliveryID]; ok {
			ds[i].History = append(ds[i].History, a)
		}
	}
	return ds, nil
}

// PendingDeliveries counts the pending deliveries of every org.
func (s *Store) PendingDeliveries(ctx context.Context) (int64, error) {
	const op = "count pending webhook deliveries"
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'`).Scan(&n)
	return n, classify(ctx, op, "webhook outbox", err)
}

func sortDeliveries(ds []notify.Delivery) {
	// RETURNING gives no order guarantee: the claim order is due time, ID.
	slices.SortFunc(ds, func(a, b notify.Delivery) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
