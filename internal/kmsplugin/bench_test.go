package kmsplugin_test

import (
	"crypto/rand"
	"testing"
	"time"

	kmsapi "k8s.io/kms/apis/v2"

	"github.com/orgkms/orgkms/internal/kmsplugin"
)

// BenchmarkEncrypt compares an Encrypt of a 32-byte DEK seed through the
// plugin (KMS v2 gRPC client → unix socket → plugin → orgkms over HTTP)
// with the same encrypt by the native Go client, against one in-process
// orgkms (SQLite, local platform key); status-cached is the gRPC hop
// alone. On demand:
//
//	go test ./internal/kmsplugin -run '^$' -bench Encrypt -benchtime 2000x
func BenchmarkEncrypt(b *testing.B) {
	o := startOrgkms(b, false)
	cl := o.org("acme")
	pl := startPlugin(b, kmsplugin.Config{Client: cl, Org: "acme", CallTimeout: 10 * time.Second})
	seed := make([]byte, 32)
	rand.Read(seed)
	b.Run("plugin", func(b *testing.B) {
		for b.Loop() {
			ctx, cancel := rpc(b)
			_, err := pl.kms.Encrypt(ctx, &kmsapi.EncryptRequest{Plaintext: seed, Uid: "3f1d2c0e-8b1a-4a8e-9a53-0c6a9b7e5d41"})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	// Status from the plugin's cache: the cost of the gRPC hop alone.
	b.Run("status-cached", func(b *testing.B) {
		for b.Loop() {
			ctx, cancel := rpc(b)
			_, err := pl.kms.Status(ctx, &kmsapi.StatusRequest{})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := cl.Encrypt(b.Context(), "acme", "default", seed, kmsplugin.Context); err != nil {
				b.Fatal(err)
			}
		}
	})
}
