package gcpkms_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/gcpkmsemu"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
)

var aad = []byte("org/acme/root/v1")

func dek() []byte { return bytes.Repeat([]byte{0x5a}, 32) }

// admin is the customer's own client on the fake, for lifecycle changes
// made the way a customer makes them (Cloud console, gcloud).
func (e *env) admin(t *testing.T) *kms.KeyManagementClient {
	t.Helper()
	c, err := kms.NewKeyManagementClient(t.Context(), option.WithEndpoint(e.addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantKind(t *testing.T, what string, err error, want fault.Kind) *fault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: error = nil, want kind %v", what, want)
	}
	if got := fault.KindOf(err); got != want {
		t.Fatalf("%s: kind = %v, want %v (err: %v)", what, got, want, err)
	}
	return fault.As(err)
}

// TestRotationFollowsPrimary: a new primary version (CreateCryptoKeyVersion
// + UpdateCryptoKeyPrimaryVersion, Google's manual rotation) is the current
// version of Describe and of the next Wrap; data of the old version still
// unwraps, with the version recorded at wrap.
func TestRotationFollowsPrimary(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	ctx := t.Context()
	d0, err := p.Describe(ctx, ref(key1))
	if err != nil {
		t.Fatal(err)
	}
	if d0.Key.Version != "1" || !d0.Enabled || !d0.NativeAAD || d0.KeyType != "AES-256" || d0.SoftDeleteDays != 30 {
		t.Fatalf("Describe = %+v, want version 1, enabled, native AAD, AES-256, 30 days before destruction", d0)
	}
	w1, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	if w1.Key.Version != "1" || w1.Key.ID != key1 {
		t.Fatalf("Wrap recorded %+v, want %s version 1", w1.Key, key1)
	}
	adm := e.admin(t)
	v2, err := adm.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key1})
	if err != nil {
		t.Fatal(err)
	}
	// A new version is not primary by itself.
	if d, err := p.Describe(ctx, ref(key1)); err != nil || d.Key.Version != "1" {
		t.Fatalf("Describe after CreateCryptoKeyVersion = %+v, %v; want version 1 still current", d.Key, err)
	}
	if _, err := adm.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: key1, CryptoKeyVersionId: "2"}); err != nil {
		t.Fatal(err)
	}
	d2, err := p.Describe(ctx, ref(key1))
	if err != nil || d2.Key.Version != "2" || !strings.HasSuffix(v2.GetName(), "/2") {
		t.Fatalf("Describe after a new primary = %+v, %v; want version 2", d2.Key, err)
	}
	w2, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil || w2.Key.Version != "2" {
		t.Fatalf("Wrap after rotation = %+v, %v; want version 2", w2.Key, err)
	}
	for _, w := range []masterkey.Wrapped{w1, w2} {
		got, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
		if err != nil || !bytes.Equal(got, dek()) {
			t.Fatalf("Unwrap(version %s) = %v", w.Key.Version, err)
		}
	}
	// Describe of a named version reports that version.
	if d, err := p.Describe(ctx, w1.Key); err != nil || d.Key.Version != "1" || !d.Enabled {
		t.Fatalf("Describe(version 1) = %+v, %v", d, err)
	}
	// Wrap with a named version uses it.
	if w, err := p.Wrap(ctx, w1.Key, dek(), aad); err != nil || w.Key.Version != "1" {
		t.Fatalf("Wrap(version 1) = %+v, %v", w.Key, err)
	}
}

// TestVersionStates walks a version through Google's states with the
// customer's client: DISABLED → revoked with the console remedy;
// DESTROY_SCHEDULED → revoked, the destroy date in the reason and in
// DeletedKey; Restore → DISABLED; enable → usable; destroyed → lost.
func TestVersionStates(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	ctx := t.Context()
	adm := e.admin(t)
	w, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	v1 := key1 + "/cryptoKeyVersions/1"
	setState := func(st kmspb.CryptoKeyVersion_CryptoKeyVersionState) {
		t.Helper()
		_, err := adm.UpdateCryptoKeyVersion(ctx, &kmspb.UpdateCryptoKeyVersionRequest{
			CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v1, State: st}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}})
		if err != nil {
			t.Fatal(err)
		}
	}

	setState(kmspb.CryptoKeyVersion_DISABLED)
	reads := e.srv.Calls("GetCryptoKeyVersion")
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	fe := wantKind(t, "Unwrap of a DISABLED version", err, fault.KeyDisabled)
	if e.srv.Calls("GetCryptoKeyVersion") != reads {
		t.Error("a DISABLED version cost a GetCryptoKeyVersion call: only a destroy-scheduled one needs its date")
	}
	if !strings.Contains(fe.Reason, "version 1") || !strings.Contains(fe.Reason, "Security → Key Management") || !strings.Contains(fe.Reason, "Enable") {
		t.Errorf("disabled reason = %q, want the version and the console path to enable it", fe.Reason)
	}
	_, err = p.Wrap(ctx, ref(key1), dek(), aad)
	wantKind(t, "Wrap with a DISABLED primary", err, fault.KeyDisabled)
	if d, err := p.Describe(ctx, ref(key1)); err != nil || d.Enabled {
		t.Fatalf("Describe of a DISABLED primary = %+v, %v; want not enabled", d, err)
	}
	_, err = p.DeletedKey(ctx, w.Key)
	wantKind(t, "DeletedKey of a DISABLED version", err, fault.KeyNotFound)

	dv, err := adm.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v1})
	if err != nil {
		t.Fatal(err)
	}
	destroyAt := dv.GetDestroyTime().AsTime()
	if time.Until(destroyAt) < 29*24*time.Hour {
		t.Fatalf("destroy_time = %v, want about 30 days ahead", destroyAt)
	}
	date := destroyAt.UTC().Format("2006-01-02")
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	fe = wantKind(t, "Unwrap of a DESTROY_SCHEDULED version", err, fault.KeyDisabled)
	if !strings.Contains(fe.Reason, "scheduled for destruction on "+date) || !strings.Contains(fe.Reason, "restore it before "+date) {
		t.Errorf("destroy-scheduled reason = %q, want the date %s", fe.Reason, date)
	}
	del, err := p.DeletedKey(ctx, w.Key)
	if err != nil || !del.ScheduledPurge.Equal(destroyAt) {
		t.Fatalf("DeletedKey = %+v, %v; want ScheduledPurge %v", del, err, destroyAt)
	}
	if d, err := p.Describe(ctx, w.Key); err != nil || d.Enabled {
		t.Fatalf("Describe of a DESTROY_SCHEDULED version = %+v, %v; want not enabled", d, err)
	}

	rv, err := adm.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v1})
	if err != nil || rv.GetState() != kmspb.CryptoKeyVersion_DISABLED || rv.GetDestroyTime() != nil {
		t.Fatalf("Restore = %v, %v; want DISABLED without destroy_time", rv.GetState(), err)
	}
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	wantKind(t, "Unwrap of a restored (DISABLED) version", err, fault.KeyDisabled)
	setState(kmspb.CryptoKeyVersion_ENABLED)
	if got, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad); err != nil || !bytes.Equal(got, dek()) {
		t.Fatalf("Unwrap after Restore and Enable: %v", err)
	}

	// Destruction happens when the fake's clock passes destroy_time.
	if _, err := adm.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v1}); err != nil {
		t.Fatal(err)
	}
	e.srv.SetClock(func() time.Time { return time.Now().Add(31 * 24 * time.Hour) })
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	wantKind(t, "Unwrap of a DESTROYED version", err, fault.KeyDestroyed)
	_, err = p.Describe(ctx, w.Key)
	wantKind(t, "Describe of a DESTROYED version", err, fault.KeyDestroyed)
	_, err = p.DeletedKey(ctx, w.Key)
	wantKind(t, "DeletedKey of a DESTROYED version", err, fault.KeyDestroyed)
}

// TestIAMDenied: without a permission on the key the call is
// PermissionDenied naming the permission, with the grant remedy.
func TestIAMDenied(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	ctx := t.Context()
	w, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		perm string
		call func() error
	}{
		{"cloudkms.cryptoKeyVersions.useToEncrypt", func() error { _, err := p.Wrap(ctx, ref(key1), dek(), aad); return err }},
		{"cloudkms.cryptoKeyVersions.useToDecrypt", func() error { _, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad); return err }},
		{"cloudkms.cryptoKeys.get", func() error { _, err := p.Describe(ctx, ref(key1)); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.perm, func(t *testing.T) {
			if err := e.srv.Revoke(key1, "anonymous", tt.perm); err != nil {
				t.Fatal(err)
			}
			defer e.srv.Grant(key1, "anonymous", tt.perm)
			fe := wantKind(t, "call without "+tt.perm, tt.call(), fault.PermissionDenied)
			if fe.Permission != tt.perm || !strings.Contains(fe.Reason, "roles/cloudkms.cryptoKeyEncrypterDecrypter") {
				t.Fatalf("PermissionDenied = %+v, want permission %s and the role to grant", fe, tt.perm)
			}
		})
	}
	// The other key is untouched.
	if _, err := p.Wrap(ctx, ref(key2), dek(), aad); err != nil {
		t.Fatal(err)
	}
}

func TestKeyNotFound(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	missing := ref("projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/nope")
	_, err := p.Describe(t.Context(), missing)
	wantKind(t, "Describe of a missing key", err, fault.KeyNotFound)
	_, err = p.Wrap(t.Context(), missing, dek(), aad)
	wantKind(t, "Wrap with a missing key", err, fault.KeyNotFound)
	_, err = p.Describe(t.Context(), ref(key1).WithVersion("9"))
	wantKind(t, "Describe of a missing version", err, fault.KeyNotFound)
}

// TestWrongAADAndKey: Cloud KMS binds the AAD; another org's AAD or
// another key is Integrity, never a success.
func TestWrongAADAndKey(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	ctx := t.Context()
	w, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, []byte("org/globex/root/v1"))
	wantKind(t, "Unwrap with another org's AAD", err, fault.Integrity)
	_, err = p.Unwrap(ctx, ref(key2).WithVersion("1"), w.Ciphertext, aad)
	wantKind(t, "Unwrap under another key", err, fault.Integrity)
	_, err = p.Unwrap(ctx, ref(key1), w.Ciphertext, aad)
	wantKind(t, "Unwrap without the recorded version", err, fault.Internal)
}

// TestChecksumMismatch: a response whose CRC32C does not match its data is
// discarded as Unavailable (retryable), for Encrypt and Decrypt alike.
func TestChecksumMismatch(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	ctx := t.Context()
	w, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.CorruptResponses(true)
	_, err = p.Wrap(ctx, ref(key1), dek(), aad)
	if fe := wantKind(t, "Wrap with a corrupted response", err, fault.Unavailable); !fe.Kind.Retryable() || !strings.Contains(fe.Reason, "integrity check") {
		t.Fatalf("Wrap error = %+v", fe)
	}
	got, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	wantKind(t, "Unwrap with a corrupted response", err, fault.Unavailable)
	if got != nil {
		t.Fatal("Unwrap returned a plaintext that failed its checksum")
	}
	e.srv.CorruptResponses(false)
	if _, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad); err != nil {
		t.Fatal(err)
	}
}

// TestTransientFailures: the client retries UNAVAILABLE by itself; a
// lasting outage ends within the driver's timeout as Unavailable.
func TestTransientFailures(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Timeout = 800 * time.Millisecond
	p, err := gcpkms.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	ctx := t.Context()
	e.srv.FailNext(2)
	before := e.srv.Calls("Encrypt")
	if _, err := p.Wrap(ctx, ref(key1), dek(), aad); err != nil {
		t.Fatalf("Wrap after two UNAVAILABLE answers: %v", err)
	}
	if n := e.srv.Calls("Encrypt") - before; n != 3 {
		t.Errorf("Encrypt calls = %d, want 3 (two retried failures, then success)", n)
	}
	// RESOURCE_EXHAUSTED (a quota) is retried by the driver, with backoff.
	e.srv.ExhaustNext(2)
	before = e.srv.Calls("Decrypt")
	w, err := p.Wrap(ctx, ref(key1), dek(), aad)
	if err != nil {
		t.Fatalf("Wrap after two RESOURCE_EXHAUSTED answers: %v", err)
	}
	e.srv.ExhaustNext(2)
	if _, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad); err != nil {
		t.Fatalf("Unwrap after two RESOURCE_EXHAUSTED answers: %v", err)
	}
	if n := e.srv.Calls("Decrypt") - before; n != 3 {
		t.Errorf("Decrypt calls = %d, want 3", n)
	}
	e.srv.ExhaustNext(1 << 20)
	_, err = p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	if fe := wantKind(t, "Unwrap over quota", err, fault.Unavailable); !fe.Kind.Retryable() {
		t.Fatalf("over quota = %+v, want retryable", fe)
	}
	e.srv.ExhaustNext(0)
	e.srv.SetOutage(true)
	_, err = p.Wrap(ctx, ref(key1), dek(), aad)
	wantKind(t, "Wrap during an outage", err, fault.Unavailable)
	_, err = p.Describe(ctx, ref(key1))
	wantKind(t, "Describe during an outage", err, fault.Unavailable)
	e.srv.SetOutage(false)
	if _, err := p.Describe(ctx, ref(key1)); err != nil {
		t.Fatal(err)
	}
}

// TestContextCancellation: a slow service and the caller's deadline give
// Unavailable, and the caller's cancellation is honoured.
func TestContextCancellation(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	e.srv.SetLatency(time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Wrap(ctx, ref(key1), dek(), aad)
	wantKind(t, "Wrap past the deadline", err, fault.Unavailable)

	ctx, cancel = context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := p.Describe(ctx, ref(key1)); done <- err }()
	cancel()
	select {
	case err := <-done:
		wantKind(t, "Describe cancelled", err, fault.Unavailable)
	case <-time.After(30 * time.Second):
		t.Fatal("Describe did not return after its context was cancelled")
	}
}

// TestAllowedLocations: a key outside the allowed locations is refused
// before any call.
func TestAllowedLocations(t *testing.T) {
	e := newEnv(t)
	p := e.open(t)
	other := "projects/acme-prod/locations/us-east1/keyRings/orgkms/cryptoKeys/cmk-1"
	if err := e.srv.CreateKey(other, gcpkmsemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.srv.Calls("Encrypt")
	_, err := p.Wrap(t.Context(), ref(other), dek(), aad)
	wantKind(t, "Wrap with a key in a location not allowed", err, fault.Invalid)
	if e.srv.Calls("Encrypt") != before {
		t.Fatal("the driver called Cloud KMS for a key in a location not allowed")
	}
	_, err = p.Driver().ParseRef("gcpkms://" + other)
	wantKind(t, "ParseRef of a key in a location not allowed", err, fault.Invalid)
	if _, err := p.ParseKey(key1 + "/cryptoKeyVersions/1"); err != nil {
		t.Fatal(err)
	}
}

// TestDescribeLabelsAndDestroyWindow: the key's labels are the
// description's tags, and its destroy_scheduled_duration the days a
// destroyed version stays restorable.
func TestDescribeLabelsAndDestroyWindow(t *testing.T) {
	e := newEnv(t)
	name := "projects/acme-prod/locations/europe/keyRings/orgkms/cryptoKeys/labelled"
	if err := e.srv.CreateKey(name, gcpkmsemu.KeyOptions{Labels: map[string]string{"orgkms-org": "acme"}, DestroyScheduledDuration: 7 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	d, err := e.open(t).Describe(t.Context(), ref(name))
	if err != nil {
		t.Fatal(err)
	}
	if d.Tags["orgkms-org"] != "acme" || d.SoftDeleteDays != 7 || !d.PurgeProtection || d.Algorithm != "GOOGLE_SYMMETRIC_ENCRYPTION" {
		t.Fatalf("Describe = %+v, want tag orgkms-org=acme, 7 days, purge protection, GOOGLE_SYMMETRIC_ENCRYPTION", d)
	}
}
