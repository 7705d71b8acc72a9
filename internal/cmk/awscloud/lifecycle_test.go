package awscloud_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/orgkms/orgkms/internal/awsemu"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/cmk/awscloud"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/awskms"
	"github.com/orgkms/orgkms/internal/masterkey/localkey"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

// TestMain runs the tests in a private network namespace with local-kms
// on loopback (awsemu.Main); they fail, never skip, without local-kms.
func TestMain(m *testing.M) {
	os.Setenv("AWS_CONFIG_FILE", os.DevNull)
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	awsemu.Main(m)
}

const (
	platformAKID = "AKIDORGKMSPLATFORM"
	roleARN      = "arn:aws:iam::" + awsemu.Account + ":role/orgkms-cmk"
)

// world is orgkms (SQLite, a local platform key, the real awskms driver and
// the AWS cloud) against local-kms behind the awsemu proxy and the STS
// stand-in, all in-process.
type world struct {
	t     *testing.T
	kms   *awsemu.KMS
	sts   *awsemu.STS
	admin *kms.Client // the customer's console
	st    *sqlite.Store
	keys  *keys.Service
	cmk   *cmk.Service
	cloud awscloud.Cloud
	key   string // the customer's key ARN
}

func newWorld(t *testing.T) *world { t.Helper(); return newBudgetWorld(t, nil) }

// newBudgetWorld is newWorld with every KMS call drawing from b (none
// when nil), which the CMK service reports in its status.
func newBudgetWorld(t *testing.T, b *budget.Budget) *world {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	w := &world{t: t, kms: awsemu.NewKMS(awsemu.LocalKMSURL(t)), sts: awsemu.NewSTS(platformAKID)}
	w.kms.STS = w.sts
	ks := httptest.NewServer(w.kms)
	t.Cleanup(ks.Close)
	ss := httptest.NewServer(w.sts)
	t.Cleanup(ss.Close)
	creds := credentials.NewStaticCredentialsProvider(platformAKID, "platform-secret", "")
	w.admin = kms.New(kms.Options{Region: awsemu.Region, BaseEndpoint: aws.String(ks.URL), Credentials: creds})
	out, err := w.admin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("orgkms CMK")})
	if err != nil {
		t.Fatal(err)
	}
	w.key = aws.ToString(out.KeyMetadata.Arn)
	ac := awskms.Config{AllowedRegions: []string{awsemu.Region}, Region: awsemu.Region, Credentials: creds,
		KMSEndpoint: ks.URL, STSEndpoint: ss.URL, MaxAttempts: 1}
	if b != nil {
		ac.Gate, ac.MaxAttempts = b, 3
	}
	p, err := awskms.New(ac)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	dir := t.TempDir()
	if w.st, err = sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "k.db")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.st.Close() })
	kp := filepath.Join(dir, "master.key")
	localkey.EnsureFile(kp)
	reg := masterkey.NewRegistry()
	reg.Register(localkey.Driver(), masterkey.NewKeeper(localkey.Scheme, localkey.New(localkey.Config{}), masterkey.KeeperOptions{Logger: log}))
	reg.Register(p.Driver(), masterkey.NewKeeper(awskms.Scheme, p, masterkey.KeeperOptions{Logger: log}))
	platform, _ := reg.ParseRef("local://" + kp)
	guard := &atomic.Pointer[cmk.Service]{}
	if w.keys, err = keys.New(keys.Config{Store: w.st, Keepers: reg, PlatformKey: platform, Logger: log,
		Guard:    func(ctx context.Context, org string) error { return guard.Load().Guard(ctx, org) },
		DataLost: func(org string) time.Time { return guard.Load().DataLost(org) }}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.keys.Close(context.Background()) })
	w.cloud = awscloud.Cloud{AllowedRegions: []string{awsemu.Region}, AccountID: "444455556666", Secret: []byte(strings.Repeat("k", awscloud.MinSecret))}
	if w.cmk, err = cmk.New(cmk.Config{Store: w.st, Keys: w.keys, Keepers: reg, Logger: log, Clouds: []cmk.Cloud{w.cloud}, VaultBudget: b}); err != nil {
		t.Fatal(err)
	}
	guard.Store(w.cmk)
	return w
}

func (w *world) status(org string, want cmk.State) cmk.Status {
	w.t.Helper()
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

func (w *world) probe(org string, want cmk.State) cmk.Status {
	w.t.Helper()
	if err := w.cmk.Probe(w.t.Context(), org); err != nil {
		w.t.Fatalf("Probe: %v", err)
	}
	return w.status(org, want)
}

type sample struct {
	ct, pt []byte
	org    string
}

func (w *world) encrypt(org, text string) sample {
	w.t.Helper()
	ct, err := w.keys.Encrypt(w.t.Context(), "svc", org, "default", []byte(text), nil)
	if err != nil {
		w.t.Fatalf("Encrypt(%s): %v", org, err)
	}
	return sample{ct: ct.Bytes, pt: []byte(text), org: org}
}

// decryptAll purges the cache first, so the root key is unwrapped through
// its current master key.
func (w *world) decryptAll(samples ...sample) error {
	w.t.Helper()
	w.keys.Cache().PurgeAll()
	for _, s := range samples {
		pt, _, err := w.keys.Decrypt(w.t.Context(), "svc", s.org, "default", s.ct, nil)
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

// TestLifecycleOnAWSKMS: the whole customer managed key lifecycle through
// cmk.Service on local-kms and the STS stand-in: configure by fields, Test
// Managed Key, enable, a rotation on demand followed (new key material,
// old data decrypts), the key disabled (revoked in AWS's words, data plane
// refused) and enabled again, and back to the platform key.
func TestLifecycleOnAWSKMS(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	// The customer creates the role with acme's external ID (Step 1).
	w.sts.AllowRole(roleARN, w.cloud.ExternalID("acme"))
	before := w.encrypt("acme", "on the platform key")
	rec, err := w.cmk.ConfigureKey(ctx, "user:alice", "acme", "aws", map[string]string{"key_arn": " " + w.key + " ", "role_arn": roleARN})
	if err != nil {
		t.Fatalf("ConfigureKey: %v", err)
	}
	if rec.State != cmk.StateAuthorized || rec.TenantID != roleARN || !strings.Contains(rec.KeyURI, w.cloud.ExternalID("acme")) {
		t.Fatalf("after ConfigureKey: %+v", rec)
	}
	rep := w.cmk.Test(ctx, "acme")
	if !rep.OK {
		t.Fatalf("Test Managed Key: %+v", rep.Checks)
	}
	if c := check(rep, "token"); c.Status != cmk.Pass || c.Name != "Role assumed" {
		t.Errorf("role check %+v", c)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatalf("Enable: %v", err)
	}
	st := w.status("acme", cmk.StateActive)
	first := w.kms.MaterialIDs(w.key)
	if len(first) != 1 || st.ActiveVersion != first[0] {
		t.Fatalf("active version %q, want the key's material %v", st.ActiveVersion, first)
	}
	roots, err := w.st.RootKeys(ctx, "acme")
	if err != nil || len(roots) != 1 || roots[0].Wrapped.Key.Provider != awskms.Scheme {
		t.Fatalf("wrappings after activation = %+v, %v, want one by the AWS key", roots, err)
	}
	if err := w.decryptAll(before); err != nil {
		t.Fatalf("old data after activation: %v", err)
	}
	during := w.encrypt("acme", "on the CMK")

	// A rotation on demand: the probe sees new key material and re-wraps.
	if _, err := w.admin.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(w.key)}); err != nil {
		t.Fatal(err)
	}
	materials := w.kms.MaterialIDs(w.key)
	start := time.Now()
	st = w.probe("acme", cmk.StateActive)
	t.Logf("rotation seen and re-wrapped in %s (one probe and the rotate job; after up to one probe interval)", time.Since(start).Round(time.Millisecond))
	if len(materials) != 2 || st.ActiveVersion != materials[1] || st.Job == nil || st.Job.Kind != cmk.JobRotate || st.Job.State != cmk.JobDone {
		t.Fatalf("after rotation: version %s job %+v, want %s and a finished rotate job", st.ActiveVersion, st.Job, materials[len(materials)-1])
	}
	if roots, _ := w.st.RootKeys(ctx, "acme"); len(roots) != 1 || roots[0].Wrapped.Key.Version != st.ActiveVersion {
		t.Fatalf("wrappings after rotation = %+v, want one by material %s", roots, st.ActiveVersion)
	}
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("data after rotation: %v", err)
	}
	// Automatic rotation off: Test Managed Key warns, with the remedy; on
	// (GetKeyRotationStatus, modelled by the proxy): its period and date.
	if c := check(w.cmk.Test(ctx, "acme"), "rotation"); c.Status != cmk.Warn || !strings.Contains(c.Detail, "automatic key rotation is off") ||
		!strings.Contains(c.Remedy, "Automatically rotate this KMS key") {
		t.Errorf("rotation check with automatic rotation off: %+v", c)
	}
	if _, err := w.admin.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(w.key), RotationPeriodInDays: aws.Int32(180)}); err != nil {
		t.Fatal(err)
	}
	next := time.Now().UTC().Add(180 * 24 * time.Hour).Format("2006-01-02")
	if c := check(w.cmk.Test(ctx, "acme"), "rotation"); c.Status != cmk.Pass || !strings.Contains(c.Detail, "every 180 days, next on "+next) {
		t.Errorf("rotation check with automatic rotation every 180 days: %+v", c)
	}
	if rep := w.cmk.Test(ctx, "acme"); !rep.OK || check(rep, "version").Detail != "current key material "+materials[1]+"; orgkms follows rotations automatically" {
		t.Errorf("Test Managed Key after a rotation: %+v", rep.Checks)
	}

	// The customer disables the key: revoked in AWS's words, data refused.
	if _, err := w.admin.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(w.key)}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	st = w.probe("acme", cmk.StateRevoked)
	t.Logf("disabled key seen and the org revoked in %s (one probe; after up to one probe interval)", time.Since(start).Round(time.Millisecond))
	if st.ReasonCode != fault.CMKDisabled.Code() || !strings.Contains(st.Reason, "Key actions → Enable") {
		t.Fatalf("revoked reason %s %q, want cmk_key_disabled saying how to enable the key", st.ReasonCode, st.Reason)
	}
	if _, err := w.keys.Encrypt(ctx, "svc", "acme", "default", []byte("x"), nil); fault.KindOf(err) != fault.CMKDisabled {
		t.Fatalf("Encrypt for a revoked org: %v, want %v", err, fault.CMKDisabled)
	}
	if c := check(w.cmk.Test(ctx, "acme"), "enabled"); c.Status != cmk.Fail || !strings.Contains(c.Remedy, "Key actions → Enable") {
		t.Errorf("enabled check of a disabled key = %+v", c)
	}
	// ... and enables it again.
	if _, err := w.admin.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(w.key)}); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("data after enabling the key again: %v", err)
	}

	// The customer schedules the key's deletion: revoked with the date and
	// how to cancel it; cancelled and enabled, active again.
	del, err := w.admin.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(w.key), PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateRevoked)
	date := aws.ToTime(del.DeletionDate).UTC().Format(time.RFC3339)
	if st.ReasonCode != fault.CMKDisabled.Code() || !strings.Contains(st.Reason, "scheduled for deletion on "+date) || !strings.Contains(st.Reason, "CancelKeyDeletion") {
		t.Fatalf("revoked reason %s %q, want the deletion date %s and CancelKeyDeletion", st.ReasonCode, st.Reason, date)
	}
	if _, err := w.admin.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(w.key)}); err != nil {
		t.Fatal(err)
	}
	st = w.probe("acme", cmk.StateRevoked) // CancelKeyDeletion leaves the key Disabled
	if strings.Contains(st.Reason, "scheduled for deletion on") || !strings.Contains(st.Reason, "Key actions → Enable") {
		t.Fatalf("after CancelKeyDeletion: reason %q, want the disabled key's", st.Reason)
	}
	if _, err := w.admin.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(w.key)}); err != nil {
		t.Fatal(err)
	}
	w.probe("acme", cmk.StateActive)

	// Back to the platform key.
	if _, err := w.cmk.Disable(ctx, "user:alice", "acme"); err != nil {
		t.Fatal(err)
	}
	w.status("acme", cmk.StateAuthorized)
	if err := w.decryptAll(before, during); err != nil {
		t.Fatalf("data after falling back to the platform key: %v", err)
	}
	if _, err := w.keys.VerifyAudit(ctx, "acme"); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// TestWrongExternalIDFailsTheRoleCheck: an org whose role trusts another
// org's external ID (or one that configures another customer's role)
// cannot assume it: Test Managed Key fails the role check with the
// trust-policy remedy, and Enable is refused.
func TestWrongExternalIDFailsTheRoleCheck(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	for _, org := range []string{"acme", "umbrella"} {
		if _, err := w.keys.CreateOrg(ctx, "test", org, ""); err != nil {
			t.Fatal(err)
		}
	}
	w.sts.AllowRole(roleARN, w.cloud.ExternalID("acme"))
	if _, err := w.cmk.ConfigureKey(ctx, "user:mallory", "umbrella", "aws", map[string]string{"key_arn": w.key, "role_arn": roleARN}); err != nil {
		t.Fatal(err)
	}
	rep := w.cmk.Test(ctx, "umbrella")
	c := check(rep, "token")
	if rep.OK || c.Status != cmk.Fail || c.Name != "Role assumed" || !strings.Contains(c.Remedy, "Trust relationships") || !strings.Contains(c.Remedy, "sts:ExternalId") {
		t.Fatalf("role check with another org's external ID = %+v (ok %v), want a failure with the trust-policy remedy", c, rep.OK)
	}
	if c := check(rep, "roundtrip"); c.Status != cmk.Skip {
		t.Errorf("round trip after a failed role check = %+v, want skipped", c)
	}
	if _, err := w.cmk.Enable(ctx, "user:mallory", "umbrella"); err == nil {
		t.Fatal("Enable with a role orgkms cannot assume succeeded")
	}
}

// TestAWSVaultBudget: every KMS call of the lifecycle (Test Managed Key,
// the activation job, the probe, data-plane loads) draws from the budget
// of the key's account and Region in its class; a ThrottlingException
// shows in the org's status as throttling, and the load still succeeds
// after the pause (the SDK's retry, admitted again).
func TestAWSVaultBudget(t *testing.T) {
	b := budget.New(budget.Config{})
	w := newBudgetWorld(t, b)
	ctx := t.Context()
	if _, err := w.keys.CreateOrg(ctx, "test", "acme", ""); err != nil {
		t.Fatal(err)
	}
	w.sts.AllowRole(roleARN, w.cloud.ExternalID("acme"))
	sample := w.encrypt("acme", "hello")
	if _, err := w.cmk.ConfigureKey(ctx, "user:alice", "acme", "aws", map[string]string{"key_arn": w.key, "role_arn": roleARN}); err != nil {
		t.Fatal(err)
	}
	if rep := w.cmk.Test(ctx, "acme"); !rep.OK {
		t.Fatalf("Test Managed Key: %+v", rep.Checks)
	}
	if _, err := w.cmk.Enable(ctx, "user:alice", "acme"); err != nil {
		t.Fatal(err)
	}
	w.status("acme", cmk.StateActive)
	w.probe("acme", cmk.StateActive)
	w.kms.Fail("Decrypt", "ThrottlingException", 400, 1)
	if err := w.decryptAll(sample); err != nil {
		t.Fatalf("decrypt with one ThrottlingException: %v", err)
	}
	st, err := w.cmk.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	vb := st.VaultBudget
	want := masterkey.Vault{Cloud: "aws", Name: awsemu.Account + "/" + awsemu.Region}
	if vb == nil || vb.Vault != want {
		t.Fatalf("status vault budget = %+v, want the budget of %+v", vb, want)
	}
	if !vb.Throttling || vb.Throttled != 1 || vb.Rate != budget.DefaultCeilings["aws"]/2 {
		t.Fatalf("vault budget after a ThrottlingException = %+v, want throttling, halved", vb)
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
