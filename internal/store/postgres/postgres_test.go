package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"

	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
	"github.com/orgkms/orgkms/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openURL opens a store on url and closes it with t.
func openURL(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{URL: url})
	if err != nil {
		t.Fatalf("Open(fresh schema) = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

// openFresh opens a store on a new, empty schema.
func openFresh(t testing.TB) *Store {
	t.Helper()
	return openURL(t, pgtest.URL(t))
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openFresh(t) })
}

func TestCMKStore(t *testing.T) {
	storetest.RunCMK(t, func(t *testing.T) storetest.CMKStore {
		url := pgtest.URL(t)
		return peered{openURL(t, url), url}
	})
}

// peered gives a Store the suite's [storetest.Peer] capability: a second
// store on the same schema, as a second node opens it.
type peered struct {
	*Store
	url string
}

func (p peered) Peer(t *testing.T) storetest.CMKStore { return openURL(t, p.url) }

func TestUsersStore(t *testing.T) {
	storetest.RunUsers(t, func(t *testing.T) storetest.UsersStore { return auditFailer{openFresh(t)} })
}

// auditFailer gives a Store the suite's [storetest.AuditFailer] capability,
// with a trigger that aborts the audit insert inside the change's
// transaction.
type auditFailer struct{ *Store }

func (s auditFailer) FailAudit(t *testing.T, action string) {
	t.Helper()
	name := fmt.Sprintf("fail_audit_%x", action)
	lit := "'" + strings.ReplaceAll(action, "'", "''") + "'"
	_, err := s.DB().ExecContext(t.Context(), `CREATE FUNCTION `+name+`() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit write failed'; END $$;
		CREATE TRIGGER `+name+` BEFORE INSERT ON audit_events FOR EACH ROW WHEN (NEW.action = `+lit+`) EXECUTE FUNCTION `+name+`()`)
	if err != nil {
		t.Fatalf("create trigger %s: %v", name, err)
	}
}

func auditEvent(org string) audit.Event {
	return audit.Event{OrgID: org, Time: time.Now(), Actor: "user:test", Action: "test.event", Target: "test"}
}

func TestPlatformKeyStore(t *testing.T) {
	storetest.RunPlatformKey(t, func(t *testing.T) storetest.PlatformStore {
		url := pgtest.URL(t)
		return platformPeered{openURL(t, url), url}
	})
}

// platformPeered gives a Store a second store on the same schema for the
// platform suite's concurrent claims.
type platformPeered struct {
	*Store
	url string
}

func (p platformPeered) PlatformPeer(t *testing.T) storetest.PlatformStore { return openURL(t, p.url) }

func TestWebhookStore(t *testing.T) {
	storetest.RunWebhooks(t, func(t *testing.T) storetest.WebhookStore {
		url := pgtest.URL(t)
		return webhookPeered{openURL(t, url), url}
	})
}

// webhookPeered gives a Store the suite's [storetest.WebhookPeer]
// capability.
type webhookPeered struct {
	*Store
	url string
}

func (p webhookPeered) WebhookPeer(t *testing.T) storetest.WebhookStore { return openURL(t, p.url) }
func TestStagedStore(t *testing.T) {
	storetest.RunStaged(t, func(t *testing.T) storetest.CMKStore {
		url := pgtest.URL(t)
		return peered{openURL(t, url), url}
	})
}

func TestShredStore(t *testing.T) {
	storetest.RunShred(t, func(t *testing.T) storetest.ShredStore { return openURL(t, pgtest.URL(t)) })
}
