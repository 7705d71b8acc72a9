package cluster_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/config"
	"github.com/orgkms/orgkms/internal/fault"
)

// TestProbesOncePerInterval: three nodes on one PostgreSQL probe every
// interval; each org is on its own key, so the emulator's per-key counters
// are per-org vault calls. Over a window of K ≥ 3 probe intervals the
// cluster describes and unwraps each org at most K+1 times (once per
// interval; a window of K intervals holds K+1 probe times at most), not
// once per node per interval (3K), and every org was probed.
func TestProbesOncePerInterval(t *testing.T) {
	const interval = time.Second
	c := newCluster(t, 3, nil, nil, func(_ int, cfg *config.Config) {
		cfg.CMK.ProbeInterval = config.Duration(interval)
	})
	const n = 3
	orgs := make([]string, n)
	for i := range orgs {
		orgs[i] = fmt.Sprintf("org%d", i)
		name := "key-" + orgs[i]
		if _, err := c.emu.CreateKey(azureemu.DemoVault, name, azureemu.KeyOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.emu.SetKeyTags(azureemu.DemoVault, name, "", map[string]string{cmk.OwnershipTag: orgs[i]}); err != nil {
			t.Fatal(err)
		}
		c.activateOn(orgs[i], name)
	}
	c.waitFor("3 live nodes", func() bool { return c.nodes[0].s.Cluster.Live() == 3 })
	// The window: from a reset of the counters to their reading, at least
	// K intervals; K is counted from the time that really passed.
	c.emu.ResetCounters()
	start := time.Now()
	time.Sleep(3 * interval) // the window under test, not a wait for a condition
	calls := make([]map[string]int, n)
	for i, org := range orgs {
		calls[i] = c.emu.KeyCounters(azureemu.DemoVault, "key-"+org)
	}
	elapsed := time.Since(start)
	k := int(elapsed / interval) // a window of K intervals holds at most K+1 probe times
	for i, org := range orgs {
		got := calls[i]
		t.Logf("%s over %v (K=%d intervals, 3 nodes): %v", org, elapsed.Round(time.Millisecond), k, got)
		for _, op := range []string{azureemu.OpGet, azureemu.OpUnwrapKey} {
			if got[op] > k+1 {
				t.Errorf("%s: %d %s calls over %d probe intervals on 3 nodes, want at most %d (once per interval for the cluster)", org, got[op], op, k, k+1)
			}
			if got[op] < 1 {
				t.Errorf("%s: no %s call over %d probe intervals: the org was not probed", org, op, k)
			}
		}
	}
}

// dbProxy forwards TCP connections to PostgreSQL until cut: cut closes
// every connection and refuses new ones (the node's database is gone);
// restore accepts again.
type dbProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go p.serve()
	return p
}

func (p *dbProxy) serve() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			in.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go func() { io.Copy(out, in); out.Close(); in.Close() }()
		go func() { io.Copy(in, out); out.Close(); in.Close() }()
	}
}

func (p *dbProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// TestStaleNodeDatabaseCut: the database of node 1 (which serves an org on
// a customer key) is cut, not its clock moved: after stale_after it refuses
// that org with 503 unavailable, keeps serving an org on the platform key
// from memory, and node 0 keeps serving both; when the database is back,
// node 1 serves the CMK org again by itself.
func TestStaleNodeDatabaseCut(t *testing.T) {
	var proxy *dbProxy
	c := newCluster(t, 2, nil, nil, func(i int, cfg *config.Config) {
		if i != 1 {
			return
		}
		u, err := url.Parse(cfg.Database)
		if err != nil {
			t.Fatal(err)
		}
		proxy = newDBProxy(t, u.Host)
		u.Host = proxy.ln.Addr().String()
		cfg.Database = u.String()
		cfg.Cluster.GenerationCheck = config.Duration(200 * time.Millisecond)
		cfg.Cluster.StaleAfter = config.Duration(2 * time.Second)
	})
	ctx := t.Context()
	c.activate("acme")
	if _, err := c.nodes[0].s.Keys.CreateOrg(ctx, "test", "plain", "plain"); err != nil {
		t.Fatal(err)
	}
	c.waitFor("node 1 serves both orgs", func() bool { return c.encrypt(1, "acme") == nil && c.encrypt(1, "plain") == nil })

	proxy.setCut(true)
	var err error
	c.waitFor("node 1 refuses acme with its database cut", func() bool {
		err = c.encrypt(1, "acme")
		return fault.KindOf(err) == fault.Unavailable
	})
	if !strings.Contains(fault.Message(err), "cannot confirm") {
		t.Errorf("encrypt acme on the cut node = %v, want unavailable: cannot confirm the key's state", err)
	}
	if fault.KindOf(err).HTTPStatus() != 503 {
		t.Errorf("encrypt acme on the cut node = %v, want HTTP 503", err)
	}
	if err := c.encrypt(1, "plain"); err != nil {
		t.Errorf("encrypt plain (platform key) on the cut node = %v, want success from memory", err)
	}
	if err := c.nodes[1].s.Cluster.Ready(); fault.KindOf(err) != fault.Unavailable {
		t.Errorf("Ready() of the cut node = %v, want unavailable", err)
	}
	for _, org := range []string{"acme", "plain"} {
		if err := c.encrypt(0, org); err != nil {
			t.Errorf("encrypt %s on node 0 (database reachable) = %v", org, err)
		}
	}

	proxy.setCut(false)
	c.waitFor("node 1 serves acme again with its database back", func() bool { return c.encrypt(1, "acme") == nil })
	c.waitFor("node 1 ready again", func() bool { return c.nodes[1].s.Cluster.Ready() == nil })
}
