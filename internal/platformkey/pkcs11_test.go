package platformkey_test

import (
	"context"
	"testing"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11"
	"github.com/orgkms/orgkms/internal/masterkey/pkcs11/softhsmtest"
)

// TestPKCS11NewVersionRewraps: a new key version in the HSM (orgkms hsm
// new-version) is the platform key's new current version: the check
// detects it and the job re-wraps every org to it, on SoftHSM2.
func TestPKCS11NewVersionRewraps(t *testing.T) {
	ctx := t.Context()
	tok := softhsmtest.New(t, "orgkms", "4321")
	p, err := pkcs11.New(pkcs11.Config{ModulePath: tok.Module, PINSource: "file:" + tok.PINFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ref, err := pkcs11.ParseRef("pkcs11:token=orgkms;object=platform-kek")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.NewVersion(ctx, ref); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t)
	w.reg.Register(pkcs11.Driver(), masterkey.NewKeeper(pkcs11.Scheme, p, masterkey.KeeperOptions{Logger: w.log}))
	w.open("node-1", ref)
	w.createOrgs("org", 12)
	v1, err := w.plat.Current(ctx)
	if err != nil || v1.Version != "1" {
		t.Fatalf("Current = %v, %v; want version 1", v1, err)
	}
	if _, err := p.NewVersion(ctx, ref); err != nil {
		t.Fatal(err)
	}
	started, err := w.plat.Check(ctx)
	if err != nil || !started {
		t.Fatalf("Check after hsm new-version = %v, %v; want a job", started, err)
	}
	if err := w.plat.RunPending(ctx); err != nil {
		t.Fatal(err)
	}
	v2 := ref.WithVersion("2")
	if got := w.versions(); got[v2] != 12 || len(got) != 1 {
		t.Fatalf("wrappings after the job = %v, want 12 on %v", got, v2)
	}
	if j, err := w.st.LatestPlatformJob(ctx); err != nil || j.State != jobs.Done {
		t.Fatalf("LatestPlatformJob = %+v, %v; want done", j, err)
	}
	w.checkDecrypts()
	w.checkAudit("org-003", "platform.rewrap", 1)
	evs, _ := w.st.AuditEvents(context.Background(), audit.Platform, 0, 0)
	for _, e := range evs {
		for _, v := range e.Details {
			if len(v) > 6 && (v == tok.Module || v == tok.PINFile) {
				t.Fatalf("platform audit event %s names the HSM's module or PIN file", e.Action)
			}
		}
	}
}
