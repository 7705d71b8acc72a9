package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

func TestClassify(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "server says " + code} }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		err       error
		wantKind  fault.Kind
		wantRetry bool // Unavailable with a Retry-After
	}{
		{"no rows", nil, sql.ErrNoRows, fault.NotFound, false},
		{"no rows wrapped", nil, fmt.Errorf("scan: %w", sql.ErrNoRows), fault.NotFound, false},
		{"unique violation", nil, pg(codeUniqueViolation), fault.Conflict, false},
		{"NUL in text", nil, pg(codeBadEncoding), fault.Invalid, false},
		{"serialization failure", nil, pg(codeSerializationFailure), fault.Unavailable, true},
		{"deadlock", nil, pg(codeDeadlockDetected), fault.Unavailable, true},
		{"statement timeout", nil, pg(codeQueryCanceled), fault.Unavailable, true},
		{"lock timeout", nil, pg(codeLockNotAvailable), fault.Unavailable, true},
		{"read-only standby", nil, pg(codeReadOnlyTransaction), fault.Unavailable, true},
		{"wrong password", nil, pg(codeInvalidPassword), fault.Unavailable, true},
		{"unknown database", nil, pg(codeUnknownDatabase), fault.Unavailable, true},
		{"admin shutdown", nil, pg("57P01"), fault.Unavailable, true},
		{"cannot connect now", nil, pg("57P03"), fault.Unavailable, true},
		{"connection failure", nil, pg("08006"), fault.Unavailable, true},
		{"too many connections", nil, pg("53300"), fault.Unavailable, true},
		{"disk full", nil, pg("53100"), fault.Unavailable, true},
		{"syntax error (a bug)", nil, pg("42601"), fault.Internal, false},
		{"check violation (a bug)", nil, pg("23514"), fault.Internal, false},
		{"connection refused", nil, opErr, fault.Unavailable, true},
		{"connection lost", nil, io.ErrUnexpectedEOF, fault.Unavailable, true},
		{"bad connection", nil, fmt.Errorf("query: %w", sql.ErrConnDone), fault.Unavailable, true},
		// A connection the driver closed under a transaction (the server
		// went away mid-call): "conn closed".
		{"connection closed", nil, fmt.Errorf("commit: %w", pgconn.ErrConnClosed), fault.Unavailable, true},
		{"cancelled ctx", cancelled, errors.New("whatever the driver says"), fault.Unavailable, false},
		{"deadline", nil, context.DeadlineExceeded, fault.Unavailable, false},
		{"unknown", nil, errors.New("something else"), fault.Internal, false},
		{"fault passes through", nil, &fault.Error{Kind: fault.Conflict, Reason: "kept"}, fault.Conflict, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := classify(ctx, "get org", "org acme", tc.err)
			fe := fault.As(err)
			if fe == nil {
				t.Fatalf("classify(%v) = %T %v, want a *fault.Error", tc.err, err, err)
			}
			if fe.Kind != tc.wantKind {
				t.Errorf("classify(%v) kind = %v, want %v", tc.err, fe.Kind, tc.wantKind)
			}
			if got := fe.Kind == fault.Unavailable && fe.RetryAfter > 0; got != tc.wantRetry {
				t.Errorf("classify(%v) = kind %v Retry-After %v; want a Retry-After: %v", tc.err, fe.Kind, fe.RetryAfter, tc.wantRetry)
			}
			if fe.Kind != fault.Internal && tc.name != "fault passes through" && !errors.Is(err, tc.err) && tc.ctx == nil && fe.Kind != fault.NotFound {
				t.Errorf("classify(%v) does not wrap the driver error", tc.err)
			}
			if msg := fault.Message(err); strings.Contains(msg, "server says") || strings.Contains(msg, "127.0.0.1") {
				t.Errorf("classify(%v) message %q shows the driver's text", tc.err, msg)
			}
		})
	}
	if classify(context.Background(), "op", "r", nil) != nil {
		t.Errorf("classify(nil) != nil")
	}
}

func TestPoolConfigDefaults(t *testing.T) {
	const u = "postgres://orgkms:pw@db.example:5432/orgkms?sslmode=disable"
	for _, tc := range []struct {
		name        string
		cfg         Config
		maxConns    int32
		connect     time.Duration
		stmtTimeout string
	}{
		{"defaults", Config{URL: u}, DefaultMaxConns, DefaultConnectTimeout, "30000"},
		{"set", Config{URL: u, MaxConns: 3, ConnectTimeout: time.Second, StatementTimeout: 1500 * time.Millisecond}, 3, time.Second, "1500"},
		{"no statement timeout", Config{URL: u, StatementTimeout: -1}, DefaultMaxConns, DefaultConnectTimeout, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, secret, err := poolConfig(tc.cfg)
			if err != nil {
				t.Fatalf("poolConfig = %v", err)
			}
			rp := pc.ConnConfig.RuntimeParams
			if pc.MaxConns != tc.maxConns || pc.ConnConfig.ConnectTimeout != tc.connect || rp["statement_timeout"] != tc.stmtTimeout ||
				rp["timezone"] != "UTC" || rp["application_name"] != "orgkms" || secret != "pw" {
				t.Errorf("poolConfig = max %d connect %v statement_timeout %q timezone %q application %q secret %q; want %d %v %q UTC orgkms pw",
					pc.MaxConns, pc.ConnConfig.ConnectTimeout, rp["statement_timeout"], rp["timezone"], rp["application_name"], secret,
					tc.maxConns, tc.connect, tc.stmtTimeout)
			}
		})
	}
	for _, tc := range []struct {
		name, field string
		cfg         Config
	}{
		{"empty URL", "database", Config{}},
		{"not postgres", "database", Config{URL: "mysql://u:pw@h/db"}},
		{"key=value form", "database", Config{URL: "host=h password=pw"}},
		{"negative pool", "max_conns", Config{URL: u, MaxConns: -1}},
		{"negative connect timeout", "connect_timeout", Config{URL: u, ConnectTimeout: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(t.Context(), tc.cfg)
			if fe := fault.As(err); fe == nil || fe.Kind != fault.Invalid || fe.Field != tc.field {
				t.Errorf("Open(%s) = %v, want Invalid naming field %s", tc.name, err, tc.field)
			}
		})
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// TestOpenErrorsHideThePassword opens stores that fail, with a password
// that must appear in no error, message and log line.
func TestOpenErrorsHideThePassword(t *testing.T) {
	const secret = "Zq9-xK3v-wrong-Pw7"
	real, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	realPw, _ := real.User.Password()
	withPw := func(u url.URL, pw string) url.URL { u.User = url.UserPassword(u.User.Username(), pw); return u }
	wrongPw := withPw(*real, secret)
	unreachable := withPw(*real, secret)
	unreachable.Host = fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	noDB := *real
	noDB.Path = "/no_such_database"
	for _, tc := range []struct {
		name     string
		url      string
		hide     string
		wantKind fault.Kind
	}{
		{"wrong password", wrongPw.String(), secret, fault.Unavailable},
		{"unreachable host", unreachable.String(), secret, fault.Unavailable},
		{"unknown database", noDB.String(), realPw, fault.Unavailable},
		{"malformed port", "postgres://orgkms:" + secret + "@127.0.0.1:notaport/orgkms", secret, fault.Invalid},
		{"bad parameter", "postgres://orgkms:" + secret + "@127.0.0.1:5432/orgkms?sslmode=bogus", secret, fault.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &logRecorder{}
			s, err := Open(t.Context(), Config{URL: tc.url, Logger: slog.New(rec)})
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) = nil error", tc.name)
			}
			if got := fault.KindOf(err); got != tc.wantKind {
				t.Errorf("Open(%s) kind = %v (%v), want %v", tc.name, got, err, tc.wantKind)
			}
			for what, text := range map[string]string{
				"error": err.Error(), "%+v": fmt.Sprintf("%+v", err), "%#v": fmt.Sprintf("%#v", err),
				"message": fault.Message(err), "log": rec.text.String(),
			} {
				if strings.Contains(text, tc.hide) {
					t.Errorf("Open(%s): the %s contains the password: %s", tc.name, what, text)
				}
			}
			if msg := fault.Message(err); strings.Contains(msg, "127.0.0.1") {
				t.Errorf("Open(%s) message %q names the database host", tc.name, msg)
			}
		})
	}
}

func TestStatementTimeout(t *testing.T) {
	s, err := Open(t.Context(), Config{URL: pgtest.URL(t), StatementTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v any
	err = s.DB().QueryRowContext(t.Context(), `SELECT pg_sleep(120)`).Scan(&v)
	err = classify(t.Context(), "sleep", "database", err)
	if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter <= 0 || !strings.Contains(fe.Reason, "statement timeout") {
		t.Errorf("a statement past the statement timeout = %v, want Unavailable with a Retry-After naming the timeout", err)
	}
}

// TestInTxRetries runs transactions that the server aborts with a
// serialization failure: run again, they succeed; failing every time, they
// end as Unavailable.
func TestInTxRetries(t *testing.T) {
	s := openFresh(t)
	abort := `DO $$ BEGIN RAISE EXCEPTION 'could not serialize' USING ERRCODE = 'serialization_failure'; END $$`
	attempts := 0
	err := s.inTx(t.Context(), "test", func(tx *sql.Tx) error {
		attempts++
		if attempts < 3 {
			_, err := tx.ExecContext(t.Context(), abort)
			return classify(t.Context(), "test", "x", err)
		}
		return nil
	})
	if err != nil || attempts != 3 {
		t.Errorf("inTx(fails twice, then succeeds) = %v after %d attempts, want nil after 3", err, attempts)
	}
	attempts = 0
	err = s.inTx(t.Context(), "test", func(tx *sql.Tx) error {
		attempts++
		_, err := tx.ExecContext(t.Context(), abort)
		return err
	})
	if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable || fe.RetryAfter <= 0 || attempts != txAttempts {
		t.Errorf("inTx(always fails) = %v after %d attempts, want Unavailable with a Retry-After after %d", err, attempts, txAttempts)
	}
	attempts = 0
	err = s.inTx(t.Context(), "test", func(tx *sql.Tx) error {
		attempts++
		_, err := tx.ExecContext(t.Context(), `SELECT 1/0`)
		return err
	})
	if fault.KindOf(err) != fault.Internal || attempts != 1 {
		t.Errorf("inTx(division by zero) = %v after %d attempts, want Internal after 1: only aborts for serializability are retried", err, attempts)
	}
}

// TestConnectionsTerminated kills the store's connections on the server
// (an administrator, a failover): calls answer Unavailable, never another
// kind, until the pool has reconnected, and then work.
func TestConnectionsTerminated(t *testing.T) {
	url := pgtest.URL(t)
	s := openURL(t, url)
	ctx := t.Context()
	if _, err := s.AppendAudit(ctx, auditEvent("acme")); err != nil {
		t.Fatal(err)
	}
	admin := openURL(t, url)
	var killed int
	if err := admin.DB().QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'orgkms'`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed == 0 {
		t.Fatal("no connection of the store was terminated")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := s.AuditEvents(ctx, "acme", 0, 0)
		if err == nil {
			break
		}
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Unavailable {
			t.Fatalf("AuditEvents after the connections were terminated = %v, want Unavailable until it recovers", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("AuditEvents still fails 2 minutes after the connections were terminated: %v", err)
		}
		<-time.After(10 * time.Millisecond) // poll
	}
	if _, err := s.AppendAudit(ctx, auditEvent("acme")); err != nil {
		t.Errorf("AppendAudit after reconnecting = %v", err)
	}
}
