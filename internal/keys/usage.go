package keys

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
)

// usageRecorder aggregates data-plane counters in memory per (org, key, op,
// principal, outcome, minute) and writes them in batches, so accounting
// never throttles the hot path: an increment is a map lookup and a few
// atomic operations. Records hold names and counts only: never key
// material, plaintext or ciphertext.
type usageRecorder struct {
	store Store
	now   func() time.Time
	log   *slog.Logger
	off   bool // Config.NoUsage: nothing is recorded

	counters sync.Map // usageKey → *usageCounter
	flushMu  sync.Mutex
}

type usageKey struct {
	org, key, op, principal, outcome string
	minute                           int64 // unix minute
}

// usageCounter is one minute's aggregate. first and last are Unix
// nanoseconds (0: none yet); they only ever move outwards, so writing them
// again is harmless (the store keeps the min and the max).
type usageCounter struct {
	count       atomic.Int64
	first, last atomic.Int64
}

func (c *usageCounter) seen(t int64) {
	for {
		f := c.first.Load()
		if (f != 0 && f <= t) || c.first.CompareAndSwap(f, t) {
			break
		}
	}
	for {
		l := c.last.Load()
		if l >= t || c.last.CompareAndSwap(l, t) {
			break
		}
	}
}

func newUsageRecorder(store Store, now func() time.Time, log *slog.Logger) *usageRecorder {
	return &usageRecorder{store: store, now: now, log: log}
}

// add counts n successful calls.
func (u *usageRecorder) add(org, key, op, principal string, n int) {
	u.addOutcome(org, key, op, principal, OutcomeOK, n)
}

func (u *usageRecorder) addOutcome(org, key, op, principal, outcome string, n int) {
	if n == 0 || u.off {
		return
	}
	t := u.now()
	u.addAt(usageKey{org, key, op, principal, outcome, t.Unix() / 60}, int64(n), t.UnixNano(), t.UnixNano())
}

// results counts a batch: ok successes and every failed item by its code.
func (u *usageRecorder) results(org, key, op, principal string, ok int, out []ItemResult) {
	u.add(org, key, op, principal, ok)
	if ok == len(out) {
		return
	}
	for _, r := range out {
		if r.Err != nil {
			u.refused(org, key, op, principal, 1, r.Err)
		}
	}
}

// refused counts n calls refused or failed with err (the org's key is
// revoked, a ciphertext does not decrypt, ...). Unknown orgs or keys and
// malformed requests (an oversized item, a bad field) are not key uses and
// are not counted.
func (u *usageRecorder) refused(org, key, op, principal string, n int, err error) {
	switch k := fault.KindOf(err); k {
	case fault.NotFound, fault.Invalid, fault.TooLarge:
	default:
		u.addOutcome(org, key, op, principal, k.Code(), n)
	}
}

func (u *usageRecorder) addAt(k usageKey, n, first, last int64) {
	v, ok := u.counters.Load(k)
	if !ok {
		v, _ = u.counters.LoadOrStore(k, new(usageCounter))
	}
	c := v.(*usageCounter)
	c.seen(first)
	if last != first {
		c.seen(last)
	}
	c.count.Add(n)
}

// flush writes every pending counter, the current minute's too, and
// forgets closed minutes. A count added to a minute after it was flushed is
// written by the next flush: the store's upsert is additive.
func (u *usageRecorder) flush(ctx context.Context) error {
	u.flushMu.Lock()
	defer u.flushMu.Unlock()
	current := u.now().Unix() / 60
	var batch []UsageCount
	u.counters.Range(func(k, v any) bool {
		key := k.(usageKey)
		c := v.(*usageCounter)
		n := c.count.Swap(0)
		if key.minute < current {
			u.counters.Delete(key)
		}
		if n == 0 {
			return true
		}
		batch = append(batch, UsageCount{OrgID: key.org, KeyName: key.key, Op: key.op, Principal: key.principal, Outcome: key.outcome,
			Minute: time.Unix(key.minute*60, 0).UTC(), Count: n,
			First: time.Unix(0, c.first.Load()).UTC(), Last: time.Unix(0, c.last.Load()).UTC()})
		return true
	})
	if len(batch) == 0 {
		return nil
	}
	if err := u.store.AddUsage(ctx, batch); err != nil {
		// Put the counts back so they are not lost; the next flush retries.
		for _, c := range batch {
			u.addAt(usageKey{c.OrgID, c.KeyName, c.Op, c.Principal, c.Outcome, c.Minute.Unix() / 60}, c.Count, c.First.UnixNano(), c.Last.UnixNano())
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

// MaxUsagePage is the most usage records one query returns.
const MaxUsagePage = 1000

// ValidateUsageFilter checks f's fields; it returns Kind Invalid naming
// the field.
func ValidateUsageFilter(f UsageFilter) error {
	const op = "query usage"
	if !f.Until.IsZero() && !f.Since.IsZero() && !f.Until.After(f.Since) {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "until", Reason: "until must be after since"}
	}
	if f.Key != "" {
		if err := ValidateKeyName(f.Key); err != nil {
			return &fault.Error{Kind: fault.Invalid, Op: op, Field: "key", Reason: "key is not a valid key name"}
		}
	}
	if len(f.Caller) > 200 || !utf8.ValidString(f.Caller) {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "caller", Reason: "caller must be valid UTF-8 of at most 200 bytes"}
	}
	if f.Op != "" && !slices.Contains(UsageOps, f.Op) {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "op", Reason: "op must be one of encrypt, decrypt, rewrap, datakey"}
	}
	if f.Outcome != "" && f.Outcome != OutcomeOK && f.Outcome != OutcomeDenied && fault.KindFromCode(f.Outcome).Code() != f.Outcome {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "outcome", Reason: "outcome must be ok, denied, or an error code such as forbidden or ciphertext_invalid"}
	}
	if f.Limit < 0 || f.Limit > MaxUsagePage {
		return &fault.Error{Kind: fault.Invalid, Op: op, Field: "limit", Reason: fmt.Sprintf("limit must be between 1 and %d", MaxUsagePage)}
	}
	return nil
}

// QueryUsage returns the org's flushed usage records matching f, newest
// first. It returns Kind Invalid for a bad filter and NotFound for an
// unknown org.
func (s *Service) QueryUsage(ctx context.Context, orgID string, f UsageFilter) ([]UsageCount, error) {
	if err := ValidateUsageFilter(f); err != nil {
		return nil, err
	}
	if _, err := s.store.GetOrg(ctx, orgID); err != nil {
		return nil, err
	}
	return s.store.QueryUsage(ctx, orgID, f)
}

// RecordRefused counts a data-plane call that was refused before it reached
// the key (authorization): op on orgID's key by caller, with err's code.
// The caller's name must be one the org may see (see the API). Calls on an
// org that does not exist, or with an invalid key name, are not counted.
func (s *Service) RecordRefused(ctx context.Context, orgID, key, op, caller string, err error) {
	if s.usage.off || ValidateKeyName(key) != nil || ValidateOrgID(orgID) != nil || !slices.Contains(UsageOps, op) {
		return
	}
	// Only on the refused path: one read, so unknown orgs get no records.
	if _, gerr := s.store.GetOrg(ctx, orgID); gerr != nil {
		return
	}
	s.usage.addOutcome(orgID, key, op, caller, fault.KindOf(err).Code(), 1)
}

// Usage retention defaults.
const (
	DefaultUsageRetention    = 90 * 24 * time.Hour
	DefaultUsageCleanupEvery = time.Hour
	usageCleanupBatch        = 10000
)

// CleanupUsage deletes the usage records older than the retention period,
// when this node wins the cluster-wide cleanup claim (once per
// cleanup interval for the whole cluster). It reports how many records it
// deleted and whether it held the claim. Each batch deleted appends a
// usage.cleanup event to the platform audit chain.
func (s *Service) CleanupUsage(ctx context.Context) (int64, bool, error) {
	now := s.now()
	ok, err := s.store.ClaimUsageCleanup(ctx, s.nodeID, now, s.usageEvery)
	if err != nil || !ok {
		return 0, false, err
	}
	before := now.Add(-s.usageRetention).Truncate(time.Minute)
	var total int64
	for {
		ev := audit.Event{OrgID: audit.Platform, Time: now, Actor: "system", Action: "usage.cleanup", Target: "usage",
			Details: map[string]string{"before": before.UTC().Format(time.RFC3339), "retention": s.usageRetention.String()}}
		n, err := s.store.DeleteUsageBefore(ctx, before, usageCleanupBatch, ev)
		total += n
		if err != nil {
			return total, true, err
		}
		if n < usageCleanupBatch {
			return total, true, nil
		}
	}
}

// UsageRetention returns how long usage records are kept.
func (s *Service) UsageRetention() time.Duration { return s.usageRetention }

// FormatUsageCursor and ParseUsageCursor encode a position in a usage
// listing (the last record returned) as an opaque page token.
func FormatUsageCursor(u UsageCount) string {
	return strconv.FormatInt(u.Minute.Unix()/60, 36) + "." + hex.EncodeToString([]byte(u.KeyName)) + "." + hex.EncodeToString([]byte(u.Op)) + "." + hex.EncodeToString([]byte(u.Principal)) + "." + hex.EncodeToString([]byte(u.Outcome))
}

// ParseUsageCursor returns Kind Invalid (field page_token) for a token
// FormatUsageCursor did not make.
func ParseUsageCursor(s string) (UsageCount, error) {
	bad := &fault.Error{Kind: fault.Invalid, Op: "query usage", Field: "page_token", Reason: "page_token is not one returned by this listing"}
	parts := strings.Split(s, ".")
	if len(parts) != 5 {
		return UsageCount{}, bad
	}
	m, err := strconv.ParseInt(parts[0], 36, 64)
	if err != nil || m < 0 {
		return UsageCount{}, bad
	}
	var f [4]string
	for i := range f {
		v, err := hex.DecodeString(parts[i+1])
		if err != nil || len(v) > 512 {
			return UsageCount{}, bad
		}
		f[i] = string(v)
	}
	return UsageCount{Minute: time.Unix(m*60, 0).UTC(), KeyName: f[0], Op: f[1], Principal: f[2], Outcome: f[3]}, nil
}
