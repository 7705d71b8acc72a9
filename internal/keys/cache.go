package keys

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/orgkms/orgkms/internal/envelope"
)

// Cache holds unwrapped org root keys and data keys in memory for at most
// TTL. Loads are single-flighted per org, and a Purge that races a load wins:
// the load's result is discarded. Safe for concurrent use.
type Cache struct {
	ttl     time.Duration
	metaTTL time.Duration
	now     func() time.Time

	mu     sync.RWMutex
	orgs   map[string]*orgEntry
	epochs map[string]uint64 // bumped by Purge(org)
	epoch  uint64            // bumped by PurgeAll
	group  singleflight.Group

	Hits, Misses atomic.Int64
}

type orgEntry struct {
	org     Org
	root    *envelope.Key
	rootRaw []byte // the root key, for re-wrap jobs; memory only
	expires time.Time
	// refuse, when set, is the error of every use of the org (pending
	// deletion, deleted): the entry holds no key then.
	refuse error

	mu    sync.RWMutex
	rings map[string]*ring
}

// ring is the cached, unwrapped state of one data key.
type ring struct {
	latest    uint32
	minDec    uint32
	versions  map[uint32]*envelope.Key
	lost      map[uint32]time.Time // versions lost with a purged customer key, and when
	refreshed time.Time
	refuse    error // the key's lifecycle refuses its use (disabled, pending deletion, deleted); no versions then
}

func newCache(ttl, metaTTL time.Duration, now func() time.Time) *Cache {
	return &Cache{ttl: ttl, metaTTL: metaTTL, now: now, orgs: map[string]*orgEntry{}, epochs: map[string]uint64{}}
}

// get returns the live entry of org, or nil.
func (c *Cache) get(org string) *orgEntry {
	c.mu.RLock()
	e := c.orgs[org]
	c.mu.RUnlock()
	if e == nil || !c.now().Before(e.expires) {
		return nil
	}
	return e
}

// load returns org's entry, calling fill once per org on a miss.
func (c *Cache) load(ctx context.Context, org string, fill func(ctx context.Context) (*orgEntry, error)) (*orgEntry, error) {
	if e := c.get(org); e != nil {
		c.Hits.Add(1)
		return e, nil
	}
	c.Misses.Add(1)
	v, err, _ := c.group.Do(org, func() (any, error) {
		if e := c.get(org); e != nil {
			return e, nil
		}
		c.mu.RLock()
		epoch, orgEpoch := c.epoch, c.epochs[org]
		c.mu.RUnlock()
		// The load must not be cancelled by the first caller's context
		// alone: other callers share it.
		e, err := fill(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		e.expires = c.now().Add(c.ttl)
		c.mu.Lock()
		if c.epoch == epoch && c.epochs[org] == orgEpoch {
			c.orgs[org] = e
		}
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*orgEntry), nil
}

// Purge drops org's unwrapped keys at once.
func (c *Cache) Purge(org string) {
	c.mu.Lock()
	delete(c.orgs, org)
	c.epochs[org]++
	c.mu.Unlock()
}

// PurgeAll drops every unwrapped key at once.
func (c *Cache) PurgeAll() {
	c.mu.Lock()
	clear(c.orgs)
	c.epoch++
	c.mu.Unlock()
}

// Len returns the number of cached orgs.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.orgs)
}

// sweep drops expired entries; called periodically by the service.
func (c *Cache) sweep() {
	now := c.now()
	c.mu.Lock()
	for id, e := range c.orgs {
		if !now.Before(e.expires) {
			delete(c.orgs, id)
		}
	}
	c.mu.Unlock()
}

func (e *orgEntry) ring(name string) *ring {
	e.mu.RLock()
	r := e.rings[name]
	e.mu.RUnlock()
	return r
}

func (e *orgEntry) setRing(name string, r *ring) {
	e.mu.Lock()
	e.rings[name] = r
	e.mu.Unlock()
}

func (e *orgEntry) dropRing(name string) {
	e.mu.Lock()
	delete(e.rings, name)
	e.mu.Unlock()
}
