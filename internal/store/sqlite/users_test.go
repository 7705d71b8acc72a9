package sqlite

import (
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/fault"
)

func TestDeleteExpiredSessions(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	u := auth.User{ID: "usr_ops", Email: "ops@example.com", Roles: []auth.Role{auth.RoleOperator}, CreatedAt: now}
	if err := s.CreateUser(ctx, u, audit.Event{Time: now, Action: "user.create"}); err != nil {
		t.Fatalf("CreateUser = %v", err)
	}
	sessions := map[string]time.Duration{ // ID → expiry relative to now
		"expired-long-ago": -time.Hour,
		"expired-just-now": 0, // a session is live while now < ExpiresAt
		"live-1us":         time.Microsecond,
		"live":             time.Hour,
	}
	for id, d := range sessions {
		if err := s.CreateSession(ctx, auth.Session{ID: id, UserID: u.ID, CSRF: "c", CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(d)}); err != nil {
			t.Fatalf("CreateSession(%s) = %v", id, err)
		}
	}
	n, err := s.DeleteExpiredSessions(ctx, now)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSessions(ctx, now) = %d, %v; want 2", n, err)
	}
	for id, d := range sessions {
		_, err := s.GetSession(ctx, id)
		switch {
		case d <= 0 && fault.KindOf(err) != fault.NotFound:
			t.Errorf("GetSession(%s) after the purge kind = %v (%v), want %v", id, fault.KindOf(err), err, fault.NotFound)
		case d > 0 && err != nil:
			t.Errorf("GetSession(%s) after the purge = %v, want the live session", id, err)
		}
	}
	if n, err := s.DeleteExpiredSessions(ctx, now); err != nil || n != 0 {
		t.Errorf("DeleteExpiredSessions(ctx, now) again = %d, %v; want 0", n, err)
	}
}

// TestUsersSchema checks what the schema enforces beneath the Go checks:
// platform users are NULL, not ”, org users name a real org, and a
// session goes with its user.
func TestUsersSchema(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	insert := func(id, org string) error {
		_, err := s.DB().ExecContext(ctx, `INSERT INTO users (id, org_id, email, name, roles, password_hash, created_at, disabled)
			VALUES (?, ?, ?, '', '', '', '2026-01-01T00:00:00.000000Z', 0)`, id, org, id+"@example.com")
		return err
	}
	if err := insert("empty-org", ""); err == nil {
		t.Errorf("a user with org_id '' was stored, want the CHECK to refuse it")
	}
	if err := insert("ghost-org", "ghost"); err == nil {
		t.Errorf("a user of a missing org was stored, want the foreign key to refuse it")
	}
	u := auth.User{ID: "usr_ops", Email: "ops@example.com", Roles: []auth.Role{auth.RoleOperator}}
	if err := s.CreateUser(ctx, u, audit.Event{Action: "user.create"}); err != nil {
		t.Fatalf("CreateUser = %v", err)
	}
	var org any
	if err := s.DB().QueryRowContext(ctx, `SELECT org_id FROM users WHERE id = 'usr_ops'`).Scan(&org); err != nil || org != nil {
		t.Errorf("org_id of a platform user = %v (%v), want NULL", org, err)
	}
	if err := s.CreateSession(ctx, auth.Session{ID: "s", UserID: u.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("CreateSession = %v", err)
	}
	if _, err := s.DB().ExecContext(ctx, `DELETE FROM users WHERE id = 'usr_ops'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "s"); fault.KindOf(err) != fault.NotFound {
		t.Errorf("GetSession after deleting its user kind = %v (%v), want %v (ON DELETE CASCADE)", fault.KindOf(err), err, fault.NotFound)
	}
}
