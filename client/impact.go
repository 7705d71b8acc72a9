package client

import (
	"context"
	"net/url"
	"time"
)

// ImpactActions are the actions GET /v1/orgs/{org}/cmk/impact previews;
// disable-key and delete-key need a key.
var ImpactActions = []string{"disable", "replace", "fallback", "decrypt-only", "revoke", "delete-org", "disable-key", "delete-key"}

// Impact is the preview of a destructive step (GET
// /v1/orgs/{org}/cmk/impact?action=…): what it would break if taken now.
// It holds no key material, and only the org's own usage.
type Impact struct {
	Action string `json:"action"`
	Org    string `json:"org"`
	Key    string `json:"key,omitempty"` // the data key of disable-key and delete-key
	// State is the org's CMK state now (platform, active, revoked, …).
	State string `json:"state"`
	// Possible: the step can be taken in the current state; Blocked says
	// why not and what to do.
	Possible bool   `json:"possible"`
	Blocked  string `json:"blocked,omitempty"`
	// WhatBreaks is one sentence for a person.
	WhatBreaks string `json:"what_breaks"`
	// Since and Until are the window of the counts: the last 24 hours.
	Since    time.Time      `json:"since"`
	Until    time.Time      `json:"until"`
	DataKeys []ImpactKey    `json:"data_keys"`
	Calls24h int64          `json:"calls_24h"`
	Callers  []ImpactCaller `json:"callers"`
	// Refused24h is how many of the window's calls the step would have
	// refused, RefusedCallers from how many callers.
	Refused24h     int64        `json:"refused_24h"`
	RefusedCallers int          `json:"refused_callers"`
	Rewrap         ImpactRewrap `json:"rewrap"`
	// FallbackPossible: in the key's current state the org can still go
	// back to the platform key without data loss; FallbackReason says why
	// (not).
	FallbackPossible bool   `json:"fallback_possible"`
	FallbackReason   string `json:"fallback_reason"`
	// RefusedFrom is "now", or the RFC 3339 time of a scheduled revocation.
	RefusedFrom string `json:"refused_from"`
}

// ImpactKey is one data key's use over the window of an [Impact].
type ImpactKey struct {
	Name       string         `json:"name"`
	Versions   int            `json:"versions"`
	Calls24h   int64          `json:"calls_24h"`   // encrypt, decrypt, rewrap and datakey, any outcome
	Encrypt24h int64          `json:"encrypt_24h"` // encrypt calls
	Decrypt24h int64          `json:"decrypt_24h"` // decrypt calls
	Refused24h int64          `json:"refused_24h"` // the calls the step would refuse
	Callers    []ImpactCaller `json:"callers"`
	LastUse    *time.Time     `json:"last_use,omitempty"` // absent when no call in the window
}

// ImpactCaller is a caller's count of calls, named as usage records name
// it; another org's token is "(token of another org)".
type ImpactCaller struct {
	Principal string `json:"principal"`
	Calls     int64  `json:"calls"`
}

// ImpactRewrap is the re-wrap a step needs and an estimate of its
// duration: (calls waiting in the vault's budget + VaultCalls) / Rate.
type ImpactRewrap struct {
	Required         bool    `json:"required"`
	Wraps            int     `json:"wraps"`
	VaultCalls       int     `json:"vault_calls"`
	Rate             float64 `json:"rate,omitempty"`        // calls per second the estimate used
	RateSource       string  `json:"rate_source,omitempty"` // "vault budget" or "platform key"
	Waiting          int     `json:"waiting"`
	EstimatedSeconds float64 `json:"estimated_seconds"`
}

// CMKImpact previews action on org (key: the data key of disable-key and
// delete-key, else ""). It changes nothing.
func (c *Client) CMKImpact(ctx context.Context, org, action, key string) (Impact, error) {
	q := url.Values{"action": {action}}
	if key != "" {
		q.Set("key", key)
	}
	var out Impact
	err := c.do(ctx, "GET", "/v1/orgs/"+esc(org)+"/cmk/impact?"+q.Encode(), nil, &out)
	return out, err
}
