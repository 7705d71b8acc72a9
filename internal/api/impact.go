package api

import (
	"net/http"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
)

// impactParams are the query parameters of GET /v1/orgs/{org}/cmk/impact.
var impactParams = map[string]bool{"action": true, "key": true}

// impactAllowed checks that the caller may take the step it previews: the
// route needs audit.read (the preview is made of the org's usage records),
// the step its own action on top.
func (h *Handler) impactAllowed(c *call, a cmk.ImpactAction) error {
	switch {
	case a.CMKAction():
		if !auth.Allowed(c.p, auth.ActCMKManage, c.org) {
			return &fault.Error{Kind: fault.Forbidden, Reason: "previewing a customer managed key change (" + string(a) + ") needs both the admin and key_admin roles on the org, as the change itself does"}
		}
	case a == cmk.ImpactDeleteOrg:
		if !auth.Allowed(c.p, auth.ActOrgDelete, c.org) && !(h.selfDel && auth.Allowed(c.p, auth.ActCMKManage, c.org)) {
			return &fault.Error{Kind: fault.Forbidden, Reason: "previewing an org deletion needs what the deletion needs: the platform operator, or both the admin and key_admin roles on the org where the operator allows it (orgs.self_delete)"}
		}
	case a.KeyAction():
		if !auth.Allowed(c.p, auth.ActKeyManage, c.org) {
			return &fault.Error{Kind: fault.Forbidden, Reason: "previewing " + string(a) + " needs what the step needs: the key_admin role on the org (or the platform operator)"}
		}
	}
	return nil
}

// cmkImpact previews a destructive step: what it would break if taken now.
// A read: it writes no audit event.
func (h *Handler) cmkImpact(c *call) error {
	q := c.r.URL.Query()
	for k := range q {
		if !impactParams[k] {
			return &fault.Error{Kind: fault.Invalid, Field: k, Reason: "is not a parameter of this route: use action=ACTION, and key=NAME for disable-key and delete-key"}
		}
	}
	for k, v := range q {
		if len(v) > 1 {
			return &fault.Error{Kind: fault.Invalid, Field: k, Reason: "is given more than once"}
		}
	}
	if q.Has("key") && q.Get("key") == "" {
		return &fault.Error{Kind: fault.Invalid, Field: "key", Reason: "is empty: give the data key's name (disable-key, delete-key), or leave key out"}
	}
	a, err := cmk.ParseImpactAction(q.Get("action"), q.Get("key"))
	if err != nil {
		return err
	}
	if err := h.impactAllowed(c, a); err != nil {
		return err
	}
	im, err := h.cmk.Impact(c.r.Context(), c.org, a, q.Get("key"))
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, impactJSON(im))
}

// impactJSON is im's JSON form.
func impactJSON(im cmk.Impact) client.Impact {
	out := client.Impact{Action: string(im.Action), Org: im.OrgID, Key: im.Key, State: string(im.State), Possible: im.Possible, Blocked: im.Blocked,
		WhatBreaks: im.WhatBreaks, Since: im.Since, Until: im.Until, DataKeys: []client.ImpactKey{}, Calls24h: im.Calls, Callers: impactCallers(im.Callers),
		Refused24h: im.Refused, RefusedCallers: im.RefusedCallers, FallbackPossible: im.FallbackPossible, FallbackReason: im.FallbackReason, RefusedFrom: "now",
		Rewrap: client.ImpactRewrap{Required: im.Rewrap.Required, Wraps: im.Rewrap.Wraps, VaultCalls: im.Rewrap.VaultCalls, Rate: im.Rewrap.Rate,
			RateSource: im.Rewrap.RateSource, Waiting: im.Rewrap.Waiting, EstimatedSeconds: im.Rewrap.EstimatedSeconds}}
	if !im.RefusedFrom.IsZero() {
		out.RefusedFrom = im.RefusedFrom.UTC().Format(time.RFC3339)
	}
	for _, k := range im.Keys {
		out.DataKeys = append(out.DataKeys, client.ImpactKey{Name: k.Name, Versions: k.Versions, Calls24h: k.Calls, Encrypt24h: k.Encrypt, Decrypt24h: k.Decrypt,
			Refused24h: k.Refused, Callers: impactCallers(k.Callers), LastUse: optTime(k.LastUse)})
	}
	return out
}

func impactCallers(cs []cmk.ImpactCaller) []client.ImpactCaller {
	out := make([]client.ImpactCaller, len(cs))
	for i, c := range cs {
		out[i] = client.ImpactCaller{Principal: c.Principal, Calls: c.Calls}
	}
	return out
}
