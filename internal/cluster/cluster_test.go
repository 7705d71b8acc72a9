package cluster_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/server"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const callbackURL = "https://kms.example/v1/cmk/callback"

type node struct {
	s      *server.Server
	offset *atomic.Int64 // added to the node's clock
}

type cluster struct {
	t     *testing.T
	emu   *azureemu.Emulator
	demo  azureemu.Demo
	db    string // the database URL
	nodes []node
}

// newCluster starts n whole servers (each its own data directory, key
// cache and CMK service) on one PostgreSQL schema with the Azure emulator.
// Probes run every hour: only the test's explicit Probe on one node sees
// the vault. Node i < quiet has no LISTEN (generation check only).
func newCluster(t *testing.T, n int, noListen map[int]bool, check map[int]time.Duration) *cluster {
	return startCluster(t, n, clusterOpts{noListen: noListen, check: check})
}

// clusterOpts are the settings of startCluster; zero values are
// newCluster's.
type clusterOpts struct {
	noListen   map[int]bool
	check      map[int]time.Duration
	probe      time.Duration // probe interval; default an hour
	staleAfter time.Duration // default an hour
	db         string        // database URL; default a new schema of the shared server
	tune       func(*config.Config)
}

// startCluster is newCluster with the settings of o.
func startCluster(t *testing.T, n int, o clusterOpts) *cluster {
	noListen, check := o.noListen, o.check
	if o.probe == 0 {
		o.probe = time.Hour
	}
	if o.staleAfter == 0 {
		o.staleAfter = time.Hour
	}
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	emu, err := azureemu.Open(ctx, azureemu.Config{Dir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	if err := emu.Start(); err != nil {
		t.Fatal(err)
	}
	demo, err := azureemu.SeedDemo(emu, []string{callbackURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.SetKeyTags(azureemu.DemoVault, azureemu.DemoKey, "", map[string]string{"orgkms-org": "acme,globex"}); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	getenv := func(name string) string {
		if name == "TEST_MASTER_KEY" {
			return base64.StdEncoding.EncodeToString(key)
		}
		return ""
	}
	db := o.db
	if db == "" {
		db = pgtest.URL(t)
	}
	c := &cluster{t: t, emu: emu, demo: demo, db: db}
	for i := range n {
		cfg := config.Config{DataDir: t.TempDir(), Database: db, MasterKey: "local:env:TEST_MASTER_KEY", PublicURL: "https://kms.example"}
		cfg.CMK.Cloud, cfg.CMK.CallbackURL = "azure", callbackURL
		cfg.CMK.ProbeInterval = config.Duration(o.probe)
		cfg.CMK.Azure = config.Azure{ClientID: demo.ClientID, ClientSecret: demo.Secret, AuthorityHost: emu.URL() + "/"}
		cfg.Cluster.HeartbeatInterval = config.Duration(200 * time.Millisecond)
		cfg.Cluster.GenerationCheck = config.Duration(500 * time.Millisecond)
		if d, ok := check[i]; ok {
			cfg.Cluster.GenerationCheck = config.Duration(d)
		}
		cfg.Cluster.StaleAfter = config.Duration(o.staleAfter)
		if o.tune != nil {
			o.tune(&cfg)
		}
		off := new(atomic.Int64)
		s, err := server.Open(ctx, cfg, server.Options{Logger: log, Migrate: true, Getenv: getenv, JobPoll: 50 * time.Millisecond,
			AzureHTTPClient: emu.HTTPClient(), AzureMaxRetries: 1, AzureRetryDelay: 10 * time.Millisecond, NoGenerationListener: noListen[i],
			Now: func() time.Time { return time.Now().Add(time.Duration(off.Load())) }})
		if err != nil {
			t.Fatalf("server.Open(node %d) = %v", i, err)
		}
		t.Cleanup(func() { s.Close() })
		s.Start(context.WithoutCancel(ctx))
		c.nodes = append(c.nodes, node{s: s, offset: off})
	}
	return c
}

var (
	csrfRe   = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	actionRe = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// activate puts org on the demo key through node 0: consent, configure,
// test, enable, and waits for the re-wrap job (run by any node).
func (c *cluster) activate(org string) { c.activateOn(org, c.demo.KeyName) }

// activateOn is activate with key name of the demo vault.
func (c *cluster) activateOn(org, keyName string) {
	t := c.t
	ctx := t.Context()
	svc := c.nodes[0].s.CMK
	if _, err := c.nodes[0].s.Keys.CreateOrg(ctx, "test", org, org); err != nil {
		t.Fatal(err)
	}
	u, err := svc.Authorize(ctx, "user:alice", org, c.demo.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	hc := c.emu.HTTPClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf, action := csrfRe.FindSubmatch(page), actionRe.FindSubmatch(page)
	if csrf == nil || action == nil {
		t.Fatalf("consent page has no form: %s", page)
	}
	resp, err = hc.PostForm(c.emu.URL()+string(action[1]), url.Values{"csrf_token": {string(csrf[1])}, "action": {"accept"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if _, err := svc.Callback(ctx, cmk.ConsentResult{State: q.Get("state"), AdminConsent: q.Get("admin_consent"), Tenant: q.Get("tenant")}); err != nil {
		t.Fatalf("Callback = %v", err)
	}
	if _, err := svc.Configure(ctx, "user:alice", org, c.demo.VaultURI, keyName, ""); err != nil {
		t.Fatalf("Configure = %v", err)
	}
	if _, err := svc.Enable(ctx, "user:alice", org); err != nil {
		t.Fatalf("Enable = %v", err)
	}
	c.waitFor("org "+org+" active", func() bool {
		st, err := svc.Status(ctx, org)
		return err == nil && st.State == cmk.StateActive
	})
}

// waitFor polls cond with a generous limit.
func (c *cluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
}

// encrypt is a data-plane call on node i.
func (c *cluster) encrypt(i int, org string) error {
	_, err := c.nodes[i].s.Keys.Encrypt(c.t.Context(), "svc", org, "default", []byte("hello"), nil)
	return err
}

func (c *cluster) setEnabled(on bool) {
	c.t.Helper()
	if _, err := c.emu.UpdateKey(azureemu.DemoVault, c.demo.KeyName, "", &on, nil, nil); err != nil {
		c.t.Fatal(err)
	}
}

// waitAll waits until every node's data-plane call for org has kind want
// (0: success) and logs how long after start that took.
func (c *cluster) waitAll(org string, want fault.Kind, start time.Time, what string) {
	c.t.Helper()
	for i := range c.nodes {
		c.waitFor(what+" on node "+c.nodes[i].s.NodeID, func() bool {
			err := c.encrypt(i, org)
			if want == 0 {
				return err == nil
			}
			return err != nil && fault.KindOf(err) == want
		})
	}
	c.t.Logf("%s on all %d nodes %v after the change's commit", what, len(c.nodes), time.Since(start))
}

// waitReceipts waits until the org's status says every live node honoured
// its current generation, and checks the receipts name every node.
func (c *cluster) waitReceipts(org string, start time.Time, reason string) cmk.Status {
	c.t.Helper()
	var st cmk.Status
	c.waitFor("receipts of every node for "+org, func() bool {
		var err error
		st, err = c.nodes[0].s.CMK.Status(c.t.Context(), org)
		rv := st.Revocation
		return err == nil && rv != nil && rv.Reason == reason && rv.Live == len(c.nodes) && rv.Honoured == len(c.nodes) && len(rv.Pending) == 0
	})
	c.t.Logf("receipts of %s (%s) from all %d nodes %v after the change's commit", org, reason, len(c.nodes), time.Since(start))
	rs, err := c.nodes[0].s.Store.Receipts(c.t.Context(), org)
	if err != nil {
		c.t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range rs {
		if r.Generation == st.Revocation.Generation {
			got[r.NodeID] = true
		}
	}
	for _, n := range c.nodes {
		if !got[n.s.NodeID] {
			c.t.Errorf("no receipt of node %s for generation %d of %s", n.s.NodeID, st.Revocation.Generation, org)
		}
	}
	return st
}

// TestRevocationOnEveryNode: three nodes on one PostgreSQL; the key is
// disabled in the vault and ONE node probes: every node refuses the org,
// and the receipts name every node; re-enabled and probed by the same node:
// every node serves again. Node 2 has no listener and catches up through
// the generation check. A manual purge reaches every node.
func TestRevocationOnEveryNode(t *testing.T) {
	c := newCluster(t, 3, map[int]bool{2: true}, nil)
	ctx := t.Context()
	c.activate("acme")
	for i := range c.nodes {
		if err := c.encrypt(i, "acme"); err != nil {
			t.Fatalf("encrypt on node %d before revocation = %v", i, err)
		}
	}
	c.waitFor("3 live nodes counted by node 0", func() bool { return c.nodes[0].s.Cluster.Live() == 3 })
	ns, err := c.nodes[0].s.Cluster.ListNodes(ctx)
	if err != nil || len(ns) != 3 {
		t.Fatalf("ListNodes = %d nodes, %v; want 3", len(ns), err)
	}
	before := c.emu.Counters()

	c.setEnabled(false)
	start := time.Now()
	if err := c.nodes[0].s.CMK.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c.waitAll("acme", fault.CMKDisabled, start, "revocation refused")
	st := c.waitReceipts("acme", start, cmk.BumpRevoked)
	if st.State != cmk.StateRevoked {
		t.Errorf("status state = %s, want revoked", st.State)
	}
	evs, err := c.nodes[1].s.Keys.AuditEvents(ctx, "acme", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	receipts := map[string]bool{}
	for _, ev := range evs {
		if ev.Action == "cmk.purge_receipt" && ev.Details["generation"] == strconv.FormatInt(st.Revocation.Generation, 10) {
			receipts[ev.Details["node"]] = true
		}
	}
	if len(receipts) != 3 {
		t.Errorf("audit receipts of generation %d name nodes %v, want all three", st.Revocation.Generation, receipts)
	}

	c.setEnabled(true)
	start = time.Now()
	if err := c.nodes[0].s.CMK.Probe(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c.waitAll("acme", 0, start, "restored, served")
	c.waitReceipts("acme", start, cmk.BumpRestored)

	// Only node 0 probed: the others never called the vault's key
	// operations (their data-plane unwraps aside, counted below).
	after := c.emu.Counters()
	t.Logf("vault calls before/after: %v / %v", before, after)

	// A manual purge through node 1 reaches every node.
	start = time.Now()
	if err := c.nodes[1].s.CMK.Purge(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	c.waitReceipts("acme", start, cmk.BumpPurged)
	for i, n := range c.nodes {
		if n.s.Keys.Cache().Len() != 0 {
			t.Errorf("node %d still caches %d orgs after the purge", i, n.s.Keys.Cache().Len())
		}
	}
	checkKind(t, "Purge(nosuch)", c.nodes[0].s.CMK.Purge(ctx, "nosuch"), fault.NotFound)
}

// TestProbesOncePerIntervalForTheCluster: three nodes, each with its own
// CMK service probing every second. The vault sees each org probed about
// once per interval by the whole cluster, not once per node: over a window
// of E seconds the unwraps per org stay within E/interval + 2, where three
// independent probers would make three times as many.
func TestProbesOncePerIntervalForTheCluster(t *testing.T) {
	const interval = time.Second
	c := startCluster(t, 3, clusterOpts{probe: interval})
	orgs := []string{"acme", "globex"}
	for _, org := range orgs {
		c.activate(org)
	}
	unwraps := func() int { return c.emu.VaultCounters(azureemu.DemoVault)[azureemu.OpUnwrapKey] }
	// Every probe proves the org's unwrap: count them from here.
	start, base := time.Now(), unwraps()
	const rounds = 6
	c.waitFor("six probe rounds of every org", func() bool { return unwraps()-base >= rounds*len(orgs) })
	elapsed := time.Since(start)
	got := unwraps() - base
	perOrg := float64(got) / float64(len(orgs))
	limit := elapsed.Seconds()/interval.Seconds() + 2
	t.Logf("%d unwraps for %d orgs in %v with 3 nodes probing every %v: %.1f per org (limit %.1f)", got, len(orgs), elapsed.Round(time.Millisecond), interval, perOrg, limit)
	if perOrg > limit {
		t.Errorf("the vault saw %.1f unwraps per org in %v, more than once per %v for the whole cluster (limit %.1f): probes are not leased across nodes", perOrg, elapsed, interval, limit)
	}
}

// TestStaleNode: a node whose generation check cannot succeed for longer
// than stale_after refuses orgs on a customer key with 503 unavailable,
// keeps serving orgs on the platform key, is not ready, and serves again
// after its next good check.
func TestStaleNode(t *testing.T) {
	c := newCluster(t, 2, map[int]bool{1: true}, map[int]time.Duration{1: time.Hour})
	ctx := t.Context()
	c.activate("acme")
	if _, err := c.nodes[0].s.Keys.CreateOrg(ctx, "test", "plain", "plain"); err != nil {
		t.Fatal(err)
	}
	// Node 1 learns of the activation by its check (it has no listener).
	if err := c.nodes[1].s.Cluster.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", "plain"} {
		if err := c.encrypt(1, org); err != nil {
			t.Fatalf("encrypt %s on node 1 = %v", org, err)
		}
	}
	// Node 1's last good check is now older than stale_after (1h): its
	// clock moves ahead and its periodic check (every hour) does not run.
	c.nodes[1].offset.Store(int64(2 * time.Hour))
	err := c.encrypt(1, "acme")
	if fault.KindOf(err) != fault.Unavailable || !strings.Contains(fault.Message(err), "cannot confirm") {
		t.Errorf("encrypt acme on a stale node = %v, want unavailable: cannot confirm the key's state", err)
	}
	if err := c.encrypt(1, "plain"); err != nil {
		t.Errorf("encrypt plain (platform key) on a stale node = %v, want success", err)
	}
	if err := c.nodes[1].s.Cluster.Ready(); fault.KindOf(err) != fault.Unavailable {
		t.Errorf("Ready() of a stale node = %v, want unavailable", err)
	}
	if err := c.encrypt(0, "acme"); err != nil {
		t.Errorf("encrypt acme on the fresh node = %v", err)
	}
	if err := c.nodes[1].s.Cluster.CheckAll(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.encrypt(1, "acme"); err != nil {
		t.Errorf("encrypt acme after a good check = %v, want success", err)
	}
	if err := c.nodes[1].s.Cluster.Ready(); err != nil {
		t.Errorf("Ready() after a good check = %v", err)
	}
}

// TestStaleNodeDatabaseCut: the stale rule with the database really gone.
// A node whose PostgreSQL stops cannot run its generation check; once its
// last good check is older than stale_after it refuses the org on a
// customer key with 503 unavailable (it cannot know whether the customer
// revoked it meanwhile), keeps serving the org on the platform key from
// memory, is not ready; when the database is back it serves both again
// with no restart.
func TestStaleNodeDatabaseCut(t *testing.T) {
	pg := pgtest.StartServer(t)
	c := startCluster(t, 1, clusterOpts{db: pg.URL, staleAfter: 2 * time.Second, tune: func(cfg *config.Config) {
		cfg.CacheTTL = config.Duration(30 * time.Minute)
		cfg.KeyMetadataTTL = config.Duration(30 * time.Minute)
	}})
	ctx := t.Context()
	c.activate("acme")
	if _, err := c.nodes[0].s.Keys.CreateOrg(ctx, "test", "plain", "plain"); err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", "plain"} {
		if err := c.encrypt(0, org); err != nil {
			t.Fatalf("encrypt %s = %v", org, err)
		}
	}

	pg.Stop(t)
	// Once its last good check is older than stale_after the node refuses
	// the CMK org, saying it cannot confirm the key's state. (Ready may
	// turn unavailable earlier: a failed heartbeat is enough for it.)
	var err error
	c.waitFor("the node to refuse acme as stale", func() bool {
		err = c.encrypt(0, "acme")
		return fault.KindOf(err) == fault.Unavailable && strings.Contains(fault.Message(err), "cannot confirm")
	})
	if err := c.nodes[0].s.Cluster.Ready(); fault.KindOf(err) != fault.Unavailable {
		t.Errorf("Ready() of a stale node = %v, want unavailable", err)
	}
	if fe := fault.As(err); fe != nil && strings.Contains(fault.Message(err), "postgres") {
		t.Errorf("the refusal's message %q names the database's internals", fault.Message(err))
	}
	if err := c.encrypt(0, "plain"); err != nil {
		t.Errorf("encrypt plain (platform key, in memory) with the database down = %v, want success", err)
	}

	pg.Start(t)
	c.waitFor("the node to serve acme again", func() bool { return c.encrypt(0, "acme") == nil })
	c.waitFor("the node to be ready again", func() bool { return c.nodes[0].s.Cluster.Ready() == nil })
}

func checkKind(t *testing.T, call string, err error, want fault.Kind) {
	t.Helper()
	if fault.KindOf(err) != want {
		t.Errorf("%s = %v, want kind %v", call, err, want)
	}
}

// TestNodeRecordLost: a node whose row was deleted registers again on its
// next heartbeat, and is ready and listed again.
func TestNodeRecordLost(t *testing.T) {
	c := newCluster(t, 1, nil, nil)
	ctx := t.Context()
	s := c.nodes[0].s
	c.waitFor("node ready", func() bool { return s.Cluster.Ready() == nil })
	db, err := sql.Open("pgx", c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = stdlib.GetDefaultDriver()
	if _, err := db.ExecContext(ctx, `DELETE FROM nodes WHERE id = $1`, s.NodeID); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the node registered again", func() bool {
		ns, err := s.Cluster.ListNodes(ctx)
		return err == nil && len(ns) == 1 && ns[0].ID == s.NodeID && s.Cluster.NodeState(ns[0]) == cmk.NodeLive
	})
	c.waitFor("node ready again", func() bool { return s.Cluster.Ready() == nil })
}
