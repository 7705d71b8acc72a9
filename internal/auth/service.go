package auth

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// Auditor appends audit events.
type Auditor interface {
	Audit(ctx context.Context, ev audit.Event) error
}

// Service authenticates API tokens and manages them. Verified tokens are
// cached in memory for CacheTTL so authentication stays off the database on
// the hot path; revocation on this node takes effect at once, on other
// nodes within CacheTTL.
type Service struct {
	store    Store
	auditor  Auditor
	now      func() time.Time
	cacheTTL time.Duration

	mu    sync.RWMutex
	cache map[[32]byte]cached
}

type cached struct {
	p       Principal
	expires time.Time // of the cache entry
	tokenEx time.Time // of the token; zero = never
}

// NewService returns a token service. cacheTTL 0 means 10 s.
func NewService(store Store, auditor Auditor, now func() time.Time, cacheTTL time.Duration) *Service {
	if now == nil {
		now = time.Now
	}
	if cacheTTL <= 0 {
		cacheTTL = 10 * time.Second
	}
	return &Service{store: store, auditor: auditor, now: now, cacheTTL: cacheTTL, cache: map[[32]byte]cached{}}
}

var errBadToken = &fault.Error{Kind: fault.Unauthenticated, Reason: "the API token is invalid, expired or revoked; create a new one with `orgkms token create`"}

// Authenticate returns the principal of a token secret.
func (s *Service) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) > 128 {
		return Principal{}, errBadToken
	}
	var h [32]byte
	copy(h[:], HashSecret(secret))
	now := s.now()
	s.mu.RLock()
	c, ok := s.cache[h]
	s.mu.RUnlock()
	if ok && now.Before(c.expires) && (c.tokenEx.IsZero() || now.Before(c.tokenEx)) {
		return c.p, nil
	}
	t, err := s.store.TokenByHash(ctx, h[:])
	if err != nil {
		if fault.KindOf(err) == fault.NotFound {
			return Principal{}, errBadToken
		}
		return Principal{}, err
	}
	if subtle.ConstantTimeCompare(t.Hash, h[:]) != 1 || !t.RevokedAt.IsZero() || (!t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)) {
		return Principal{}, errBadToken
	}
	p := Principal{Name: t.Principal, TokenID: t.ID, OrgID: t.OrgID, Roles: t.Roles}
	s.mu.Lock()
	if len(s.cache) > 100_000 {
		clear(s.cache)
	}
	s.cache[h] = cached{p: p, expires: now.Add(s.cacheTTL), tokenEx: t.ExpiresAt}
	s.mu.Unlock()
	return p, nil
}

// CreateTokenRequest describes a new token.
type CreateTokenRequest struct {
	Principal   string
	OrgID       string // "" = platform scope
	Roles       []Role
	Description string
	TTL         time.Duration // 0 = never expires
}

// Create stores a new token and returns it with its secret, which is shown
// only now.
func (s *Service) Create(ctx context.Context, actor string, req CreateTokenRequest) (Token, string, error) {
	if err := validateTokenRequest(req); err != nil {
		return Token{}, "", err
	}
	secret, hash, err := NewSecret()
	if err != nil {
		return Token{}, "", &fault.Error{Kind: fault.Internal, Op: "create token", Err: err}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	t := Token{ID: NewID("tok_"), Principal: req.Principal, OrgID: req.OrgID, Roles: req.Roles, Description: req.Description, Hash: hash, CreatedAt: now}
	if req.TTL > 0 {
		t.ExpiresAt = now.Add(req.TTL)
	}
	if err := s.store.CreateToken(ctx, t); err != nil {
		return Token{}, "", err
	}
	if s.auditor != nil {
		details := map[string]string{"principal": t.Principal, "roles": joinRoles(t.Roles), "scope": orAll(t.OrgID)}
		if err := s.auditor.Audit(ctx, audit.Event{OrgID: audit.Platform, Time: now, Actor: actor, Action: "token.create", Target: "token/" + t.ID, Details: details}); err != nil {
			return Token{}, "", err
		}
	}
	t.Hash = nil
	return t, secret, nil
}

func orAll(org string) string {
	if org == "" {
		return "platform"
	}
	return "org/" + org
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

func validateTokenRequest(req CreateTokenRequest) error {
	if req.Principal == "" || len(req.Principal) > 128 {
		return &fault.Error{Kind: fault.Invalid, Field: "principal", Reason: "principal must be 1-128 characters naming who uses the token, e.g. \"billing-service\""}
	}
	if len(req.Roles) == 0 {
		return &fault.Error{Kind: fault.Invalid, Field: "roles", Reason: "give at least one role: operator, service, admin, key_admin or member"}
	}
	if len(req.Description) > 500 {
		return &fault.Error{Kind: fault.Invalid, Field: "description", Reason: "description must be at most 500 characters"}
	}
	for _, r := range req.Roles {
		if _, err := ParseRole(string(r)); err != nil {
			return err
		}
		if r == RoleOperator && req.OrgID != "" {
			return &fault.Error{Kind: fault.Invalid, Field: "roles", Reason: "the operator role is platform-wide: create it without an org"}
		}
		if (r == RoleAdmin || r == RoleKeyAdmin || r == RoleMember) && req.OrgID == "" {
			return &fault.Error{Kind: fault.Invalid, Field: "org", Reason: "the " + string(r) + " role belongs to one org: give the org"}
		}
	}
	if req.TTL < 0 {
		return &fault.Error{Kind: fault.Invalid, Field: "ttl", Reason: "ttl must not be negative"}
	}
	return nil
}

// List lists tokens, without secrets or hashes.
func (s *Service) List(ctx context.Context) ([]Token, error) {
	ts, err := s.store.ListTokens(ctx)
	for i := range ts {
		ts[i].Hash = nil
	}
	return ts, err
}

// Revoke revokes a token at once on this node.
func (s *Service) Revoke(ctx context.Context, actor, id string) error {
	now := s.now().UTC()
	if err := s.store.RevokeToken(ctx, id, now); err != nil {
		return err
	}
	s.mu.Lock()
	for h, c := range s.cache {
		if c.p.TokenID == id {
			delete(s.cache, h)
		}
	}
	s.mu.Unlock()
	if s.auditor != nil {
		return s.auditor.Audit(ctx, audit.Event{OrgID: audit.Platform, Time: now, Actor: actor, Action: "token.revoke", Target: "token/" + id})
	}
	return nil
}

// Count returns the number of stored tokens.
func (s *Service) Count(ctx context.Context) (int, error) { return s.store.CountTokens(ctx) }
