package notify

import (
	"context"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/events"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Webhook is an org's registered receiver of notifications.
type Webhook struct {
	OrgID       string
	ID          string // "wh_" + 16 hex digits
	URL         string
	Description string
	Events      []events.Type // subscribed types; empty = every type
	// Secret is the signing secret wrapped by the platform master key. It
	// is never returned to a caller after creation.
	Secret masterkey.Wrapped
	// Previous is the secret a rotation replaced (zero when none): it
	// signs beside Secret until PreviousUntil.
	Previous      masterkey.Wrapped
	PreviousUntil time.Time
	CreatedAt     time.Time
	CreatedBy     string
}

// DeliveryState is the state of a [Delivery].
type DeliveryState string

const (
	Pending   DeliveryState = "pending"   // due at NextAttemptAt
	Delivered DeliveryState = "delivered" // a 2xx answered an attempt
	Failed    DeliveryState = "failed"    // attempts exhausted (max attempts or max age)
)

// Delivery is one event for one webhook: a row of the outbox.
type Delivery struct {
	ID            int64
	OrgID         string
	WebhookID     string
	EventID       string
	EventType     events.Type
	Body          []byte // the exact body every attempt sends
	CreatedAt     time.Time
	State         DeliveryState
	Attempts      int
	NextAttemptAt time.Time
	LastStatus    int
	LastError     string
	UpdatedAt     time.Time
	// Owner and Fence are the lease of the claim that returned this
	// delivery; every write of the holder carries them.
	Owner      string
	Fence      int64
	LeaseUntil time.Time
	// History is the delivery's attempts, oldest first (filled by
	// Store.Deliveries only).
	History []Attempt
}

// Attempt is one try of a delivery.
type Attempt struct {
	DeliveryID int64
	N          int // 1-based
	Time       time.Time
	StatusCode int // 0 when no response arrived
	Latency    time.Duration
	Error      string // "" on success; never a secret
	Excerpt    string // the response body's first bytes (at most MaxExcerpt)
	// NextRetryAt is when the next attempt is due; zero when this attempt
	// was the last (delivered, or given up).
	NextRetryAt time.Time
}

// MaxExcerpt bounds the response body excerpt kept per attempt.
const MaxExcerpt = 256

// Store is what package notify needs from storage. The outbox rows are
// written by the stores themselves, in the transaction of the audit event
// they report (see package events). Errors are *fault.Error: NotFound,
// Conflict (duplicates, a lost lease), Unavailable.
type Store interface {
	// GetOrg tells whether the org exists (keys.Store).
	GetOrg(ctx context.Context, id string) (keys.Org, error)
	AppendAudit(ctx context.Context, ev audit.Event) (audit.Event, error)

	// CreateWebhook stores w and appends ev in one transaction. Conflict
	// if the org has a webhook with w.ID.
	CreateWebhook(ctx context.Context, w Webhook, ev audit.Event) error
	// GetWebhook returns the org's webhook id; NotFound otherwise.
	GetWebhook(ctx context.Context, orgID, id string) (Webhook, error)
	// ListWebhooks returns the org's webhooks ordered by creation.
	ListWebhooks(ctx context.Context, orgID string) ([]Webhook, error)
	// DeleteWebhook deletes the org's webhook id with its deliveries and
	// their attempts, and appends ev, in one transaction; NotFound if it
	// does not exist.
	DeleteWebhook(ctx context.Context, orgID, id string, ev audit.Event) error
	// RotateWebhookSecret makes secret the webhook's secret and its
	// current one the previous secret until previousUntil, and appends
	// ev, in one transaction; NotFound if it does not exist.
	RotateWebhookSecret(ctx context.Context, orgID, id string, secret masterkey.Wrapped, previousUntil time.Time, ev audit.Event) error

	// AddDelivery stores a delivery that is already finished (d.State
	// delivered or failed) with its attempts, for the history: the test
	// ping. It returns the delivery's ID.
	AddDelivery(ctx context.Context, d Delivery, attempts []Attempt) (int64, error)
	// ClaimDeliveries leases up to limit pending deliveries due at now
	// (NextAttemptAt not after now, lease unset or expired) to owner until
	// now+lease, raising each one's Fence, and returns them: of concurrent
	// claims on any number of nodes, one gets each delivery per lease.
	ClaimDeliveries(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// RecordAttempt stores attempt a of delivery d and moves d to state
	// (pending: due again at a.NextRetryAt), releasing the lease, in one
	// transaction, only while d.Owner holds d under d.Fence: Conflict
	// otherwise (the lease was lost; nothing is stored).
	RecordAttempt(ctx context.Context, d Delivery, a Attempt, state DeliveryState) error
	// Deliveries returns the webhook's deliveries, newest first, at most
	// limit (0 = 50), each with its History.
	Deliveries(ctx context.Context, orgID, webhookID string, limit int) ([]Delivery, error)
	// PendingDeliveries counts the pending deliveries of every org: the
	// outbox backlog.
	PendingDeliveries(ctx context.Context) (int64, error)
}
