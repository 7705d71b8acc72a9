package cmk_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/cmk"
)

// TestAbandonedProbeReleased: a node that stops in the middle of a probe
// round hands the leases of the probes it did not finish back, so that the
// next claim (another node's, or its own after a restart) probes the org at
// once, not a probe interval later.
func TestAbandonedProbeReleased(t *testing.T) {
	w := newWorld(t, option{cmk: func(c *cmk.Config) { c.NodeID, c.ProbeInterval = "node-a", time.Hour }})
	if _, err := w.keys.CreateOrg(t.Context(), "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	w.activate("acme", w.demo.VaultURI, w.demo.KeyName, "")
	// The switch to the customer's key made acme due. Its probe's Describe
	// hangs in the vault until the node stops.
	if err := w.emu.SetFault(azureemu.DemoVault, azureemu.Fault{Latency: time.Minute}); err != nil {
		t.Fatal(err)
	}
	before := w.emu.VaultCounters(azureemu.DemoVault)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.cmk.ProbeDue(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for total(w.emu.VaultCounters(azureemu.DemoVault)) == total(before) {
		if time.Now().After(deadline) {
			t.Fatal("the probe never reached the vault")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition
	}
	stop()
	<-done

	ids, err := w.st.ClaimProbes(t.Context(), "node-b", time.Now(), time.Hour, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"acme"}) {
		t.Errorf("another node's claim after node-a stopped mid-probe = %v, want [acme] (the abandoned probe's lease handed back)", ids)
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
