package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/masterkey/localkey"
)

// TestCrashPlatformRewrap: a SIGKILL of orgkms right after each durable
// step of the platform re-wrap job (copied, switched) loses no org: after
// the crash the org has its old wrapping (and the copy) or only the new
// one; after a restart the job finishes, the org is wrapped once, by the
// new version of the platform key, and every ciphertext decrypts.
func TestCrashPlatformRewrap(t *testing.T) {
	bin := buildOrgkms(t, t.TempDir(), "crashtest")
	emu, demo := startCrashEmulator(t)
	for _, at := range []string{"copied", "switched"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			c := newCrashCase(t, bin, emu, demo, "platform-"+at)
			ctx := t.Context()
			c.start("")
			from := c.setUp()
			c.stop()
			v2, err := localkey.AddVersion(filepath.Join(c.dir, "data", "master.key"))
			if err != nil {
				t.Fatal(err)
			}
			to := wrapping{State: "active", Provider: from.Provider, KeyID: from.KeyID, Version: v2}
			// At start the server finds the new version and runs the job.
			c.start(at)
			c.waitCrash(at)
			ws := c.wrappings()
			switch at {
			case "copied":
				pending := wrapping{State: "pending", Provider: from.Provider, KeyID: from.KeyID, Version: v2}
				if len(ws) != 2 || !ws[0].matches(from) || !ws[1].matches(pending) {
					t.Fatalf("wrappings after a crash at %s:\n%s\nwant the old one active and the copy pending", at, wrappingList(ws))
				}
			case "switched":
				if len(ws) != 1 || !ws[0].matches(to) {
					t.Fatalf("wrappings after a crash at %s:\n%s\nwant only %v", at, wrappingList(ws), to)
				}
			}
			c.start("")
			deadline := time.Now().Add(crashJobTimeout)
			for {
				st, err := c.op.PlatformKeyStatus(ctx)
				if err == nil && st.Job != nil && st.Job.State == "done" && st.OnCurrent >= 1 && st.OnOlder == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("platform re-wrap not done %v after the restart: %+v, %v", crashJobTimeout, st, err)
				}
				time.Sleep(crashPollInterval)
			}
			if ws := c.wrappings(); len(ws) != 1 || !ws[0].matches(to) {
				t.Fatalf("wrappings after the resumed job:\n%s\nwant only %v", wrappingList(ws), to)
			}
			c.checkCiphertexts()
			if v, err := c.op.VerifyAudit(ctx, c.org); err != nil || !v.OK {
				t.Fatalf("VerifyAudit(%s) = %+v, %v", c.org, v, err)
			}
			evs, err := c.op.Audit(ctx, c.org, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range evs {
				if e.Action == "platform.rewrap" {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("the org's audit chain has %d platform.rewrap events, want 1", n)
			}
			c.stop()
		})
	}
}
