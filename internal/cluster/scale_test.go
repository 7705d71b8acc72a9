package cluster_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
)

// TestProbesOncePerIntervalPerOrg: three nodes on one PostgreSQL probe every
// interval; each org is on its own key, so the emulator's per-key counters
// are per-org vault calls. Over a window of K ≥ 3 probe intervals the
// cluster describes and unwraps each org at most K+1 times (once per
// interval; a window of K intervals holds K+1 probe times at most), not
// once per node per interval (3K), and every org was probed.
func TestProbesOncePerIntervalPerOrg(t *testing.T) {
	const interval = time.Second
	c := startCluster(t, 3, clusterOpts{probe: interval})
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
