package keys_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// Usage records carry first and last call times and count failed calls by
// their stable code.
func TestUsageRecordsOutcomesAndTimes(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := t.Context()
	if _, err := e.svc.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	e.advance(5 * time.Second)
	ct, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.advance(20 * time.Second)
	if _, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), ct.Bytes...)
	bad[len(bad)-1] ^= 1
	if _, _, err := e.svc.Decrypt(ctx, "svc", "acme", "default", bad, nil); fault.KindOf(err) != fault.Integrity {
		t.Fatalf("Decrypt(tampered) kind = %v, want integrity", fault.KindOf(err))
	}
	// Not key uses: an unknown key, an oversized item.
	e.svc.Encrypt(ctx, "svc", "acme", "nosuchkey", []byte("x"), nil)
	e.svc.Encrypt(ctx, "svc", "acme", "default", make([]byte, keys.MaxPlaintext+1), nil)
	// A refusal by the API's authorization, recorded by it.
	e.svc.RecordRefused(ctx, "acme", "default", "decrypt", "token:intruder", &fault.Error{Kind: fault.Forbidden})
	e.svc.RecordRefused(ctx, "nosuchorg", "default", "decrypt", "token:intruder", &fault.Error{Kind: fault.Forbidden})
	if err := e.svc.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	us, err := e.svc.QueryUsage(ctx, "acme", keys.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	m := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	type row struct {
		op, who, outcome string
		n                int64
		first, last      time.Time
	}
	want := []row{
		{"encrypt", "svc", "ok", 2, m.Add(5 * time.Second), m.Add(25 * time.Second)},
		{"decrypt", "token:intruder", "permission_denied", 1, m.Add(25 * time.Second), m.Add(25 * time.Second)},
		{"decrypt", "svc", "ciphertext_invalid", 1, m.Add(25 * time.Second), m.Add(25 * time.Second)},
	}
	if len(us) != len(want) {
		t.Fatalf("usage = %+v, want %+v", us, want)
	}
	for i, u := range us {
		g := row{u.Op, u.Principal, u.Outcome, u.Count, u.First, u.Last}
		if g.op != want[i].op || g.who != want[i].who || g.outcome != want[i].outcome || g.n != want[i].n || !g.first.Equal(want[i].first) || !g.last.Equal(want[i].last) {
			t.Errorf("usage[%d] = %+v, want %+v", i, g, want[i])
		}
	}
	if o, err := e.svc.QueryUsage(ctx, "nosuchorg", keys.UsageFilter{}); fault.KindOf(err) != fault.NotFound {
		t.Errorf("QueryUsage(nosuchorg) = %+v, %v, want not_found", o, err)
	}
}

func TestQueryUsageBadFilters(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := t.Context()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	now := time.Now()
	for _, tc := range []struct {
		name  string
		f     keys.UsageFilter
		field string
	}{
		{"until before since", keys.UsageFilter{Since: now, Until: now.Add(-time.Hour)}, "until"},
		{"op", keys.UsageFilter{Op: "sign"}, "op"},
		{"outcome", keys.UsageFilter{Outcome: "exploded"}, "outcome"},
		{"key", keys.UsageFilter{Key: "no/slash"}, "key"},
		{"limit", keys.UsageFilter{Limit: keys.MaxUsagePage + 1}, "limit"},
	} {
		_, err := e.svc.QueryUsage(ctx, "acme", tc.f)
		if fe := fault.As(err); fe == nil || fe.Kind != fault.Invalid || fe.Field != tc.field {
			t.Errorf("QueryUsage(%s) = %v, want invalid_argument on %s", tc.name, err, tc.field)
		}
	}
}

// The retention cleanup deletes records older than the retention period,
// at most once per interval (the claim), and keeps newer ones.
func TestCleanupUsageRetention(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := t.Context()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	if _, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	e.svc.FlushUsage(ctx)
	e.advance(keys.DefaultUsageRetention - time.Hour)
	if _, err := e.svc.Encrypt(ctx, "svc", "acme", "payments-not-here", []byte("x"), nil); err == nil {
		t.Fatal("encrypt under a missing key succeeded")
	}
	if _, _, err := e.svc.Decrypt(ctx, "svc", "acme", "default", []byte("junk"), nil); err == nil {
		t.Fatal("decrypt of junk succeeded")
	}
	e.svc.FlushUsage(ctx)
	n, ran, err := e.svc.CleanupUsage(ctx)
	if err != nil || !ran || n != 0 {
		t.Fatalf("CleanupUsage(before retention ends) = %d, %v, %v, want 0 deleted", n, ran, err)
	}
	e.advance(2 * time.Hour) // the first record is now older than the retention
	n, ran, err = e.svc.CleanupUsage(ctx)
	if err != nil || !ran || n != 1 {
		t.Fatalf("CleanupUsage(after retention) = %d, %v, %v, want 1 deleted", n, ran, err)
	}
	if _, ran, _ := e.svc.CleanupUsage(ctx); ran {
		t.Error("CleanupUsage ran twice in one interval")
	}
	us, err := e.svc.QueryUsage(ctx, "acme", keys.UsageFilter{})
	if err != nil || len(us) != 1 || us[0].Outcome != "ciphertext_invalid" {
		t.Errorf("after cleanup usage = %+v, %v, want the recent decrypt failure only", us, err)
	}
}

// BenchmarkEncryptUsage measures the cost of usage recording on the data
// path: the same encryption with recording on and off, in the same run,
// single-threaded and with every CPU (contended counters).
func BenchmarkEncryptUsage(b *testing.B) {
	for _, mode := range []struct {
		name string
		off  bool
	}{{"usage=on", false}, {"usage=off", true}} {
		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(b.TempDir(), "k.db")})
		if err != nil {
			b.Fatal(err)
		}
		fake := masterkeytest.NewFake()
		ref := fake.CreateKey("platform")
		reg := masterkey.NewRegistry()
		log := slog.New(slog.DiscardHandler)
		reg.Register(masterkeytest.FakeDriver(), masterkey.NewKeeper("fake", fake, masterkey.KeeperOptions{Logger: log}))
		svc, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: ref, CacheTTL: time.Hour, Logger: log, NoUsage: mode.off})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := svc.CreateOrg(ctx, "test", "acme", ""); err != nil {
			b.Fatal(err)
		}
		pt := make([]byte, 1024)
		b.Run(mode.name+"/serial", func(b *testing.B) {
			for b.Loop() {
				if _, err := svc.Encrypt(ctx, "svc", "acme", "default", pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := svc.Encrypt(ctx, "svc", "acme", "default", pt, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		svc.Close(ctx)
		st.Close()
	}
}
