package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// benchOrg creates org id with a data key of 3 versions.
func benchOrg(b *testing.B, s *Store, id string) {
	b.Helper()
	now := time.Now()
	mk := masterkey.Ref{Provider: "local", ID: "m"}
	k := keys.DataKey{Name: "default", CreatedAt: now, LatestVersion: 3, MinDecryptionVersion: 1}
	for v := uint32(1); v <= 3; v++ {
		k.Versions = append(k.Versions, keys.DataKeyVersion{Version: v, CreatedAt: now, Wrapped: make([]byte, 60)})
	}
	err := s.CreateOrg(b.Context(), keys.Org{ID: id, Name: id, CreatedAt: now, MasterKey: mk},
		keys.RootKeyWrapping{Wrapped: masterkey.Wrapped{Ciphertext: make([]byte, 72), Key: mk.WithVersion("1")}, CreatedAt: now},
		k, audit.Event{Time: now, Action: "org.create"})
	if err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGetDataKey(b *testing.B) {
	s := openTemp(b)
	for i := range 100 {
		benchOrg(b, s, fmt.Sprintf("org-%03d", i))
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetDataKey(b.Context(), "org-042", "default"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetDataKey(b.Context(), "org-042", "default"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkAppendAudit(b *testing.B) {
	s := openTemp(b)
	ev := audit.Event{OrgID: "acme", Actor: "user:alice", Action: "key.rotate", Target: "key/default",
		Details: map[string]string{"version": "2"}}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			ev.Time = time.Now()
			if _, err := s.AppendAudit(b.Context(), ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			ev := ev
			for pb.Next() {
				ev.Time = time.Now()
				if _, err := s.AppendAudit(b.Context(), ev); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
