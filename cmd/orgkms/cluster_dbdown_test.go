package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// Phases of TestClusterDatabaseDown.
const (
	phaseUp     = iota // the database is up
	phaseDown          // stopped, and both nodes' /readyz said so
	phaseBack          // started again, and both nodes' /readyz said so
	phaseMoving        // between two phases: answers are checked, not counted
	numPhases
)

var phaseNames = [numPhases]string{"up", "down", "back", "moving"}

// outageTally counts the answers of the load per phase and keeps the bad
// ones: anything but a correct result or a 503 unavailable with
// Retry-After and a retry hint.
type outageTally struct {
	phase                 atomic.Int32
	dataOK, dataUnavail   [numPhases]atomic.Int64
	adminOK, adminUnavail [numPhases]atomic.Int64
	bad                   syncList[string]
}

// answer classifies one answer; data says whether it was a data-plane call.
func (o *outageTally) answer(data bool, what string, err error) bool {
	p := o.phase.Load()
	ok, unavail := &o.adminOK[p], &o.adminUnavail[p]
	if data {
		ok, unavail = &o.dataOK[p], &o.dataUnavail[p]
	}
	if err == nil {
		ok.Add(1)
		return true
	}
	var e *client.Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable && e.Code == string(client.CodeUnavailable) &&
		e.RetryAfter > 0 && strings.Contains(e.Message, "retry") {
		unavail.Add(1)
		return false
	}
	detail := err.Error()
	if errors.As(err, &e) {
		detail = fmt.Sprintf("HTTP %d %s %q Retry-After %v", e.Status, e.Code, e.Message, e.RetryAfter)
	}
	o.bad.add(fmt.Sprintf("database %s: %s: %s", phaseNames[p], what, detail))
	return false
}

func (o *outageTally) String() string {
	var b strings.Builder
	for p := range phaseMoving {
		fmt.Fprintf(&b, "[%s: data %d ok, %d unavailable; admin %d ok, %d unavailable] ", phaseNames[p],
			o.dataOK[p].Load(), o.dataUnavail[p].Load(), o.adminOK[p].Load(), o.adminUnavail[p].Load())
	}
	return strings.TrimSpace(b.String())
}

// TestClusterDatabaseDown runs two orgkms nodes on a private PostgreSQL
// server under a steady encrypt/decrypt load and a few admin calls, stops
// the server as a crash would (pg_ctl stop -m immediate), and starts it
// again. Every answer is either correct or 503 unavailable with
// Retry-After and a retry hint: never a wrong result, never a 500. While
// the database is down, /readyz is false and admin calls are unavailable,
// but the data plane keeps serving the orgs it has in memory (the hot path
// never touches the database). Once it is back, the nodes recover by
// themselves: /readyz true, writes work, and every ciphertext made at any
// time decrypts on both nodes.
func TestClusterDatabaseDown(t *testing.T) {
	pg := pgtest.StartServer(t)
	bin := buildOrgkms(t, t.TempDir())
	// Keys, their metadata and verified tokens stay in memory for the
	// whole test: what is served while the database is down is what the
	// nodes hold.
	c := newCluster(t, bin, pg.URL, 2, map[string]any{"cache_ttl": "30m", "key_metadata_ttl": "30m", "token_cache_ttl": "30m"})
	c.migrate()
	c.start(c.nodes[0])
	c.start(c.nodes[1])
	ctx := t.Context()
	opToken := c.operatorToken()
	op := c.client(c.nodes[0], opToken)
	svcTok, err := op.CreateToken(ctx, client.CreateTokenRequest{Principal: "svc", Roles: []string{"service"}})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	orgs := []string{"down-a", "down-b", "down-c"}
	var sealedMu sync.Mutex
	made := map[string][]sealed{} // org → ciphertexts whose encrypt succeeded
	for _, org := range orgs {
		if _, err := op.CreateOrg(ctx, org, "Outage "+org); err != nil {
			t.Fatalf("CreateOrg %s: %v", org, err)
		}
	}
	// Warm both nodes: every org's key in memory, the token verified.
	for _, n := range c.nodes {
		for _, org := range orgs {
			pt := []byte(org + " warm-up on " + n.name)
			ct, _, err := c.client(n, svcTok.Secret).Encrypt(ctx, org, "default", pt, nil)
			if err != nil {
				t.Fatalf("Encrypt %s on %s: %v", org, n.name, err)
			}
			s := sealed{plaintext: pt, ciphertext: ct}
			for _, m := range c.nodes {
				if err := decryptCheck(ctx, c.client(m, svcTok.Secret), org, s); err != nil {
					t.Fatalf("Decrypt %s on %s: %v", org, m.name, err)
				}
			}
			made[org] = append(made[org], s)
		}
	}

	var tally outageTally
	var stop atomic.Bool
	var wg sync.WaitGroup
	pause := func() { time.Sleep(5 * time.Millisecond) } // steady, not saturating
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				n, other := c.nodes[(w+i)%2], c.nodes[(w+i+1)%2]
				org := orgs[(w+i)%len(orgs)]
				pt := fmt.Appendf(nil, "%s worker %d op %d %s", org, w, i, rand.Text())
				ct, _, err := c.client(n, svcTok.Secret).Encrypt(ctx, org, "default", pt, nil)
				if tally.answer(true, "encrypt "+org+" on "+n.name, err) {
					sealedMu.Lock()
					made[org] = append(made[org], sealed{plaintext: pt, ciphertext: ct})
					sealedMu.Unlock()
				}
				sealedMu.Lock()
				s := made[org][i%len(made[org])]
				sealedMu.Unlock()
				tally.answer(true, "decrypt "+org+" on "+other.name, decryptCheck(ctx, c.client(other, svcTok.Secret), org, s))
				pause()
			}
		})
	}
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			n := c.nodes[i%2]
			cl := c.client(n, opToken)
			name := fmt.Sprintf("k%d", i)
			_, err := cl.CreateKey(ctx, orgs[0], name)
			tally.answer(false, "create key "+name+" on "+n.name, err)
			_, err = cl.ListOrgs(ctx, "", 0)
			tally.answer(false, "list orgs on "+n.name, err)
			time.Sleep(50 * time.Millisecond)
		}
	})
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	waitCount := func(what string, cond func() bool) {
		t.Helper()
		waitFor(t, what, func() (bool, string) { return cond(), tally.String() })
	}
	readyAll := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			var why []string
			for _, n := range c.nodes {
				ok, s := c.ready(n)
				if ok != want {
					return false, n.name + ": " + s
				}
				why = append(why, s)
			}
			return true, strings.Join(why, "; ")
		}
	}

	waitCount("load with the database up", func() bool { return tally.dataOK[phaseUp].Load() >= 40 && tally.adminOK[phaseUp].Load() >= 6 })

	// Down, as a crash.
	tally.phase.Store(phaseMoving)
	pg.Stop(t)
	stopped := time.Now()
	waitFor(t, "/readyz false on both nodes", readyAll(false))
	t.Logf("database stopped: /readyz false on both nodes %v later", time.Since(stopped).Round(time.Millisecond))
	for _, n := range c.nodes {
		resp, err := c.http.Get(n.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"unavailable"`) {
			t.Errorf("/readyz of %s with the database down: %s, Retry-After %q, %s; want 503 unavailable with Retry-After", n.name, resp.Status, resp.Header.Get("Retry-After"), body)
		}
	}
	tally.phase.Store(phaseDown)
	waitCount("admin calls unavailable and the data plane served from memory while the database is down", func() bool {
		return tally.adminUnavail[phaseDown].Load() >= 6 && tally.dataOK[phaseDown].Load() >= 40
	})

	// Back.
	tally.phase.Store(phaseMoving)
	pg.Start(t)
	started := time.Now()
	waitFor(t, "/readyz true on both nodes", readyAll(true))
	t.Logf("database started again: /readyz true on both nodes %v later", time.Since(started).Round(time.Millisecond))
	tally.phase.Store(phaseBack)
	waitCount("writes on both nodes after the database is back", func() bool {
		return tally.adminOK[phaseBack].Load() >= 8 && tally.dataOK[phaseBack].Load() >= 40
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("answers: %s", tally.String())
	for _, b := range tally.bad.all() {
		t.Errorf("bad answer: %s", b)
	}
	if tally.dataUnavail[phaseDown].Load() > 0 {
		t.Errorf("%d data-plane calls on keys in memory were unavailable while the database was down; want every one served (the hot path never touches the database)", tally.dataUnavail[phaseDown].Load())
	}

	// Nothing lost: every ciphertext whose encrypt succeeded, before,
	// during or after the outage, decrypts on both nodes, and the audit
	// chains verify.
	for _, n := range c.nodes {
		cl := c.client(n, svcTok.Secret)
		for _, org := range orgs {
			for i, s := range made[org] {
				if err := decryptCheck(ctx, cl, org, s); err != nil {
					t.Errorf("after the outage, decrypt ciphertext %d of %s on %s: %v", i, org, n.name, err)
				}
			}
		}
	}
	for _, org := range orgs {
		if v, err := op.VerifyAudit(ctx, org); err != nil || !v.OK {
			t.Errorf("VerifyAudit(%s) = %+v, %v; want an intact chain", org, v, err)
		}
	}
	c.stopAll()
	if out := c.outputs(); strings.Contains(out, pg.Password) {
		t.Errorf("a node's output shows the database password")
	}
}
