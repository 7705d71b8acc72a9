package cmk

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Config configures a [Service].
type Config struct {
	Store   Store
	Keys    *keys.Service
	Keepers *masterkey.Registry
	// Clouds are the clouds offered to customers (cmk.clouds), the default
	// first; none means customer managed keys are not configured on this
	// deployment.
	Clouds []Cloud
	// CallbackURL is where the consent page sends the administrator back,
	// e.g. https://kms.example.com/v1/cmk/callback.
	CallbackURL string

	ProbeInterval time.Duration // default 30s
	// PurgeConfirmChecks and PurgeConfirmAfter are the proof of a purge: an
	// org is lost only when its key and the key's deleted entry were both
	// absent on at least PurgeConfirmChecks consecutive probes spanning at
	// least PurgeConfirmAfter. Until then (a cloud may not list a deleted
	// key for a while right after the delete) the org is revoked
	// as deleted, purge not confirmed. Defaults 3 and 10m.
	PurgeConfirmChecks int
	PurgeConfirmAfter  time.Duration

	JobLease time.Duration // default 2m
	JobPoll  time.Duration // default 1s
	// NodeID is this node's stable identity: a restarted node reclaims the
	// jobs it held at once (see [Service.ReclaimJobs]) instead of waiting
	// for their lease. Default a random ID (then only the lease frees them).
	NodeID string
	// SharedStore says that several live nodes share the store. By default
	// (one node, as with SQLite) a running job held by another node ID is
	// shown as stalled: its holder is gone.
	SharedStore bool
	Now         func() time.Time
	Logger      *slog.Logger

	// JobObserver, when set, sees each durable step of a re-wrap job (its
	// kind "activate", "rotate", "replace" or "deactivate" and the step
	// "copied", "verified" or "switched") and the outcome of each run, on
	// the worker's goroutine: for metrics, logging and crash tests
	// ([jobs.Config.Observer]). It must not block.
	JobObserver func(jobs.Event)

	// Changed, when set, is called after this node stored a change that
	// raised the org's generation (Record.Bump), so that the node applies
	// it and writes its receipt at once (package cluster). It must not
	// block.
	Changed func(orgID string)
	// Fresh, when set, is consulted by [Service.Guard] for orgs whose root
	// key is wrapped by a customer key: a non-nil error (this node cannot
	// confirm key states with the database) refuses the call.
	Fresh func() error
	// NodeTimeout is how old a node's heartbeat may be for the node to be
	// live, in [Service.Status]'s receipt count; default 10s.
	NodeTimeout time.Duration
	// VaultBudget, when set, is the shared-vault budget the drivers draw
	// from; [Service.Status] reports the state of the org's vault in it.
	VaultBudget *budget.Budget
	// RevocationMinLead is how far ahead a revocation must be scheduled
	// at least (cmk.revocation_min_lead); default 5m (staged.go).
	RevocationMinLead time.Duration
}

// Service runs the CMK lifecycle. Safe for concurrent use.
type Service struct {
	cfg    Config
	st     Store
	log    *slog.Logger
	now    func() time.Time
	runner *jobs.Runner

	mu         sync.Mutex
	blocked    map[string]error     // org → fast-fail error while revoked or lost
	onCMK      map[string]bool      // orgs whose root key is wrapped by a customer key
	dataLost   map[string]time.Time // org → when it fell back after a purge (FallBack)
	testLimits map[string]*rate.Limiter
	scrub      scrubber                                // coalesces the scrubs after re-wraps (jobs.go)
	switches   batcher[SwitchStep, error]              // commits concurrent jobs' switches together (jobs.go)
	copies     batcher[CopyStep, Copied]               // commits concurrent jobs' copies together (jobs.go)
	rootReads  batcher[string, []keys.RootKeyWrapping] // reads concurrent jobs' root keys together (jobs.go)
	recReads   batcher[string, recordRead]             // reads concurrent jobs' records together (jobs.go)

	staged       map[string]Staged // orgs in decrypt-only mode or revoked by their administrators (staged.go)
	stagedRunner *jobs.Runner      // applies scheduled revocations (staged.go)
}

// New returns a Service. Call Run to start its probe and job worker.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Keepers == nil {
		return nil, errors.New("cmk: Store, Keys and Keepers are required")
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 30 * time.Second
	}
	if cfg.PurgeConfirmChecks <= 0 {
		cfg.PurgeConfirmChecks = 3
	}
	if cfg.PurgeConfirmAfter <= 0 {
		cfg.PurgeConfirmAfter = 10 * time.Minute
	}
	if cfg.JobLease <= 0 {
		cfg.JobLease = 2 * time.Minute // well above one step's remote calls with retries
	}
	if cfg.JobPoll <= 0 {
		cfg.JobPoll = time.Second
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "node-" + randomState()[:12]
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NodeTimeout <= 0 {
		cfg.NodeTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RevocationMinLead <= 0 {
		cfg.RevocationMinLead = DefaultRevocationMinLead
	}
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger, now: cfg.Now, blocked: map[string]error{}, onCMK: map[string]bool{}, staged: map[string]Staged{}}
	var err error
	if s.stagedRunner, err = s.newStagedRunner(); err != nil {
		return nil, err
	}
	s.runner, err = jobs.New(jobs.Config{Store: cfg.Store, Handler: rewrapJobs{s}, NodeID: cfg.NodeID, Lease: cfg.JobLease, Poll: cfg.JobPoll,
		Shared: cfg.SharedStore, MaxAttempts: maxAttempts, Observer: cfg.JobObserver, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// maxAttempts is how many times a job is tried before it fails for good on
// a permanent error; transient errors (Unavailable) retry with backoff.
const maxAttempts = 5

// Enabled reports whether customer managed keys are configured.
func (s *Service) Enabled() bool { return len(s.cfg.Clouds) > 0 }

// CloudName is the platform's default cloud ("azure"), or "".
func (s *Service) CloudName() string {
	if c := s.Cloud(""); c != nil {
		return c.Name()
	}
	return ""
}

func (s *Service) requireCloud() error {
	if len(s.cfg.Clouds) == 0 {
		return &fault.Error{Kind: fault.Conflict, Reason: "customer managed keys are not enabled on this orgkms: the platform operator must configure the cloud (cmk.cloud) and its application credentials"}
	}
	return nil
}

// Status is an org's CMK state, with its current job.
type Status struct {
	Record
	Job *Job
	// Key is the customer's key wrapping the org's root key now (nil on the
	// platform key); status and errors name it, never an unverified newly
	// configured key.
	Key *KeyConfig
	// Pending is a configured key not in use yet while another key is: a
	// replacement that Enable applies.
	Pending *KeyConfig
	// Revocation is how far the org's current generation reached the live
	// nodes; nil while its generation was never raised.
	Revocation *Revocation
	// Staged is the org's staged revocation state: decrypt-only mode, a
	// revocation in effect, a scheduled revocation (staged.go).
	Staged Staged
	// Cloud is the name of the org's cloud (of its key, else the default
	// cloud); "" when customer managed keys are off.
	Cloud string
	// Fields are the cloud's fields ([Cloud.Fields]) of Key, else of the
	// configured key; nil when none is configured.
	Fields map[string]string
	// VaultBudget is this node's budget state of the vault of Key, shared
	// with the other orgs on that vault; nil on the platform key or
	// without a budget.
	VaultBudget *budget.State
}

// KeyConfig is a customer's key as they name it.
type KeyConfig struct {
	VaultURI   string
	KeyName    string
	KeyVersion string // "" = follow the latest version
}

// keys returns the key in use and the pending configuration of rec.
func (s *Service) keys(rec Record) (inUse, pending *KeyConfig) {
	configured := &KeyConfig{VaultURI: rec.VaultURI, KeyName: rec.KeyName, KeyVersion: rec.KeyVersion}
	if rec.ActiveKeyURI == "" {
		return nil, nil
	}
	if rec.KeyURI == rec.ActiveKeyURI {
		return configured, nil
	}
	inUse = &KeyConfig{}
	if k, ok := s.locate(rec.ActiveKeyURI); ok {
		inUse.VaultURI, inUse.KeyName = k.Container, k.Name
	}
	if rec.KeyURI == "" {
		return inUse, nil
	}
	return inUse, configured
}

// Status returns an org's CMK status.
func (s *Service) Status(ctx context.Context, orgID string) (Status, error) {
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return Status{}, err
	}
	rec, err := s.record(ctx, orgID)
	if err != nil {
		return Status{}, err
	}
	st := Status{Record: rec}
	st.Key, st.Pending = s.keys(rec)
	if c := s.cloudOf(rec); c != nil {
		st.Cloud = c.Name()
		switch {
		case st.Key != nil:
			loc, _ := s.locate(rec.ActiveKeyURI)
			loc.Container, loc.Name = st.Key.VaultURI, st.Key.KeyName
			st.Fields = c.KeyFields(loc, st.Key.KeyVersion)
		case rec.KeyURI != "":
			loc, _ := s.locate(rec.KeyURI)
			loc.Container, loc.Name = rec.VaultURI, rec.KeyName
			st.Fields = c.KeyFields(loc, rec.KeyVersion)
		}
	}
	if st.Revocation, err = s.revocation(ctx, orgID); err != nil {
		return Status{}, err
	}
	st.VaultBudget = s.vaultBudget(rec)
	if st.Staged, err = s.st.GetStaged(ctx, orgID); err != nil {
		return Status{}, err
	}
	if j, err := s.st.OrgJob(ctx, orgID); err == nil {
		if s.runner.Stalled(j) {
			j.State = JobStalled
		}
		st.Job = &j
	} else if fault.KindOf(err) != fault.NotFound {
		return Status{}, err
	}
	return st, nil
}

// record returns the org's record, or a platform record when none exists.
func (s *Service) record(ctx context.Context, orgID string) (Record, error) {
	rec, err := s.st.GetCMK(ctx, orgID)
	if fault.KindOf(err) == fault.NotFound {
		return Record{OrgID: orgID, State: StatePlatform}, nil
	}
	return rec, err
}

func randomState() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ConsentTTL is how long an authorization round trip may take.
const ConsentTTL = 15 * time.Minute

// Authorize starts the admin-consent round trip for tenant and returns the
// URL to send the customer's administrator to.
func (s *Service) Authorize(ctx context.Context, actor, orgID, tenant string) (string, error) {
	if err := s.requireCloud(); err != nil {
		return "", err
	}
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return "", err
	}
	cloud := s.Cloud("")
	if cloud.Authorization(orgID).Method != AuthConsent {
		return "", &fault.Error{Kind: fault.Conflict, Op: "authorize", Reason: cloud.DisplayName() + " has no consent page: follow the authorization instructions"}
	}
	tenant, err := cloud.NormalizeTenant(tenant)
	if err != nil {
		return "", err
	}
	if s.cfg.CallbackURL == "" {
		return "", &fault.Error{Kind: fault.Conflict, Reason: "orgkms has no public callback URL configured (cmk.callback_url)"}
	}
	c := ConsentRequest{State: randomState(), OrgID: orgID, Actor: actor, TenantID: tenant, ExpiresAt: s.now().Add(ConsentTTL).UTC()}
	if err := s.st.PutConsentRequest(ctx, c); err != nil {
		return "", err
	}
	return cloud.ConsentURL(tenant, c.State, s.cfg.CallbackURL), nil
}

// ConsentResult is what the consent page sent back.
type ConsentResult struct {
	State            string
	AdminConsent     string // "True" on success
	Tenant           string
	Error            string
	ErrorDescription string
}

// Callback completes the consent round trip. It returns the org and the
// consent request (for the caller to check that the same user came back).
func (s *Service) Callback(ctx context.Context, r ConsentResult) (ConsentRequest, error) {
	if r.State == "" {
		return ConsentRequest{}, &fault.Error{Kind: fault.Invalid, Field: "state", Reason: "the authorization response has no state: start again from Authorize"}
	}
	c, err := s.st.TakeConsentRequest(ctx, r.State, s.now())
	if err != nil {
		if fault.KindOf(err) == fault.NotFound {
			return ConsentRequest{}, &fault.Error{Kind: fault.Invalid, Field: "state", Reason: "this authorization link expired or was already used: start again from Authorize"}
		}
		return ConsentRequest{}, err
	}
	if r.Error != "" || !strings.EqualFold(r.AdminConsent, "true") {
		reason := "the administrator did not grant consent"
		if r.ErrorDescription != "" {
			reason += ": " + trimText(r.ErrorDescription, 200)
		}
		s.audit(ctx, c.OrgID, c.Actor, "cmk.authorize_failed", map[string]string{"tenant_id": c.TenantID, "error": trimText(r.Error, 100)})
		return c, &fault.Error{Kind: fault.Conflict, Op: "authorize", Reason: reason}
	}
	if !strings.EqualFold(r.Tenant, c.TenantID) {
		return c, &fault.Error{Kind: fault.Conflict, Op: "authorize", Reason: fmt.Sprintf("consent was granted in tenant %s, but tenant %s was requested: sign in as an administrator of %s", trimText(r.Tenant, 64), c.TenantID, c.TenantID)}
	}
	_, err = retryStale(func() (struct{}, error) { return struct{}{}, s.recordConsent(ctx, c) })
	return c, err
}

// recordConsent stores a completed consent in the org's record.
func (s *Service) recordConsent(ctx context.Context, c ConsentRequest) error {
	rec, err := s.record(ctx, c.OrgID)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	if rec.State != StatePlatform && rec.State != StateAuthorized && !strings.EqualFold(rec.TenantID, c.TenantID) {
		return &fault.Error{Kind: fault.Conflict, Op: "authorize", Reason: "the org's customer managed key is in use in tenant " + rec.TenantID + ": disable it before authorizing another tenant"}
	}
	if !strings.EqualFold(rec.TenantID, c.TenantID) {
		rec.VaultURI, rec.KeyName, rec.KeyVersion, rec.KeyURI = "", "", "", ""
	}
	rec.TenantID, rec.ConsentedAt, rec.ConsentedBy, rec.UpdatedAt = c.TenantID, now, c.Actor, now
	if rec.State == StatePlatform {
		rec.State = StateAuthorized
	}
	ev := &audit.Event{OrgID: c.OrgID, Time: now, Actor: c.Actor, Action: "cmk.authorize", Target: "cmk", Details: map[string]string{"tenant_id": c.TenantID}}
	return s.st.PutCMK(ctx, rec, ev)
}

func trimText(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Configure stores the key the customer chose in the default cloud, named
// by the cloud's first two fields and its version field (Azure: vault URI,
// key name, key version). In state active it stages a replacement key,
// applied by Enable.
func (s *Service) Configure(ctx context.Context, actor, orgID, vaultURI, keyName, keyVersion string) (Record, error) {
	fields := map[string]string{}
	if c := s.Cloud(""); c != nil {
		for i, f := range c.Fields() {
			switch {
			case f.Version:
				fields[f.Name] = keyVersion
			case i == 0:
				fields[f.Name] = vaultURI
			case i == 1:
				fields[f.Name] = keyName
			}
		}
	}
	return s.ConfigureKey(ctx, actor, orgID, "", fields)
}

// ConfigureKey stores the key the customer chose in cloud ("" = the
// default), named by the cloud's fields ([Cloud.Fields]). In state active
// it stages a replacement key, applied by Enable.
func (s *Service) ConfigureKey(ctx context.Context, actor, orgID, cloud string, fields map[string]string) (Record, error) {
	return retryStale(func() (Record, error) { return s.configureOnce(ctx, actor, orgID, cloud, fields) })
}

// retryStale runs f again when its write lost a race with another writer of
// the org's record (typically the probe recording its last run): the user's
// action is then judged on the fresh record.
func retryStale[T any](f func() (T, error)) (T, error) {
	for attempt := 0; ; attempt++ {
		v, err := f()
		if err == nil || !errors.Is(err, ErrStale) || attempt == 4 {
			return v, err
		}
	}
}

func (s *Service) configureOnce(ctx context.Context, actor, orgID, cloudName string, fields map[string]string) (Record, error) {
	if err := s.requireCloud(); err != nil {
		return Record{}, err
	}
	cloud := s.Cloud(cloudName)
	if cloud == nil {
		return Record{}, &fault.Error{Kind: fault.Invalid, Field: "cloud", Reason: fmt.Sprintf("cloud %q is not offered by this orgkms (offered: %s)", cloudName, strings.Join(s.cloudNames(), ", "))}
	}
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return Record{}, err
	}
	rec, err := s.record(ctx, orgID)
	if err != nil {
		return Record{}, err
	}
	// A cloud without a consent round trip (AuthGrant) is authorized by
	// what the customer grants in their own console: configuring its key
	// names the account, and Test Managed Key proves the grant.
	grant := cloud.Authorization(orgID).Method == AuthGrant
	switch rec.State {
	case StatePlatform:
		if !grant {
			return Record{}, &fault.Error{Kind: fault.Conflict, Op: "configure", Reason: "authorize orgkms in your tenant first (Step 1)"}
		}
	case StateAuthorized, StateActive, StateRevoked:
		// While revoked, a new key may be staged; Enable applies it once the
		// key in use works again (it must, to move the org's keys off it).
	case StateLost:
		return Record{}, recordedCondition("configure", rec, lostReason(rec))
	default:
		return Record{}, &fault.Error{Kind: fault.Conflict, Op: "configure", Reason: "the customer managed key is " + string(rec.State) + "; wait until it is active, or restore access to it first"}
	}
	ref, loc, err := parseKey(cloud, orgID, fields, rec.TenantID)
	if err != nil {
		return Record{}, err
	}
	now := s.now().UTC()
	rec.VaultURI, rec.KeyName, rec.KeyVersion = loc.Container, loc.Name, ref.Version
	rec.KeyURI = cloud.KeyURI(ref.Unversioned())
	rec.UpdatedAt = now
	ev := &audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "cmk.configure", Target: "cmk",
		Details: map[string]string{"key": rec.KeyURI, "key_version": orElse(rec.KeyVersion, "latest")}}
	if grant && (rec.State == StatePlatform || rec.ConsentedAt.IsZero() || !strings.EqualFold(rec.TenantID, loc.Tenant)) {
		if rec.State == StatePlatform {
			rec.State = StateAuthorized
		}
		rec.TenantID, rec.ConsentedAt, rec.ConsentedBy = loc.Tenant, now, actor
		ev.Details["authorized"], ev.Details["tenant_id"] = "grant", loc.Tenant
	}
	return rec, s.st.PutCMK(ctx, rec, ev)
}

func (s *Service) cloudNames() []string {
	names := make([]string, len(s.cfg.Clouds))
	for i, c := range s.cfg.Clouds {
		names[i] = c.Name()
	}
	return names
}

func orElse(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// configuredRef returns the configured key's ref (with the configured
// version, "" = latest).
func (s *Service) configuredRef(rec Record) (masterkey.Ref, error) {
	if rec.KeyURI == "" {
		return masterkey.Ref{}, &fault.Error{Kind: fault.Conflict, Reason: s.reasonFor(rec, ReasonNoKeyConfigured, nil)}
	}
	ref, err := s.cfg.Keepers.ParseRef(rec.KeyURI)
	if err != nil {
		return masterkey.Ref{}, err
	}
	return ref.WithVersion(rec.KeyVersion), nil
}

// Enable tests the configured key and starts moving the org's root key to
// it (activation), or to a newly configured key (replacement).
func (s *Service) Enable(ctx context.Context, actor, orgID string) (Status, error) {
	return retryStale(func() (Status, error) { return s.enableOnce(ctx, actor, orgID) })
}

func (s *Service) enableOnce(ctx context.Context, actor, orgID string) (Status, error) {
	if err := s.requireCloud(); err != nil {
		return Status{}, err
	}
	if err := s.refuseRevoked(ctx, orgID, "enable"); err != nil {
		return Status{}, err
	}
	rec, err := s.record(ctx, orgID)
	if err != nil {
		return Status{}, err
	}
	kind := JobActivate
	switch {
	case rec.State == StateAuthorized:
	case rec.State == StateActive && rec.KeyURI != "" && rec.KeyURI != rec.ActiveKeyURI:
		kind = JobReplace
	case rec.State == StateActive:
		return Status{}, &fault.Error{Kind: fault.Conflict, Op: "enable", Reason: "the customer managed key is already active"}
	case rec.State == StatePlatform:
		return Status{}, &fault.Error{Kind: fault.Conflict, Op: "enable", Reason: "authorize orgkms in your tenant first (Step 1)"}
	case rec.State == StateLost:
		return Status{}, recordedCondition("enable", rec, lostReason(rec))
	case rec.State == StateRevoked:
		return Status{}, recordedCondition("enable", rec, "the customer managed key in use is unusable ("+orElse(rec.Reason, string(rec.State))+"); restore access to it: orgkms serves the org again within a probe interval, and then a newly configured key can be enabled")
	default:
		return Status{}, &fault.Error{Kind: fault.Conflict, Op: "enable", Reason: "the customer managed key is " + string(rec.State)}
	}
	ref, err := s.configuredRef(rec)
	if err != nil {
		return Status{}, err
	}
	if wait := s.testWait(orgID); wait > 0 {
		return Status{}, &fault.Error{Kind: fault.RateLimited, Op: "enable", RetryAfter: wait, Reason: "Test Managed Key, which enable runs, was run too often for this org; retry in a few seconds"}
	}
	rep := s.Test(ctx, orgID)
	if !rep.OK {
		return Status{}, s.testFailed(ctx, rep, ref)
	}
	if kind == JobReplace {
		// The old key must still be usable to move away from it.
		if err := s.checkActiveUsable(ctx, orgID); err != nil {
			return Status{}, err
		}
	}
	now := s.now().UTC()
	j := Job{OrgID: orgID, Kind: kind, Target: ref.String(), State: JobPending, CreatedAt: now, UpdatedAt: now, NotBefore: now}
	if kind == JobActivate {
		rec.State = StateActivating
	} else {
		rec.State = StateReplacing
	}
	rec.Reason, rec.ReasonCode, rec.UpdatedAt = "", "", now
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "cmk." + string(kind) + ".start", Target: "cmk", Details: map[string]string{"key": rec.KeyURI, "key_version": orElse(ref.Version, "latest")}}
	j, err = s.st.StartJob(ctx, j, rec, ev)
	if err != nil {
		return Status{}, err
	}
	s.kick()
	return Status{Record: rec, Job: &j}, nil
}

// checkActiveUsable verifies that the key wrapping the root key now can
// still unwrap it.
func (s *Service) checkActiveUsable(ctx context.Context, orgID string) error {
	roots, err := s.st.RootKeys(ctx, orgID)
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		return &fault.Error{Kind: fault.Internal, Reason: "org has no root key wrapping"}
	}
	k, err := s.cfg.Keepers.Keeper(roots[0].Wrapped.Key)
	if err != nil {
		return err
	}
	raw, err := k.Unwrap(ctx, roots[0].Wrapped, keys.RootAAD(orgID))
	if err != nil {
		return conditionError("check current key", err, "the customer managed key in use must still work to move the org's keys off it: "+fault.Message(err))
	}
	clear(raw)
	return nil
}

// Disable moves the org back to the platform key. The customer managed key
// must still be usable. Before activation, it forgets the configuration.
func (s *Service) Disable(ctx context.Context, actor, orgID string) (Status, error) {
	return retryStale(func() (Status, error) { return s.disableOnce(ctx, actor, orgID) })
}

func (s *Service) disableOnce(ctx context.Context, actor, orgID string) (Status, error) {
	rec, err := s.record(ctx, orgID)
	if err != nil {
		return Status{}, err
	}
	now := s.now().UTC()
	switch rec.State {
	case StatePlatform:
		return Status{}, &fault.Error{Kind: fault.Conflict, Op: "disable", Reason: "customer managed keys are not enabled for this org"}
	case StateAuthorized:
		rec = Record{OrgID: orgID, State: StatePlatform, UpdatedAt: now, Revision: rec.Revision, DataLostAt: rec.DataLostAt}
		ev := &audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "cmk.reset", Target: "cmk"}
		return Status{Record: rec}, s.st.PutCMK(ctx, rec, ev)
	case StateActive:
		if err := s.refuseRevoked(ctx, orgID, "disable"); err != nil {
			return Status{}, err
		}
	case StateLost:
		return Status{}, recordedCondition("disable", rec, lostReason(rec))
	case StateRevoked:
		return Status{}, recordedCondition("disable", rec, "the customer managed key is unusable ("+orElse(rec.Reason, string(rec.State))+"): orgkms needs it to move the org back to the platform key; restore access to it first")
	default:
		return Status{}, &fault.Error{Kind: fault.Conflict, Op: "disable", Reason: "a key operation is in progress (" + string(rec.State) + "); try again when it finishes"}
	}
	if err := s.checkActiveUsable(ctx, orgID); err != nil {
		return Status{}, err
	}
	j := Job{OrgID: orgID, Kind: JobDeactivate, Target: s.cfg.Keys.PlatformKey().Unversioned().String(),
		State: JobPending, CreatedAt: now, UpdatedAt: now, NotBefore: now}
	rec.State, rec.UpdatedAt = StateDeactivating, now
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "cmk.deactivate.start", Target: "cmk"}
	j, err = s.st.StartJob(ctx, j, rec, ev)
	if err != nil {
		return Status{}, err
	}
	s.kick()
	return Status{Record: rec, Job: &j}, nil
}

func (s *Service) kick() { s.runner.Kick() }

func (s *Service) audit(ctx context.Context, orgID, actor, action string, details map[string]string) {
	ev := audit.Event{OrgID: orgID, Time: s.now().UTC(), Actor: actor, Action: action, Target: "cmk", Details: details}
	if _, err := s.st.AppendAudit(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit append failed", slog.String("org_id", orgID), slog.String("error", err.Error()))
	}
}

// Guard is the keys.Service guard: it fails data-plane calls of orgs whose
// CMK is revoked or lost, without a remote call.
func (s *Service) Guard(ctx context.Context, orgID string) error {
	s.mu.Lock()
	err, cmk := s.blocked[orgID], s.onCMK[orgID]
	s.mu.Unlock()
	if err == nil {
		err = s.stagedBlock(orgID)
	}
	if err == nil && cmk && s.cfg.Fresh != nil {
		err = s.cfg.Fresh()
	}
	return err
}

// block records the fast-fail error of an org (nil unblocks) and purges its
// keys from memory.
func (s *Service) block(orgID string, err error) {
	s.mu.Lock()
	if err == nil {
		delete(s.blocked, orgID)
	} else {
		s.blocked[orgID] = err
	}
	s.mu.Unlock()
	if err != nil {
		s.cfg.Keys.Cache().Purge(orgID)
	}
}

// blockError is the data-plane error of an org in state revoked or lost.
func blockError(rec Record) error {
	kind := fault.CMKDisabled
	switch rec.ReasonCode {
	case fault.CMKPermissionMissing.Code():
		kind = fault.CMKPermissionMissing
	case fault.CMKConsentRevoked.Code():
		kind = fault.CMKConsentRevoked
	case fault.CMKDeleted.Code():
		kind = fault.CMKDeleted
	case fault.CMKDestroyed.Code():
		kind = fault.CMKDestroyed
	}
	if rec.State == StateLost {
		kind = fault.CMKDestroyed
	}
	return &fault.Error{Kind: kind, Resource: "org " + rec.OrgID, Reason: rec.Reason}
}

// LoadBlocks reads revoked and lost orgs from the store into the guard, and
// the orgs that fell back after a data loss ([Service.DataLost]); the probe
// and FallBack keep them current afterwards.
func (s *Service) LoadBlocks(ctx context.Context) error {
	recs, err := s.st.ListCMK(ctx, StateRevoked, StateLost)
	if err != nil {
		return err
	}
	all, err := s.st.ListCMK(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	clear(s.blocked)
	clear(s.onCMK)
	s.dataLost = map[string]time.Time{}
	for _, r := range all {
		if !r.DataLostAt.IsZero() {
			s.dataLost[r.OrgID] = r.DataLostAt
		}
		if r.ActiveKeyURI != "" {
			s.onCMK[r.OrgID] = true
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		s.block(r.OrgID, blockError(r))
	}
	return s.loadStaged(ctx)
}

// vaultBudget is the budget state of the vault of rec's key in use, if the
// key's driver names vaults.
func (s *Service) vaultBudget(rec Record) *budget.State {
	if s.cfg.VaultBudget == nil || rec.ActiveKeyURI == "" {
		return nil
	}
	ref, err := s.cfg.Keepers.ParseRef(rec.ActiveKeyURI)
	if err != nil {
		return nil
	}
	k, err := s.cfg.Keepers.Keeper(ref)
	if err != nil {
		return nil
	}
	v, ok := k.Vault(ref)
	if !ok {
		return nil
	}
	st, _ := s.cfg.VaultBudget.State(v)
	return &st
}
