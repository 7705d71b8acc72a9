package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/envelope"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// DefaultKeyName is the data key every org gets at creation.
const DefaultKeyName = "default"

// Limits of the data plane.
const (
	MaxPlaintext = 4 << 20 // bytes per item
	MaxContext   = 1024    // bytes of caller context
	MaxBatch     = 1000    // items per batch request
)

// Config configures a [Service]. Store, Keepers and PlatformKey are required.
type Config struct {
	Store       Store
	Keepers     *masterkey.Registry
	PlatformKey masterkey.Ref // unversioned
	// PreviousPlatformKeys are platform master keys the platform moved
	// away from (config previous_master_keys): root keys they wrap are
	// platform-wrapped (unwrapped with them, worded as the platform key,
	// re-wrapped to PlatformKey by the platform re-wrap job), never
	// used to wrap.
	PreviousPlatformKeys []masterkey.Ref

	CacheTTL       time.Duration // how long unwrapped keys stay in memory; default 5m
	KeyMetadataTTL time.Duration // how long data key metadata (latest, min decryption version) is trusted; default 10s
	UsageFlush     time.Duration // how often usage counters are written; default 10s
	// UsageRetention is how long usage records are kept (config
	// usage.retention); default 90 days. UsageCleanupEvery is how often the
	// cluster (one node, under a claim) deletes older ones; default 1h.
	UsageRetention    time.Duration
	UsageCleanupEvery time.Duration
	// NoUsage turns usage recording off (benchmarks measure its cost).
	NoUsage bool
	NodeID  string // names this node in the usage cleanup claim; default "node"
	Now     func() time.Time
	Logger  *slog.Logger

	// Guard, when set, is consulted before an org's root key is unwrapped
	// into the cache; an error (e.g. the org's customer managed key is
	// revoked) fails the operation fast, without a remote call.
	Guard func(ctx context.Context, orgID string) error
	// Produce, when set, is consulted by the operations that produce new
	// ciphertext (encrypt, rewrap, datakey) after Guard: an error (e.g.
	// the org is in decrypt-only mode) refuses them; decrypt is unaffected.
	Produce func(ctx context.Context, orgID string) error
	// DataLost, when set, reports when an org lost its data (its customer
	// managed key was purged and it fell back to a new root key); zero when
	// never. A data key version made before then that no longer unwraps is
	// then lost data, not corruption: ciphertexts of it fail with
	// cmk_key_destroyed while newer versions keep working.
	DataLost func(orgID string) time.Time
}

// Service implements org and key management and the data plane. Safe for
// concurrent use.
type Service struct {
	store       Store
	keepers     *masterkey.Registry
	platformKey masterkey.Ref
	previous    []masterkey.Ref // unversioned
	redact      redactor
	cache       *Cache
	usage       *usageRecorder
	now         func() time.Time
	log         *slog.Logger
	metaTTL     time.Duration
	guard       func(ctx context.Context, orgID string) error
	produce     func(ctx context.Context, orgID string) error
	dataLost    func(orgID string) time.Time

	usageRetention, usageEvery time.Duration
	nodeID                     string

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New returns a Service and starts its background flusher; Close stops it.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keepers == nil || cfg.PlatformKey.Provider == "" {
		return nil, errors.New("keys: Store, Keepers and PlatformKey are required")
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.KeyMetadataTTL <= 0 {
		cfg.KeyMetadataTTL = 10 * time.Second
	}
	if cfg.UsageFlush <= 0 {
		cfg.UsageFlush = 10 * time.Second
	}
	if cfg.UsageRetention <= 0 {
		cfg.UsageRetention = DefaultUsageRetention
	}
	if cfg.UsageCleanupEvery <= 0 {
		cfg.UsageCleanupEvery = DefaultUsageCleanupEvery
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{
		store: cfg.Store, keepers: cfg.Keepers, platformKey: cfg.PlatformKey.Unversioned(),
		cache: newCache(cfg.CacheTTL, cfg.KeyMetadataTTL, cfg.Now), now: cfg.Now, log: cfg.Logger,
		metaTTL: cfg.KeyMetadataTTL, stop: make(chan struct{}), guard: cfg.Guard, produce: cfg.Produce, dataLost: cfg.DataLost,
	}
	for _, p := range cfg.PreviousPlatformKeys {
		s.previous = append(s.previous, p.Unversioned())
	}
	s.usage = newUsageRecorder(cfg.Store, cfg.Now, cfg.Logger)
	s.usage.off = cfg.NoUsage
	s.usageRetention, s.usageEvery, s.nodeID = cfg.UsageRetention, cfg.UsageCleanupEvery, cfg.NodeID
	s.wg.Go(func() { s.background(cfg.UsageFlush) })
	return s, nil
}

// Cache returns the key cache (for purges and metrics).
func (s *Service) Cache() *Cache { return s.cache }

// PlatformKey returns the platform master key.
func (s *Service) PlatformKey() masterkey.Ref { return s.platformKey }

// PreviousPlatformKeys returns the platform master keys configured for
// unwrapping only (unversioned).
func (s *Service) PreviousPlatformKeys() []masterkey.Ref {
	return append([]masterkey.Ref(nil), s.previous...)
}

// IsPlatformKey reports whether ref (any version) is the platform master
// key or one of the previous platform keys.
func (s *Service) IsPlatformKey(ref masterkey.Ref) bool {
	u := ref.Unversioned()
	if u == s.platformKey {
		return true
	}
	for _, p := range s.previous {
		if u == p {
			return true
		}
	}
	return false
}

// Close flushes usage counters and stops background work.
func (s *Service) Close(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	s.wg.Wait()
	return s.usage.flush(ctx)
}

func (s *Service) background(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var nextCleanup time.Time // the claim makes it once per interval cluster-wide
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.cache.sweep()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			// Every minute, the current one too: the store's upsert is
			// additive, and a customer sees a call within one interval.
			if err := s.usage.flush(ctx); err != nil {
				s.log.Warn("usage flush failed", slog.String("error", err.Error()))
			}
			if now := s.now(); !now.Before(nextCleanup) {
				nextCleanup = now.Add(min(s.usageEvery, time.Minute))
				if _, _, err := s.CleanupUsage(ctx); err != nil {
					s.log.Warn("usage cleanup failed", slog.String("error", err.Error()))
				}
			}
			cancel()
		}
	}
}

// FlushUsage writes pending usage counters now (all minutes).
func (s *Service) FlushUsage(ctx context.Context) error { return s.usage.flush(ctx) }

// RootAAD is the associated data binding an org's root key to its org.
func RootAAD(orgID string) []byte { return []byte("org/" + orgID + "/root") }

// DataKeyAAD is the associated data binding a data key version to its org, name and version.
func DataKeyAAD(orgID, name string, version uint32) []byte {
	return []byte("org/" + orgID + "/key/" + name + "/v" + strconv.FormatUint(uint64(version), 10))
}

func randomKey() ([]byte, error) {
	b := make([]byte, envelope.KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, &fault.Error{Kind: fault.Internal, Op: "generate key", Err: err}
	}
	return b, nil
}

// CreateOrg creates an org with a root key wrapped by the platform master
// key and a data key named "default".
func (s *Service) CreateOrg(ctx context.Context, actor, id, name string) (Org, error) {
	const op = "create org"
	if err := ValidateOrgID(id); err != nil {
		return Org{}, err
	}
	if name == "" {
		name = id
	}
	if len(name) > 200 || !utf8.ValidString(name) {
		return Org{}, &fault.Error{Kind: fault.Invalid, Op: op, Field: "name", Reason: "org name must be valid UTF-8 of at most 200 bytes"}
	}
	keeper, err := s.keepers.Keeper(s.platformKey)
	if err != nil {
		return Org{}, err
	}
	root, err := randomKey()
	if err != nil {
		return Org{}, err
	}
	defer clear(root)
	w, err := keeper.Wrap(ctx, s.platformKey, root, RootAAD(id))
	if err != nil {
		return Org{}, PlatformKeyFault(op, err)
	}
	// Verify the wrapping before storing it: never store what cannot unwrap.
	check, err := keeper.Unwrap(ctx, w, RootAAD(id))
	if err != nil {
		return Org{}, PlatformKeyFault(op, err)
	}
	clear(check)
	rootKey, err := envelope.NewKey(root)
	if err != nil {
		return Org{}, &fault.Error{Kind: fault.Internal, Op: op, Err: err}
	}
	now := s.now().UTC()
	first, err := newDataKey(rootKey, id, DefaultKeyName, now)
	if err != nil {
		return Org{}, err
	}
	org := Org{ID: id, Name: name, CreatedAt: now, MasterKey: s.platformKey}
	rw := RootKeyWrapping{OrgID: id, Wrapped: w, State: WrappingActive, CreatedAt: now}
	ev := audit.Event{OrgID: id, Time: now, Actor: actor, Action: "org.create", Target: "org/" + id,
		Details: map[string]string{"name": name, "master_key": s.AuditKeyName(w.Key.Unversioned()), "master_key_version": w.Key.Version}}
	if err := s.store.CreateOrg(ctx, org, rw, first, ev); err != nil {
		return Org{}, err
	}
	return org, nil
}

func newDataKey(root *envelope.Key, org, name string, now time.Time) (DataKey, error) {
	material, err := randomKey()
	if err != nil {
		return DataKey{}, err
	}
	defer clear(material)
	return DataKey{OrgID: org, Name: name, CreatedAt: now, LatestVersion: 1, MinDecryptionVersion: 1,
		Versions: []DataKeyVersion{{Version: 1, CreatedAt: now, Wrapped: envelope.WrapKey(root, material, DataKeyAAD(org, name, 1))}}}, nil
}

// GetOrg returns an org.
func (s *Service) GetOrg(ctx context.Context, id string) (Org, error) {
	if err := ValidateOrgID(id); err != nil {
		return Org{}, &fault.Error{Kind: fault.NotFound, Resource: "org " + id}
	}
	return s.store.GetOrg(ctx, id)
}

// ListOrgs lists orgs by ID.
func (s *Service) ListOrgs(ctx context.Context, opts ListOptions) ([]Org, error) {
	if opts.Limit <= 0 || opts.Limit > 1000 {
		opts.Limit = 100
	}
	return s.store.ListOrgs(ctx, opts)
}

// entry returns org's cache entry, unwrapping its root key on a miss.
func (s *Service) entry(ctx context.Context, orgID string) (*orgEntry, error) {
	// The guard runs on every call (a map lookup): an org revoked while its
	// keys were being loaded is refused even if the load raced the purge.
	if s.guard != nil {
		if err := s.guard(ctx, orgID); err != nil {
			return nil, err
		}
	}
	e := s.cache.get(orgID)
	if e != nil {
		s.cache.Hits.Add(1)
	} else {
		var err error
		if e, err = s.cache.load(ctx, orgID, func(ctx context.Context) (*orgEntry, error) { return s.loadEntry(ctx, orgID) }); err != nil {
			return nil, err
		}
	}
	if e.refuse != nil {
		return nil, e.refuse
	}
	return e, nil
}

// loadEntry unwraps org's root key through its active wrapping.
func (s *Service) loadEntry(ctx context.Context, orgID string) (*orgEntry, error) {
	// A data-plane load is the vault budget's first class, unless it is
	// made for a job or a probe.
	ctx = budget.Default(ctx, budget.Load, orgID)
	org, err := s.store.GetOrg(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if ls, ok := s.store.(LifecycleStore); ok {
		l, err := ls.OrgLifecycle(ctx, orgID)
		if err != nil {
			return nil, err
		}
		if refuse := OrgRefusal(orgID, l); refuse != nil {
			// Cached like a usable org (a generation raised by a cancel
			// drops it on every node), without unwrapping anything.
			return &orgEntry{org: org, refuse: refuse, rings: map[string]*ring{}}, nil
		}
	}
	wrappings, err := s.store.RootKeys(ctx, orgID)
	if err != nil {
		return nil, err
	}
	if len(wrappings) == 0 || wrappings[0].State != WrappingActive {
		return nil, &fault.Error{Kind: fault.Internal, Op: "load org", Resource: "org " + orgID, Reason: "org has no active root key wrapping"}
	}
	w := wrappings[0]
	keeper, err := s.keepers.Keeper(w.Wrapped.Key)
	if err != nil && !s.unconfiguredPlatformKey(w.Wrapped.Key) {
		return nil, err
	}
	var raw []byte
	if err == nil {
		if raw, err = keeper.Unwrap(ctx, w.Wrapped, RootAAD(orgID)); err == nil {
			return s.newEntry(org, raw)
		}
	}
	if s.unconfiguredPlatformKey(w.Wrapped.Key) {
		// A platform key this node is not configured with (a key file
		// replaced or moved, previous_master_keys not set, an HSM driver
		// not built in): the operator's fault, not the org's nor its
		// caller's. The org learns nothing of where the key lives.
		s.log.Error("org's root key is wrapped by a platform master key this node is not configured with; add it to previous_master_keys",
			slog.String("org_id", orgID), slog.String("key_ref", w.Wrapped.Key.Unversioned().String()), slog.String("error", err.Error()))
		return nil, &fault.Error{Kind: fault.Unavailable, Op: "load org", Resource: "org " + orgID, RetryAfter: time.Minute,
			Reason: "the org's root key is wrapped by a platform master key this orgkms is not configured with; the operator must configure it (previous_master_keys)", Err: err}
	}
	if fault.KindOf(err) == fault.Integrity {
		// Stored material that fails authentication is not a caller
		// mistake: it is corruption or tampering at rest.
		s.log.Error("stored root key failed authentication", slog.String("org_id", orgID), slog.String("key_ref", w.Wrapped.Key.String()))
		return nil, &fault.Error{Kind: fault.Internal, Op: "load org", Resource: "org " + orgID, Reason: "stored root key failed integrity check", Err: err}
	}
	if !s.IsPlatformKey(w.Wrapped.Key) {
		// The org's customer managed key failed: its callers get the
		// same cmk_* code as once the probe has recorded it.
		if ck, ok := fault.KindOf(err).CustomerKeyKind(); ok {
			fe := fault.As(err)
			return nil, &fault.Error{Kind: ck, Op: "load org", Resource: "org " + orgID, Permission: fe.Permission, Provider: fe.Provider, Err: err}
		}
		return nil, err
	}
	return nil, PlatformKeyFault("load org", err)
}

// newEntry is the cache entry of org with root key raw.
func (s *Service) newEntry(org Org, raw []byte) (*orgEntry, error) {
	k, err := envelope.NewKey(raw)
	if err != nil {
		clear(raw)
		return nil, &fault.Error{Kind: fault.Internal, Op: "load org", Err: err}
	}
	return &orgEntry{org: org, root: k, rootRaw: raw, rings: map[string]*ring{}}, nil
}

// platformOnly are the master-key schemes that only ever serve as the
// platform key: a customer managed key lives in the customer's cloud
// vault, never in a key file or an HSM of the platform.
var platformOnly = map[string]bool{"local": true, "pkcs11": true}

// unconfiguredPlatformKey reports whether ref is a platform key this
// service is not configured with: not the platform key nor a previous one,
// of a platform-only scheme.
func (s *Service) unconfiguredPlatformKey(ref masterkey.Ref) bool {
	return platformOnly[ref.Provider] && !s.IsPlatformKey(ref)
}

// ring returns the cached key ring of name, loading it when absent, stale,
// or when it lacks wantVersion (0 = any).
func (s *Service) ring(ctx context.Context, e *orgEntry, name string, wantVersion uint32) (*ring, error) {
	r := e.ring(name)
	now := s.now()
	if r != nil && now.Sub(r.refreshed) < s.metaTTL && (wantVersion == 0 || wantVersion <= r.latest) {
		return r, nil
	}
	dk, err := s.store.GetDataKey(ctx, e.org.ID, name)
	if err != nil {
		return nil, err
	}
	l, err := s.keyLifecycle(ctx, e.org.ID, name)
	if err != nil {
		return nil, err
	}
	if refuse := KeyRefusal(e.org.ID, name, l); refuse != nil {
		nr := &ring{latest: dk.LatestVersion, minDec: dk.MinDecryptionVersion, refreshed: now, refuse: refuse}
		e.setRing(name, nr)
		return nr, nil
	}
	nr := &ring{latest: dk.LatestVersion, minDec: dk.MinDecryptionVersion, versions: make(map[uint32]*envelope.Key, len(dk.Versions)), refreshed: now}
	for _, v := range dk.Versions {
		if r != nil {
			if k, ok := r.versions[v.Version]; ok {
				nr.versions[v.Version] = k
				continue
			}
		}
		raw, err := envelope.UnwrapKey(e.root, v.Wrapped, DataKeyAAD(e.org.ID, name, v.Version))
		if err != nil && s.dataLost != nil {
			if at := s.dataLost(e.org.ID); !at.IsZero() && !v.CreatedAt.After(at) {
				// Wrapped by the root key lost with a purged customer key.
				if nr.lost == nil {
					nr.lost = map[uint32]time.Time{}
				}
				nr.lost[v.Version] = at
				continue
			}
		}
		if err != nil {
			s.log.Error("stored data key failed authentication", slog.String("org_id", e.org.ID), slog.String("key_ring", name), slog.Uint64("key_version", uint64(v.Version)))
			return nil, &fault.Error{Kind: fault.Internal, Op: "load key", Resource: fmt.Sprintf("key %s version %d in org %s", name, v.Version, e.org.ID), Reason: "stored data key failed integrity check", Err: err}
		}
		k, err := envelope.NewKey(raw)
		clear(raw)
		if err != nil {
			return nil, &fault.Error{Kind: fault.Internal, Op: "load key", Err: err}
		}
		nr.versions[v.Version] = k
	}
	e.setRing(name, nr)
	return nr, nil
}

// RootKey returns a copy of org's unwrapped root key, from the cache when
// present (no remote call), else by unwrapping the active wrapping. For
// re-wrap jobs only; the caller must clear the returned bytes.
func (s *Service) RootKey(ctx context.Context, orgID string) ([]byte, error) {
	e, err := s.cache.load(ctx, orgID, func(ctx context.Context) (*orgEntry, error) { return s.loadEntry(ctx, orgID) })
	if err != nil {
		return nil, err
	}
	if e.refuse != nil {
		return nil, e.refuse
	}
	return append([]byte(nil), e.rootRaw...), nil
}

// CachedRootKey returns a copy of org's root key when this node holds it
// in its cache (unexpired), without loading it: a re-wrap uses it instead
// of unwrapping the org's active wrapping again.
func (s *Service) CachedRootKey(orgID string) ([]byte, bool) {
	e := s.cache.get(orgID)
	if e == nil || len(e.rootRaw) == 0 {
		return nil, false
	}
	return append([]byte(nil), e.rootRaw...), true
}

// CreateDataKey creates a data key with version 1.
func (s *Service) CreateDataKey(ctx context.Context, actor, orgID, name string) (DataKey, error) {
	if err := ValidateKeyName(name); err != nil {
		return DataKey{}, err
	}
	e, err := s.entry(ctx, orgID)
	if err != nil {
		return DataKey{}, err
	}
	now := s.now().UTC()
	k, err := newDataKey(e.root, orgID, name, now)
	if err != nil {
		return DataKey{}, err
	}
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "key.create", Target: "key/" + name, Details: map[string]string{"version": "1"}}
	if err := s.store.CreateDataKey(ctx, orgID, k, ev); err != nil {
		return DataKey{}, err
	}
	return stripMaterial(k), nil
}

func stripMaterial(k DataKey) DataKey {
	vs := make([]DataKeyVersion, len(k.Versions))
	for i, v := range k.Versions {
		vs[i] = DataKeyVersion{Version: v.Version, CreatedAt: v.CreatedAt}
	}
	k.Versions = vs
	return k
}

// GetDataKey returns a data key's metadata and versions, never material.
func (s *Service) GetDataKey(ctx context.Context, orgID, name string) (DataKey, error) {
	if err := ValidateKeyName(name); err != nil {
		return DataKey{}, &fault.Error{Kind: fault.NotFound, Resource: "key " + name + " in org " + orgID}
	}
	k, err := s.store.GetDataKey(ctx, orgID, name)
	if err != nil {
		return DataKey{}, err
	}
	return stripMaterial(k), nil
}

// ListDataKeys lists an org's data keys.
func (s *Service) ListDataKeys(ctx context.Context, orgID string) ([]DataKey, error) {
	if _, err := s.store.GetOrg(ctx, orgID); err != nil {
		return nil, err
	}
	ks, err := s.store.ListDataKeys(ctx, orgID)
	if err != nil {
		return nil, err
	}
	for i := range ks {
		ks[i] = stripMaterial(ks[i])
	}
	return ks, nil
}

// RotateDataKey adds a new version to a data key and makes it the one new
// ciphertexts use. Old versions keep decrypting until retired.
func (s *Service) RotateDataKey(ctx context.Context, actor, orgID, name string) (DataKey, error) {
	if err := ValidateKeyName(name); err != nil {
		return DataKey{}, &fault.Error{Kind: fault.NotFound, Resource: "key " + name + " in org " + orgID}
	}
	e, err := s.entry(ctx, orgID)
	if err != nil {
		return DataKey{}, err
	}
	cur, err := s.store.GetDataKey(ctx, orgID, name)
	if err != nil {
		return DataKey{}, err
	}
	material, err := randomKey()
	if err != nil {
		return DataKey{}, err
	}
	defer clear(material)
	now := s.now().UTC()
	v := cur.LatestVersion + 1
	dv := DataKeyVersion{Version: v, CreatedAt: now, Wrapped: envelope.WrapKey(e.root, material, DataKeyAAD(orgID, name, v))}
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "key.rotate", Target: "key/" + name, Details: map[string]string{"version": strconv.FormatUint(uint64(v), 10)}}
	if err := s.store.AddDataKeyVersion(ctx, orgID, name, dv, ev); err != nil {
		return DataKey{}, err
	}
	e.dropRing(name)
	return s.GetDataKey(ctx, orgID, name)
}

// SetMinDecryptionVersion retires versions below min for decryption.
func (s *Service) SetMinDecryptionVersion(ctx context.Context, actor, orgID, name string, min uint32) (DataKey, error) {
	if err := ValidateKeyName(name); err != nil {
		return DataKey{}, &fault.Error{Kind: fault.NotFound, Resource: "key " + name + " in org " + orgID}
	}
	cur, err := s.store.GetDataKey(ctx, orgID, name)
	if err != nil {
		return DataKey{}, err
	}
	if min < 1 || min > cur.LatestVersion {
		return DataKey{}, &fault.Error{Kind: fault.Invalid, Field: "min_decryption_version",
			Reason: fmt.Sprintf("min_decryption_version must be between 1 and the latest version %d", cur.LatestVersion)}
	}
	now := s.now().UTC()
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "key.set_min_decryption_version", Target: "key/" + name,
		Details: map[string]string{"min_decryption_version": strconv.FormatUint(uint64(min), 10), "previous": strconv.FormatUint(uint64(cur.MinDecryptionVersion), 10)}}
	if err := s.store.SetMinDecryptionVersion(ctx, orgID, name, min, ev); err != nil {
		return DataKey{}, err
	}
	if e := s.cache.get(orgID); e != nil {
		e.dropRing(name)
	}
	return s.GetDataKey(ctx, orgID, name)
}

// AuditEvents returns an org's audit events after seq.
func (s *Service) AuditEvents(ctx context.Context, orgID string, afterSeq int64, limit int) ([]audit.Event, error) {
	if orgID != audit.Platform {
		if _, err := s.store.GetOrg(ctx, orgID); err != nil {
			return nil, err
		}
	}
	return s.store.AuditEvents(ctx, orgID, afterSeq, limit)
}

// VerifyAudit checks the hash chain of org's audit log. It returns the
// number of events checked and a *audit.VerifyError if the chain is broken.
func (s *Service) VerifyAudit(ctx context.Context, orgID string) (int, error) {
	evs, err := s.store.AuditEvents(ctx, orgID, 0, 0)
	if err != nil {
		return 0, err
	}
	return len(evs), audit.Verify(evs)
}

// Audit appends an event to org's chain (for actions outside this package,
// e.g. token management).
func (s *Service) Audit(ctx context.Context, ev audit.Event) error {
	if ev.Time.IsZero() {
		ev.Time = s.now().UTC()
	}
	_, err := s.store.AppendAudit(context.WithoutCancel(ctx), ev)
	return err
}
