// Package events names the lifecycle events an org's webhooks receive and
// maps the audit events that record them to notifications. It is a leaf
// package: it imports only package audit and the standard library, so the
// stores can call it inside their transactions.
//
// # Publishing an event
//
// Every state change of orgkms is stored by one store method that also
// appends the change's audit event, in the same transaction. The stores
// call [FromAudit] on every audit event they append and, when it names a
// notification, write one outbox row per subscribed webhook of the org in
// that same transaction (package notify delivers them). So an event is
// published exactly when its state change commits, never without it and
// never twice.
//
// A feature that changes state publishes an event by giving its audit
// event an action listed in the rules table of this package (rules.go):
// add one line there mapping the new audit action to a [Type] (one of the
// constants below, or a new one added beside them) and to the audit details
// the notification's data carries. Nothing else is needed: no call, no
// extra write. The actions org.deletion.schedule and key.deletion.schedule
// are mapped to [DeletionScheduled] already, for the deletion features.
//
// # Invariants
//
//   - A notification's data is a copy of audit details, which are
//     customer-visible already: never key material, secrets or tokens.
//   - An event's ID is derived from its audit event's hash: it is stable,
//     unique per event, and the same for every webhook and every retry,
//     so a receiver can drop duplicates by ID.
//   - Only org chains notify: events of the platform chain
//     ([audit.Platform]) map to nothing.
package events
