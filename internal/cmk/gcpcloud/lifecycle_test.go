package gcpcloud_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/gcpcloud"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

const (
	key = "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/orgkms-cmk"
	sa  = "orgkms@orgkms-platform.iam.gserviceaccount.com"
)

// world is orgkms (SQLite, a local platform key, the real gcpkms driver
// through the official Cloud KMS client) against the in-process Cloud KMS
// fake, with the Google cloud offered.
type world struct {
	t    *testing.T
	fake *gcpkmsemu.Server
	st   *sqlite.Store
	keys *keys.Service
	cmk  *cmk.Service
	skew *atomic.Int64 // added to the service's clock
}

func newWorld(t *testing.T) *world { t.Helper(); return newBudgetWorld(t, nil) }

// newBudgetWorld is newWorld with every Cloud KMS call drawing from b
// (none when nil), which the CMK service reports in its status.
func newBudgetWorld(t *testing.T, b *budget.Budget) *world {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	fake := gcpkmsemu.New()
	addr, err := fake.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	// The customer's key, labeled for the org; orgkms calls as the
	// anonymous principal of the plaintext fake.
	if err := fake.CreateKey(key, gcpkmsemu.KeyOptions{Labels: map[string]string{cmk.OwnershipTag: "acme"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "k.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kp := filepath.Join(dir, "master.key")
	localkey.EnsureFile(kp)
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	gc := gcpkms.Config{Endpoint: addr, Insecure: true, AllowedLocations: []string{"europe-west4"}, Timeout: 5 * time.Second}
	if b != nil {
		gc.Gate = b
	}
	p, err := gcpkms.Open(ctx, gc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	reg.Register(p.Driver(), masterkey.NewKeeper(gcpkms.Scheme, p, masterkey.KeeperOptions{Logger: log, Timeout: p.Timeout() + time.Second}))
	platform, _ := reg.ParseRef("local://" + kp)
	guard := &atomic.Pointer[cmk.Service]{}
	ks, err := keys.New(keys.Config{Store: st, Keepers: reg, PlatformKey: platform, Logger: log,
		Guard:    func(ctx context.Context, org string) error { return guard.Load().Guard(ctx, org) },
		DataLost: func(org string) time.Time { return guard.Load().DataLost(org) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close(context.Background()) })
	skew := &atomic.Int64{}
	cs, err := cmk.New(cmk.Config{Store: st, Keys: ks, Keepers: reg, Logger: log, CallbackURL: "http://127.0.0.1:1/v1/cmk/callback",
		Now:         func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		VaultBudget: b,
		Clouds:      []cmk.Cloud{gcpcloud.Cloud{ServiceAccount: sa, AllowedLocations: []string{"europe-west4"}}}})
	if err != nil {
		t.Fatal(err)
	}
	guard.Store(cs)
	return &world{t: t, fake: fake, st: st, keys: ks, cmk: cs, skew: skew}
}

func (w *world) probe(org string, want cmk.State) cmk.Status {
	w.t.Helper()
	if err := w.cmk.Probe(w.t.Context(), org); err != nil {
		w.t.Fatalf("Probe: %v", err)
	}
	if err := w.cmk.RunPendingJobs(w.t.Context()); err != nil {
		w.t.Fatal(err)
	}
	st, err := w.cmk.Status(w.t.Context(), org)
	if err != nil {
		w.t.Fatal(err)
	}
	if st.State != want {
		w.t.Fatalf("org %s state %s (reason %q, job %+v), want %s", org, st.State, st.Reason, st.Job, want)
	}
	return st
}

type sample struct{ ct, pt []byte }

func (w *world) encrypt(text string) sample {
	w.t.Helper()
	ct, err := w.keys.Encrypt(w.t.Context(), "svc", "acme", "default", []byte(text), nil)
	if err != nil {
		w.t.Fatalf("Encrypt: %v", err)
	}
	return sample{ct: ct.Bytes, pt: []byte(text)}
}

// decryptAll purges the cache first, so the root key is unwrapped through
// Cloud KMS.
func (w *world) decryptAll(samples ...sample) error {
	w.t.Helper()
	w.keys.Cache().PurgeAll()
	for _, s := range samples {
		pt, _, err := w.keys.Decrypt(w.t.Context(), "svc", "acme", "default", s.ct, nil)
		if err != nil {
			return err
		}
		if string(pt) != string(s.pt) {
			w.t.Fatalf("decrypted %q, want %q", pt, s.pt)
		}
	}
	return nil
}

func check(rep cmk.Report, id string) cmk.Check {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return cmk.Check{}
}

// TestGoogleLifecycle: the whole customer managed key lifecycle on Google
// Cloud KMS through cmk.Service: configure by the key's resource name (a
// grant, no consent step), Test Managed Key passes, enable → active; a new
// primary version is followed (re-wrap) and old data decrypts; a disabled
// or destroy-scheduled version revokes the org with the Cloud console's
// remedy and the data plane refuses it; enabling restores it; a removed
// IAM grant fails Test Managed Key's round trip with the role to grant.
func TestGoogleLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	before := w.encrypt("on the platform key")

	if c := w.cmk.Cloud("gcp"); c == nil || c.Authorization("acme").Method != cmk.AuthGrant {
		t.Fatalf("cloud gcp = %v, want the grant cloud offered", c)
	}
	if _, err := w.cmk.Authorize(ctx, "user:alice", "acme", "acme-prod"); fault.KindOf(err) != fault.Conflict {
		t.Errorf("Authorize on Google = %v, want a conflict (no consent step)", err)
	}
	// A pasted version name is accepted; the key is followed from it.
	rec, err := w.cmk.ConfigureKey(ctx, "user:alice", "acme", "gcp", map[string]string{gcpcloud.FieldKeyName: key + "/cryptoKeyVersions/1"})
	if err != nil {
		t.Fatalf("ConfigureKey: %v", err)
	}
	if rec.State != cmk.StateAuthorized || rec.TenantID != "acme-prod" || rec.KeyURI != "gcpkms://"+key || rec.KeyVersion != "1" {
		t.Fatalf("after ConfigureKey: %+v", rec)
	}
	rep := w.cmk.Test(ctx, "acme")
	if !rep.OK {
		t.Fatalf("Test Managed Key failed: %+v", rep.Checks)
	}
	for _, c := range rep.Checks {
		if c.Status != cmk.Pass {
			t.Errorf("check %s = %s %q, want a pass", c.ID, c.Status, c.Detail)
		}
	}
	if c := check(rep, "roundtrip"); !strings.Contains(c.Detail, "version 1") {
		t.Errorf("round trip check = %+v", c)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	st := w.probe("acme", cmk.StateActive)
	if st.ActiveVersion != "1" {
		t.Fatalf("active version %q, want 1", st.ActiveVersion)
	}
	ws, err := w.st.RootKeys(ctx, "acme")
	if err != nil || len(ws) != 1 || ws[0].Wrapped.Key.Provider != gcpkms.Scheme || ws[0].Wrapped.Key.Version != "1" {
		t.Fatalf("wrappings after activation = %+v, %v; want one by version 1 in Cloud KMS", ws, err)
	}
	if err := w.decryptAll(before); err != nil {
		t.Fatalf("old data after activation: %v", err)
	}
	during := w.encrypt("on the CMK")

	// Rotation: a new primary version is followed.
	v2, err := w.fake.Rotate(key)
	if err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateActive)
	if st.ActiveVersion != v2 || st.Job == nil || st.Job.Kind != cmk.JobRotate || st.Job.State != cmk.JobDone {
		t.Fatalf("after rotation: version %s job %+v, want %s and a finished rotate job", st.ActiveVersion, st.Job, v2)
	}
	if ws, _ := w.st.RootKeys(ctx, "acme"); len(ws) != 1 || ws[0].Wrapped.Key.Version != v2 {
		t.Fatalf("wrappings after rotation = %+v, want one by version %s", ws, v2)
	}
	decrypts := w.fake.Calls("Decrypt")
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("old data after rotation: %v", err)
	}
	if w.fake.Calls("Decrypt") == decrypts {
		t.Fatal("the root key was not unwrapped by Cloud KMS")
	}

	// The customer disables the primary version: revoked, in Google's words.
	if err := w.fake.SetState(key, v2, kmspb.CryptoKeyVersion_DISABLED); err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKDisabled.Code() || !strings.Contains(st.Reason, "enable version "+v2) || !strings.Contains(st.Reason, "Versions → Enable") ||
		!strings.Contains(st.Reason, "key ring orgkms") {
		t.Fatalf("revoked: %s %q, want cmk_key_disabled telling to enable version %s", st.ReasonCode, st.Reason, v2)
	}
	_, err = w.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil)
	if fault.KindOf(err) != fault.CMKDisabled {
		t.Fatalf("Encrypt for a revoked org: %v, want %v", err, fault.CMKDisabled)
	}
	// ... and enables it again.
	if err := w.fake.SetState(key, v2, kmspb.CryptoKeyVersion_ENABLED); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("data after re-enabling: %v", err)
	}

	// Scheduled for destruction: revoked with the restore remedy.
	if err := w.fake.SetState(key, v2, kmspb.CryptoKeyVersion_DESTROY_SCHEDULED); err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKDisabled.Code() || !strings.Contains(st.Reason, "Restore") {
		t.Fatalf("scheduled for destruction: %s %q, want a revocation telling to restore it", st.ReasonCode, st.Reason)
	}
	if err := w.fake.SetState(key, v2, kmspb.CryptoKeyVersion_ENABLED); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)

	// The customer removes orgkms' Encrypter/Decrypter grant: Test Managed
	// Key fails the round trip and names the role to grant.
	if err := w.fake.Revoke(key, gcpkmsemu.Anonymous, gcpkmsemu.EncrypterDecrypter...); err != nil {
		t.Fatal(err)
	}
	w.keys.Cache().PurgeAll()
	rep = w.cmk.Test(ctx, "acme")
	c := check(rep, "roundtrip")
	if rep.OK || c.Status != cmk.Fail || !strings.Contains(c.Detail, "cloudkms.cryptoKeyVersions.useTo") || !strings.Contains(c.Remedy, gcpcloud.RoleEncrypterDecrypter) {
		t.Fatalf("round trip without the grant = %+v, want a failure naming the permission and the role", c)
	}
	if k := check(rep, "key"); k.Status != cmk.Pass {
		t.Errorf("key check with Viewer still granted = %+v, want a pass", k)
	}
	st = w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKPermissionMissing.Code() || !strings.Contains(st.Reason, "Grant access") {
		t.Fatalf("revoked after the grant was removed: %s %q", st.ReasonCode, st.Reason)
	}
	// Viewer removed too: the key check names the Viewer role.
	if err := w.fake.Revoke(key, gcpkmsemu.Anonymous, gcpkmsemu.Viewer...); err != nil {
		t.Fatal(err)
	}
	if k := check(w.cmk.Test(ctx, "acme"), "key"); k.Status != cmk.Fail || !strings.Contains(k.Remedy, gcpcloud.RoleViewer) {
		t.Errorf("key check without Viewer = %+v, want a failure naming the Viewer role", k)
	}
	// Grants restored: active again.
	if err := w.fake.Grant(key, gcpkmsemu.Anonymous, append(gcpkmsemu.EncrypterDecrypter, gcpkmsemu.Viewer...)...); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("data after the grant was restored: %v", err)
	}
}

// TestTestManagedKeyInGoogleWords: Test Managed Key on a key that follows
// the primary version fails a disabled version and a missing label with
// the Cloud console's remedies, and passes once they are fixed.
func TestTestManagedKeyInGoogleWords(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.keys.CreateOrg(ctx, "test", "globex", ""); err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme", "globex"} {
		if _, err := w.cmk.ConfigureKey(ctx, "user:alice", org, "", map[string]string{gcpcloud.FieldKeyName: key}); err != nil {
			t.Fatalf("ConfigureKey(%s): %v", org, err)
		}
	}
	if err := w.fake.SetState(key, "1", kmspb.CryptoKeyVersion_DISABLED); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "acme")
	if c := check(rep, "enabled"); rep.OK || c.Status != cmk.Fail || !strings.Contains(c.Detail, "version 1") || !strings.Contains(c.Remedy, "Versions") || !strings.Contains(c.Remedy, "Enable") {
		t.Errorf("enabled check of a disabled version = %+v", c)
	}
	if err := w.fake.SetState(key, "1", kmspb.CryptoKeyVersion_ENABLED); err != nil {
		t.Fatal(err)
	}
	if rep := w.cmk.Test(ctx, "acme"); !rep.OK {
		t.Errorf("Test Managed Key after enabling: %+v", rep.Checks)
	}
	// The key is labeled for acme only.
	rep = w.cmk.Test(ctx, "globex")
	if c := check(rep, "ownership"); rep.OK || c.Status != cmk.Fail || !strings.Contains(c.Remedy, "Edit labels") || !strings.Contains(c.Remedy, "globex") {
		t.Errorf("ownership check of an unlabeled key = %+v", c)
	}
}

// TestDestroyedVersionIsLost: a DESTROYED primary version revokes the org
// at once (its data plane is refused) and, proven over repeated probes, is
// lost in Google's words.
func TestDestroyedVersionIsLost(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.ConfigureKey(ctx, "user:alice", "acme", "", map[string]string{gcpcloud.FieldKeyName: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	w.probe("acme", cmk.StateActive)
	if err := w.fake.SetState(key, "1", kmspb.CryptoKeyVersion_DESTROYED); err != nil {
		t.Fatal(err)
	}
	st := w.probe("acme", cmk.StateRevoked)
	if st.ReasonCode != fault.CMKDeleted.Code() || !strings.Contains(st.Reason, "destroyed") {
		t.Fatalf("first probe of a destroyed version: %s %q, want revoked, not yet proven lost", st.ReasonCode, st.Reason)
	}
	for range 3 {
		w.skew.Add(int64(6 * time.Minute))
		if err := w.cmk.Probe(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := w.cmk.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != cmk.StateLost || st.ReasonCode != fault.CMKDestroyed.Code() || !strings.Contains(st.Reason, "destroyed in Cloud KMS") || !strings.Contains(st.Reason, "unrecoverable") {
		t.Fatalf("destroyed version after repeated probes: %s %s %q, want lost", st.State, st.ReasonCode, st.Reason)
	}
	w.keys.Cache().PurgeAll()
	if _, err := w.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); err == nil {
		t.Fatal("Encrypt succeeded for an org whose key version was destroyed")
	}
}

// TestGoogleVaultBudget: every call of the lifecycle (Test Managed Key,
// the activation job, the probe, data-plane loads) draws from the budget
// of the key's project and location in its class; a RESOURCE_EXHAUSTED
// answer shows in the org's status as throttling, and the load still
// succeeds after the pause.
func TestGoogleVaultBudget(t *testing.T) {
	b := budget.New(budget.Config{})
	w := newBudgetWorld(t, b)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	sample := w.encrypt("hello")
	if _, err := w.cmk.ConfigureKey(ctx, "user:alice", "acme", "gcp", map[string]string{gcpcloud.FieldKeyName: key}); err != nil {
		t.Fatal(err)
	}
	if rep := w.cmk.Test(ctx, "acme"); !rep.OK {
		t.Fatalf("Test Managed Key failed: %+v", rep.Checks)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive) // runs the activation job
	w.probe("acme", cmk.StateActive) // probes the active org's key
	w.fake.ExhaustNext(1)
	if err := w.decryptAll(sample); err != nil {
		t.Fatalf("decrypt with one RESOURCE_EXHAUSTED answer: %v", err)
	}
	st, err := w.cmk.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	vb := st.VaultBudget
	want := masterkey.Vault{Cloud: "gcp", Name: "acme-prod/europe-west4"}
	if vb == nil || vb.Vault != want {
		t.Fatalf("status vault budget = %+v, want the budget of %+v", vb, want)
	}
	if !vb.Throttling || vb.Throttled != 1 || vb.Rate != budget.DefaultCeilings["gcp"]/2 {
		t.Fatalf("vault budget after RESOURCE_EXHAUSTED = %+v, want throttling, halved", vb)
	}
	for _, c := range []string{"test", "job", "probe", "load"} {
		if vb.Calls[c][budget.OutcomeOK] == 0 {
			t.Errorf("no %s call counted on the vault: %v", c, vb.Calls)
		}
	}
	if vb.Calls["load"][budget.OutcomeThrottled] != 1 {
		t.Errorf("load calls %v, want the throttled one", vb.Calls["load"])
	}
}
