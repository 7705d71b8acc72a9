package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/store/postgres/pgtest"
)

// shredClockOffset moves the clock of a server started after the deletion
// was scheduled past its date (the shortest waiting period is 7 days).
const shredClockOffset = "192h"

// TestCrashShred proves the crypto-shred of an org on real orgkms
// processes: a SIGKILL right after each durable step of the shred job
// (erased: the one transaction that removes the org's wrapped keys, the
// point between the erase and the scrub; scrubbed: the last one) loses
// nothing and repeats nothing. After a restart the same job finishes: the
// org is deleted, org.shredded is in its chain exactly once, the chain
// verifies (orgkms audit verify), the other org still decrypts, and the
// database files hold none of the wrapped key bytes the org had before,
// while they still hold the other org's: on SQLite the main file and its
// WAL, on PostgreSQL (a private local server) every file of orgkms's
// database (the store's own test, TestShredLeavesNoBytesInTableFiles,
// looks at each table's heap, TOAST table and indexes).
//
// The deletion date is reached with the crashtest build's clock offset
// (ORGKMS_TEST_CLOCK_OFFSET, see crashhook.go), which a production binary
// does not read.
func TestCrashShred(t *testing.T) {
	bin := buildOrgkms(t, t.TempDir(), "crashtest")
	emu, demo := startCrashEmulator(t)
	for _, db := range []string{"sqlite", "postgres"} {
		for _, at := range []string{"erased", "scrubbed"} {
			t.Run(db+"/"+at, func(t *testing.T) {
				t.Parallel()
				var pg []*pgtest.Server
				if db == "postgres" {
					// A private server: the test reads its files.
					pg = append(pg, pgtest.StartServer(t))
				}
				c := newCrashCase(t, bin, emu, demo, "shred-"+db+"-"+at, pg...)
				c.runShred(at)
			})
		}
	}
}

// shredOrg is the other org of a shred case, which must stay intact.
type shredOrg struct {
	id         string
	svc        *client.Client
	ciphertext []sealed
}

func (c *crashCase) runShred(at string) {
	t := c.t
	ctx := t.Context()
	c.start("")
	c.setUp()
	// A second key with two versions: every data key version is erased.
	if _, err := c.op.CreateKey(ctx, c.org, "extra"); err != nil {
		t.Fatalf("CreateKey(%s, extra): %v", c.org, err)
	}
	if _, err := c.op.RotateKey(ctx, c.org, "extra"); err != nil {
		t.Fatalf("RotateKey(%s, extra): %v", c.org, err)
	}
	other := c.otherOrg(c.org + "-other")
	c.stop()

	doomed, kept := c.storedBlobs(c.org), c.storedBlobs(other.id)
	if len(doomed) != 4 { // root key, default v1, extra v1 and v2
		t.Fatalf("%s has %d stored wrapped blobs, want 4 (root key and 3 data key versions)", c.org, len(doomed))
	}
	if found := c.blobsInFiles(doomed); len(found) != len(doomed) {
		t.Fatalf("before the shred, the database files hold %d of the %d wrapped blobs of %s: the byte check does not see them", len(found), len(doomed), c.org)
	}

	c.start("")
	o, err := c.op.DeleteOrg(ctx, c.org, 0)
	if err != nil || !o.PendingDeletion {
		t.Fatalf("DeleteOrg(%s) = %+v, %v; want pending deletion", c.org, o, err)
	}
	c.stop()

	// Past the deletion date the server claims the job at start and dies
	// right after step at.
	c.env = []string{"ORGKMS_TEST_CLOCK_OFFSET=" + shredClockOffset}
	c.start(at)
	c.waitCrash(at)
	jobID := c.checkShredAfterCrash(at)
	switch found := c.blobsInFiles(doomed); {
	case at == "scrubbed" && len(found) > 0:
		t.Errorf("after the scrub and a crash, the database files still hold %d wrapped blobs of %s", len(found), c.org)
	case at == "erased":
		// Not asserted: what the erase left depends on SQLite's page
		// reuse. The scrub after the restart must remove it.
		t.Logf("after the erase and a crash, before the scrub, the database files hold %d of the %d wrapped blobs of %s", len(found), len(doomed), c.org)
	}

	c.start("")
	c.waitShredDone(jobID)
	c.checkShredOutcome(other)
	if found := c.blobsInFiles(doomed); len(found) > 0 {
		t.Errorf("after the resumed shred, the database files still hold %d wrapped blobs of %s", len(found), c.org)
	}
	c.stop()
	// Once the server is gone (its last connection checkpointed the WAL):
	// the files, not only what the server reports.
	if found := c.blobsInFiles(doomed); len(found) > 0 {
		t.Errorf("after the resumed shred and a stop, the database files still hold %d wrapped blobs of %s", len(found), c.org)
	}
	if found := c.blobsInFiles(kept); len(found) != len(kept) {
		t.Errorf("after the shred of %s, the database files hold %d of the %d wrapped blobs of %s, want all", c.org, len(found), len(kept), other.id)
	}
	if got := c.storedBlobs(other.id); !sameBlobs(got, kept) {
		t.Errorf("the wrapped blobs of %s changed in the shred of %s", other.id, c.org)
	}
}

// otherOrg creates org id with a service token and a few ciphertexts.
func (c *crashCase) otherOrg(id string) shredOrg {
	t := c.t
	ctx := t.Context()
	if _, err := c.op.CreateOrg(ctx, id, "Kept "+id); err != nil {
		t.Fatalf("CreateOrg(%s): %v", id, err)
	}
	tok, err := c.op.CreateToken(ctx, client.CreateTokenRequest{Principal: "svc", Org: id, Roles: []string{"service"}})
	if err != nil {
		t.Fatalf("CreateToken(%s): %v", id, err)
	}
	o := shredOrg{id: id, svc: c.client(tok.Secret)}
	for i := range 2 {
		pt := fmt.Appendf(nil, "%s secret %d", id, i)
		ct, _, err := o.svc.Encrypt(ctx, id, "default", pt, nil)
		if err != nil {
			t.Fatalf("Encrypt(%s): %v", id, err)
		}
		o.ciphertext = append(o.ciphertext, sealed{plaintext: pt, ciphertext: ct})
	}
	return o
}

// storedBlobs reads every wrapped key of org from the database: its root
// key wrappings and its data key versions.
func (c *crashCase) storedBlobs(org string) [][]byte {
	var out [][]byte
	err := c.query(func(db *sql.DB) error {
		for _, q := range []string{
			`SELECT ciphertext FROM root_keys WHERE org_id = $1 ORDER BY id`,
			`SELECT wrapped FROM data_key_versions WHERE org_id = $1 ORDER BY name, version`,
		} {
			rows, err := db.QueryContext(c.t.Context(), q, org)
			if err != nil {
				return err
			}
			for rows.Next() {
				var b []byte
				if err := rows.Scan(&b); err != nil {
					rows.Close()
					return err
				}
				out = append(out, b)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("read the wrapped keys of %s: %v", org, err)
	}
	return out
}

func sameBlobs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// blobsInFiles returns the blobs found in the bytes of the database files:
// the SQLite database, its WAL and a rollback journal, whichever exist; or
// every file of the PostgreSQL database's directory, after a checkpoint
// (dirty pages reach the files; the scrub itself needs none).
func (c *crashCase) blobsInFiles(blobs [][]byte) [][]byte {
	t := c.t
	var all []byte
	files := []string{"orgkms.db", "orgkms.db-wal", "orgkms.db-journal"}
	for i, name := range files {
		files[i] = filepath.Join(c.dir, "data", name)
	}
	if c.pg != nil {
		files = c.pgFiles()
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if len(all) == 0 {
		t.Fatalf("no database file among %v", files)
	}
	var found [][]byte
	for _, b := range blobs {
		if len(b) < 16 {
			t.Fatalf("a wrapped blob of %d bytes is too short to look for", len(b))
		}
		if bytes.Contains(all, b) {
			found = append(found, b)
		}
	}
	return found
}

// shredJob is a row of shred_jobs.
type shredJob struct {
	ID          int64
	Step, State string
}

// shredJobs reads the org's shred jobs from the database, oldest first.
func (c *crashCase) shredJobs() []shredJob {
	var js []shredJob
	err := c.query(func(db *sql.DB) error {
		rows, err := db.QueryContext(c.t.Context(), `SELECT id, step, state FROM shred_jobs WHERE org_id = $1 ORDER BY id`, c.org)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var j shredJob
			if err := rows.Scan(&j.ID, &j.Step, &j.State); err != nil {
				return err
			}
			js = append(js, j)
		}
		return rows.Err()
	})
	if err != nil {
		c.t.Fatalf("read the shred jobs of %s: %v", c.org, err)
	}
	return js
}

// shredState reads what the database says of the org's shred: its
// lifecycle state, how many wrapped keys it still has, and how many
// org.shredded events its chain holds.
func (c *crashCase) shredState() (state string, wrapped, shredded int) {
	err := c.query(func(db *sql.DB) error {
		ctx := c.t.Context()
		if err := db.QueryRowContext(ctx, `SELECT coalesce((SELECT state FROM org_lifecycle WHERE org_id = $1), 'active')`, c.org).Scan(&state); err != nil {
			return err
		}
		if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM root_keys WHERE org_id = $1) + (SELECT count(*) FROM data_key_versions WHERE org_id = $1)`, c.org).Scan(&wrapped); err != nil {
			return err
		}
		return db.QueryRowContext(ctx, `SELECT count(*) FROM audit_events WHERE org_id = $1 AND action = 'org.shredded'`, c.org).Scan(&shredded)
	})
	if err != nil {
		c.t.Fatalf("read the shred state of %s: %v", c.org, err)
	}
	return state, wrapped, shredded
}

// checkShredAfterCrash checks the database left by a crash right after
// step at and returns the job's ID: the erase is durable at either step
// (the org deleted, no wrapped key left, org.shredded once); after erased
// the job is still running, after scrubbed it is done.
func (c *crashCase) checkShredAfterCrash(at string) int64 {
	t := c.t
	js := c.shredJobs()
	if len(js) != 1 {
		t.Fatalf("after a crash at %s, %s has shred jobs %+v, want one", at, c.org, js)
	}
	want := shredJob{ID: js[0].ID, Step: "erased", State: "running"}
	if at == "scrubbed" {
		want.Step, want.State = "scrubbed", "done"
	}
	if js[0] != want {
		t.Errorf("after a crash at %s, the shred job is %+v, want %+v", at, js[0], want)
	}
	if state, wrapped, shredded := c.shredState(); state != "deleted" || wrapped != 0 || shredded != 1 {
		t.Errorf("after a crash at %s, %s is %s with %d wrapped keys and %d org.shredded events; want deleted, 0, 1", at, c.org, state, wrapped, shredded)
	}
	return js[0].ID
}

// waitShredDone waits until the org's shred job jobID is done.
func (c *crashCase) waitShredDone(jobID int64) {
	t := c.t
	deadline := time.Now().Add(crashJobTimeout)
	for {
		js := c.shredJobs()
		if len(js) == 1 && js[0].ID == jobID && js[0].State == "done" {
			if js[0].Step != "scrubbed" {
				t.Fatalf("the resumed shred job is %+v, want done after the step scrubbed", js[0])
			}
			return
		}
		if len(js) != 1 || js[0].ID != jobID || js[0].State == "failed" {
			t.Fatalf("the shred jobs of %s after the restart are %+v, want job %d only, resumed", c.org, js, jobID)
		}
		select {
		case <-c.proc.done:
			t.Fatalf("orgkms exited (%v) while waiting for the shred job", c.proc.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shred job %d of %s did not finish within %v after the restart: %+v", jobID, c.org, crashJobTimeout, js)
		}
		// Slower than the other polls: a reader can make the scrub's
		// checkpoint wait for a retry.
		time.Sleep(4 * crashPollInterval)
	}
}

// checkShredOutcome checks, through the API and the CLI, a finished shred
// of the case's org on the running server: the org is deleted and refuses
// its ciphertexts, org.shredded is in its chain once, every chain
// verifies, and the other org decrypts.
func (c *crashCase) checkShredOutcome(other shredOrg) {
	t := c.t
	ctx := t.Context()
	if o, err := c.op.GetOrg(ctx, c.org); err != nil || o.State != "deleted" || o.DeletedAt == nil {
		t.Errorf("GetOrg(%s) after the shred = %+v, %v; want deleted", c.org, o, err)
	}
	if state, wrapped, shredded := c.shredState(); state != "deleted" || wrapped != 0 || shredded != 1 {
		t.Errorf("after the resumed shred, %s is %s with %d wrapped keys and %d org.shredded events; want deleted, 0, 1", c.org, state, wrapped, shredded)
	}
	// Through the server's own caches, then with them purged.
	for _, purge := range []bool{false, true} {
		if purge {
			if err := c.op.PurgeCache(ctx, ""); err != nil {
				t.Fatalf("PurgeCache: %v", err)
			}
		}
		for i, s := range c.ciphertext {
			if _, err := c.svc.Decrypt(ctx, c.org, "default", s.ciphertext, nil); !errors.Is(err, client.CodeOrgDeleted) {
				t.Errorf("Decrypt(ciphertext %d of %s) after the shred (purged %v) = %v, want org_deleted", i, c.org, purge, err)
			}
		}
		for i, s := range other.ciphertext {
			pt, err := other.svc.Decrypt(ctx, other.id, "default", s.ciphertext, nil)
			if err != nil || !bytes.Equal(pt, s.plaintext) {
				t.Errorf("Decrypt(ciphertext %d of %s) after the shred of %s (purged %v) = %q, %v; want %q", i, other.id, c.org, purge, pt, err, s.plaintext)
			}
		}
	}
	evs, err := c.op.Audit(ctx, c.org, 0, 0)
	if err != nil {
		t.Fatalf("Audit(%s): %v", c.org, err)
	}
	n := 0
	for _, e := range evs {
		if e.Action == "org.shredded" {
			n++
			if e.Details["root_key_wrappings"] != "1" || e.Details["data_key_versions"] != "3" {
				t.Errorf("org.shredded details %v, want 1 root key wrapping and 3 data key versions", e.Details)
			}
		}
	}
	if n != 1 {
		t.Errorf("the audit chain of %s has %d org.shredded events, want exactly 1", c.org, n)
	}
	for _, args := range [][]string{{"--org", c.org}, {"--all"}} {
		verify := exec.Command(c.bin, append([]string{"audit", "verify"}, args...)...)
		verify.Env = append(crashEnv(), "ORGKMS_ADDR="+c.url, "ORGKMS_TOKEN="+c.bootstrapToken())
		if out, err := verify.CombinedOutput(); err != nil {
			t.Errorf("orgkms audit verify %s after the shred: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// bootstrapToken is the operator token the first server wrote.
func (c *crashCase) bootstrapToken() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "data", "bootstrap-token"))
	if err != nil {
		c.t.Fatalf("bootstrap token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// crashDatabase creates the database "orgkms" on pg and returns its URL
// (as pg's superuser, which owns its tables).
func crashDatabase(t *testing.T, pg *pgtest.Server) string {
	t.Helper()
	db, err := sql.Open("pgx", pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), `CREATE DATABASE orgkms`); err != nil {
		t.Fatalf("CREATE DATABASE orgkms: %v", err)
	}
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/orgkms"
	return u.String()
}

// pgFiles checkpoints the case's PostgreSQL database and returns every file
// of its directory (base/OID).
func (c *crashCase) pgFiles() []string {
	t := c.t
	var rel string
	err := c.query(func(db *sql.DB) error {
		if _, err := db.ExecContext(t.Context(), `CHECKPOINT`); err != nil {
			return err
		}
		return db.QueryRowContext(t.Context(), `SELECT pg_relation_filepath('root_keys')`).Scan(&rel)
	})
	if err != nil {
		t.Fatalf("checkpoint and locate the database's files: %v", err)
	}
	dir := filepath.Join(c.pg.DataDir(), filepath.Dir(rel))
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files
}
