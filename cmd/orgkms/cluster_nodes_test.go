package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/azureemu"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// Keys and vault of the three-node test, beside the demo world of the
// emulator (tenant contoso, vault contoso-kv).
const (
	clusterSharedKey = "cluster-shared" // wraps two orgs; disabled and enabled again
	clusterSoloKey   = "cluster-solo"   // wraps one org; never touched
	clusterSlowVault = "slow-kv"        // a vault of its own, for added latency
	clusterSlowKey   = "cluster-slow"   // in slow-kv; rotated while slow
)

// clusterOrg is an org of the three-node test and the ciphertexts made for
// it.
type clusterOrg struct {
	id         string
	vault, key string
	secToken   string         // of the org's security admin (admin + key_admin)
	sec        *client.Client // the security admin on node 1
	sealed     []sealed
}

// TestClusterThreeNodes runs three real "orgkms serve" processes on one
// PostgreSQL database (a schema of the test server), with the Azure
// emulator in the test process and a probe interval of 1s, puts four orgs
// on customer managed keys through node 1, and shows on every node:
//
//  0. the node list shows three live nodes;
//  1. a key disabled in the vault is refused by all three nodes (the time
//     from the disable to refused-on-all-three is logged), the receipts say
//     "honoured by 3 of 3 nodes", and an org on another key is still
//     served;
//  2. the key enabled again, all three nodes serve it again;
//  3. SIGKILL of the node holding a re-wrap job's lease, mid-way (the new
//     copy stored, not yet verified; the vault answers slowly): another
//     node finishes the same job, the node list shows the killed node gone,
//     every ciphertext made before decrypts on
//     every live node, and every org's audit chain verifies;
//  4. a node started after a revocation (the killed one, restarted, and a
//     new fourth node) refuses the revoked org from its first request on.
func TestClusterThreeNodes(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildOrgkms(t, t.TempDir())
	emu, demo := startCrashEmulator(t)
	ctx := t.Context()

	// The customer's side: keys, and a slow vault of its own.
	slow, err := emu.CreateVault(demo.TenantID, clusterSlowVault, azureemu.VaultOptions{SoftDeleteDays: 90, PurgeProtection: true})
	if err != nil {
		t.Fatalf("CreateVault: %v", err)
	}
	if err := emu.SetPolicy(clusterSlowVault, demo.ClientID, azureemu.DemoPermissions); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	orgs := []*clusterOrg{
		{id: "shared-a", vault: azureemu.DemoVault, key: clusterSharedKey},
		{id: "shared-b", vault: azureemu.DemoVault, key: clusterSharedKey},
		{id: "solo", vault: azureemu.DemoVault, key: clusterSoloKey},
		{id: "slow", vault: clusterSlowVault, key: clusterSlowKey},
	}
	shared, solo, slowOrg := orgs[:2], orgs[2], orgs[3]
	for _, k := range []struct{ vault, name, orgs string }{
		{azureemu.DemoVault, clusterSharedKey, "shared-a,shared-b"},
		{azureemu.DemoVault, clusterSoloKey, "solo"},
		{clusterSlowVault, clusterSlowKey, "slow"},
	} {
		if _, err := emu.CreateKey(k.vault, k.name, azureemu.KeyOptions{Kty: "RSA", Size: 2048}); err != nil {
			t.Fatalf("CreateKey %s: %v", k.name, err)
		}
		if _, err := emu.SetKeyTags(k.vault, k.name, "", map[string]string{"orgkms-org": k.orgs}); err != nil {
			t.Fatalf("SetKeyTags %s: %v", k.name, err)
		}
	}

	// Three nodes; a fourth starts only after a revocation (step 4).
	c := newCluster(t, bin, dbURL, 4, map[string]any{
		// A killed node is gone after 3s without a heartbeat; a node
		// refuses customer-key orgs only after 10s without a generation
		// check (not on a loaded machine's hiccup).
		"cluster": map[string]any{"heartbeat_interval": "500ms", "node_timeout": "3s", "generation_check": "1s", "stale_after": "10s"},
		"cmk": map[string]any{
			// A job's lease outlasts a whole re-wrap at the slow vault's
			// latency (three remote calls), so only the SIGKILL ends it.
			"cloud": "azure", "probe_interval": "1s", "job_lease": "10s",
			"azure": map[string]any{
				"client_id": demo.ClientID, "client_secret": demo.Secret, "authority_host": emu.URL() + "/",
				"ca_file": emu.CAFile(), "emulator_addr": emu.Addr(),
				// Above the slow vault's latency.
				"timeout": "30s", "try_timeout": "10s",
			},
		},
	})
	c.migrate()
	// The first node creates the bootstrap token; the others find it.
	c.start(c.nodes[0])
	c.start(c.nodes[1], c.nodes[2])
	n1 := c.nodes[0]
	opToken := c.operatorToken()
	op := c.client(n1, opToken)
	waitNodes(t, op, map[string]string{c.nodes[0].id: "live", c.nodes[1].id: "live", c.nodes[2].id: "live"})

	// Orgs, tokens, consent, keys: all through node 1.
	svcTok, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "svc", Roles: []string{"service"}})
	if err != nil {
		t.Fatalf("CreateToken svc: %v", err)
	}
	svc := func(n *clusterNode) *client.Client { return c.client(n, svcTok.Secret) }
	for _, o := range orgs {
		if _, err := op.CreateOrg(ctx, o.id, "Cluster "+o.id); err != nil {
			t.Fatalf("CreateOrg %s: %v", o.id, err)
		}
		tok, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "sec-" + o.id, Org: o.id, Roles: []string{"admin", "key_admin"}})
		if err != nil {
			t.Fatalf("CreateToken sec %s: %v", o.id, err)
		}
		o.secToken, o.sec = tok.Secret, c.client(n1, tok.Secret)
		authorizeOrg(t, emu, c.http, n1.url, o.sec, o.id, demo.TenantID)
		vaultURI := demo.VaultURI
		if o.vault == clusterSlowVault {
			vaultURI = slow.URI
		}
		if _, err := o.sec.CMKConfigure(ctx, o.id, client.CMKConfigureRequest{VaultURI: vaultURI, KeyName: o.key}); err != nil {
			t.Fatalf("CMKConfigure %s: %v", o.id, err)
		}
		if _, err := o.sec.CMKEnable(ctx, o.id); err != nil {
			t.Fatalf("CMKEnable %s: %v", o.id, err)
		}
	}
	for _, o := range orgs {
		waitFor(t, "org "+o.id+" active on its customer managed key", func() (bool, string) {
			st, err := o.sec.CMKStatus(ctx, o.id)
			return err == nil && st.State == "active" && st.Job != nil && st.Job.State == "done", fmt.Sprintf("%+v, %v", st, err)
		})
	}
	// Ciphertexts made on every node, each decrypting on every node.
	for _, o := range orgs {
		for _, n := range c.live() {
			for i := range 2 {
				pt := fmt.Appendf(nil, "%s secret %d from %s", o.id, i, n.name)
				ct, _, err := svc(n).Encrypt(ctx, o.id, "default", pt, nil)
				if err != nil {
					t.Fatalf("Encrypt %s on %s: %v", o.id, n.name, err)
				}
				o.sealed = append(o.sealed, sealed{plaintext: pt, ciphertext: ct})
			}
		}
	}
	checkAll := func(when string) {
		t.Helper()
		for _, n := range c.live() {
			for _, o := range orgs {
				for i, s := range o.sealed {
					if err := decryptCheck(ctx, svc(n), o.id, s); err != nil {
						t.Errorf("%s: decrypt ciphertext %d of %s on %s: %v", when, i, o.id, n.name, err)
					}
				}
			}
		}
	}
	checkAll("before any failure")

	// 1. Disabled in the vault: refused by every node.
	disabled := time.Now()
	setKeyEnabled(t, emu, azureemu.DemoVault, clusterSharedKey, false)
	took := waitRefused(t, c.live(), svc, shared, client.CodeCMKKeyDisabled)
	t.Logf("key disabled in the vault → refused by all three nodes in %v (%s)", time.Since(disabled).Round(time.Millisecond), took)
	// Every node's receipt: the revocation honoured by 3 of 3 nodes.
	for _, o := range shared {
		waitFor(t, "receipts of all three nodes for the revocation of "+o.id, func() (bool, string) {
			st, err := op.CMKStatus(ctx, o.id)
			r := st.Revocation
			return err == nil && r != nil && r.Reason == "revoked" && r.Honoured == 3 && r.Nodes == 3 && len(r.Pending) == 0, fmt.Sprintf("%+v, %v", r, err)
		})
	}
	for _, n := range c.live() {
		if err := decryptCheck(ctx, svc(n), solo.id, solo.sealed[0]); err != nil {
			t.Errorf("while %s is disabled, org %s (another key) on %s: %v", clusterSharedKey, solo.id, n.name, err)
		}
	}

	// 2. Enabled again: served by every node.
	enabled := time.Now()
	setKeyEnabled(t, emu, azureemu.DemoVault, clusterSharedKey, true)
	took = waitServed(t, c.live(), svc, shared, client.CodeCMKKeyDisabled)
	t.Logf("key enabled again → served by all three nodes in %v (%s)", time.Since(enabled).Round(time.Millisecond), took)
	checkAll("after the key was enabled again")

	// 3. SIGKILL of the node holding a re-wrap job's lease, mid-way. The
	// slow vault answers every call after 2s; a new version, tagged for
	// the org, is a rotation that some node's probe starts and some node's
	// worker runs.
	if err := emu.SetFault(clusterSlowVault, azureemu.Fault{Latency: 2 * time.Second}); err != nil {
		t.Fatalf("SetFault: %v", err)
	}
	rotated, err := emu.RotateKey(clusterSlowVault, clusterSlowKey)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if _, err := emu.SetKeyTags(clusterSlowVault, clusterSlowKey, "", map[string]string{"orgkms-org": slowOrg.id}); err != nil {
		t.Fatalf("SetKeyTags: %v", err)
	}
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect to the cluster's database: %v", err)
	}
	defer db.Close(context.Background())
	var job clusterJob
	waitFor(t, "the rotation of "+slowOrg.id+" copied (a pending wrapping), not yet switched", func() (bool, string) {
		job = latestJob(t, db, slowOrg.id)
		return job.Kind == "rotate" && job.State == "running" && job.Pending, fmt.Sprintf("%+v", job)
	})
	holder := c.nodeByID(job.NodeID)
	if holder == nil {
		t.Fatalf("job %d is held by %q, which is none of the nodes", job.ID, job.Owner)
	}
	// Every node shows the job as running while its holder lives (not
	// "stalled" because another node holds it).
	for _, n := range c.live() {
		st, err := c.client(n, slowOrg.secToken).CMKStatus(ctx, slowOrg.id)
		if err != nil || st.Job == nil || st.Job.ID != job.ID || st.Job.State != "running" {
			t.Errorf("status of %s on %s while %s holds the job: job %+v, %v; want job %d running", slowOrg.id, n.name, holder.name, st.Job, err, job.ID)
		}
	}
	c.kill(holder)
	killed := time.Now()
	if after := latestJob(t, db, slowOrg.id); after.State != "running" || !after.Pending {
		t.Fatalf("after the SIGKILL of %s, the job is %+v; want it running, with its pending copy: raise the slow vault's latency", holder.name, after)
	}
	t.Logf("killed %s (%s), holder of the lease of rotate job %d, after the copy", holder.name, holder.id, job.ID)
	alive := c.live()
	wantNodes := map[string]string{holder.id: "gone"}
	for _, n := range alive {
		wantNodes[n.id] = "live"
	}
	waitNodes(t, c.client(alive[0], opToken), wantNodes)
	waitFor(t, "another node finishes rotate job "+fmt.Sprint(job.ID), func() (bool, string) {
		st, err := c.client(alive[0], slowOrg.secToken).CMKStatus(ctx, slowOrg.id)
		return err == nil && st.Job != nil && st.Job.ID == job.ID && st.Job.State == "done" && st.State == "active",
			fmt.Sprintf("%+v job %+v, %v", st, st.Job, err)
	})
	t.Logf("rotate job %d finished %v after the SIGKILL", job.ID, time.Since(killed).Round(time.Millisecond))
	done := latestJob(t, db, slowOrg.id)
	if finisher := c.nodeByID(done.NodeID); done.ID != job.ID || finisher == nil || finisher == holder || finisher.proc == nil {
		t.Errorf("rotate job %d was last held by %q; want a live node other than %s (%s)", job.ID, done.Owner, holder.name, holder.id)
	}
	if ws := pgWrappings(t, db, slowOrg.id); len(ws) != 1 || ws[0].State != "active" || !strings.EqualFold(ws[0].Version, rotated.Version) {
		t.Errorf("after the rotation, root key wrappings of %s:\n%s\nwant one, active, by version %s", slowOrg.id, wrappingList(ws), rotated.Version)
	}
	if err := emu.ClearFault(clusterSlowVault); err != nil {
		t.Fatal(err)
	}
	// Nothing lost: with every cache purged, every ciphertext decrypts on
	// every live node through the stored wrappings.
	for _, n := range alive {
		if err := c.client(n, opToken).PurgeCache(ctx, ""); err != nil {
			t.Fatalf("PurgeCache on %s: %v", n.name, err)
		}
	}
	checkAll("after the SIGKILL")
	for _, o := range orgs {
		if v, err := c.client(alive[0], opToken).VerifyAudit(ctx, o.id); err != nil || !v.OK {
			t.Errorf("VerifyAudit(%s) on %s = %+v, %v; want an intact chain", o.id, alive[0].name, v, err)
		}
	}
	verify := exec.Command(c.bin, "audit", "verify", "--all")
	verify.Env = append(crashEnv(), "ORGKMS_ADDR="+alive[0].url, "ORGKMS_TOKEN="+opToken)
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("orgkms audit verify --all on %s: %v\n%s", alive[0].name, err, out)
	}

	// 4. A node started after a revocation refuses the org from its first
	// request on: its state comes from the database, not from a cache.
	setKeyEnabled(t, emu, azureemu.DemoVault, clusterSharedKey, false)
	waitRefused(t, alive, svc, shared, client.CodeCMKKeyDisabled)
	for _, o := range shared {
		waitFor(t, "org "+o.id+" revoked in the database", func() (bool, string) {
			st, err := c.client(alive[0], opToken).CMKStatus(ctx, o.id)
			return err == nil && st.State == "revoked", fmt.Sprintf("%+v, %v", st, err)
		})
	}
	// The killed node restarted with its data directory, and a new node
	// that never saw the org.
	fresh := c.nodes[3]
	c.start(holder, fresh)
	restarted := holder.proc.started
	all := map[string]string{}
	for _, n := range c.nodes {
		all[n.id] = "live"
	}
	waitNodes(t, c.client(fresh, opToken), all)
	for _, n := range []*clusterNode{holder, fresh} {
		for _, o := range shared {
			_, err := svc(n).Decrypt(ctx, o.id, "default", o.sealed[0].ciphertext, nil)
			if !errors.Is(err, client.CodeCMKKeyDisabled) {
				t.Errorf("first decrypt of revoked org %s on %s, started after the revocation: %v; want %s", o.id, n.name, err, client.CodeCMKKeyDisabled)
			}
		}
		for _, o := range []*clusterOrg{solo, slowOrg} {
			if err := decryptCheck(ctx, svc(n), o.id, o.sealed[0]); err != nil {
				t.Errorf("decrypt %s on %s, started after the revocation: %v", o.id, n.name, err)
			}
		}
	}
	// Still refused once a probe ran after the start.
	waitFor(t, "a probe of "+shared[0].id+" after the start", func() (bool, string) {
		st, err := c.client(holder, opToken).CMKStatus(ctx, shared[0].id)
		return err == nil && st.LastProbeAt != nil && st.LastProbeAt.After(restarted.Add(time.Second)), fmt.Sprintf("%+v, %v", st, err)
	})
	for _, n := range []*clusterNode{holder, fresh} {
		for _, o := range shared {
			if _, err := svc(n).Decrypt(ctx, o.id, "default", o.sealed[0].ciphertext, nil); !errors.Is(err, client.CodeCMKKeyDisabled) {
				t.Errorf("decrypt of revoked org %s on %s after a probe: %v; want %s", o.id, n.name, err, client.CodeCMKKeyDisabled)
			}
		}
	}
	c.stopAll()
}

// decryptCheck decrypts s on the org's default key and checks the
// plaintext: a wrong one is an error that no caller accepts.
func decryptCheck(ctx context.Context, svc *client.Client, org string, s sealed) error {
	pt, err := svc.Decrypt(ctx, org, "default", s.ciphertext, nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(pt, s.plaintext) {
		return fmt.Errorf("a wrong result: decrypt returned %q, want %q", pt, s.plaintext)
	}
	return nil
}

// setKeyEnabled enables or disables the current version of a key, as the
// customer would in their vault.
func setKeyEnabled(t *testing.T, emu *azureemu.Emulator, vault, name string, enabled bool) {
	t.Helper()
	if _, err := emu.UpdateKey(vault, name, "", &enabled, nil, nil); err != nil {
		t.Fatalf("UpdateKey %s enabled=%v: %v", name, enabled, err)
	}
}

// waitRefused polls every node's decrypt of each org until all refuse
// with code, and returns when each node refused each org (relative to the
// call). Until then a node may still serve an org; once it refused one, it
// must never serve it again; any other error fails the test.
func waitRefused(t *testing.T, nodes []*clusterNode, svc func(*clusterNode) *client.Client, orgs []*clusterOrg, code client.Code) string {
	t.Helper()
	return waitTransition(t, nodes, svc, orgs, code, true)
}

// waitServed is the converse of waitRefused: every node serves every org
// again; until then it may refuse with code; once it served, it must never
// refuse again.
func waitServed(t *testing.T, nodes []*clusterNode, svc func(*clusterNode) *client.Client, orgs []*clusterOrg, code client.Code) string {
	t.Helper()
	return waitTransition(t, nodes, svc, orgs, code, false)
}

func waitTransition(t *testing.T, nodes []*clusterNode, svc func(*clusterNode) *client.Client, orgs []*clusterOrg, code client.Code, refuse bool) string {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	want, was := "refused", "served"
	if !refuse {
		want, was = was, want
	}
	type pair struct {
		n *clusterNode
		o *clusterOrg
	}
	reached := map[pair]time.Duration{}
	deadline := start.Add(clusterTimeout)
	for {
		for _, n := range nodes {
			for _, o := range orgs {
				p := pair{n, o}
				err := decryptCheck(ctx, svc(n), o.id, o.sealed[0])
				isRefused := errors.Is(err, code)
				if err != nil && !isRefused {
					t.Fatalf("decrypt %s on %s: %v; want it %s or %s with %s", o.id, n.name, err, was, want, code)
				}
				if _, done := reached[p]; done {
					if isRefused != refuse {
						t.Errorf("%s %s org %s again after it was %s", n.name, was, o.id, want)
					}
					continue
				}
				if isRefused == refuse {
					reached[p] = time.Since(start)
				}
			}
		}
		if len(reached) == len(nodes)*len(orgs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every node %s %d orgs within %v: %d of %d (node, org) pairs", want, len(orgs), clusterTimeout, len(reached), len(nodes)*len(orgs))
		}
		time.Sleep(clusterPoll)
	}
	var parts []string
	for _, n := range nodes {
		var last time.Duration
		for _, o := range orgs {
			last = max(last, reached[pair{n, o}])
		}
		parts = append(parts, fmt.Sprintf("%s %v", n.name, last.Round(time.Millisecond)))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// clusterJob is an org's latest re-wrap job as stored.
type clusterJob struct {
	ID          int64
	Kind, State string
	Owner       string // the lease holder: NODE_ID/CLAIM
	NodeID      string // of Owner
	Pending     bool   // the org has a pending wrapping (the job's copy)
}

func latestJob(t *testing.T, db *pgx.Conn, org string) clusterJob {
	t.Helper()
	var j clusterJob
	err := db.QueryRow(t.Context(), `SELECT id, kind, state, owner,
		EXISTS (SELECT 1 FROM root_keys WHERE org_id = $1 AND state = 'pending')
		FROM cmk_jobs WHERE org_id = $1 ORDER BY id DESC LIMIT 1`, org).Scan(&j.ID, &j.Kind, &j.State, &j.Owner, &j.Pending)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("latest job of %s: %v", org, err)
	}
	j.NodeID, _, _ = strings.Cut(j.Owner, "/")
	return j
}

// pgWrappings reads an org's root key wrappings from the database, the
// active one first.
func pgWrappings(t *testing.T, db *pgx.Conn, org string) []wrapping {
	t.Helper()
	rows, err := db.Query(t.Context(), `SELECT provider, key_id, key_version, state FROM root_keys WHERE org_id = $1 ORDER BY state = 'active' DESC, id`, org)
	if err != nil {
		t.Fatalf("root key wrappings of %s: %v", org, err)
	}
	defer rows.Close()
	var ws []wrapping
	for rows.Next() {
		var w wrapping
		if err := rows.Scan(&w.Provider, &w.KeyID, &w.Version, &w.State); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ws
}

// waitNodes waits until the node list (GET /v1/nodes) shows exactly the
// nodes of want, each in its state (live, gone).
func waitNodes(t *testing.T, op *client.Client, want map[string]string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("node list %v", want), func() (bool, string) {
		l, err := op.ListNodes(t.Context())
		if err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, n := range l.Nodes {
			got[n.ID] = n.State
		}
		return maps.Equal(got, want), fmt.Sprintf("%v", got)
	})
}
