package client

import (
	"context"
)

// DeleteRequest is the optional body of DELETE /v1/orgs/{org} and DELETE
// /v1/orgs/{org}/keys/{key}: the waiting period before the crypto-shred.
type DeleteRequest struct {
	WaitingDays int `json:"waiting_days,omitempty"` // default 7; between 7 and 30
}

// DeleteOrg schedules the org's deletion in waitingDays days (0 = the
// default, 7): from now on its data plane is refused with
// org_pending_deletion; at the date its keys are crypto-shredded.
func (c *Client) DeleteOrg(ctx context.Context, org string, waitingDays int) (Org, error) {
	var o Org
	err := c.do(ctx, "DELETE", "/v1/orgs/"+esc(org), DeleteRequest{WaitingDays: waitingDays}, &o)
	return o, err
}

// CancelOrgDeletion cancels the org's scheduled deletion.
func (c *Client) CancelOrgDeletion(ctx context.Context, org string) (Org, error) {
	var o Org
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/cancel-deletion", struct{}{}, &o)
	return o, err
}

// DisableKey disables a data key: encrypt and decrypt are refused with
// key_disabled until EnableKey.
func (c *Client) DisableKey(ctx context.Context, org, name string) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/keys/"+esc(name)+"/disable", struct{}{}, &k)
	return k, err
}

// EnableKey enables a disabled data key.
func (c *Client) EnableKey(ctx context.Context, org, name string) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/keys/"+esc(name)+"/enable", struct{}{}, &k)
	return k, err
}

// DeleteKey schedules a data key's deletion in waitingDays days (0 = 7).
func (c *Client) DeleteKey(ctx context.Context, org, name string, waitingDays int) (Key, error) {
	var k Key
	err := c.do(ctx, "DELETE", "/v1/orgs/"+esc(org)+"/keys/"+esc(name), DeleteRequest{WaitingDays: waitingDays}, &k)
	return k, err
}

// CancelKeyDeletion cancels a data key's scheduled deletion; the key is
// enabled again.
func (c *Client) CancelKeyDeletion(ctx context.Context, org, name string) (Key, error) {
	var k Key
	err := c.do(ctx, "POST", "/v1/orgs/"+esc(org)+"/keys/"+esc(name)+"/cancel-deletion", struct{}{}, &k)
	return k, err
}
