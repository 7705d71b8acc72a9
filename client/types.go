package client

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Org is an organization.
type Org struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Protection is "platform" when the org's root key is wrapped by the
	// platform master key, "cmk" when by the org's customer managed key.
	Protection string `json:"protection"`
	MasterKey  string `json:"master_key"` // URI of the master key (without version)
	// State is "active", "pending_deletion" (refused on the data plane
	// until DeletionDate, cancellable) or "deleted" (crypto-shredded).
	// GET /v1/orgs, GET /v1/orgs/{org} and the deletion routes report it.
	State           string     `json:"state,omitempty"`
	PendingDeletion bool       `json:"pending_deletion,omitempty"`
	DeletionDate    *time.Time `json:"deletion_date,omitempty"` // when a pending deletion shreds
	DeletedAt       *time.Time `json:"deleted_at,omitempty"`    // when the shred ran
}

// CreateOrgRequest is the body of POST /v1/orgs.
type CreateOrgRequest struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// OrgList is the body of GET /v1/orgs.
type OrgList struct {
	Orgs []Org `json:"orgs"`
	// NextAfter, when set, is the value of ?after= for the next page.
	NextAfter string `json:"next_after,omitempty"`
}

// Key is a data key's metadata. It never holds key material.
type Key struct {
	Name                 string       `json:"name"`
	CreatedAt            time.Time    `json:"created_at"`
	LatestVersion        uint32       `json:"latest_version"`
	MinDecryptionVersion uint32       `json:"min_decryption_version"`
	Versions             []KeyVersion `json:"versions,omitempty"`
	// State is "enabled", "disabled", "pending_deletion" or "deleted".
	State        string     `json:"state,omitempty"`
	DeletionDate *time.Time `json:"deletion_date,omitempty"` // when a pending deletion shreds
	DeletedAt    *time.Time `json:"deleted_at,omitempty"`    // when the shred ran
}

// KeyVersion is one version of a data key.
type KeyVersion struct {
	Version   uint32    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

// KeyList is the body of GET /v1/orgs/{org}/keys.
type KeyList struct {
	Keys []Key `json:"keys"`
}

// CreateKeyRequest is the body of POST /v1/orgs/{org}/keys.
type CreateKeyRequest struct {
	Name string `json:"name"`
}

// KeyConfigRequest is the body of POST /v1/orgs/{org}/keys/{key}/config.
type KeyConfigRequest struct {
	MinDecryptionVersion *uint32 `json:"min_decryption_version"` // required
}

// EncryptRequest is the body of .../encrypt: either Plaintext (one item) or Batch.
type EncryptRequest struct {
	Plaintext []byte      `json:"plaintext"` // null or absent in batch requests
	Context   []byte      `json:"context,omitempty"`
	Batch     []BatchItem `json:"batch,omitempty"`
}

// DecryptRequest is the body of .../decrypt and .../rewrap: either Ciphertext or Batch.
type DecryptRequest struct {
	Ciphertext []byte      `json:"ciphertext,omitempty"`
	Context    []byte      `json:"context,omitempty"`
	Batch      []BatchItem `json:"batch,omitempty"`
}

// BatchItem is one input of a batch request: Plaintext for encrypt,
// Ciphertext for decrypt and rewrap. An empty (even nil) Plaintext is
// sent as "", the empty message.
type BatchItem struct {
	Plaintext  []byte `json:"plaintext,omitzero"`
	Ciphertext []byte `json:"ciphertext,omitzero"`
	Context    []byte `json:"context,omitempty"`
}

// CryptoResponse is the response of encrypt, decrypt and rewrap.
type CryptoResponse struct {
	Ciphertext []byte        `json:"ciphertext,omitempty"`
	Plaintext  []byte        `json:"plaintext,omitempty"`
	KeyVersion uint32        `json:"key_version,omitempty"`
	Batch      []BatchResult `json:"batch,omitempty"`
}

// BatchResult is one result of a batch: a ciphertext or plaintext, or Error.
type BatchResult struct {
	Ciphertext []byte       `json:"ciphertext,omitempty"`
	Plaintext  []byte       `json:"plaintext,omitempty"`
	KeyVersion uint32       `json:"key_version,omitempty"`
	Error      *ErrorDetail `json:"error,omitempty"`
}

// DataKeyRequest is the body of .../datakey.
type DataKeyRequest struct {
	// Type is "plaintext" (return the key and its ciphertext) or "wrapped"
	// (ciphertext only). Default "plaintext".
	Type    string `json:"type,omitempty"`
	Bits    int    `json:"bits,omitempty"` // 128, 256 (default) or 512
	Context []byte `json:"context,omitempty"`
}

// DataKeyResponse is the response of .../datakey.
type DataKeyResponse struct {
	Plaintext  []byte `json:"plaintext,omitempty"`
	Ciphertext []byte `json:"ciphertext"`
	KeyVersion uint32 `json:"key_version"`
}

// ErrorDetail is the error object of the API.
type ErrorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// CreateTokenRequest is the body of POST /v1/tokens.
type CreateTokenRequest struct {
	Principal   string   `json:"principal"`
	Org         string   `json:"org,omitempty"` // empty = platform scope (all orgs)
	Roles       []string `json:"roles"`
	Description string   `json:"description,omitempty"`
	TTL         string   `json:"ttl,omitempty"` // Go duration, e.g. "720h"; empty = never expires
}

// Token is an API token's metadata.
type Token struct {
	ID          string     `json:"id"`
	Principal   string     `json:"principal"`
	Org         string     `json:"org,omitempty"`
	Roles       []string   `json:"roles"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	// Secret is set only in the response that creates the token.
	Secret string `json:"secret,omitempty"`
}

// TokenList is the body of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// AuditEvent is one audit record.
type AuditEvent struct {
	OrgID    string            `json:"org_id"`
	Seq      int64             `json:"seq"`
	Time     time.Time         `json:"time"`
	Actor    string            `json:"actor"`
	Action   string            `json:"action"`
	Target   string            `json:"target"`
	Details  map[string]string `json:"details,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

// AuditList is the body of GET /v1/orgs/{org}/audit.
type AuditList struct {
	Events []AuditEvent `json:"events"`
}

// AuditVerify is the body of GET /v1/orgs/{org}/audit/verify.
type AuditVerify struct {
	OK       bool   `json:"ok"`
	Events   int    `json:"events"`
	BrokenAt int64  `json:"broken_at,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// UsageCount is a usage record: the calls of one principal with one
// operation on one key in one minute, with one outcome.
type UsageCount struct {
	Key       string    `json:"key"`
	Op        string    `json:"op"`
	Principal string    `json:"principal"`
	Outcome   string    `json:"outcome"` // "ok" or the error code of refused or failed calls
	Minute    time.Time `json:"minute"`
	Count     int64     `json:"count"`
	First     time.Time `json:"first"` // first call counted in the minute
	Last      time.Time `json:"last"`  // last call counted in the minute
}

// UsageList is the body of GET /v1/orgs/{org}/usage.
type UsageList struct {
	Usage         []UsageCount `json:"usage"`
	NextPageToken string       `json:"next_page_token,omitempty"` // "" on the last page
}

// UsageQuery filters usage records (GET /v1/orgs/{org}/usage). Zero fields
// are left out: since defaults to 24 hours ago.
type UsageQuery struct {
	Since, Until time.Time
	Key          string
	Caller       string
	Op           string // encrypt, decrypt, rewrap, datakey
	Outcome      string // ok, denied, or an error code
	Limit        int    // records per page; default 100, at most 1000
	PageToken    string // next_page_token of the previous page
}

// Values returns q as URL query parameters.
func (q UsageQuery) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	set("key", q.Key)
	set("caller", q.Caller)
	set("op", q.Op)
	set("outcome", q.Outcome)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("page_token", q.PageToken)
	return v
}

// WhoAmI is the body of GET /v1/whoami.
type WhoAmI struct {
	Principal string   `json:"principal"`
	TokenID   string   `json:"token_id"`
	Org       string   `json:"org,omitempty"`
	Roles     []string `json:"roles"`
}

// CMKStatus is an org's customer managed key status.
type CMKStatus struct {
	Org   string `json:"org"`
	Cloud string `json:"cloud,omitempty"` // the org's cloud ("azure"): of its key, else the platform's default; empty when CMKs are off
	// State: platform, authorized, activating, active, rotating, replacing,
	// revoked, deactivating, lost.
	State            string     `json:"state"`
	Provider         string     `json:"provider,omitempty"`
	TenantID         string     `json:"tenant_id,omitempty"`
	ConsentedAt      *time.Time `json:"consented_at,omitempty"`
	ConsentedBy      string     `json:"consented_by,omitempty"`
	VaultURI         string     `json:"vault_uri,omitempty"`
	KeyName          string     `json:"key_name,omitempty"`
	KeyVersion       string     `json:"key_version,omitempty"`     // configured; empty = follow the latest
	CurrentVersion   string     `json:"current_version,omitempty"` // the version protecting the org now
	MasterKey        string     `json:"master_key"`                // URI of the key wrapping the org's root key
	ReasonCode       string     `json:"reason_code,omitempty"`
	Reason           string     `json:"reason,omitempty"`
	RecoverableUntil *time.Time `json:"recoverable_until,omitempty"`
	LastProbeAt      *time.Time `json:"last_probe_at,omitempty"`
	LastProbeResult  string     `json:"last_probe_result,omitempty"` // "ok" or the error
	Degraded         bool       `json:"degraded,omitempty"`
	// Warning: a condition that does not stop the org, with its remedy
	// (e.g. a newer key version without the org's ownership tag).
	Warning string `json:"warning,omitempty"`
	// DataLostAt: when the org fell back to a new platform root key after
	// its customer managed key was purged; older data is unrecoverable.
	DataLostAt *time.Time `json:"data_lost_at,omitempty"`
	// Pending: a configured key not in use yet while another key protects
	// the org (vault_uri, key_name, key_version name the key in use).
	Pending *CMKKeyConfig `json:"pending,omitempty"`
	// Fields: the key (in use, else configured) in the fields of its cloud
	// (see CMKClouds), e.g. vault_uri, key_name, key_version for azure.
	Fields map[string]string `json:"fields,omitempty"`
	Job    *CMKJob           `json:"job,omitempty"`
	// Revocation: how far the org's latest key-state change (generation)
	// reached the live nodes; absent while the org never had one.
	Revocation *CMKRevocation `json:"revocation,omitempty"`
	// VaultBudget: the answering node's request budget for the vault of the
	// key in use, shared by every org on that vault; absent on the platform
	// key.
	VaultBudget *VaultBudget `json:"vault_budget,omitempty"`
	// Staged: decrypt-only mode, a revocation in effect, a scheduled
	// revocation (staged.go).
	Staged CMKStaged `json:"staged"`
}

// CMKRevocation is "revocation honoured by Honoured of Nodes nodes at
// LatestReceipt" for the org's current generation.
type CMKRevocation struct {
	Generation    int64      `json:"generation"`
	Reason        string     `json:"reason"` // revoked, restored, lost, activated, rotated, replaced, deactivated, fell_back, purged
	ChangedAt     time.Time  `json:"changed_at"`
	Honoured      int        `json:"honoured"`                 // live nodes that applied it
	Nodes         int        `json:"nodes"`                    // live nodes
	LatestReceipt *time.Time `json:"latest_receipt,omitempty"` // when the last of them applied it
	Pending       []string   `json:"pending,omitempty"`        // live nodes that have not confirmed it
}

// Line is the status line: "revocation honoured by 3 of 3 nodes at T".
func (r CMKRevocation) Line() string {
	s := fmt.Sprintf("%s (generation %d, %s): honoured by %d of %d nodes", r.Reason, r.Generation, r.ChangedAt.UTC().Format(time.RFC3339), r.Honoured, r.Nodes)
	if r.LatestReceipt != nil {
		s += " at " + r.LatestReceipt.UTC().Format(time.RFC3339)
	}
	if len(r.Pending) > 0 {
		s += "; not confirmed by " + strings.Join(r.Pending, ", ")
	}
	return s
}

// Node is one orgkms node, as GET /v1/nodes lists it.
type Node struct {
	ID            string     `json:"id"`
	Address       string     `json:"address"`
	Version       string     `json:"version"`
	StartedAt     time.Time  `json:"started_at"`
	LastHeartbeat time.Time  `json:"last_heartbeat"`
	StoppedAt     *time.Time `json:"stopped_at,omitempty"`
	State         string     `json:"state"` // live, gone (no heartbeat within cluster.node_timeout) or stopped
}

// NodeList is the body of GET /v1/nodes.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// CMKFallbackRequest is the body of POST /v1/orgs/{org}/cmk/fallback.
type CMKFallbackRequest struct {
	ConfirmDataLoss bool `json:"confirm_data_loss"` // must be true
}

// CMKKeyConfig is a customer's key as configured.
type CMKKeyConfig struct {
	VaultURI   string `json:"vault_uri"`
	KeyName    string `json:"key_name"`
	KeyVersion string `json:"key_version,omitempty"` // empty = follow the latest
}

// CMKJob is a re-wrap job's progress.
type CMKJob struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"`  // activate, rotate, replace, deactivate
	State     string    `json:"state"` // pending, running, done, failed; stalled: running, but its worker is gone
	Step      string    `json:"step"`  // last completed step: copied, verified, switched
	Progress  int       `json:"progress"`
	Attempts  int       `json:"attempts"`
	Error     string    `json:"error,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// CMKAuthorizeRequest is the body of POST /v1/orgs/{org}/cmk/authorize.
type CMKAuthorizeRequest struct {
	TenantID string `json:"tenant_id,omitempty"`
	// Cloud is the cloud to authorize orgkms in ("" = the default). A
	// grant cloud (aws, gcp) answers with its instructions, changing
	// nothing.
	Cloud string `json:"cloud,omitempty"`
}

// CMKAuthorizeResponse holds the consent URL to open in a browser (Method
// "consent"), or the grant instructions of a grant cloud (Method "grant").
type CMKAuthorizeResponse struct {
	Cloud         string            `json:"cloud"`
	Method        string            `json:"method"`
	ConsentURL    string            `json:"consent_url,omitempty"`
	ExpiresAt     time.Time         `json:"expires_at,omitzero"`
	Authorization *CMKAuthorization `json:"authorization,omitempty"`
}

// CMKConfigureRequest is the body of POST /v1/orgs/{org}/cmk/configure.
//
// A key is named either by the fields of its cloud (Cloud, Fields: see
// CMKClouds) or, for the default cloud azure, by VaultURI, KeyName and
// KeyVersion (the original shape), never both.
type CMKConfigureRequest struct {
	VaultURI   string `json:"vault_uri,omitempty"`
	KeyName    string `json:"key_name,omitempty"`
	KeyVersion string `json:"key_version,omitempty"`
	// Cloud is one of the offered clouds; empty = the default.
	Cloud  string            `json:"cloud,omitempty"`
	Fields map[string]string `json:"fields,omitempty"`
}

// CMKClouds lists the clouds whose key services this orgkms offers, the
// default first.
type CMKClouds struct {
	Clouds []CMKCloud `json:"clouds"`
}

// CMKCloud is one offered cloud: how a customer authorizes orgkms and the
// fields by which they name a key.
type CMKCloud struct {
	Name          string           `json:"name"` // e.g. "azure"
	DisplayName   string           `json:"display_name"`
	Default       bool             `json:"default,omitempty"`
	Authorization CMKAuthorization `json:"authorization"`
	Fields        []CMKField       `json:"fields"`
	// Checks are the checks of Test Managed Key in order.
	Checks []CMKCheckSpec `json:"checks"`
}

// CMKAuthorization is how a customer authorizes orgkms in a cloud.
type CMKAuthorization struct {
	// Method: "consent" (an administrator grants consent on the cloud's
	// page: POST .../cmk/authorize with the tenant) or "grant" (the
	// customer grants access in their console following Instructions).
	Method string `json:"method"`
	// Service names where the key lives, e.g. "Azure Key Vault or
	// Managed HSM".
	Service      string `json:"service"`
	TenantLabel  string `json:"tenant_label,omitempty"`
	TenantHelp   string `json:"tenant_help,omitempty"`
	Instructions string `json:"instructions"`
	// Access: what the customer grants orgkms on the key.
	Access string     `json:"access,omitempty"`
	Values []CMKValue `json:"values,omitempty"`
}

// CMKValue is a value the customer copies into their console.
type CMKValue struct {
	Name  string `json:"name"`
	Label string `json:"label"`
	Value string `json:"value"`
}

// CMKField is one field a customer enters to name a key.
type CMKField struct {
	Name     string `json:"name"`
	Label    string `json:"label"`
	Help     string `json:"help,omitempty"`
	Example  string `json:"example,omitempty"`
	Required bool   `json:"required,omitempty"`
	Version  bool   `json:"version,omitempty"` // the key version: empty follows the latest
}

// CMKCheckSpec is one check of Test Managed Key in a cloud.
type CMKCheckSpec struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Verifies string `json:"verifies"`
}

// CMKCheck is one check of Test Managed Key.
type CMKCheck struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"` // pass, warn, fail, skip
	Detail string `json:"detail"`
	Remedy string `json:"remedy,omitempty"`
}

// CMKTestReport is the result of Test Managed Key.
type CMKTestReport struct {
	OK      bool       `json:"ok"`
	Key     string     `json:"key,omitempty"`
	Version string     `json:"version,omitempty"`
	Checks  []CMKCheck `json:"checks"`
}

// User is a console user (never with its password).
type User struct {
	ID        string    `json:"id"`
	Org       string    `json:"org,omitempty"` // empty for platform operators
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// CreateUserRequest is the body of POST /v1/orgs/{org}/users and POST /v1/users.
type CreateUserRequest struct {
	Email    string   `json:"email"`
	Name     string   `json:"name,omitempty"`
	Roles    []string `json:"roles"`
	Password string   `json:"password"` // at least 12 characters
}

// UserList is the body of the users listings.
type UserList struct {
	Users []User `json:"users"`
}

// PlatformKeyStatus is the body of GET /v1/platform-key: the platform
// master key's current version, where the orgs' root keys are, and the
// re-wrap job that moves them to the current version.
type PlatformKeyStatus struct {
	Provider       string                `json:"provider"`        // the platform key's driver: local, pkcs11, ...
	Version        string                `json:"version"`         // its current version
	OnCurrent      int                   `json:"on_current"`      // orgs wrapped by the current version
	OnOlder        int                   `json:"on_older"`        // orgs wrapped by an older version or a previous platform key
	Older          []PlatformKeyVersion  `json:"older"`           // OnOlder by version
	Rewrapping     int                   `json:"rewrapping"`      // orgs with a copy to the current version pending
	CMK            int                   `json:"cmk"`             // orgs on (or moving to or from) a customer managed key: not re-wrapped
	Unreadable     int                   `json:"unreadable"`      // orgs wrapped by a key orgkms is not configured with
	UnreadableOrgs []string              `json:"unreadable_orgs"` // the first of them
	UnknownKeys    []string              `json:"unknown_keys"`    // the keys they are wrapped by
	Hint           string                `json:"hint,omitempty"`  // what to configure
	Job            *PlatformKeyJobStatus `json:"job,omitempty"`   // the latest re-wrap job
}

// PlatformKeyVersion counts the orgs on one older platform key version.
type PlatformKeyVersion struct {
	Version  string `json:"version"`
	Previous bool   `json:"previous"` // a version of a previous platform key (previous_master_keys)
	Orgs     int    `json:"orgs"`
}

// PlatformKeyJobStatus is the latest platform re-wrap job.
type PlatformKeyJobStatus struct {
	ID        int64     `json:"id"`
	State     string    `json:"state"` // pending, running, stalled, done, failed
	Step      string    `json:"step"`
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}
