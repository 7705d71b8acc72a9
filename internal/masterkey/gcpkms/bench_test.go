package gcpkms_test

import (
	"testing"

	"github.com/orgkms/orgkms/internal/gcpkmsemu"
)

// BenchmarkWrapUnwrap is one org root key wrap + unwrap through the
// official client and a loopback gRPC connection to the fake: the cost of
// orgkms' side of a Cloud KMS call (client, gRPC, checksums), without
// Google's network latency.
func BenchmarkWrapUnwrap(b *testing.B) {
	srv := gcpkmsemu.New()
	addr, err := srv.Start(b.Cleanup)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.CreateKey(key1, gcpkmsemu.KeyOptions{}); err != nil {
		b.Fatal(err)
	}
	e := &env{srv: srv, addr: addr}
	p, err := gcpkmsOpen(b, e)
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	d := dek()
	for b.Loop() {
		w, err := p.Wrap(ctx, ref(key1), d, aad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Unwrap(ctx, w.Key, w.Ciphertext, aad); err != nil {
			b.Fatal(err)
		}
	}
}
