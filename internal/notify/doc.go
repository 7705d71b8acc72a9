// Package notify delivers an org's lifecycle events to the webhooks its
// administrators register: signed HTTP POSTs from a durable outbox, with
// retries and a visible delivery history.
//
// # Outbox
//
// The stores write the outbox rows themselves, in the transaction of the
// audit event a notification reports (package events): an event is queued
// exactly when its state change commits. [Service.Run] claims due
// deliveries under a lease (Store.ClaimDeliveries: owner, fence, expiry),
// sends them, and records each attempt fenced (Store.RecordAttempt): of
// any number of nodes one sends each attempt; a node that dies mid-send
// leaves its lease to expire and another node sends again (at least once:
// receivers drop duplicates by the event ID).
//
// # Signing
//
// Each webhook has a secret ("whsec_" + 43 base64url characters), shown
// once when it is created (or rotated) and stored wrapped by the platform
// master key, bound to the org and the webhook. Every request carries
//
//	X-Orgkms-Timestamp: <unix seconds>
//	X-Orgkms-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// and, for [ReplayWindow] after a rotation, a second v1= signature by the
// previous secret (comma-separated). A receiver recomputes the HMAC over
// the raw body, compares in constant time with any v1= value, and refuses a
// timestamp more than ReplayWindow from its clock.
//
// # Delivery rules
//
//   - HTTPS only, unless Config.AllowHTTP (development); redirects are not
//     followed (a 3xx is a failed attempt); a timeout bounds every attempt.
//   - SSRF guard: an address that is loopback, private, link-local,
//     unspecified, multicast or otherwise not public is refused when the
//     webhook is created and again at every connection (DNS rebinding),
//     unless Config.AllowPrivate.
//   - A 2xx delivers; anything else is retried with exponential back-off
//     and jitter until Config.MaxAttempts or Config.MaxAge, then the
//     delivery fails. Only the first [MaxExcerpt] bytes of a response are
//     kept.
//
// # Invariants
//
//   - A secret is never logged, stored unwrapped, returned after creation,
//     put in an error or in a metric label; attempt errors never include
//     the request URL.
//   - Every route and store query is scoped to one org: a webhook of one
//     org is never listed, tested, delivered for or deleted by another.
//   - Metrics carry outcomes only, never org or webhook IDs.
package notify
