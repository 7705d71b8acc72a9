package storetest

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

func newToken(id, secret string) auth.Token {
	return auth.Token{ID: id, Principal: "token:" + id, Roles: []auth.Role{auth.RoleOperator},
		Description: "test token " + id, Hash: auth.HashSecret(secret), CreatedAt: base}
}

func testTokens(t *testing.T, s Store) {
	ctx := t.Context()
	if n, err := s.CountTokens(ctx); err != nil || n != 0 {
		t.Errorf("CountTokens(ctx) on an empty store = %d, %v; want 0", n, err)
	}
	ops := newToken("tok_ops", "secret-ops")
	svc := auth.Token{ID: "tok_svc", Principal: "token:svc", OrgID: "acme", Roles: []auth.Role{auth.RoleService, auth.RoleMember},
		Description: "", Hash: auth.HashSecret("secret-svc"), CreatedAt: base.Add(time.Second), ExpiresAt: base.Add(90 * 24 * time.Hour)}
	for _, tok := range []auth.Token{svc, ops} {
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken(ctx, %s) = %v", tok.ID, err)
		}
	}
	for _, want := range []auth.Token{ops, svc} {
		got, err := s.TokenByHash(ctx, want.Hash)
		if err != nil {
			t.Fatalf("TokenByHash(ctx, %s's hash) = %v", want.ID, err)
		}
		checkToken(t, got, want)
	}
	list, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatalf("ListTokens(ctx) = %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("ListTokens(ctx) = %d tokens, want 2", len(list))
	}
	checkToken(t, list[0], ops) // ordered by creation time
	checkToken(t, list[1], svc)
	if n, err := s.CountTokens(ctx); err != nil || n != 2 {
		t.Errorf("CountTokens(ctx) = %d, %v; want 2", n, err)
	}

	revoked := base.Add(time.Hour + 123456789*time.Nanosecond)
	if err := s.RevokeToken(ctx, "tok_svc", revoked); err != nil {
		t.Fatalf("RevokeToken(ctx, tok_svc) = %v", err)
	}
	// A second revocation keeps the first time.
	if err := s.RevokeToken(ctx, "tok_svc", revoked.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken(ctx, tok_svc) again = %v", err)
	}
	got, err := s.TokenByHash(ctx, svc.Hash)
	if err != nil {
		t.Fatalf("TokenByHash(ctx, revoked tok_svc) = %v", err)
	}
	svc.RevokedAt = revoked
	checkToken(t, got, svc)
	if got, err := s.TokenByHash(ctx, ops.Hash); err != nil || !got.RevokedAt.IsZero() {
		t.Errorf("TokenByHash(ctx, tok_ops) = %+v, %v; want unrevoked", got, err)
	}
	if n, err := s.CountTokens(ctx); err != nil || n != 2 {
		t.Errorf("CountTokens(ctx) after revoking = %d, %v; want 2 (revoked tokens count)", n, err)
	}
}

func checkToken(t *testing.T, got, want auth.Token) {
	t.Helper()
	if got.ID != want.ID || got.Principal != want.Principal || got.OrgID != want.OrgID || !slices.Equal(got.Roles, want.Roles) ||
		got.Description != want.Description || !bytes.Equal(got.Hash, want.Hash) ||
		!got.CreatedAt.Equal(micro(want.CreatedAt)) || !got.ExpiresAt.Equal(micro(want.ExpiresAt)) || !got.RevokedAt.Equal(micro(want.RevokedAt)) {
		t.Errorf("token = %+v, want %+v (times truncated to µs)", got, want)
	}
}

func testUsageAdditive(t *testing.T, s Store) {
	ctx := t.Context()
	minute := time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)
	c := func(key, op string, m time.Time, n int64) keys.UsageCount {
		return keys.UsageCount{OrgID: "acme", KeyName: key, Op: op, Principal: "token:svc", Minute: m, Count: n}
	}
	batches := [][]keys.UsageCount{
		{c("default", "encrypt", minute, 3), c("default", "encrypt", minute, 4), c("default", "decrypt", minute, 1)},
		{c("default", "encrypt", minute.Add(30*time.Second), 10), c("default", "encrypt", minute.Add(time.Minute), 2)},
		{c("payments", "encrypt", minute.Add(-time.Minute), 100)},
		nil, // an empty batch is fine
	}
	for i, b := range batches {
		if err := s.AddUsage(ctx, b); err != nil {
			t.Fatalf("AddUsage(ctx, batch %d) = %v", i, err)
		}
	}
	got, err := s.Usage(ctx, "acme", minute)
	if err != nil {
		t.Fatalf("Usage(ctx, acme, %v) = %v", minute, err)
	}
	want := []keys.UsageCount{
		c("default", "decrypt", minute, 1),
		c("default", "encrypt", minute, 17), // 3 + 4 + 10: the same minute
		c("default", "encrypt", minute.Add(time.Minute), 2),
	}
	checkUsage(t, got, want)

	all, err := s.Usage(ctx, "acme", time.Time{})
	if err != nil {
		t.Fatalf("Usage(ctx, acme, zero) = %v", err)
	}
	checkUsage(t, all, append([]keys.UsageCount{c("payments", "encrypt", minute.Add(-time.Minute), 100)}, want...))

	// Concurrent batches add up too.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.AddUsage(ctx, []keys.UsageCount{c("default", "decrypt", minute, 1)}); err != nil {
				t.Errorf("AddUsage(ctx) concurrently = %v", err)
			}
		})
	}
	wg.Wait()
	got, err = s.Usage(ctx, "acme", minute)
	if err != nil {
		t.Fatalf("Usage(ctx, acme) = %v", err)
	}
	if len(got) == 0 || got[0].Op != "decrypt" || got[0].Count != 9 {
		t.Errorf("Usage(ctx, acme)[0] = %+v, want decrypt count 9", got)
	}
}

func checkUsage(t *testing.T, got, want []keys.UsageCount) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("usage = %+v, want %+v", got, want)
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.OrgID != w.OrgID || g.KeyName != w.KeyName || g.Op != w.Op || g.Principal != w.Principal ||
			!g.Minute.Equal(w.Minute.Truncate(time.Minute)) || g.Count != w.Count {
			t.Errorf("usage[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func testCancelledContext(t *testing.T, s Store) {
	createOrg(t, s, "acme")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name     string
		call     func() error
		wantKind fault.Kind
	}{
		{"GetOrg", func() error { _, err := s.GetOrg(ctx, "acme"); return err }, fault.Unavailable},
		{"GetDataKey", func() error { _, err := s.GetDataKey(ctx, "acme", "default"); return err }, fault.Unavailable},
		{"AppendAudit", func() error { _, err := s.AppendAudit(ctx, event("acme", "x", "y")); return err }, fault.Unavailable},
		{"CreateToken", func() error { return s.CreateToken(ctx, newToken("tok_x", "x")) }, fault.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name+"(cancelled ctx)", tc.call(), tc.wantKind)
		})
	}
}
