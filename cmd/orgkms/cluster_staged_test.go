package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// TestClusterStagedRevocation runs three real "orgkms serve" processes on
// one PostgreSQL database and shows, for an org on the platform key:
//
//  1. decrypt-only mode set through node 1 is honoured by all three nodes
//     (encrypt refused with org_decrypt_only, decrypt served), with a
//     receipt from each ("honoured by 3 of 3 nodes"); off again, all three
//     encrypt;
//  2. a revocation scheduled through node 2 a few seconds ahead (the
//     shortest lead is lowered to 2s for the test) fires at its time, once
//     for the whole cluster: every node refuses the org with org_revoked,
//     the org's audit log has one cmk.revocation.apply, one node's log says
//     it applied it; lifted through node 3, every node serves the org.
//
// The waits poll conditions; nothing asserts how long a step took.
func TestClusterStagedRevocation(t *testing.T) {
	dbURL := pgtest.URL(t)
	bin := buildOrgkms(t, t.TempDir())
	ctx := t.Context()
	c := newCluster(t, bin, dbURL, 3, map[string]any{
		"cluster": map[string]any{"heartbeat_interval": "500ms", "node_timeout": "3s", "generation_check": "1s", "stale_after": "10s"},
		"cmk":     map[string]any{"revocation_min_lead": "2s"},
	})
	c.migrate()
	c.start(c.nodes[0])
	c.start(c.nodes[1], c.nodes[2])
	op := c.client(c.nodes[0], c.operatorToken())
	waitNodes(t, op, map[string]string{c.nodes[0].id: "live", c.nodes[1].id: "live", c.nodes[2].id: "live"})

	const org = "staged"
	if _, err := op.CreateOrg(ctx, org, "Staged revocation"); err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	svcTok, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "svc", Org: org, Roles: []string{"service"}})
	if err != nil {
		t.Fatalf("CreateToken svc: %v", err)
	}
	secTok, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "sec-staged", Org: org, Roles: []string{"admin", "key_admin"}})
	if err != nil {
		t.Fatalf("CreateToken sec: %v", err)
	}
	sec := func(i int) *client.Client { return c.client(c.nodes[i], secTok.Secret) }
	svc := func(n *clusterNode) *client.Client { return c.client(n, svcTok.Secret) }
	ct, _, err := svc(c.nodes[0]).Encrypt(ctx, org, "default", []byte("before"), nil)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	// each waits until every node answers encrypt and decrypt as want says
	// (a code, or nil for served).
	each := func(what string, encrypt, decrypt error) {
		t.Helper()
		waitFor(t, what, func() (bool, string) {
			for _, n := range c.nodes {
				_, _, eerr := svc(n).Encrypt(ctx, org, "default", []byte("x"), nil)
				pt, derr := svc(n).Decrypt(ctx, org, "default", ct, nil)
				if derr == nil && string(pt) != "before" {
					return false, n.name + ": decrypt returned another plaintext"
				}
				if !sameOutcome(eerr, encrypt) || !sameOutcome(derr, decrypt) {
					return false, fmt.Sprintf("%s: encrypt %v, decrypt %v", n.name, eerr, derr)
				}
			}
			return true, ""
		})
	}
	honoured := func(reason string) {
		t.Helper()
		waitFor(t, "receipts of "+reason, func() (bool, string) {
			st, err := sec(0).CMKStatus(ctx, org)
			if err != nil {
				return false, err.Error()
			}
			rv := st.Revocation
			if rv == nil || rv.Reason != reason || rv.Honoured != 3 || rv.Nodes != 3 {
				return false, fmt.Sprintf("%+v", rv)
			}
			return true, ""
		})
	}

	// 1. Decrypt-only through node 1.
	each("all nodes serve the org", nil, nil)
	if _, err := sec(0).CMKDecryptOnly(ctx, org, true, "cluster test"); err != nil {
		t.Fatalf("CMKDecryptOnly(on): %v", err)
	}
	each("all nodes refuse encrypt and decrypt", client.CodeOrgDecryptOnly, nil)
	honoured("decrypt_only")
	if _, err := sec(1).CMKDecryptOnly(ctx, org, false, ""); err != nil {
		t.Fatalf("CMKDecryptOnly(off): %v", err)
	}
	each("all nodes encrypt again", nil, nil)
	honoured("decrypt_only_off")

	// 2. A revocation scheduled through node 2, a few seconds ahead.
	at := time.Now().Add(4 * time.Second).UTC()
	st, err := sec(1).CMKScheduleRevocation(ctx, org, client.CMKRevocationRequest{At: at.Format(time.RFC3339Nano), Reason: "cluster test"})
	if err != nil {
		t.Fatalf("CMKScheduleRevocation: %v", err)
	}
	if st.Staged.Scheduled == nil || st.Staged.Scheduled.ScheduledBy != "sec-staged" {
		t.Fatalf("scheduled = %+v", st.Staged.Scheduled)
	}
	each("all nodes refuse the revoked org", client.CodeOrgRevoked, client.CodeOrgRevoked)
	if time.Now().Before(at) {
		t.Errorf("the org was refused before its revocation time %v", at)
	}
	honoured("staged_revoked")
	st, err = sec(2).CMKStatus(ctx, org)
	if err != nil || !st.Staged.Revoked || st.Staged.RevokedBy != "sec-staged" || st.Staged.Scheduled != nil {
		t.Errorf("status after the time = %+v, %v", st.Staged, err)
	}
	evs, err := sec(0).Audit(ctx, org, 0, 1000)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	applies := 0
	for _, ev := range evs {
		if ev.Action == "cmk.revocation.apply" {
			applies++
		}
	}
	if applies != 1 {
		t.Errorf("audit log has %d cmk.revocation.apply events, want 1", applies)
	}
	if n := strings.Count(c.outputs(), "scheduled revocation applied"); n != 1 {
		t.Errorf("%d node logs say the revocation was applied, want 1", n)
	}
	if v, err := sec(0).VerifyAudit(ctx, org); err != nil {
		t.Errorf("VerifyAudit = %+v, %v", v, err)
	}

	// Lifted through node 3.
	if _, err := sec(2).CMKCancelRevocation(ctx, org); err != nil {
		t.Fatalf("CMKCancelRevocation (lift): %v", err)
	}
	each("all nodes serve the org again", nil, nil)
	honoured("staged_lifted")
}

// sameOutcome reports whether err is the outcome want: nil, or an API
// error with want's code.
func sameOutcome(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}
