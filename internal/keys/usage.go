package keys

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// usageRecorder aggregates data-plane counters in memory per (org, key, op,
// principal, minute) and writes them in batches, so accounting never
// throttles the hot path: an increment is a map lookup and an atomic add.
type usageRecorder struct {
	store Store
	now   func() time.Time
	log   *slog.Logger

	counters sync.Map // usageKey → *atomic.Int64
	flushMu  sync.Mutex
}

type usageKey struct {
	org, key, op, principal string
	minute                  int64 // unix minute
}

func newUsageRecorder(store Store, now func() time.Time, log *slog.Logger) *usageRecorder {
	return &usageRecorder{store: store, now: now, log: log}
}

func (u *usageRecorder) add(org, key, op, principal string, n int) {
	if n == 0 {
		return
	}
	u.addAt(usageKey{org, key, op, principal, u.now().Unix() / 60}, int64(n))
}

func (u *usageRecorder) addAt(k usageKey, n int64) {
	c, ok := u.counters.Load(k)
	if !ok {
		c, _ = u.counters.LoadOrStore(k, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(n)
}

// flush writes the counters of closed minutes (all minutes when all is
// set). A count added to a minute after it was flushed is written by the
// next flush: the store's upsert is additive.
func (u *usageRecorder) flush(ctx context.Context, all bool) error {
	u.flushMu.Lock()
	defer u.flushMu.Unlock()
	current := u.now().Unix() / 60
	var batch []UsageCount
	u.counters.Range(func(k, v any) bool {
		key := k.(usageKey)
		if !all && key.minute >= current {
			return true
		}
		c := v.(*atomic.Int64)
		n := c.Swap(0)
		if key.minute < current {
			u.counters.Delete(key)
		}
		if n == 0 {
			return true
		}
		batch = append(batch, UsageCount{OrgID: key.org, KeyName: key.key, Op: key.op, Principal: key.principal,
			Minute: time.Unix(key.minute*60, 0).UTC(), Count: n})
		return true
	})
	if len(batch) == 0 {
		return nil
	}
	if err := u.store.AddUsage(ctx, batch); err != nil {
		// Put the counts back so they are not lost; the next flush retries.
		for _, c := range batch {
			u.addAt(usageKey{c.OrgID, c.KeyName, c.Op, c.Principal, c.Minute.Unix() / 60}, c.Count)
		}
		return err
	}
	return nil
}

// Usage returns an org's usage counters since t (flushed ones only).
func (s *Service) Usage(ctx context.Context, orgID string, since time.Time) ([]UsageCount, error) {
	if _, err := s.store.GetOrg(ctx, orgID); err != nil {
		return nil, err
	}
	return s.store.Usage(ctx, orgID, since)
}
