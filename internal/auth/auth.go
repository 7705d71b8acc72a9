package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// Role is a named set of permissions.
type Role string

const (
	RoleOperator Role = "operator"  // platform: orgs, tokens, keys of any org, audit; platform scope only
	RoleService  Role = "service"   // data plane: encrypt, decrypt, rewrap, datakey; one org or all
	RoleAdmin    Role = "admin"     // org administration: users, audit
	RoleKeyAdmin Role = "key_admin" // org key management: data keys, versions
	RoleMember   Role = "member"    // sees org and key status, nothing secret
)

// AllRoles lists every role.
var AllRoles = []Role{RoleOperator, RoleService, RoleAdmin, RoleKeyAdmin, RoleMember}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	r := Role(strings.TrimSpace(strings.ToLower(s)))
	if slices.Contains(AllRoles, r) {
		return r, nil
	}
	return "", fault.Invalidf("roles", "unknown role %q: use one of operator, service, admin, key_admin, member", s)
}

// Action is something a principal may be allowed to do.
type Action string

const (
	ActOrgCreate    Action = "org.create"
	ActOrgList      Action = "org.list"
	ActOrgRead      Action = "org.read"
	ActTokenManage  Action = "token.manage"
	ActKeyRead      Action = "key.read"
	ActKeyManage    Action = "key.manage"
	ActCrypto       Action = "key.use" // encrypt, decrypt, rewrap, datakey
	ActAuditRead    Action = "audit.read"
	ActCacheManage  Action = "cache.manage"
	ActCMKManage    Action = "cmk.manage" // needs admin AND key_admin on the org
	ActUsersManage  Action = "users.manage"
	ActPlatformRead Action = "platform.read" // platform audit chain, metrics-like views
	ActWhoAmI       Action = "whoami"        // any authenticated principal
	// ActWebhookManage: register, test, delete an org's webhooks and read
	// their deliveries (the org's admins, or an operator).
	ActWebhookManage Action = "webhook.manage"
	// ActOrgDelete schedules or cancels an org's deletion: the operator
	// only; the API also lets the org's admin AND key_admin do it when the
	// operator allows it (config orgs.self_delete).
	ActOrgDelete Action = "org.delete"
)

// Principal is an authenticated caller.
type Principal struct {
	Name    string // e.g. "token:ops" or "user:alice"
	TokenID string
	OrgID   string // "" = platform scope
	Roles   []Role
}

// Has reports whether p holds role r.
func (p Principal) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// Allowed is the authorization policy: may p perform act on org (org is ""
// for platform-level actions)?
func Allowed(p Principal, act Action, org string) bool {
	if act == ActWhoAmI {
		return true
	}
	// Scope: an org-scoped principal acts only on its own org.
	if p.OrgID != "" && p.OrgID != org {
		return false
	}
	platform := p.OrgID == ""
	switch act {
	case ActOrgCreate, ActOrgList, ActTokenManage, ActCacheManage, ActPlatformRead:
		return platform && p.Has(RoleOperator)
	case ActOrgRead, ActKeyRead:
		return (platform && p.Has(RoleOperator)) || p.Has(RoleService) || p.Has(RoleAdmin) || p.Has(RoleKeyAdmin) || p.Has(RoleMember)
	case ActKeyManage:
		return (platform && p.Has(RoleOperator)) || p.Has(RoleKeyAdmin)
	case ActCrypto:
		return p.Has(RoleService)
	case ActAuditRead:
		return (platform && p.Has(RoleOperator)) || p.Has(RoleAdmin) || p.Has(RoleKeyAdmin)
	case ActCMKManage:
		return p.Has(RoleAdmin) && p.Has(RoleKeyAdmin)
	case ActOrgDelete:
		return platform && p.Has(RoleOperator)
	case ActUsersManage, ActWebhookManage:
		return (platform && p.Has(RoleOperator)) || p.Has(RoleAdmin)
	}
	return false
}

// Token is a stored API token (without its secret).
type Token struct {
	ID          string
	Principal   string
	OrgID       string // "" = platform scope
	Roles       []Role
	Description string
	Hash        []byte // SHA-256 of the secret
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero = never
	RevokedAt   time.Time // zero = active
}

// Store persists tokens. Implemented by the storage packages.
type Store interface {
	CreateToken(ctx context.Context, t Token) error
	TokenByHash(ctx context.Context, hash []byte) (Token, error) // fault NotFound
	ListTokens(ctx context.Context) ([]Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error // fault NotFound
	CountTokens(ctx context.Context) (int, error)
}

// TokenPrefix starts every orgkms API token.
const TokenPrefix = "okms_"

// NewSecret returns a new random token secret and its hash.
func NewSecret() (secret string, hash []byte, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	secret = TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, HashSecret(secret), nil
}

// HashSecret hashes a token secret for lookup.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// NewID returns a short random identifier with prefix, e.g. "tok_3f9a...".
func NewID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// CheckGrant enforces separation of duties when principal p gives roles to
// a user of org (from is the user's current roles; nil for a new user):
// the key_admin role can only be granted or removed by a holder of
// key_admin in that org, or by a platform operator, so an Admin alone can
// never make themselves able to change the org's customer managed key. A
// user cannot give themselves a role they do not hold (self is true when
// the target is p's own user).
func CheckGrant(p Principal, org string, from, to []Role, self bool) error {
	changed := func(r Role) bool { return slices.Contains(from, r) != slices.Contains(to, r) }
	operator := p.OrgID == "" && p.Has(RoleOperator)
	if changed(RoleKeyAdmin) && !operator && !(p.OrgID == org && p.Has(RoleKeyAdmin)) {
		return &fault.Error{Kind: fault.Forbidden, Field: "roles", Reason: "only a Key Admin of the org (or a platform operator) can grant or remove Key Admin"}
	}
	if self {
		// Nobody demotes themselves out of administering the org (or its
		// keys) by mistake; another holder of the role does it.
		for _, r := range []Role{RoleAdmin, RoleKeyAdmin} {
			if slices.Contains(from, r) && !slices.Contains(to, r) {
				name := map[Role]string{RoleAdmin: "Admin", RoleKeyAdmin: "Key Admin"}[r]
				return &fault.Error{Kind: fault.Conflict, Field: "roles", Reason: "you cannot remove your own " + name + " role: ask another " + name + " of the org to do it"}
			}
		}
		for _, r := range to {
			if !slices.Contains(from, r) {
				return &fault.Error{Kind: fault.Forbidden, Field: "roles", Reason: "you cannot give yourself a role"}
			}
		}
	}
	return nil
}
