package envelope_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/envelope"
)

var benchSizes = []struct {
	name string
	n    int
}{
	{"64B", 64},
	{"1KiB", 1 << 10},
	{"64KiB", 64 << 10},
}

// The three benchmarks share sizes and buffer reuse so their throughput can
// be compared in one run: Encrypt at 64 KiB should reach at least 0.9 of
// BenchmarkRawAESGCM.

func BenchmarkEncrypt(b *testing.B) {
	k := mustKey(b, make([]byte, envelope.KeySize))
	bind := envelope.Binding{OrgID: "org-42", KeyName: "default"}
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			pt := make([]byte, s.n)
			out := make([]byte, 0, s.n+envelope.Overhead)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Encrypt(out[:0], k, 1, pt, bind); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecrypt(b *testing.B) {
	k := mustKey(b, make([]byte, envelope.KeySize))
	bind := envelope.Binding{OrgID: "org-42", KeyName: "default"}
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			ct, err := envelope.Encrypt(nil, k, 1, make([]byte, s.n), bind)
			if err != nil {
				b.Fatal(err)
			}
			out := make([]byte, 0, s.n)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Decrypt(out[:0], k, ct, bind); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawAESGCM is the baseline: AES-256-GCM with one fixed key and a
// random 12-byte nonce per message, no derivation, no header.
func BenchmarkRawAESGCM(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			pt := make([]byte, s.n)
			out := make([]byte, 0, 12+s.n+16)
			nonce := make([]byte, 12)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				rand.Read(nonce)
				g.Seal(append(out[:0], nonce...), nonce, pt, nil)
			}
		})
	}
}

// BenchmarkRawAESGCMOpen is the baseline for BenchmarkDecrypt.
func BenchmarkRawAESGCMOpen(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			nonce := make([]byte, 12)
			rand.Read(nonce)
			ct := g.Seal(nil, nonce, make([]byte, s.n), nil)
			out := make([]byte, 0, s.n)
			b.SetBytes(int64(s.n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Open(out[:0], nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncryptVsRaw interleaves batches of Encrypt and of the raw
// AES-256-GCM baseline, alternating which goes first, and reports the ratio
// of their times (enc/raw = raw time / Encrypt time: 1.0 is the same speed,
// the goal at 64 KiB is >= 0.9). On shared machines separate benchmarks drift
// by more than the difference being measured; interleaving exposes both to
// the same conditions.
func BenchmarkEncryptVsRaw(b *testing.B) {
	k := mustKey(b, make([]byte, envelope.KeySize))
	bind := envelope.Binding{OrgID: "org-42", KeyName: "default"}
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 4
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			pt := make([]byte, s.n)
			out := make([]byte, 0, s.n+envelope.Overhead)
			nonce := make([]byte, 12)
			encBatch := func() time.Duration {
				t0 := time.Now()
				for range batch {
					if _, err := envelope.Encrypt(out[:0], k, 1, pt, bind); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(t0)
			}
			rawBatch := func() time.Duration {
				t0 := time.Now()
				for range batch {
					rand.Read(nonce)
					g.Seal(append(out[:0], nonce...), nonce, pt, nil)
				}
				return time.Since(t0)
			}
			var enc, raw []time.Duration
			b.SetBytes(int64(2 * batch * s.n))
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					enc = append(enc, encBatch())
					raw = append(raw, rawBatch())
				} else {
					raw = append(raw, rawBatch())
					enc = append(enc, encBatch())
				}
			}
			// enc/raw counts everything, including GC work the allocations
			// cause; enc/raw-median leaves out batches hit by GC or preemption.
			b.ReportMetric(float64(sum(raw))/float64(sum(enc)), "enc/raw")
			b.ReportMetric(float64(median(raw))/float64(median(enc)), "enc/raw-median")
		})
	}
}

func median(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)/2]
}

func sum(d []time.Duration) (t time.Duration) {
	for _, x := range d {
		t += x
	}
	return t
}
