package platformkey_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/platformkey"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// slowKey is the local key driver with a delay added to every wrap and
// unwrap (a remote platform key: a vault, an HSM across the network),
// counting the calls.
type slowKey struct {
	*localkey.Provider
	delay          time.Duration
	wraps, unwraps atomic.Int64
}

func (s *slowKey) Wrap(ctx context.Context, key masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	s.wraps.Add(1)
	time.Sleep(s.delay)
	return s.Provider.Wrap(ctx, key, dek, aad)
}

func (s *slowKey) Unwrap(ctx context.Context, key masterkey.Ref, ct, aad []byte) ([]byte, error) {
	s.unwraps.Add(1)
	time.Sleep(s.delay)
	return s.Provider.Unwrap(ctx, key, ct, aad)
}

// BenchmarkPlatformRewrap measures the re-wrap of N platform orgs after a
// rotation of the platform key (a new version of the local key file), with
// 10 ms added to every wrap and unwrap, on each store: from the check that
// starts the job to every org on the new version. It reports the master-key
// calls per org. Run it with:
//
//	go test ./internal/platformkey/ -run '^$' -bench PlatformRewrap -benchtime 1x -timeout 30m
//
// (PostgreSQL: eval "$(bash .ci/postgres.sh)" first.) store=…, orgs=N
// and cache=warm|cold pick the store, the size, and whether the orgs are
// in use (their root keys in this node's cache, so the job unwraps only to
// verify: one unwrap per org) or idle (two: the old wrapping, then the
// check).
func BenchmarkPlatformRewrap(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, n := range []int{1000, 10000} {
			for _, cache := range []string{"warm", "cold"} {
				b.Run(fmt.Sprintf("store=%s/orgs=%d/cache=%s", backend, n, cache), func(b *testing.B) { benchPlatformRewrap(b, backend, n, cache == "warm") })
			}
		}
	}
}

// benchPlatformRewrap is one run of BenchmarkPlatformRewrap: n orgs on
// backend, their root keys in this node's cache (warm: orgs in use) or not.
func benchPlatformRewrap(b *testing.B, backend string, n int, warm bool) {
	ctx := context.Background()
	var st platformkey.Store
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "k.db")})
		if err != nil {
			b.Fatal(err)
		}
		st = s
	case "postgres":
		s, err := postgres.Open(ctx, postgres.Config{URL: pgtest.URL(b)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		st = s
	}
	b.Cleanup(func() { st.(interface{ Close() error }).Close() })
	log := slog.New(slog.DiscardHandler)
	slow := &slowKey{Provider: localkey.New(localkey.Config{})}
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, slow, masterkey.KeeperOptions{Logger: log}))
	platform := localKey(b, b.TempDir(), "master.key")
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log, CacheTTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ks.Close(context.Background()) })
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := ks.CreateOrg(ctx, "bench", fmt.Sprintf("org-%05d", i), ""); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	if warm {
		// Orgs in use: each has loaded its root key once (an
		// unwrap through the data path, before the timer).
		for i := range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				root, err := ks.RootKey(ctx, fmt.Sprintf("org-%05d", i))
				if err != nil {
					b.Error(err)
				}
				clear(root)
			})
		}
		wg.Wait()
	}
	if _, err := localkey.AddVersion(platform.ID); err != nil {
		b.Fatal(err)
	}
	svc, err := platformkey.New(platformkey.Config{Store: st, Keys: ks, Keepers: reg, NodeID: "bench", Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	slow.delay = benchDelay
	slow.wraps.Store(0)
	slow.unwraps.Store(0)
	b.ResetTimer()
	start := time.Now()
	if _, err := svc.Check(ctx); err != nil {
		b.Fatal(err)
	}
	if err := svc.RunPending(ctx); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	b.StopTimer()
	cur, _ := svc.Current(ctx)
	counts, err := st.WrappingCounts(ctx)
	if err != nil || len(counts) != 1 || counts[0].Key != cur || counts[0].Orgs != n {
		b.Fatalf("wrappings after the re-wrap = %+v, %v; want %d on %v", counts, err, n, cur)
	}
	b.ReportMetric(took.Seconds(), "s/rewrap")
	b.ReportMetric(float64(slow.wraps.Load())/float64(n), "wraps/org")
	b.ReportMetric(float64(slow.unwraps.Load())/float64(n), "unwraps/org")
	b.Logf("%s: %d orgs re-wrapped to the new platform key version in %v (cache warm: %v)", backend, n, took.Round(time.Millisecond), warm)
}

// benchDelay is the delay added to every master-key call of the benchmark.
var benchDelay = 10 * time.Millisecond
