package kmsplugin_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/storage/value"
	"k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2"

	"github.com/orgkms/orgkms/internal/kmsplugin"
)

// apiserver is one kube-apiserver's KMS v2 state, built as its
// encryptionconfig does on a key_id change: one seed per key_id, encrypted
// by the plugin (kmsv2.GenerateTransformer), kept only when Encrypt's key_id
// is Status's.
type apiserver struct {
	tr    value.Transformer
	keyID string
}

func newAPIServer(t *testing.T, socket, id string) *apiserver {
	t.Helper()
	ctx := t.Context()
	svc, err := kmsv2.NewGRPCService(ctx, "unix://"+socket, "orgkms", 10*time.Second)
	if err != nil {
		t.Fatalf("kmsv2.NewGRPCService: %v", err)
	}
	st, err := svc.Status(ctx)
	if err != nil || st.Healthz != "ok" || st.Version != "v2" {
		t.Fatalf("Status through the apiserver's client = %+v, %v; want v2, ok", st, err)
	}
	if _, err := kmsv2.ValidateKeyID(st.KeyID); err != nil {
		t.Fatalf("ValidateKeyID(%q): %v", st.KeyID, err)
	}
	seedTr, eo, cacheKey, err := kmsv2.GenerateTransformer(ctx, "uid-"+id, svc, true)
	if err != nil {
		t.Fatalf("GenerateTransformer: %v", err)
	}
	if eo.KeyID != st.KeyID {
		t.Fatalf("Encrypt key_id %q != Status key_id %q: the apiserver would discard the seed", eo.KeyID, st.KeyID)
	}
	state := kmsv2.State{Transformer: seedTr, EncryptedObjectKeyID: eo.KeyID, EncryptedObjectEncryptedDEKSource: eo.EncryptedDEKSource,
		EncryptedObjectAnnotations: eo.Annotations, EncryptedObjectEncryptedDEKSourceType: eo.EncryptedDEKSourceType,
		UID: "uid-" + id, ExpirationTimestamp: time.Now().Add(3 * time.Minute), CacheKey: cacheKey, KMSProviderName: "orgkms"}
	tr := kmsv2.NewEnvelopeTransformer(svc, "orgkms", func() (kmsv2.State, error) { return state, nil }, id)
	return &apiserver{tr: tr, keyID: st.KeyID}
}

// TestAPIServerEnvelope: the apiserver's own KMS v2 envelope transformer
// (k8s.io/apiserver kmsv2) writes a Secret through the plugin, another
// apiserver (an empty DEK cache: a Decrypt through the plugin) reads it;
// after a rotation a new apiserver state has the new key_id, reads the old
// object (marked stale, to be rewritten by a storage migration) and writes
// new ones.
func TestAPIServerEnvelope(t *testing.T) {
	o := startOrgkms(t, false)
	cl := o.org("acme")
	pl := startPlugin(t, kmsplugin.Config{Client: cl, Org: "acme", CallTimeout: 10 * time.Second, StatusTTL: time.Nanosecond})
	ctx := t.Context()
	dataCtx := value.DefaultContext("/registry/secrets/default/db-password")
	secret := []byte(`{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}`)

	a1 := newAPIServer(t, pl.socket, "apiserver-1")
	stored, err := a1.tr.TransformToStorage(ctx, secret, dataCtx)
	if err != nil {
		t.Fatalf("TransformToStorage: %v", err)
	}
	// (The k8s:enc:kms:v2:orgkms: prefix is added by the apiserver's
	// prefix transformer around this one.)
	if bytes.Contains(stored, secret) || bytes.Contains(stored, []byte("aHVudGVyMg")) {
		t.Fatalf("the stored value holds the plaintext")
	}
	a2 := newAPIServer(t, pl.socket, "apiserver-2")
	got, stale, err := a2.tr.TransformFromStorage(ctx, stored, dataCtx)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("TransformFromStorage on another apiserver = %q, %v", got, err)
	}
	if stale {
		t.Errorf("an object of the current key_id read as stale")
	}
	waitFor(t, "the second apiserver's Decrypt in orgkms' request log", func() (bool, string) {
		logs := o.logs.String()
		return strings.Contains(logs, `"route":"POST /v1/orgs/{org}/keys/{key}/decrypt"`), logs
	})
	if _, _, err := a2.tr.TransformFromStorage(ctx, stored, value.DefaultContext("/registry/secrets/default/other")); err == nil {
		t.Errorf("TransformFromStorage under another object's path succeeded")
	}

	if _, err := o.op.RotateKey(ctx, "acme", "default"); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	a3 := newAPIServer(t, pl.socket, "apiserver-3")
	if a3.keyID == a1.keyID {
		t.Fatalf("key_id after a rotation is still %q", a3.keyID)
	}
	got, stale, err = a3.tr.TransformFromStorage(ctx, stored, dataCtx)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("TransformFromStorage after the rotation = %q, %v", got, err)
	}
	if !stale {
		t.Errorf("an object of the old key_id not marked stale after the rotation")
	}
	rewritten, err := a3.tr.TransformToStorage(ctx, secret, dataCtx)
	if err != nil {
		t.Fatalf("TransformToStorage after the rotation: %v", err)
	}
	// a1 has no DEK of the new seed cached: a Decrypt through the plugin.
	if got, _, err := a1.tr.TransformFromStorage(ctx, rewritten, dataCtx); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("the old apiserver reads the rewritten object: %q, %v", got, err)
	}
}
