package gcpkmsemu_test

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/orgkms/orgkms/internal/gcpkmsemu"
)

const key = "projects/acme-prod/locations/global/keyRings/r/cryptoKeys/k"

func start(t *testing.T) (*gcpkmsemu.Server, *kms.KeyManagementClient) {
	t.Helper()
	srv := gcpkmsemu.New()
	addr, err := srv.Start(t.Cleanup)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.CreateKey(key, gcpkmsemu.KeyOptions{}); err != nil {
		t.Fatal(err)
	}
	c, err := kms.NewKeyManagementClient(t.Context(), option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c
}

func wantCode(t *testing.T, what string, err error, want codes.Code) *apierror.APIError {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("%s: code = %v, want %v (%v)", what, status.Code(err), want, err)
	}
	var ae *apierror.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("%s: %T is not an *apierror.APIError", what, err)
	}
	return ae
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func sum(b []byte) *wrapperspb.Int64Value {
	return wrapperspb.Int64(int64(crc32.Checksum(b, castagnoli)))
}

// TestEncryptDecrypt: Encrypt on the key name uses the primary and names
// it; CRC32C fields are verified and sent; Decrypt needs the key name and
// the same AAD.
func TestEncryptDecrypt(t *testing.T) {
	_, c := start(t)
	ctx := t.Context()
	pt, aad := []byte("secret"), []byte("org/1")
	er, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt, PlaintextCrc32C: sum(pt), AdditionalAuthenticatedData: aad, AdditionalAuthenticatedDataCrc32C: sum(aad)})
	if err != nil {
		t.Fatal(err)
	}
	if er.GetName() != key+"/cryptoKeyVersions/1" || !er.GetVerifiedPlaintextCrc32C() || !er.GetVerifiedAdditionalAuthenticatedDataCrc32C() ||
		er.GetCiphertextCrc32C().GetValue() != sum(er.GetCiphertext()).GetValue() {
		t.Fatalf("Encrypt = name %q, verified %v/%v", er.GetName(), er.GetVerifiedPlaintextCrc32C(), er.GetVerifiedAdditionalAuthenticatedDataCrc32C())
	}
	if er2, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt}); err != nil || er2.GetVerifiedPlaintextCrc32C() {
		t.Fatalf("Encrypt without checksums = %v, verified %v; want not verified", err, er2.GetVerifiedPlaintextCrc32C())
	}
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: key, Plaintext: pt, PlaintextCrc32C: wrapperspb.Int64(1)})
	wantCode(t, "Encrypt with a wrong plaintext_crc32c", err, codes.InvalidArgument)

	dr, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: er.GetCiphertext(), AdditionalAuthenticatedData: aad})
	if err != nil || !bytes.Equal(dr.GetPlaintext(), pt) || !dr.GetUsedPrimary() || dr.GetPlaintextCrc32C().GetValue() != sum(pt).GetValue() {
		t.Fatalf("Decrypt = %v, %v", dr, err)
	}
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: er.GetCiphertext(), AdditionalAuthenticatedData: []byte("org/2")})
	wantCode(t, "Decrypt with another AAD", err, codes.InvalidArgument)
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: er.GetName(), Ciphertext: er.GetCiphertext(), AdditionalAuthenticatedData: aad})
	wantCode(t, "Decrypt with a version name", err, codes.InvalidArgument)
	_, err = c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: er.GetCiphertext(), CiphertextCrc32C: wrapperspb.Int64(7), AdditionalAuthenticatedData: aad})
	wantCode(t, "Decrypt with a wrong ciphertext_crc32c", err, codes.InvalidArgument)
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: "projects/acme-prod/locations/global/keyRings/r/cryptoKeys/other", Plaintext: pt})
	wantCode(t, "Encrypt with an unknown key", err, codes.NotFound)
}

// TestLifecycle: versions, primary, disable, destroy and restore through
// the official client, with Google's error details.
func TestLifecycle(t *testing.T) {
	srv, c := start(t)
	ctx := t.Context()
	v2, err := c.CreateCryptoKeyVersion(ctx, &kmspb.CreateCryptoKeyVersionRequest{Parent: key})
	if err != nil || v2.GetName() != key+"/cryptoKeyVersions/2" || v2.GetState() != kmspb.CryptoKeyVersion_ENABLED {
		t.Fatalf("CreateCryptoKeyVersion = %v, %v", v2, err)
	}
	if ck, err := c.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key}); err != nil || ck.GetPrimary().GetName() != key+"/cryptoKeyVersions/1" {
		t.Fatalf("primary after CreateCryptoKeyVersion = %v, %v; want version 1", ck.GetPrimary().GetName(), err)
	}
	disable := &kmspb.UpdateCryptoKeyVersionRequest{CryptoKeyVersion: &kmspb.CryptoKeyVersion{Name: v2.GetName(), State: kmspb.CryptoKeyVersion_DISABLED},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}}}
	if v, err := c.UpdateCryptoKeyVersion(ctx, disable); err != nil || v.GetState() != kmspb.CryptoKeyVersion_DISABLED {
		t.Fatalf("disable = %v, %v", v.GetState(), err)
	}
	_, err = c.UpdateCryptoKeyPrimaryVersion(ctx, &kmspb.UpdateCryptoKeyPrimaryVersionRequest{Name: key, CryptoKeyVersionId: "2"})
	ae := wantCode(t, "a DISABLED version made primary", err, codes.FailedPrecondition)
	if pf := ae.Details().PreconditionFailure; pf == nil || pf.GetViolations()[0].GetType() != "KEY_DISABLED" || pf.GetViolations()[0].GetSubject() != v2.GetName() {
		t.Fatalf("PreconditionFailure = %v, want KEY_DISABLED on %s", pf, v2.GetName())
	}
	_, err = c.Encrypt(ctx, &kmspb.EncryptRequest{Name: v2.GetName(), Plaintext: []byte("x")})
	wantCode(t, "Encrypt with a DISABLED version", err, codes.FailedPrecondition)

	d, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v2.GetName()})
	if err != nil || d.GetState() != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED || d.GetDestroyTime() == nil {
		t.Fatalf("Destroy = %v, %v", d, err)
	}
	_, err = c.UpdateCryptoKeyVersion(ctx, disable)
	wantCode(t, "state change of a DESTROY_SCHEDULED version", err, codes.FailedPrecondition)
	if r, err := c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v2.GetName()}); err != nil || r.GetState() != kmspb.CryptoKeyVersion_DISABLED {
		t.Fatalf("Restore = %v, %v", r.GetState(), err)
	}
	_, err = c.RestoreCryptoKeyVersion(ctx, &kmspb.RestoreCryptoKeyVersionRequest{Name: v2.GetName()})
	wantCode(t, "Restore of a DISABLED version", err, codes.FailedPrecondition)

	// List, paged and filtered.
	if _, err := srv.Rotate(key); err != nil {
		t.Fatal(err)
	}
	var names []string
	it := c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: key, PageSize: 1})
	for {
		v, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, v.GetName())
	}
	if len(names) != 3 || names[2] != key+"/cryptoKeyVersions/3" {
		t.Fatalf("ListCryptoKeyVersions = %v, want versions 1, 2, 3", names)
	}
	n := 0
	it = c.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: key, Filter: "state=ENABLED"})
	for {
		_, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 2 {
		t.Fatalf("ENABLED versions = %d, want 2 (1 and 3)", n)
	}
}

// TestIAM: a principal without the permission gets Google's
// PERMISSION_DENIED with ErrorInfo naming it.
func TestIAM(t *testing.T) {
	srv, c := start(t)
	if err := srv.Revoke(key, gcpkmsemu.Anonymous, gcpkmsemu.PermEncrypt); err != nil {
		t.Fatal(err)
	}
	_, err := c.Encrypt(t.Context(), &kmspb.EncryptRequest{Name: key, Plaintext: []byte("x")})
	ae := wantCode(t, "Encrypt without useToEncrypt", err, codes.PermissionDenied)
	if ae.Reason() != "IAM_PERMISSION_DENIED" || ae.Metadata()["permission"] != gcpkmsemu.PermEncrypt {
		t.Fatalf("ErrorInfo = %q %v", ae.Reason(), ae.Metadata())
	}
	if _, err := c.GetCryptoKey(t.Context(), &kmspb.GetCryptoKeyRequest{Name: key}); err != nil {
		t.Fatalf("GetCryptoKey with the viewer permissions: %v", err)
	}
}

// TestFaults: injected UNAVAILABLE answers are retried by the client.
func TestFaults(t *testing.T) {
	srv, c := start(t)
	srv.FailNext(3)
	if _, err := c.GetCryptoKey(t.Context(), &kmspb.GetCryptoKeyRequest{Name: key}); err != nil {
		t.Fatalf("GetCryptoKey after 3 UNAVAILABLE: %v", err)
	}
	if n := srv.Calls("GetCryptoKey"); n != 4 {
		t.Fatalf("GetCryptoKey calls = %d, want 4", n)
	}
}

// TestCreateCryptoKey: a key made through the RPC has an ENABLED primary
// version 1 and its creator's permissions; a second one of that name is
// ALREADY_EXISTS.
func TestCreateCryptoKey(t *testing.T) {
	_, c := start(t)
	ctx := t.Context()
	req := &kmspb.CreateCryptoKeyRequest{Parent: "projects/acme-prod/locations/global/keyRings/r", CryptoKeyId: "new",
		CryptoKey: &kmspb.CryptoKey{Purpose: kmspb.CryptoKey_ENCRYPT_DECRYPT, Labels: map[string]string{"team": "sec"}}}
	ck, err := c.CreateCryptoKey(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if ck.GetPrimary().GetState() != kmspb.CryptoKeyVersion_ENABLED || ck.GetLabels()["team"] != "sec" || ck.GetDestroyScheduledDuration().AsDuration() != gcpkmsemu.DefaultDestroyScheduledDuration {
		t.Fatalf("CreateCryptoKey = %v", ck)
	}
	if er, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: ck.GetName(), Plaintext: []byte("x")}); err != nil || er.GetName() != ck.GetName()+"/cryptoKeyVersions/1" {
		t.Fatalf("Encrypt with the new key = %v, %v", er.GetName(), err)
	}
	_, err = c.CreateCryptoKey(ctx, req)
	wantCode(t, "CreateCryptoKey of an existing name", err, codes.AlreadyExists)
	req.CryptoKeyId, req.CryptoKey.Purpose = "signing", kmspb.CryptoKey_ASYMMETRIC_SIGN
	_, err = c.CreateCryptoKey(ctx, req)
	wantCode(t, "CreateCryptoKey of an asymmetric key", err, codes.InvalidArgument)
}
