package client

import (
	"context"
	"time"
)

// CMKStaged is an org's staged revocation state (GET /v1/orgs/{org}/cmk,
// field staged): decrypt-only mode, a revocation in effect by the org's own
// decision, and a scheduled revocation.
type CMKStaged struct {
	// DecryptOnly: existing data is readable; encrypt, rewrap and datakey
	// are refused with org_decrypt_only.
	DecryptOnly       bool       `json:"decrypt_only"`
	DecryptOnlyReason string     `json:"decrypt_only_reason,omitempty"`
	DecryptOnlyBy     string     `json:"decrypt_only_by,omitempty"`
	DecryptOnlySince  *time.Time `json:"decrypt_only_since,omitempty"`
	// Revoked: a scheduled revocation (mode revoke) took effect; every
	// data-plane call is refused with org_revoked until it is lifted
	// (DELETE /v1/orgs/{org}/cmk/revocation).
	Revoked       bool       `json:"revoked"`
	RevokedReason string     `json:"revoked_reason,omitempty"`
	RevokedBy     string     `json:"revoked_by,omitempty"` // who scheduled it
	RevokedSince  *time.Time `json:"revoked_since,omitempty"`
	// Scheduled: the revocation scheduled for later; absent when none.
	Scheduled *CMKScheduledRevocation `json:"scheduled,omitempty"`
}

// CMKScheduledRevocation is a revocation scheduled for At.
type CMKScheduledRevocation struct {
	Mode        string    `json:"mode"` // revoke or decrypt_only
	At          time.Time `json:"at"`
	Reason      string    `json:"reason,omitempty"`
	ScheduledBy string    `json:"scheduled_by"`
	ScheduledAt time.Time `json:"scheduled_at"`
	// SecondsLeft is the countdown at the server's clock when the status
	// was read: seconds until At, 0 once it is due.
	SecondsLeft int64 `json:"seconds_left"`
	// JobState is the state of the durable job that applies it: pending
	// until At, running while it is applied, failed (JobError says why).
	JobState string `json:"job_state,omitempty"`
	JobError string `json:"job_error,omitempty"`
}

// CMKDecryptOnlyRequest is the body of POST /v1/orgs/{org}/cmk/decrypt-only.
type CMKDecryptOnlyRequest struct {
	Enabled *bool  `json:"enabled"`          // required: true turns the mode on, false off
	Reason  string `json:"reason,omitempty"` // shown in the status and the audit log; at most 200 characters
}

// CMKRevocationRequest is the body of POST /v1/orgs/{org}/cmk/revocation.
type CMKRevocationRequest struct {
	At     string `json:"at"`               // RFC 3339, at least cmk.revocation_min_lead (default 5m) and at most 90 days ahead
	Mode   string `json:"mode,omitempty"`   // revoke (default) or decrypt_only
	Reason string `json:"reason,omitempty"` // at most 200 characters
}

// CMKDecryptOnly turns the org's decrypt-only mode on or off.
func (c *Client) CMKDecryptOnly(ctx context.Context, org string, on bool, reason string) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/decrypt-only", CMKDecryptOnlyRequest{Enabled: &on, Reason: reason}, &s)
	return s, err
}

// CMKScheduleRevocation schedules the org's revocation.
func (c *Client) CMKScheduleRevocation(ctx context.Context, org string, req CMKRevocationRequest) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cmk/revocation", req, &s)
	return s, err
}

// CMKCancelRevocation cancels the org's scheduled revocation, or, with
// none scheduled, lifts a revocation in effect.
func (c *Client) CMKCancelRevocation(ctx context.Context, org string) (CMKStatus, error) {
	var s CMKStatus
	err := c.do(ctx, "DELETE", "/v1/orgs/"+esc(org)+"/cmk/revocation", nil, &s)
	return s, err
}
