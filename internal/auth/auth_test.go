package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// memStore is a faithful in-memory auth.Store (the SQLite one is tested by
// the store suite).
type memStore struct {
	mu     sync.Mutex
	tokens map[string]Token
	fail   error
}

func (m *memStore) CreateToken(ctx context.Context, t Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[t.ID] = t
	return nil
}

func (m *memStore) TokenByHash(ctx context.Context, h []byte) (Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return Token{}, m.fail
	}
	for _, t := range m.tokens {
		if string(t.Hash) == string(h) {
			return t, nil
		}
	}
	return Token{}, &fault.Error{Kind: fault.NotFound}
}

func (m *memStore) ListTokens(ctx context.Context) ([]Token, error) { return nil, nil }

func (m *memStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return &fault.Error{Kind: fault.NotFound}
	}
	t.RevokedAt = at
	m.tokens[id] = t
	return nil
}

func (m *memStore) CountTokens(ctx context.Context) (int, error) { return len(m.tokens), nil }

type auditLog struct{ events []audit.Event }

func (a *auditLog) Audit(ctx context.Context, ev audit.Event) error {
	a.events = append(a.events, ev)
	return nil
}

func TestTokenLifecycle(t *testing.T) {
	st := &memStore{tokens: map[string]Token{}}
	log := &auditLog{}
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	s := NewService(st, log, func() time.Time { return now }, time.Minute)
	ctx := t.Context()
	tok, secret, err := s.Create(ctx, "token:root", CreateTokenRequest{Principal: "billing", OrgID: "acme", Roles: []Role{RoleService}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) != len(TokenPrefix)+43 || tok.Hash != nil {
		t.Fatalf("secret %q / returned hash %x: want okms_ + 43 chars and no hash", secret, tok.Hash)
	}
	if stored := st.tokens[tok.ID]; strings.Contains(string(stored.Hash), secret) || len(stored.Hash) != 32 {
		t.Fatal("the store holds more than the SHA-256 of the secret")
	}
	p, err := s.Authenticate(ctx, secret)
	if err != nil || p.Name != "billing" || p.OrgID != "acme" || !p.Has(RoleService) {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	// Cached: a store outage does not fail an authenticated token.
	st.fail = errors.New("db down")
	if _, err := s.Authenticate(ctx, secret); err != nil {
		t.Fatalf("cached Authenticate: %v", err)
	}
	st.fail = nil
	for _, bad := range []string{"", "okms_", "okms_nope", "Bearer " + secret, secret + "x", strings.Repeat("a", 500)} {
		if _, err := s.Authenticate(ctx, bad); fault.KindOf(err) != fault.Unauthenticated {
			t.Errorf("Authenticate(%.20q) kind = %v, want unauthenticated", bad, fault.KindOf(err))
		}
	}
	// Expiry applies even to a cached token.
	now = now.Add(2 * time.Hour)
	if _, err := s.Authenticate(ctx, secret); fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("expired token kind = %v, want unauthenticated", fault.KindOf(err))
	}
	// Revocation takes effect at once on this node.
	_, secret2, _ := s.Create(ctx, "token:root", CreateTokenRequest{Principal: "ops", Roles: []Role{RoleOperator}})
	if _, err := s.Authenticate(ctx, secret2); err != nil {
		t.Fatal(err)
	}
	var id string
	for k, v := range st.tokens {
		if v.Principal == "ops" {
			id = k
		}
	}
	if err := s.Revoke(ctx, "token:root", id); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, secret2); fault.KindOf(err) != fault.Unauthenticated {
		t.Fatalf("revoked token kind = %v, want unauthenticated", fault.KindOf(err))
	}
	if len(log.events) != 3 || log.events[0].Action != "token.create" || log.events[2].Action != "token.revoke" || log.events[0].OrgID != audit.Platform {
		t.Fatalf("audit events = %+v", log.events)
	}
}

func TestCreateTokenValidation(t *testing.T) {
	s := NewService(&memStore{tokens: map[string]Token{}}, nil, nil, 0)
	tests := []struct {
		name      string
		req       CreateTokenRequest
		wantField string
	}{
		{"no principal", CreateTokenRequest{Roles: []Role{RoleService}}, "principal"},
		{"no roles", CreateTokenRequest{Principal: "x"}, "roles"},
		{"unknown role", CreateTokenRequest{Principal: "x", Roles: []Role{"god"}}, "roles"},
		{"org operator", CreateTokenRequest{Principal: "x", OrgID: "acme", Roles: []Role{RoleOperator}}, "roles"},
		{"platform admin", CreateTokenRequest{Principal: "x", Roles: []Role{RoleAdmin}}, "org"},
		{"negative ttl", CreateTokenRequest{Principal: "x", Roles: []Role{RoleService}, TTL: -time.Second}, "ttl"},
	}
	for _, tt := range tests {
		_, _, err := s.Create(t.Context(), "root", tt.req)
		fe := fault.As(err)
		if fe == nil || fe.Kind != fault.Invalid || fe.Field != tt.wantField {
			t.Errorf("Create(%s) = %v, want invalid %s", tt.name, err, tt.wantField)
		}
	}
}

func TestAllowedScopes(t *testing.T) {
	tests := []struct {
		p    Principal
		act  Action
		org  string
		want bool
	}{
		{Principal{Roles: []Role{RoleOperator}}, ActOrgCreate, "", true},
		{Principal{OrgID: "acme", Roles: []Role{RoleOperator}}, ActOrgCreate, "", false},
		{Principal{Roles: []Role{RoleOperator}}, ActCrypto, "acme", false},
		{Principal{Roles: []Role{RoleService}}, ActCrypto, "acme", true},
		{Principal{OrgID: "acme", Roles: []Role{RoleService}}, ActCrypto, "globex", false},
		{Principal{OrgID: "acme", Roles: []Role{RoleAdmin}}, ActCMKManage, "acme", false},
		{Principal{OrgID: "acme", Roles: []Role{RoleKeyAdmin}}, ActCMKManage, "acme", false},
		{Principal{OrgID: "acme", Roles: []Role{RoleAdmin, RoleKeyAdmin}}, ActCMKManage, "acme", true},
		{Principal{Roles: []Role{RoleOperator}}, ActCMKManage, "acme", false},
		{Principal{OrgID: "acme", Roles: []Role{RoleMember}}, ActKeyManage, "acme", false},
		{Principal{OrgID: "acme", Roles: []Role{RoleMember}}, ActKeyRead, "acme", true},
	}
	for _, tt := range tests {
		if got := Allowed(tt.p, tt.act, tt.org); got != tt.want {
			t.Errorf("Allowed(%+v, %s, %q) = %v, want %v", tt.p, tt.act, tt.org, got, tt.want)
		}
	}
}

func TestCheckGrant(t *testing.T) {
	secAdmin := Principal{Name: "user:sec", OrgID: "acme", Roles: []Role{RoleAdmin, RoleKeyAdmin}}
	admin := Principal{Name: "user:adm", OrgID: "acme", Roles: []Role{RoleAdmin}}
	op := Principal{Name: "user:ops", Roles: []Role{RoleOperator}}
	both := []Role{RoleAdmin, RoleKeyAdmin}
	for _, tc := range []struct {
		name     string
		p        Principal
		from, to []Role
		self     bool
		wantKind fault.Kind // 0: allowed
	}{
		{"key admin removes own key_admin", secAdmin, both, []Role{RoleAdmin}, true, fault.Conflict},
		{"admin removes own admin", secAdmin, both, []Role{RoleKeyAdmin}, true, fault.Conflict},
		{"admin alone removes own admin", admin, []Role{RoleAdmin}, []Role{RoleMember}, true, fault.Conflict},
		{"key admin removes another's key_admin", secAdmin, both, []Role{RoleAdmin}, false, 0},
		{"keeps own roles", secAdmin, both, both, true, 0},
		{"adds member to self", secAdmin, both, append([]Role{RoleMember}, both...), true, fault.Forbidden},
		{"admin grants key_admin", admin, []Role{RoleMember}, []Role{RoleKeyAdmin}, false, fault.Forbidden},
		{"operator removes key_admin", op, both, []Role{RoleAdmin}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckGrant(tc.p, "acme", tc.from, tc.to, tc.self)
			if tc.wantKind == 0 {
				if err != nil {
					t.Fatalf("CheckGrant = %v, want allowed", err)
				}
				return
			}
			if got := fault.KindOf(err); err == nil || got != tc.wantKind {
				t.Fatalf("CheckGrant kind = %v (%v), want %v", got, err, tc.wantKind)
			}
		})
	}
}
