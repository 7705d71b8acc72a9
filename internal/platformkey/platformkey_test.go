package platformkey_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/masterkey/masterkeytest"
	"github.com/orgkms/orgkms/internal/platformkey"
	"github.com/orgkms/orgkms/internal/store/postgres"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// world is one node: a SQLite store, local platform keys and a fake
// provider standing in for customers' keys.
type world struct {
	t    testing.TB
	st   platformkey.Store
	reg  *masterkey.Registry
	fake *masterkeytest.Fake
	log  *slog.Logger
	cts  map[string][]byte // org → a ciphertext of its default key
	keys *keys.Service
	plat *platformkey.Service
}

func newWorld(t testing.TB) *world { return newWorldOn(t, "sqlite") }

// newWorldOn is newWorld on backend sqlite or postgres.
func newWorldOn(t testing.TB, backend string) *world {
	t.Helper()
	ctx := context.Background()
	var st platformkey.Store
	switch backend {
	case "sqlite":
		s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "k.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		st = s
	case "postgres":
		s, err := postgres.Open(ctx, postgres.Config{URL: pgtest.URL(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		st = s
	}
	log := slog.New(slog.DiscardHandler)
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	fake := masterkeytest.NewFake()
	reg.Register(masterkeytest.FakeDriver(), masterkey.NewKeeper("fake", fake, masterkey.KeeperOptions{Logger: log}))
	return &world{t: t, st: st, reg: reg, fake: fake, log: log, cts: map[string][]byte{}}
}

func localKey(t testing.TB, dir, name string) masterkey.Ref {
	t.Helper()
	p := filepath.Join(dir, name)
	if _, err := localkey.EnsureFile(p); err != nil {
		t.Fatal(err)
	}
	ref, err := localkey.ParseRef("local://" + p)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// open starts the node's services on platform (with previous keys).
func (w *world) open(nodeID string, platform masterkey.Ref, previous ...masterkey.Ref) {
	w.t.Helper()
	var err error
	w.keys, err = keys.New(keys.Config{Store: w.st, Keepers: w.reg, PlatformKey: platform, PreviousPlatformKeys: previous, Logger: w.log})
	if err != nil {
		w.t.Fatal(err)
	}
	k := w.keys
	w.t.Cleanup(func() { k.Close(context.Background()) })
	w.plat = w.service(nodeID, nil)
}

func (w *world) service(nodeID string, observer func(jobs.Event)) *platformkey.Service {
	w.t.Helper()
	s, err := platformkey.New(platformkey.Config{Store: w.st, Keys: w.keys, Keepers: w.reg, NodeID: nodeID, Batch: 7, Workers: 4,
		Lease: time.Minute, Observer: observer, Logger: w.log})
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) createOrgs(prefix string, n int) {
	w.t.Helper()
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		if _, err := w.keys.CreateOrg(ctx, "test", id, ""); err != nil {
			w.t.Fatal(err)
		}
		ct, err := w.keys.Encrypt(ctx, "svc", id, "default", []byte("secret of "+id), nil)
		if err != nil {
			w.t.Fatal(err)
		}
		w.cts[id] = ct.Bytes
	}
}

// versions counts active wrappings by key and version.
func (w *world) versions() map[masterkey.Ref]int {
	w.t.Helper()
	cs, err := w.st.WrappingCounts(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[masterkey.Ref]int{}
	for _, c := range cs {
		if c.State == keys.WrappingActive {
			out[c.Key] += c.Orgs
		} else {
			out[masterkey.Ref{Provider: "pending"}] += c.Orgs
		}
	}
	return out
}

// checkDecrypts decrypts every org's ciphertext on a cold cache.
func (w *world) checkDecrypts() {
	w.t.Helper()
	w.keys.Cache().PurgeAll()
	for id, ct := range w.cts {
		pt, _, err := w.keys.Decrypt(context.Background(), "svc", id, "default", ct, nil)
		if err != nil || string(pt) != "secret of "+id {
			w.t.Fatalf("Decrypt(%s) = %q, %v", id, pt, err)
		}
	}
}

func (w *world) checkAudit(org string, action string, want int) {
	w.t.Helper()
	evs, err := w.st.AuditEvents(context.Background(), org, 0, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := audit.Verify(evs); err != nil {
		w.t.Fatalf("audit chain of %s: %v", org, err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == action {
			n++
			for k, v := range e.Details {
				if len(v) > 0 && (filepath.IsAbs(v) || k == "key") {
					w.t.Fatalf("audit event %s of %s names a key location: %s=%q", e.Action, org, k, v)
				}
			}
		}
	}
	if n != want {
		w.t.Fatalf("audit chain of %s has %d %s events, want %d", org, n, action, want)
	}
}

func TestRotateLocalKeyRewrapsEveryPlatformOrg(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { testRotateLocalKey(t, backend) })
	}
}

func testRotateLocalKey(t *testing.T, backend string) {
	ctx := t.Context()
	w := newWorldOn(t, backend)
	platform := localKey(t, t.TempDir(), "master.key")
	w.open("node-1", platform)
	w.createOrgs("org", 20)
	// A CMK org: wrapped by a customer's key, its record active.
	cust := w.fake.CreateKey("customer-key")
	w.createCMKOrg("cmk-org", cust)
	if started, err := w.plat.Check(ctx); err != nil || started {
		t.Fatalf("Check before a rotation = %v, %v; want no job", started, err)
	}
	cur0, _ := w.plat.Current(ctx)

	v2, err := localkey.AddVersion(platform.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := w.plat.Current(ctx)
	if err != nil || cur.Version != v2 {
		t.Fatalf("Current after AddVersion = %v, %v; want version %s", cur, err, v2)
	}
	started, err := w.plat.Check(ctx)
	if err != nil || !started {
		t.Fatalf("Check after the rotation = %v, %v; want a job started", started, err)
	}
	if again, err := w.plat.Check(ctx); err != nil || again {
		t.Fatalf("second Check with a job pending = %v, %v; want none started", again, err)
	}
	gen0, _ := w.st.OrgGeneration(ctx, "org-000")
	if err := w.plat.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	got := w.versions()
	if got[cur] != 20 || got[cur0] != 0 || got[cust.WithVersion(custVersion(t, w, cust))] != 1 || len(got) != 2 {
		t.Fatalf("wrappings after the job = %v; want 20 at %s and the CMK org untouched", got, v2)
	}
	j, err := w.st.LatestPlatformJob(ctx)
	if err != nil || j.State != jobs.Done {
		t.Fatalf("LatestPlatformJob = %+v, %v; want done", j, err)
	}
	gen1, _ := w.st.OrgGeneration(ctx, "org-000")
	if gen1.Generation != gen0.Generation+1 || gen1.Reason != platformkey.BumpRewrapped {
		t.Fatalf("generation of org-000 = %+v, want raised once (%s)", gen1, platformkey.BumpRewrapped)
	}
	w.checkDecrypts()
	w.checkAudit("org-007", "platform.rewrap", 1)
	w.checkAudit("cmk-org", "platform.rewrap", 0)
	w.checkAudit(audit.Platform, "platform.rewrap.start", 1)
	w.checkAudit(audit.Platform, "platform.rewrap.done", 1)
	// Nothing left to do.
	if started, err := w.plat.Check(ctx); err != nil || started {
		t.Fatalf("Check after the job = %v, %v; want no job", started, err)
	}
	st, err := w.plat.Status(ctx)
	if err != nil || st.OnCurrent != 20 || st.OnOlder != 0 || st.CMK != 1 || st.Job == nil || st.Job.State != "done" {
		t.Fatalf("Status = %+v, %v; want 20 on current, 0 older, 1 CMK, job done", st, err)
	}
}

func custVersion(t testing.TB, w *world, ref masterkey.Ref) string {
	roots, err := w.st.RootKeys(context.Background(), "cmk-org")
	if err != nil {
		t.Fatal(err)
	}
	return roots[0].Wrapped.Key.Version
}

// createCMKOrg makes an org whose root key is wrapped by a customer's key.
func (w *world) createCMKOrg(id string, cust masterkey.Ref) {
	w.t.Helper()
	ctx := context.Background()
	if _, err := w.keys.CreateOrg(ctx, "test", id, ""); err != nil {
		w.t.Fatal(err)
	}
	root, err := w.keys.RootKey(ctx, id)
	if err != nil {
		w.t.Fatal(err)
	}
	k, _ := w.reg.Keeper(cust)
	wr, err := k.Wrap(ctx, cust, root, keys.RootAAD(id))
	if err != nil {
		w.t.Fatal(err)
	}
	pid, err := w.st.AddPendingWrapping(ctx, id, keys.RootKeyWrapping{OrgID: id, Wrapped: wr, State: keys.WrappingPending, CreatedAt: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	rec := cmk.Record{OrgID: id, State: cmk.StateActive, ActiveKeyURI: cust.String(), ActiveVersion: wr.Key.Version, UpdatedAt: time.Now()}
	if err := w.st.SwitchWrapping(ctx, id, pid, cust, rec, audit.Event{OrgID: id, Time: time.Now(), Actor: "test", Action: "cmk.activate.done", Target: "cmk"}, nil); err != nil {
		w.t.Fatal(err)
	}
	ct, err := w.keys.Encrypt(ctx, "svc", id, "default", []byte("secret of "+id), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	w.cts[id] = ct.Bytes
}

func TestMoveToAnotherLocalKey(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	dir := t.TempDir()
	oldKey, newKey := localKey(t, dir, "old.key"), localKey(t, dir, "new.key")
	w.open("node-1", oldKey)
	w.createOrgs("org", 9)

	// The operator sets master_key to the new key and lists the old one.
	w.open("node-1", newKey, oldKey)
	if started, err := w.plat.Check(ctx); err != nil || !started {
		t.Fatalf("Check after the move = %v, %v; want a job", started, err)
	}
	if err := w.plat.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	cur, _ := w.plat.Current(ctx)
	if got := w.versions(); got[cur] != 9 || len(got) != 1 {
		t.Fatalf("wrappings after the move = %v, want all 9 on %v", got, cur)
	}
	org, _ := w.keys.GetOrg(ctx, "org-004")
	if org.MasterKey != newKey {
		t.Fatalf("org-004's master key = %v, want %v", org.MasterKey, newKey)
	}
	// The old key is no longer needed.
	w.open("node-1", newKey)
	w.checkDecrypts()
}

func TestOldKeyNotConfigured(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	dir := t.TempDir()
	oldKey, newKey := localKey(t, dir, "old.key"), localKey(t, dir, "new.key")
	w.open("node-1", oldKey)
	w.createOrgs("org", 3)
	// The operator forgot previous_master_keys.
	w.open("node-1", newKey)
	if started, err := w.plat.Check(ctx); err != nil || started {
		t.Fatalf("Check = %v, %v; want no job (nothing it may unwrap)", started, err)
	}
	st, err := w.plat.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unreadable != 3 || len(st.UnreadableOrgs) != 3 || st.UnreadableOrgs[0] != "org-000" || len(st.UnknownKeys) != 1 || st.UnknownKeys[0] != oldKey.String() || st.Hint == "" {
		t.Fatalf("Status = %+v; want the 3 orgs named, the old key, and a hint", st)
	}
}

// TestFencedRunnerResumes: a runner that lost its lease (its node paused
// past the lease) can commit nothing; the runner that took the job over
// finishes it, and no org is lost.
func TestFencedRunnerResumes(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	platform := localKey(t, t.TempDir(), "master.key")
	w.open("node-1", platform)
	w.createOrgs("org", 20)
	if _, err := localkey.AddVersion(platform.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.plat.Check(ctx); err != nil {
		t.Fatal(err)
	}
	// Node 1 claims the job, then stalls after its first durable step.
	j1, err := w.st.PlatformJobs().ClaimJob(ctx, "node-1/a", time.Now().Add(-2*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Node 2 finds the lease expired and runs the job to the end.
	n2 := w.service("node-2", nil)
	if err := n2.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	if j, _ := w.st.LatestPlatformJob(ctx); j.State != jobs.Done || j.Fence != j1.Fence+1 {
		t.Fatalf("job after node 2 = %+v, want done under fence %d", j, j1.Fence+1)
	}
	// Node 1 wakes up: every write it tries is refused.
	j1.Step = "late"
	_, err = w.st.AddPlatformCopies(ctx, j1, []keys.RootKeyWrapping{{OrgID: "org-001", State: keys.WrappingPending,
		Wrapped: masterkey.Wrapped{Ciphertext: []byte("x"), Key: platform.WithVersion("bogus")}}})
	if fault.KindOf(err) != fault.Conflict {
		t.Fatalf("AddPlatformCopies by the fenced-out node kind = %v, want %v", fault.KindOf(err), fault.Conflict)
	}
	w.checkDecrypts()
	w.checkAudit("org-011", "platform.rewrap", 1)
}

// TestCrashAfterCopyResumes stops the job after its first copy write (as
// a SIGKILL would) and resumes it on another node: the copies are verified
// and switched, no org is wrapped twice, every ciphertext decrypts.
func TestCrashAfterCopyResumes(t *testing.T) {
	for _, c := range []struct{ backend, step string }{{"sqlite", "copied"}, {"sqlite", "switched"}, {"postgres", "copied"}, {"postgres", "switched"}} {
		step := c.step
		t.Run(c.backend+"/"+step, func(t *testing.T) {
			ctx := t.Context()
			w := newWorldOn(t, c.backend)
			platform := localKey(t, t.TempDir(), "master.key")
			w.open("node-1", platform)
			w.createOrgs("org", 20)
			if _, err := localkey.AddVersion(platform.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := w.plat.Check(ctx); err != nil {
				t.Fatal(err)
			}
			crashCtx, crash := context.WithCancel(ctx)
			n1 := w.service("node-1", func(ev jobs.Event) {
				if ev.Step == step {
					crash() // the node dies right after this durable step
				}
			})
			if err := n1.RunPending(crashCtx); err != nil && crashCtx.Err() == nil {
				t.Fatal(err)
			}
			j, _ := w.st.LatestPlatformJob(ctx)
			if j.State != jobs.Running {
				t.Fatalf("job after the crash = %s, want running (held by the dead node)", j.State)
			}
			pending := w.versions()[masterkey.Ref{Provider: "pending"}]
			if step == "copied" && pending == 0 {
				t.Fatalf("no pending copy after a crash at %q", step)
			}
			// Node 2 resumes once the lease expired.
			n2, err := platformkey.New(platformkey.Config{Store: w.st, Keys: w.keys, Keepers: w.reg, NodeID: "node-2", Batch: 7,
				Lease: time.Minute, Now: func() time.Time { return time.Now().Add(2 * time.Minute) }, Logger: w.log})
			if err != nil {
				t.Fatal(err)
			}
			if err := n2.RunPending(ctx); err != nil {
				t.Fatal(err)
			}
			cur, _ := w.plat.Current(ctx)
			if got := w.versions(); got[cur] != 20 || len(got) != 1 {
				t.Fatalf("wrappings after the resume = %v, want 20 on the current version", got)
			}
			w.checkDecrypts()
			for id := range w.cts {
				w.checkAudit(id, "platform.rewrap", 1)
			}
		})
	}
}

// TestRewrapUnwrapsOncePerOrgInUse: the re-wrap takes the root key of an
// org in use from this node's cache, so it unwraps only to check the new
// copy (one unwrap per org); an idle org costs two (its old wrapping,
// then the check). Every org decrypts afterwards from its new wrapping.
func TestRewrapUnwrapsOncePerOrgInUse(t *testing.T) {
	ctx := t.Context()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	counted := &slowKey{Provider: localkey.New(localkey.Config{})}
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, counted, masterkey.KeeperOptions{Logger: log}))
	platform := localKey(t, t.TempDir(), "master.key")
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log, CacheTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close(context.Background()) })
	const inUse, idle = 6, 5
	cts := map[string][]byte{}
	for i := range inUse + idle {
		org := fmt.Sprintf("org-%02d", i)
		if _, err := ks.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
		ct, err := ks.Encrypt(ctx, "svc", org, "default", []byte("secret of "+org), nil)
		if err != nil {
			t.Fatal(err)
		}
		cts[org] = ct.Bytes
		if i >= inUse {
			ks.Cache().Purge(org) // idle: not in this node's cache
		}
	}
	if _, err := localkey.AddVersion(platform.ID); err != nil {
		t.Fatal(err)
	}
	svc, err := platformkey.New(platformkey.Config{Store: st, Keys: ks, Keepers: reg, NodeID: "n1", Batch: 4, Workers: 3, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	counted.wraps.Store(0)
	counted.unwraps.Store(0)
	if started, err := svc.Check(ctx); err != nil || !started {
		t.Fatalf("Check = %v, %v; want a job started", started, err)
	}
	if err := svc.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := counted.wraps.Load(), int64(inUse+idle); got != want {
		t.Errorf("wraps = %d, want %d (one per org)", got, want)
	}
	if got, want := counted.unwraps.Load(), int64(inUse+2*idle); got != want {
		t.Errorf("unwraps = %d, want %d (one per org in use, two per idle org)", got, want)
	}
	cur, err := svc.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ks.Cache().PurgeAll()
	for org, ct := range cts {
		ws, err := st.RootKeys(ctx, org)
		if err != nil || len(ws) != 1 || ws[0].Wrapped.Key != cur {
			t.Fatalf("RootKeys(%s) = %+v, %v; want one wrapping by %v", org, ws, err, cur)
		}
		pt, _, err := ks.Decrypt(ctx, "svc", org, "default", ct, nil)
		if err != nil || string(pt) != "secret of "+org {
			t.Fatalf("Decrypt(%s) = %q, %v", org, pt, err)
		}
	}
}

// TestOldKeyNotConfiguredDataPlane: an org whose root key is wrapped by a
// platform key file this node is not configured with (and that is gone
// from its path) gets an operator's fault on the data plane, worded about
// the platform master key: unavailable (503, retryable once the operator
// configures the key), never a cmk_* code that blames the org's own key,
// never the key's location. Configured again, the org decrypts.
func TestOldKeyNotConfiguredDataPlane(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	dir := t.TempDir()
	oldKey, newKey := localKey(t, dir, "old.key"), localKey(t, dir, "new.key")
	w.open("node-1", oldKey)
	w.createOrgs("org", 2)
	saved, err := os.ReadFile(oldKey.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(oldKey.ID); err != nil {
		t.Fatal(err)
	}
	w.open("node-1", newKey) // previous_master_keys forgotten
	_, _, err = w.keys.Decrypt(ctx, "svc", "org-000", "default", w.cts["org-000"], nil)
	if fault.KindOf(err) != fault.Unavailable {
		t.Fatalf("Decrypt = %v (kind %v); want unavailable", err, fault.KindOf(err))
	}
	msg := fault.Message(err)
	if !strings.Contains(msg, "platform master key") || !strings.Contains(msg, "previous_master_keys") || strings.Contains(msg, dir) || strings.Contains(msg, "customer") {
		t.Errorf("Decrypt message = %q; want the platform master key and previous_master_keys named, no path, no customer key", msg)
	}
	if err := os.WriteFile(oldKey.ID, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	w.open("node-1", newKey, oldKey)
	w.checkDecrypts()
}

// TestFailedJobBacksOff: after a re-wrap job failed for good, the checks
// do not start another at once (one failed job per check, forever): the
// next starts 5 minutes after it, 10 after a second failure in a row. A
// restarted service tries once at once.
func TestFailedJobBacksOff(t *testing.T) {
	ctx := t.Context()
	w := newWorld(t)
	platform := localKey(t, t.TempDir(), "master.key")
	w.open("node-1", platform)
	w.createOrgs("org", 3)
	if _, err := localkey.AddVersion(platform.ID); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	svc, err := platformkey.New(platformkey.Config{Store: w.st, Keys: w.keys, Keepers: w.reg, NodeID: "node-1", Logger: w.log,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// failLatest makes the pending job fail for good at now, as the
	// runner does after its last attempt.
	failLatest := func() {
		t.Helper()
		j, err := w.st.PlatformJobs().ClaimJob(ctx, "node-1/x", now, time.Minute)
		if err != nil {
			t.Fatalf("ClaimJob = %v", err)
		}
		j.State, j.Error, j.UpdatedAt = jobs.Failed, "verify failed", now
		if err := w.st.FinishPlatformJob(ctx, j, audit.Event{OrgID: audit.Platform, Time: now, Actor: "orgkms", Action: "platform.rewrap.failed", Target: "platform"}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want bool, when string) {
		t.Helper()
		if started, err := svc.Check(ctx); err != nil || started != want {
			t.Fatalf("Check %s = %v, %v; want started %v", when, started, err, want)
		}
	}
	check(true, "at first")
	failLatest()
	check(false, "right after the failure")
	now = now.Add(4 * time.Minute)
	check(false, "4 minutes after the failure")
	now = now.Add(time.Minute)
	check(true, "5 minutes after the failure")
	failLatest()
	now = now.Add(9 * time.Minute)
	check(false, "9 minutes after a second failure")
	now = now.Add(time.Minute)
	check(true, "10 minutes after a second failure")
	failLatest()
	// A restart tries at once.
	restarted, err := platformkey.New(platformkey.Config{Store: w.st, Keys: w.keys, Keepers: w.reg, NodeID: "node-1", Logger: w.log,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if started, err := restarted.Check(ctx); err != nil || !started {
		t.Fatalf("Check after a restart = %v, %v; want a job at once", started, err)
	}
}
