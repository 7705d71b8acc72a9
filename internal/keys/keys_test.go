package keys_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

type env struct {
	svc   *keys.Service
	fake  *masterkeytest.Fake
	store *sqlite.Store
	now   *atomic.Int64 // unix nanos of the fake clock
}

func newEnv(t testing.TB, ttl time.Duration) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	fake := masterkeytest.NewFake()
	ref := fake.CreateKey("platform")
	reg := masterkey.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	reg.Register(masterkeytest.FakeDriver(), masterkey.NewKeeper("fake", fake, masterkey.KeeperOptions{Logger: log}))
	now := &atomic.Int64{}
	now.Store(time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC).UnixNano())
	svc, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: ref, CacheTTL: ttl, Logger: log,
		Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close(context.Background()); st.Close() })
	return &env{svc: svc, fake: fake, store: st, now: now}
}

func (e *env) advance(d time.Duration) { e.now.Add(int64(d)) }

func TestCacheSingleFlightAndTTL(t *testing.T) {
	e := newEnv(t, 5*time.Minute)
	ctx := t.Context()
	if _, err := e.svc.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	e.svc.Cache().PurgeAll()
	before := e.fake.Calls.Load()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := e.fake.Calls.Load() - before; got != 1 {
		t.Fatalf("50 concurrent cold encrypts made %d master-key calls, want 1", got)
	}
	e.advance(4 * time.Minute)
	e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	if got := e.fake.Calls.Load() - before; got != 1 {
		t.Fatalf("encrypt within TTL made %d calls in all, want 1", got)
	}
	e.advance(2 * time.Minute)
	e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	if got := e.fake.Calls.Load() - before; got != 2 {
		t.Fatalf("encrypt after TTL made %d calls in all, want 2", got)
	}
}

func TestPurgeStopsUseOfDisabledMasterKey(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := t.Context()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	ct, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.SetEnabled("platform", false)
	// Cached keys keep working until purged ...
	if _, _, err := e.svc.Decrypt(ctx, "svc", "acme", "default", ct.Bytes, nil); err != nil {
		t.Fatalf("Decrypt from cache: %v", err)
	}
	// ... and stop at once after a purge.
	e.svc.Cache().Purge("acme")
	if _, _, err := e.svc.Decrypt(ctx, "svc", "acme", "default", ct.Bytes, nil); fault.KindOf(err) != fault.KeyDisabled {
		t.Fatalf("Decrypt after purge with disabled master key kind = %v, want %v", fault.KindOf(err), fault.KeyDisabled)
	}
	e.fake.SetEnabled("platform", true)
	if _, _, err := e.svc.Decrypt(ctx, "svc", "acme", "default", ct.Bytes, nil); err != nil {
		t.Fatalf("Decrypt after re-enabling: %v", err)
	}
}

// blockingProvider blocks Unwrap until released, to race a purge against a load.
type blockingProvider struct {
	*masterkeytest.Fake
	entered chan struct{}
	release chan struct{}
	block   atomic.Bool
}

func (b *blockingProvider) Unwrap(ctx context.Context, key masterkey.Ref, ct, aad []byte) ([]byte, error) {
	if b.block.Load() {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Fake.Unwrap(ctx, key, ct, aad)
}

func TestPurgeDuringLoadWins(t *testing.T) {
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	bp := &blockingProvider{Fake: masterkeytest.NewFake(), entered: make(chan struct{}), release: make(chan struct{})}
	ref := bp.CreateKey("platform")
	reg := masterkey.NewRegistry()
	reg.Register(masterkeytest.FakeDriver(), masterkey.NewKeeper("fake", bp, masterkey.KeeperOptions{Logger: slog.New(slog.DiscardHandler)}))
	svc, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: ref})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(t.Context())
	if _, err := svc.CreateOrg(t.Context(), "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	bp.block.Store(true)
	done := make(chan error)
	go func() {
		_, err := svc.Encrypt(t.Context(), "svc", "acme", "default", []byte("x"), nil)
		done <- err
	}()
	<-bp.entered
	svc.Cache().Purge("acme")
	bp.block.Store(false)
	close(bp.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := svc.Cache().Len(); n != 0 {
		t.Fatalf("a load that raced a purge was cached (%d orgs cached), want 0", n)
	}
}

func TestCorruptStoredRootKeyIsInternal(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := t.Context()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	e.svc.Cache().PurgeAll()
	if _, err := e.store.DB().ExecContext(ctx, `UPDATE root_keys SET ciphertext = zeroblob(60) WHERE org_id = 'acme'`); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	if k := fault.KindOf(err); k != fault.Internal && k != fault.Invalid {
		t.Fatalf("Encrypt with a corrupted stored root key kind = %v, want internal", k)
	}
}

func TestUsageCountersAggregate(t *testing.T) {
	e := newEnv(t, time.Hour)
	ctx := t.Context()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	for range 7 {
		e.svc.Encrypt(ctx, "svc-a", "acme", "default", []byte("x"), nil)
	}
	items := []keys.Item{{Plaintext: []byte("a")}, {Plaintext: []byte("b")}, {Plaintext: make([]byte, keys.MaxPlaintext+1)}}
	if _, err := e.svc.EncryptBatch(ctx, "svc-a", "acme", "default", items); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	us, err := e.svc.Usage(ctx, "acme", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(us) != 1 || us[0].Count != 9 || us[0].Op != "encrypt" || us[0].Principal != "svc-a" {
		t.Fatalf("usage = %+v, want one counter of 9 encrypts by svc-a", us)
	}
}

// Benchmarks: the engine in-process against raw AES-256-GCM in the same run.

var sizes = []struct {
	name string
	n    int
}{{"64B", 64}, {"1KiB", 1024}, {"64KiB", 64 << 10}}

func BenchmarkServiceEncrypt(b *testing.B) {
	e := newEnv(b, time.Hour)
	ctx := context.Background()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	for _, sz := range sizes {
		pt := make([]byte, sz.n)
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := e.svc.Encrypt(ctx, "svc", "acme", "default", pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkServiceDecrypt(b *testing.B) {
	e := newEnv(b, time.Hour)
	ctx := context.Background()
	e.svc.CreateOrg(ctx, "test", "acme", "")
	for _, sz := range sizes {
		ct, err := e.svc.Encrypt(ctx, "svc", "acme", "default", make([]byte, sz.n), nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, _, err := e.svc.Decrypt(ctx, "svc", "acme", "default", ct.Bytes, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	for _, sz := range sizes {
		pt := make([]byte, sz.n)
		b.Run("Seal/"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			nonce := make([]byte, 12)
			for b.Loop() {
				rand.Read(nonce)
				g.Seal(make([]byte, 0, sz.n+28), nonce, pt, nil)
			}
		})
		nonce := make([]byte, 12)
		ct := g.Seal(nil, nonce, pt, nil)
		b.Run("Open/"+sz.name, func(b *testing.B) {
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := g.Open(nil, nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// An org's audit chain names the platform master key "platform", never its
// location: org admins export their chain, and a redacted export would no
// longer verify.
func TestAuditNamesThePlatformKeyWithoutItsLocation(t *testing.T) {
	e := newEnv(t, time.Minute)
	ctx := t.Context()
	if _, err := e.svc.CreateOrg(ctx, "op", "acme", ""); err != nil {
		t.Fatal(err)
	}
	evs, err := e.svc.AuditEvents(ctx, "acme", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	loc := e.svc.PlatformKey().String()
	for _, ev := range evs {
		for k, v := range ev.Details {
			if strings.Contains(v, loc) {
				t.Errorf("event %s detail %s = %q names the platform key's location %q", ev.Action, k, v, loc)
			}
		}
		if ev.Action == "org.create" && ev.Details["master_key"] != "platform" {
			t.Errorf("org.create master_key = %q, want platform", ev.Details["master_key"])
		}
	}
	if other := (masterkey.Ref{Provider: "azurekv", ID: "contoso-kv.vault.azure.net/keys/k"}); e.svc.AuditKeyName(other) != other.String() {
		t.Errorf("AuditKeyName(%v) = %q, want the customer key's ref", other, e.svc.AuditKeyName(other))
	}
}

// A failing platform key tells the org the error's code in the table's words
// about "the platform master key", never the driver's words: an HSM driver names its token and
// key labels, which are the platform's internals. The operator still finds
// them in the error chain the server logs.
func TestPlatformKeyFailureHidesDriverDetail(t *testing.T) {
	e := newEnv(t, 5*time.Minute)
	ctx := t.Context()
	if _, err := e.svc.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	e.svc.Cache().PurgeAll()
	const secret = "token hsm-prod-7 key platform-kek"
	e.fake.Fail = &fault.Error{Kind: fault.CredentialsInvalid, Resource: secret, Reason: "cannot log in to " + secret + ": PIN incorrect"}
	check := func(what string, err error) {
		t.Helper()
		if got := fault.KindOf(err); got != fault.CredentialsInvalid {
			t.Fatalf("%s: kind = %v, want the driver's kind, credentials_invalid (err: %v)", what, got, err)
		}
		if msg := fault.Message(err); strings.Contains(msg, "hsm-prod-7") || !strings.Contains(msg, "platform master key") {
			t.Errorf("%s: message %q names the driver's detail or not the platform key", what, msg)
		}
		if !strings.Contains(err.Error(), "hsm-prod-7") {
			t.Errorf("%s: the error chain %q lost the driver's detail the operator needs", what, err.Error())
		}
	}
	_, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	check("encrypt", err)
	_, err = e.svc.CreateOrg(ctx, "test", "globex", "")
	check("create org", err)

	e.fake.Fail = nil
	if _, err := e.svc.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err != nil {
		t.Fatalf("encrypt once the platform key is back: %v", err)
	}
}
