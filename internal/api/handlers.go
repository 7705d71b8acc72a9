package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

func orgJSON(o keys.Org, platform string) client.Org {
	prot := "cmk"
	if o.MasterKey.Provider == "local" || o.MasterKey.String() == platform {
		prot = "platform"
	}
	mk := o.MasterKey.String()
	if prot == "platform" {
		mk = "platform" // where the platform key lives is none of an org's business
	}
	return client.Org{ID: o.ID, Name: o.Name, CreatedAt: o.CreatedAt, Protection: prot, MasterKey: mk}
}

func (h *Handler) createOrg(c *call) error {
	var req client.CreateOrgRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	o, err := h.keys.CreateOrg(c.r.Context(), c.actor(), req.ID, req.Name)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/orgs/"+o.ID)
	return c.reply(http.StatusCreated, orgJSON(o, h.keys.PlatformKey().String()))
}

func (h *Handler) listOrgs(c *call) error {
	q := c.r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return fault.Invalidf("limit", "limit must be a number between 1 and 1000")
		}
		limit = n
	}
	orgs, err := h.keys.ListOrgs(c.r.Context(), keys.ListOptions{After: q.Get("after"), Limit: limit})
	if err != nil {
		return err
	}
	out := client.OrgList{Orgs: []client.Org{}}
	if len(orgs) == limit {
		out.NextAfter = orgs[limit-1].ID // a full page: there may be more
	}
	for _, o := range orgs {
		l, err := h.keys.OrgLifecycle(c.r.Context(), o.ID)
		if err != nil {
			return err
		}
		out.Orgs = append(out.Orgs, withOrgLifecycle(orgJSON(o, h.keys.PlatformKey().String()), l))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) getOrg(c *call) error { return h.orgReply(c, http.StatusOK) }

func keyJSON(k keys.DataKey) client.Key {
	out := client.Key{Name: k.Name, CreatedAt: k.CreatedAt, LatestVersion: k.LatestVersion, MinDecryptionVersion: k.MinDecryptionVersion}
	for _, v := range k.Versions {
		out.Versions = append(out.Versions, client.KeyVersion{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	return out
}

func (h *Handler) listKeys(c *call) error {
	ks, err := h.keys.ListDataKeys(c.r.Context(), c.org)
	if err != nil {
		return err
	}
	ls, err := h.keyLifecycles(c)
	if err != nil {
		return err
	}
	out := client.KeyList{Keys: []client.Key{}}
	for _, k := range ks {
		k.Versions = nil
		out.Keys = append(out.Keys, withKeyLifecycle(keyJSON(k), ls(k.Name)))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) createKey(c *call) error {
	var req client.CreateKeyRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	k, err := h.keys.CreateDataKey(c.r.Context(), c.actor(), c.org, req.Name)
	if err != nil {
		return err
	}
	c.w.Header().Set("Location", "/v1/orgs/"+c.org+"/keys/"+k.Name)
	return c.reply(http.StatusCreated, keyJSON(k))
}

func (h *Handler) getKey(c *call) error { return h.keyReply(c, c.r.PathValue("key")) }

func (h *Handler) rotateKey(c *call) error {
	k, err := h.keys.RotateDataKey(c.r.Context(), c.actor(), c.org, c.r.PathValue("key"))
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, keyJSON(k))
}

func (h *Handler) configKey(c *call) error {
	var req client.KeyConfigRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if req.MinDecryptionVersion == nil {
		return fault.Invalidf("min_decryption_version", "nothing to change: set it to the oldest version allowed to decrypt")
	}
	k, err := h.keys.SetMinDecryptionVersion(c.r.Context(), c.actor(), c.org, c.r.PathValue("key"), *req.MinDecryptionVersion)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, keyJSON(k))
}

// batchResult is client.BatchResult, except that a decrypted plaintext is
// always present, even when empty.
type batchResult struct {
	Ciphertext []byte              `json:"ciphertext,omitempty"`
	Plaintext  *[]byte             `json:"plaintext,omitempty"`
	KeyVersion uint32              `json:"key_version,omitempty"`
	Error      *client.ErrorDetail `json:"error,omitempty"`
}

type batchResponse struct {
	Batch []batchResult `json:"batch"`
}

func (h *Handler) batchResults(res []keys.ItemResult, requestID string) batchResponse {
	out := make([]batchResult, len(res))
	for i, r := range res {
		if r.Err != nil {
			out[i].Error = h.errorDetail(r.Err, requestID)
			continue
		}
		out[i] = batchResult{Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion}
		if r.Ciphertext == nil {
			pt := r.Plaintext
			if pt == nil {
				pt = []byte{}
			}
			out[i].Plaintext = &pt
		}
	}
	return batchResponse{Batch: out}
}

func singleOrBatch(single bool, batch int) error {
	if single && batch > 0 {
		return &fault.Error{Kind: fault.Invalid, Field: "batch", Reason: "send either a single item or batch, not both"}
	}
	return nil
}

func items(batch []client.BatchItem) []keys.Item {
	out := make([]keys.Item, len(batch))
	for i, b := range batch {
		out[i] = keys.Item{Plaintext: b.Plaintext, Ciphertext: b.Ciphertext, Context: b.Context}
	}
	return out
}

// batchFunc is keys.Service.EncryptBatch, DecryptBatch or RewrapBatch.
type batchFunc func(ctx context.Context, actor, org, key string, items []keys.Item) ([]keys.ItemResult, error)

// serveCrypto answers encrypt, decrypt and rewrap: one item (its input in
// field) or a batch with per-item results.
func (h *Handler) serveCrypto(c *call, field string, input, context []byte, batch []client.BatchItem, run batchFunc, single func(keys.ItemResult) any) error {
	if err := singleOrBatch(input != nil, len(batch)); err != nil {
		return err
	}
	if len(batch) > 0 && context != nil {
		return &fault.Error{Kind: fault.Invalid, Field: "context", Reason: "in a batch, give each item its own context"}
	}
	name := c.r.PathValue("key")
	if len(batch) > 0 {
		res, err := run(c.r.Context(), c.actor(), c.org, name, items(batch))
		if err != nil {
			return err
		}
		return c.reply(http.StatusOK, h.batchResults(res, c.requestID))
	}
	if input == nil {
		if field == "plaintext" {
			return fault.Invalidf(field, "is required (base64); send \"\" for an empty message")
		}
		return fault.Invalidf(field, "is required (base64, as returned by encrypt)")
	}
	it := keys.Item{Context: context}
	if field == "plaintext" {
		it.Plaintext = input
	} else {
		it.Ciphertext = input
	}
	res, err := run(c.r.Context(), c.actor(), c.org, name, []keys.Item{it})
	if err != nil {
		return err
	}
	if res[0].Err != nil {
		return res[0].Err
	}
	return c.reply(http.StatusOK, single(res[0]))
}

func ciphertextResponse(r keys.ItemResult) any {
	return client.CryptoResponse{Ciphertext: r.Ciphertext, KeyVersion: r.KeyVersion}
}

func (h *Handler) encrypt(c *call) error {
	var req client.EncryptRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	return h.serveCrypto(c, "plaintext", req.Plaintext, req.Context, req.Batch, h.keys.EncryptBatch, ciphertextResponse)
}

func (h *Handler) decrypt(c *call) error {
	var req client.DecryptRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	return h.serveCrypto(c, "ciphertext", req.Ciphertext, req.Context, req.Batch, h.keys.DecryptBatch, func(r keys.ItemResult) any {
		pt := r.Plaintext
		if pt == nil {
			pt = []byte{}
		}
		return plaintextResponse{Plaintext: pt, KeyVersion: r.KeyVersion}
	})
}

// plaintextResponse always carries the plaintext field, even when empty.
type plaintextResponse struct {
	Plaintext  []byte `json:"plaintext"`
	KeyVersion uint32 `json:"key_version"`
}

func (h *Handler) rewrap(c *call) error {
	var req client.DecryptRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	return h.serveCrypto(c, "ciphertext", req.Ciphertext, req.Context, req.Batch, h.keys.RewrapBatch, ciphertextResponse)
}

func (h *Handler) datakey(c *call) error {
	var req client.DataKeyRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	var wrapped bool
	switch req.Type {
	case "", "plaintext":
	case "wrapped":
		wrapped = true
	default:
		return fault.Invalidf("type", "type must be \"plaintext\" (key and its ciphertext) or \"wrapped\" (ciphertext only)")
	}
	dk, err := h.keys.GenerateDataKey(c.r.Context(), c.actor(), c.org, c.r.PathValue("key"), req.Bits, wrapped, req.Context)
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, client.DataKeyResponse{Plaintext: dk.Plaintext, Ciphertext: dk.Ciphertext, KeyVersion: dk.KeyVersion})
}

// auditJSON renders an event. For an org-scoped caller the platform master
// key's location is redacted from the target and details (a platform
// operator sees the events as stored, which their hashes cover).
func (h *Handler) auditJSON(c *call, e audit.Event) client.AuditEvent {
	if c.p.OrgID != "" {
		e.Target = h.redact(e.Target)
		if len(e.Details) > 0 {
			d := make(map[string]string, len(e.Details))
			for k, v := range e.Details {
				d[k] = h.redact(v)
			}
			e.Details = d
		}
	}
	return client.AuditEvent{OrgID: e.OrgID, Seq: e.Seq, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target, Details: e.Details, PrevHash: e.PrevHash, Hash: e.Hash}
}

func (h *Handler) auditEvents(c *call) error {
	q := c.r.URL.Query()
	var after int64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fault.Invalidf("after", "after must be a sequence number")
		}
		after = n
	}
	limit := 1000
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 10000 {
			return fault.Invalidf("limit", "limit must be a number between 1 and 10000")
		}
		limit = n
	}
	evs, err := h.keys.AuditEvents(c.r.Context(), c.org, after, limit)
	if err != nil {
		return err
	}
	out := client.AuditList{Events: []client.AuditEvent{}}
	for _, e := range evs {
		out.Events = append(out.Events, h.auditJSON(c, e))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) auditVerify(c *call) error {
	if c.org != audit.Platform {
		if _, err := h.keys.GetOrg(c.r.Context(), c.org); err != nil {
			return err
		}
	}
	n, err := h.keys.VerifyAudit(c.r.Context(), c.org)
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return c.reply(http.StatusOK, client.AuditVerify{OK: false, Events: n, BrokenAt: ve.Seq, Reason: ve.Reason})
	}
	if err != nil {
		return err
	}
	return c.reply(http.StatusOK, client.AuditVerify{OK: true, Events: n})
}

func (h *Handler) purgeOrgCache(c *call) error {
	if err := h.cmk.Purge(c.r.Context(), c.org); err != nil {
		return err
	}
	if err := h.keys.Audit(c.r.Context(), audit.Event{OrgID: audit.Platform, Actor: c.actor(), Action: "cache.purge", Target: "org/" + c.org}); err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]string{"status": "purged"})
}

func (h *Handler) purgeAllCache(c *call) error {
	if err := h.cmk.PurgeAll(c.r.Context()); err != nil {
		return err
	}
	if err := h.keys.Audit(c.r.Context(), audit.Event{OrgID: audit.Platform, Actor: c.actor(), Action: "cache.purge", Target: "all"}); err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]string{"status": "purged"})
}

func tokenJSON(t auth.Token) client.Token {
	out := client.Token{ID: t.ID, Principal: t.Principal, Org: t.OrgID, Description: t.Description, CreatedAt: t.CreatedAt}
	for _, r := range t.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	if !t.ExpiresAt.IsZero() {
		e := t.ExpiresAt
		out.ExpiresAt = &e
	}
	if !t.RevokedAt.IsZero() {
		r := t.RevokedAt
		out.RevokedAt = &r
	}
	return out
}

func (h *Handler) createToken(c *call) error {
	var req client.CreateTokenRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	tr := auth.CreateTokenRequest{Principal: req.Principal, OrgID: req.Org, Description: req.Description}
	for _, r := range req.Roles {
		role, err := auth.ParseRole(r)
		if err != nil {
			return err
		}
		tr.Roles = append(tr.Roles, role)
	}
	if req.Org != "" {
		if _, err := h.keys.GetOrg(c.r.Context(), req.Org); err != nil {
			return err
		}
	}
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			return fault.Invalidf("ttl", "ttl must be a positive duration such as 720h")
		}
		tr.TTL = d
	}
	t, secret, err := h.tokens.Create(c.r.Context(), c.actor(), tr)
	if err != nil {
		return err
	}
	out := tokenJSON(t)
	out.Secret = secret
	return c.reply(http.StatusCreated, out)
}

func (h *Handler) listTokens(c *call) error {
	ts, err := h.tokens.List(c.r.Context())
	if err != nil {
		return err
	}
	out := client.TokenList{Tokens: []client.Token{}}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenJSON(t))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) revokeToken(c *call) error {
	if err := h.tokens.Revoke(c.r.Context(), c.actor(), c.r.PathValue("id")); err != nil {
		return err
	}
	return c.reply(http.StatusOK, map[string]string{"status": "revoked"})
}

func (h *Handler) whoami(c *call) error {
	out := client.WhoAmI{Principal: c.p.Name, TokenID: c.p.TokenID, Org: c.p.OrgID}
	for _, r := range c.p.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	return c.reply(http.StatusOK, out)
}

func (h *Handler) listNodes(c *call) error {
	out := client.NodeList{Nodes: []client.Node{}}
	if h.nodes == nil {
		return c.reply(http.StatusOK, out)
	}
	ns, err := h.nodes.ListNodes(c.r.Context())
	if err != nil {
		return err
	}
	for _, n := range ns {
		out.Nodes = append(out.Nodes, client.Node{ID: n.ID, Address: n.Address, Version: n.Version, StartedAt: n.StartedAt,
			LastHeartbeat: n.HeartbeatAt, StoppedAt: optTime(n.StoppedAt), State: string(h.nodes.NodeState(n))})
	}
	return c.reply(http.StatusOK, out)
}
