package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

// UsersStore is a storage implementation that also stores console users
// and their sessions.
type UsersStore interface {
	Store
	auth.UserStore
}

// AuditFailer is a required capability of the store under test (usually
// of a test harness wrapping it): after FailAudit(t, action), every audit
// write of an event with that action fails inside the transaction of its
// change. The cases that need it fail when the store lacks it.
type AuditFailer interface {
	FailAudit(t *testing.T, action string)
}

// RunUsers runs the suite of [auth.UserStore]. open is as for [Run].
func RunUsers(t *testing.T, open func(t *testing.T) UsersStore) {
	cases := []struct {
		name string
		run  func(t *testing.T, s UsersStore)
	}{
		{"UserRoundTrip", testUserRoundTrip},
		{"UserConflict", testUserConflict},
		{"UserConflictConcurrent", testUserConflictConcurrent},
		{"UserInvalid", testUserInvalid},
		{"UserNotFound", testUserNotFound},
		{"ListUsers", testListUsers},
		{"UpdateUser", testUpdateUser},
		{"UserAuditFails", testUserAuditFails},
		{"Sessions", testSessions},
		{"UsersCancelledContext", testUsersCancelledContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, open(t))
		})
	}
}

// newUser returns a user with every field set; org "" is a platform user.
func newUser(id, org, email string, roles ...auth.Role) auth.User {
	return auth.User{ID: id, OrgID: org, Email: email, Name: "Name of " + id + " ✓", Roles: roles,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$" + id + "$aGFzaA", CreatedAt: base}
}

// chainOf is the audit chain of the users of org.
func chainOf(org string) string {
	if org == "" {
		return audit.Platform
	}
	return org
}

func userEvent(u auth.User, action string) audit.Event {
	return event(chainOf(u.OrgID), action, "user/"+u.Email)
}

func createUser(t *testing.T, s UsersStore, u auth.User) {
	t.Helper()
	if err := s.CreateUser(t.Context(), u, userEvent(u, "user.create")); err != nil {
		t.Fatalf("CreateUser(ctx, %s) = %v", u.ID, err)
	}
}

func checkUser(t *testing.T, got, want auth.User) {
	t.Helper()
	if got.ID != want.ID || got.OrgID != want.OrgID || got.Email != want.Email || got.Name != want.Name ||
		!slices.Equal(got.Roles, want.Roles) || got.PasswordHash != want.PasswordHash ||
		!got.CreatedAt.Equal(micro(want.CreatedAt)) || got.Disabled != want.Disabled {
		t.Errorf("user = %+v, want %+v (time truncated to µs)", got, want)
	}
}

func userIDs(us []auth.User) []string {
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	return ids
}

func testUserRoundTrip(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleKeyAdmin, auth.RoleAdmin, auth.RoleMember) // not sorted
	alice.CreatedAt = base.Add(123456789 * time.Nanosecond)
	bob := newUser("usr_bob", "acme", "bob@example.com") // no roles
	bob.Disabled = true
	ops := newUser("usr_ops", "", "ops@example.com", auth.RoleOperator)
	for _, u := range []auth.User{alice, bob} {
		createUser(t, s, u)
	}
	// An event without an org ID goes to the user's chain.
	opsEv := userEvent(ops, "user.create")
	opsEv.OrgID = ""
	if err := s.CreateUser(ctx, ops, opsEv); err != nil {
		t.Fatalf("CreateUser(ctx, %s) = %v", ops.ID, err)
	}
	for _, want := range []auth.User{alice, bob, ops} {
		got, err := s.GetUser(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetUser(ctx, %s) = %v", want.ID, err)
		}
		checkUser(t, got, want)
		got, err = s.UserByEmail(ctx, want.Email)
		if err != nil {
			t.Fatalf("UserByEmail(ctx, %s) = %v", want.Email, err)
		}
		checkUser(t, got, want)
	}
	evs := auditLog(t, s, "acme")
	if len(evs) != 3 || evs[1].Action != "user.create" || evs[1].Target != "user/alice@example.com" || evs[2].Target != "user/bob@example.com" {
		t.Errorf("audit log of acme = %+v, want org.create and two user.create events", evs)
	}
	if evs := auditLog(t, s, audit.Platform); len(evs) != 1 || evs[0].Target != "user/ops@example.com" {
		t.Errorf("audit log of %s = %+v, want ops' user.create", audit.Platform, evs)
	}
}

func testUserConflict(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "globex")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	createUser(t, s, alice)
	for _, tc := range []struct {
		name    string
		u       auth.User
		wantMsg string
	}{
		// Emails are unique across orgs and the platform.
		{"same email", newUser("usr_alice2", "acme", "alice@example.com"), "a user with email alice@example.com already exists"},
		{"same email in another org", newUser("usr_alice3", "globex", "alice@example.com"), "a user with email alice@example.com already exists"},
		{"same email on the platform", newUser("usr_alice4", "", "alice@example.com", auth.RoleOperator), "a user with email alice@example.com already exists"},
		{"same ID", newUser("usr_alice", "acme", "other@example.com"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CreateUser(ctx, tc.u, userEvent(tc.u, "user.create"))
			checkKind(t, "CreateUser(ctx, "+tc.name+")", err, fault.Conflict)
			if tc.wantMsg != "" && fault.Message(err) != tc.wantMsg {
				t.Errorf("CreateUser(ctx, %s) message = %q, want %q", tc.name, fault.Message(err), tc.wantMsg)
			}
		})
	}
	got, err := s.UserByEmail(ctx, "alice@example.com")
	if err != nil {
		t.Fatalf("UserByEmail(ctx, alice) = %v", err)
	}
	checkUser(t, got, alice)
	if _, err := s.UserByEmail(ctx, "other@example.com"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("UserByEmail(ctx, other) after a conflicting create kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
	// Failed creates leave no events.
	for org, want := range map[string]int{"acme": 2, "globex": 1, audit.Platform: 0} {
		if evs := auditLog(t, s, org); len(evs) != want {
			t.Errorf("audit log of %s has %d events, want %d", org, len(evs), want)
		}
	}
}

func testUserConflictConcurrent(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			u := newUser(fmt.Sprintf("usr_%d", i), "acme", "race@example.com", auth.RoleMember)
			errs[i] = s.CreateUser(ctx, u, userEvent(u, "user.create"))
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case fault.KindOf(err) != fault.Conflict:
			t.Errorf("concurrent CreateUser #%d kind = %v (%v), want %v", i, fault.KindOf(err), err, fault.Conflict)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent creates of one email succeeded, want 1", won, n)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("audit log of acme has %d events, want 2 (org.create and one user.create)", len(evs))
	}
}

func testUserInvalid(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "globex")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	ops := newUser("usr_ops", "", "ops@example.com", auth.RoleOperator)
	createUser(t, s, alice)
	createUser(t, s, ops)
	ghost := newUser("usr_ghost", "ghost", "ghost@example.com", auth.RoleAdmin)
	carol := newUser("usr_carol", "acme", "carol@example.com", auth.RoleMember)
	noID := newUser("", "acme", "noid@example.com")
	noEmail := newUser("usr_noemail", "acme", "")
	changed := alice
	changed.Name, changed.Roles = "Changed", []auth.Role{auth.RoleMember}
	opsChanged := ops
	opsChanged.Disabled = true
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"CreateUser in a missing org", func() error { return s.CreateUser(ctx, ghost, event("ghost", "user.create", "user/ghost")) }},
		{"CreateUser in a missing org, platform event", func() error {
			return s.CreateUser(ctx, ghost, event(audit.Platform, "user.create", "user/ghost"))
		}},
		{"CreateUser with another org's event", func() error { return s.CreateUser(ctx, carol, event("globex", "user.create", "user/carol")) }},
		{"CreateUser with the platform's event", func() error {
			return s.CreateUser(ctx, carol, event(audit.Platform, "user.create", "user/carol"))
		}},
		{"CreateUser of a platform user with an org's event", func() error {
			u := newUser("usr_ops2", "", "ops2@example.com", auth.RoleOperator)
			return s.CreateUser(ctx, u, event("acme", "user.create", "user/ops2"))
		}},
		{"CreateUser without ID", func() error { return s.CreateUser(ctx, noID, userEvent(noID, "user.create")) }},
		{"CreateUser without email", func() error { return s.CreateUser(ctx, noEmail, userEvent(noEmail, "user.create")) }},
		{"UpdateUser with another org's event", func() error { return s.UpdateUser(ctx, changed, event("globex", "user.roles", "user/alice")) }},
		{"UpdateUser of a platform user with an org's event", func() error {
			return s.UpdateUser(ctx, opsChanged, event("acme", "user.disable", "user/ops"))
		}},
		{"CreateSession without ID", func() error {
			return s.CreateSession(ctx, auth.Session{UserID: alice.ID, CSRF: "c", CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name, tc.call(), fault.Invalid)
		})
	}
	for _, id := range []string{ghost.ID, carol.ID, "usr_ops2", noEmail.ID} {
		if _, err := s.GetUser(ctx, id); fault.KindOf(err) != fault.NotFound {
			t.Errorf("GetUser(ctx, %s) after an invalid create kind = %v (%v), want %v", id, fault.KindOf(err), err, fault.NotFound)
		}
	}
	for _, want := range []auth.User{alice, ops} {
		got, err := s.GetUser(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetUser(ctx, %s) = %v", want.ID, err)
		}
		checkUser(t, got, want) // unchanged
	}
	for org, want := range map[string]int{"acme": 2, "globex": 1, audit.Platform: 1, "ghost": 0} {
		if evs := auditLog(t, s, org); len(evs) != want {
			t.Errorf("audit log of %s has %d events after invalid changes, want %d", org, len(evs), want)
		}
	}
}

func testUserNotFound(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	createUser(t, s, alice)
	nobody := newUser("usr_nobody", "acme", "nobody@example.com")
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"GetUser", func() error { _, err := s.GetUser(ctx, nobody.ID); return err }},
		{"UserByEmail", func() error { _, err := s.UserByEmail(ctx, nobody.Email); return err }},
		// The store compares emails exactly; the service lowercases them.
		{"UserByEmail in another case", func() error { _, err := s.UserByEmail(ctx, "Alice@Example.com"); return err }},
		{"UpdateUser", func() error { return s.UpdateUser(ctx, nobody, userEvent(nobody, "user.roles")) }},
		{"ListUsers of a missing org", func() error { _, err := s.ListUsers(ctx, "ghost"); return err }},
		{"GetSession", func() error { _, err := s.GetSession(ctx, strings.Repeat("ab", 32)); return err }},
		{"CreateSession of a missing user", func() error { return s.CreateSession(ctx, newSession("s1", nobody.ID)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name, tc.call(), fault.NotFound)
		})
	}
	if err := s.UpdateUser(ctx, nobody, userEvent(nobody, "user.roles")); fault.As(err) == nil || fault.As(err).Resource != "user "+nobody.ID {
		t.Errorf("UpdateUser(ctx, %s) = %v, want resource %q", nobody.ID, err, "user "+nobody.ID)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("audit log of acme has %d events, want 2 (no event for the missing user)", len(evs))
	}
}

func testListUsers(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	createOrg(t, s, "globex")
	createOrg(t, s, "empty")
	users := []auth.User{ // created out of email order
		newUser("usr_1", "acme", "zoe@acme.example", auth.RoleMember),
		newUser("usr_2", "globex", "bob@globex.example", auth.RoleAdmin),
		newUser("usr_3", "acme", "alice@acme.example", auth.RoleAdmin),
		newUser("usr_4", "", "ops@example.com", auth.RoleOperator),
		newUser("usr_5", "acme", "mallory@acme.example", auth.RoleKeyAdmin, auth.RoleMember),
		newUser("usr_6", "", "admin@example.com", auth.RoleOperator),
	}
	for _, u := range users {
		createUser(t, s, u)
	}
	for _, tc := range []struct {
		org  string
		want []auth.User
	}{
		{"acme", []auth.User{users[2], users[4], users[0]}},
		{"globex", []auth.User{users[1]}},
		{"", []auth.User{users[5], users[3]}}, // platform users only
		{"empty", nil},
	} {
		got, err := s.ListUsers(ctx, tc.org)
		if err != nil {
			t.Fatalf("ListUsers(ctx, %q) = %v", tc.org, err)
		}
		if !slices.Equal(userIDs(got), userIDs(tc.want)) {
			t.Errorf("ListUsers(ctx, %q) = %v, want %v", tc.org, userIDs(got), userIDs(tc.want))
			continue
		}
		for i := range got {
			checkUser(t, got[i], tc.want[i])
		}
	}
}

func testUpdateUser(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	bob := newUser("usr_bob", "acme", "bob@example.com", auth.RoleMember)
	ops := newUser("usr_ops", "", "ops@example.com", auth.RoleOperator)
	for _, u := range []auth.User{alice, bob, ops} {
		createUser(t, s, u)
	}
	want := alice
	want.Name = "Alice Liddell"
	want.Roles = []auth.Role{auth.RoleMember, auth.RoleKeyAdmin}
	want.PasswordHash = "$argon2id$v=19$m=65536,t=3,p=2$bmV3$bmV3"
	want.Disabled = true
	in := want
	// Only Name, Roles, PasswordHash and Disabled are replaced.
	in.OrgID, in.Email, in.CreatedAt = "", "mallory@example.com", base.Add(time.Hour)
	ev := event("acme", "user.roles", "user/alice@example.com")
	ev.Details = map[string]string{"from": "admin", "to": "member,key_admin"}
	if err := s.UpdateUser(ctx, in, ev); err != nil {
		t.Fatalf("UpdateUser(ctx, alice) = %v", err)
	}
	got, err := s.GetUser(ctx, alice.ID)
	if err != nil {
		t.Fatalf("GetUser(ctx, alice) = %v", err)
	}
	checkUser(t, got, want)
	if got, err := s.UserByEmail(ctx, alice.Email); err != nil || got.ID != alice.ID {
		t.Errorf("UserByEmail(ctx, %s) after an update = %+v, %v", alice.Email, got, err)
	}
	got, err = s.GetUser(ctx, bob.ID)
	if err != nil {
		t.Fatalf("GetUser(ctx, bob) = %v", err)
	}
	checkUser(t, got, bob) // untouched

	// Enabling again, and clearing the roles.
	want.Disabled, want.Roles = false, nil
	if err := s.UpdateUser(ctx, want, audit.Event{Time: base, Actor: "user:admin", Action: "user.enable", Target: "user/alice@example.com"}); err != nil {
		t.Fatalf("UpdateUser(ctx, alice) again = %v", err)
	}
	if got, err := s.GetUser(ctx, alice.ID); err != nil {
		t.Fatalf("GetUser(ctx, alice) = %v", err)
	} else {
		checkUser(t, got, want)
	}
	evs := auditLog(t, s, "acme")
	if len(evs) != 5 {
		t.Fatalf("audit log of acme has %d events, want 5", len(evs))
	}
	ev.Seq = 4
	checkEvent(t, evs[3], ev)
	if evs[4].Action != "user.enable" {
		t.Errorf("audit event 5 of acme = %+v, want user.enable (an event without org ID goes to the user's chain)", evs[4])
	}

	// A platform user's changes go to the platform chain.
	ops.Roles = []auth.Role{auth.RoleOperator}
	ops.Disabled = true
	if err := s.UpdateUser(ctx, ops, userEvent(ops, "user.disable")); err != nil {
		t.Fatalf("UpdateUser(ctx, ops) = %v", err)
	}
	if evs := auditLog(t, s, audit.Platform); len(evs) != 2 || evs[1].Action != "user.disable" {
		t.Errorf("audit log of %s = %+v, want user.create and user.disable", audit.Platform, evs)
	}
	if got, err := s.GetUser(ctx, ops.ID); err != nil || !got.Disabled {
		t.Errorf("GetUser(ctx, ops) = %+v, %v; want disabled", got, err)
	}
}

// testUserAuditFails makes the audit write of a user change fail inside
// its transaction and checks that the change was not stored either.
func testUserAuditFails(t *testing.T, s UsersStore) {
	f, ok := s.(AuditFailer)
	if !ok {
		t.Fatal("the store under test must implement storetest.AuditFailer, so the suite can prove that a user change and its audit event are atomic")
	}
	ctx := t.Context()
	createOrg(t, s, "acme")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	createUser(t, s, alice)
	f.FailAudit(t, "boom")

	changed := alice
	changed.Name, changed.Roles, changed.PasswordHash, changed.Disabled = "Changed", []auth.Role{auth.RoleMember}, "changed", true
	if err := s.UpdateUser(ctx, changed, userEvent(alice, "boom")); err == nil {
		t.Errorf("UpdateUser with a failing audit write = nil")
	}
	got, err := s.GetUser(ctx, alice.ID)
	if err != nil {
		t.Fatalf("GetUser(ctx, alice) = %v", err)
	}
	checkUser(t, got, alice)

	bob := newUser("usr_bob", "acme", "bob@example.com", auth.RoleMember)
	if err := s.CreateUser(ctx, bob, userEvent(bob, "boom")); err == nil {
		t.Errorf("CreateUser with a failing audit write = nil")
	}
	if _, err := s.UserByEmail(ctx, bob.Email); fault.KindOf(err) != fault.NotFound {
		t.Errorf("UserByEmail(ctx, bob) after a failed create kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
	if evs := auditLog(t, s, "acme"); len(evs) != 2 {
		t.Errorf("audit log of acme has %d events, want 2", len(evs))
	}
	// The email is free: the failed create left nothing behind.
	createUser(t, s, bob)
}

// newSession returns a session of user; name seeds its ID, which looks
// like the hex SHA-256 the service stores.
func newSession(name, user string) auth.Session {
	return auth.Session{ID: fmt.Sprintf("%064x", material("session/"+name, 32)), UserID: user, CSRF: "csrf-" + name,
		CreatedAt: base.Add(time.Microsecond), ExpiresAt: base.Add(8*time.Hour + 999*time.Nanosecond)}
}

func checkSession(t *testing.T, got, want auth.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.CSRF != want.CSRF ||
		!got.CreatedAt.Equal(micro(want.CreatedAt)) || !got.ExpiresAt.Equal(micro(want.ExpiresAt)) {
		t.Errorf("session = %+v, want %+v (times truncated to µs)", got, want)
	}
}

func testSessions(t *testing.T, s UsersStore) {
	ctx := t.Context()
	createOrg(t, s, "acme")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	ops := newUser("usr_ops", "", "ops@example.com", auth.RoleOperator)
	createUser(t, s, alice)
	createUser(t, s, ops)
	a1, a2, o1 := newSession("a1", alice.ID), newSession("a2", alice.ID), newSession("o1", ops.ID)
	a2.ExpiresAt = base.Add(-time.Hour) // expired: still stored and returned
	for _, sess := range []auth.Session{a1, a2, o1} {
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatalf("CreateSession(ctx, %s) = %v", sess.CSRF, err)
		}
	}
	for _, want := range []auth.Session{a1, a2, o1} {
		got, err := s.GetSession(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetSession(ctx, %s) = %v", want.CSRF, err)
		}
		checkSession(t, got, want)
	}
	dup := a1
	dup.CSRF = "other"
	checkKind(t, "CreateSession(ctx, duplicate ID)", s.CreateSession(ctx, dup), fault.Conflict)
	if got, err := s.GetSession(ctx, a1.ID); err != nil || got.CSRF != a1.CSRF {
		t.Errorf("GetSession(ctx, a1) after a conflicting create = %+v, %v; want it unchanged", got, err)
	}

	if err := s.DeleteSession(ctx, a1.ID); err != nil {
		t.Fatalf("DeleteSession(ctx, a1) = %v", err)
	}
	if _, err := s.GetSession(ctx, a1.ID); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetSession(ctx, a1) after DeleteSession kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
	if err := s.DeleteSession(ctx, a1.ID); err != nil {
		t.Errorf("DeleteSession(ctx, a1) twice = %v, want nil (signing out twice succeeds)", err)
	}

	a3 := newSession("a3", alice.ID)
	if err := s.CreateSession(ctx, a3); err != nil {
		t.Fatalf("CreateSession(ctx, a3) = %v", err)
	}
	if err := s.DeleteUserSessions(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUserSessions(ctx, alice) = %v", err)
	}
	for _, sess := range []auth.Session{a2, a3} {
		if _, err := s.GetSession(ctx, sess.ID); fault.KindOf(err) != fault.NotFound {
			t.Errorf("GetSession(ctx, %s) after DeleteUserSessions kind = %v (%v), want %v", sess.CSRF, fault.KindOf(err), err, fault.NotFound)
		}
	}
	got, err := s.GetSession(ctx, o1.ID)
	if err != nil {
		t.Fatalf("GetSession(ctx, o1) after alice's DeleteUserSessions = %v, want ops' session untouched", err)
	}
	checkSession(t, got, o1)
	if err := s.DeleteUserSessions(ctx, alice.ID); err != nil {
		t.Errorf("DeleteUserSessions(ctx, alice) without sessions = %v", err)
	}
	// The user is still there, and can sign in again.
	if _, err := s.GetUser(ctx, alice.ID); err != nil {
		t.Errorf("GetUser(ctx, alice) after DeleteUserSessions = %v", err)
	}
	if err := s.CreateSession(ctx, newSession("a4", alice.ID)); err != nil {
		t.Errorf("CreateSession(ctx, a4) = %v", err)
	}
}

func testUsersCancelledContext(t *testing.T, s UsersStore) {
	createOrg(t, s, "acme")
	alice := newUser("usr_alice", "acme", "alice@example.com", auth.RoleAdmin)
	createUser(t, s, alice)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	bob := newUser("usr_bob", "acme", "bob@example.com")
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"GetUser", func() error { _, err := s.GetUser(ctx, alice.ID); return err }},
		{"GetSession", func() error { _, err := s.GetSession(ctx, newSession("a", alice.ID).ID); return err }},
		{"CreateUser", func() error { return s.CreateUser(ctx, bob, userEvent(bob, "user.create")) }},
		{"CreateSession", func() error { return s.CreateSession(ctx, newSession("a", alice.ID)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkKind(t, tc.name+"(cancelled ctx)", tc.call(), fault.Unavailable)
		})
	}
	if _, err := s.GetUser(t.Context(), bob.ID); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetUser(ctx, bob) after a cancelled create kind = %v (%v), want %v", fault.KindOf(err), err, fault.NotFound)
	}
}
