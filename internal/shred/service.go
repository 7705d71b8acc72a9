package shred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
	"github.com/orgkms/orgkms/internal/keys"
)

// Waiting periods of a scheduled deletion, in days, as AWS KMS bounds
// them for its keys.
const (
	DefaultWaitingDays = 7
	MinWaitingDays     = 7
	MaxWaitingDays     = 30
)

// Config configures a [Service]. Store, Keys and NodeID are required.
type Config struct {
	Store  Store
	Keys   *keys.Service
	NodeID string
	// Lease, Poll, Shared and Observer are the job runner's
	// ([jobs.Config]); Poll defaults to 10s.
	Lease    time.Duration
	Poll     time.Duration
	Shared   bool
	Observer func(jobs.Event)
	// Changed, when set, is told of every org whose generation this node
	// raised (the cluster's purge broadcast).
	Changed func(orgID string)
	Now     func() time.Time
	Logger  *slog.Logger
}

// Service schedules, cancels and runs deletions. Safe for concurrent use.
type Service struct {
	cfg    Config
	st     Store
	keys   *keys.Service
	log    *slog.Logger
	runner *jobs.Runner
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.NodeID == "" {
		return nil, errors.New("shred: Store, Keys and NodeID are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, st: cfg.Store, keys: cfg.Keys, log: cfg.Logger}
	var err error
	s.runner, err = jobs.New(jobs.Config{Store: cfg.Store.ShredJobs(), Handler: handler{s}, NodeID: cfg.NodeID,
		Lease: cfg.Lease, Poll: cfg.Poll, Shared: cfg.Shared, Observer: cfg.Observer, Now: cfg.Now, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs the shred jobs (one worker) until ctx is cancelled. A job this
// node held before a restart is claimable again once its lease expires.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.runner.Run(ctx, 1) })
	wg.Wait()
}

// RunPending runs the due shred jobs on the calling goroutine until none
// is left (tests).
func (s *Service) RunPending(ctx context.Context) error { return s.runner.RunPending(ctx) }

// Jobs returns the org's shred jobs, newest first.
func (s *Service) Jobs(ctx context.Context, orgID string) ([]jobs.Job, error) {
	return s.st.ShredJobsOf(ctx, orgID)
}

// waiting checks a waiting period in days (0 = the default).
func waiting(days int) (int, error) {
	if days == 0 {
		return DefaultWaitingDays, nil
	}
	if days < MinWaitingDays || days > MaxWaitingDays {
		return 0, &fault.Error{Kind: fault.Invalid, Field: "waiting_days",
			Reason: fmt.Sprintf("waiting_days must be between %d and %d (default %d)", MinWaitingDays, MaxWaitingDays, DefaultWaitingDays)}
	}
	return days, nil
}

func (s *Service) applied(orgID string) {
	s.keys.Cache().Purge(orgID)
	if s.cfg.Changed != nil {
		s.cfg.Changed(orgID)
	}
}

func (s *Service) org(ctx context.Context, orgID string) error {
	_, err := s.keys.GetOrg(ctx, orgID)
	return err
}

// key checks that the key exists in an org that is neither pending
// deletion nor deleted (whose keys' lifecycle is the org's).
func (s *Service) key(ctx context.Context, orgID, name string) error {
	if err := s.org(ctx, orgID); err != nil {
		return err
	}
	l, err := s.keys.OrgLifecycle(ctx, orgID)
	if err != nil {
		return err
	}
	if err := keys.OrgRefusal(orgID, l); err != nil {
		return err
	}
	_, err = s.keys.GetDataKey(ctx, orgID, name)
	return err
}

// ScheduleOrgDeletion schedules the org's crypto-shred in days days (0 =
// [DefaultWaitingDays]); from now on its data plane is refused with
// org_pending_deletion. Invalid for a waiting period outside
// [MinWaitingDays, MaxWaitingDays]; Conflict if the org is already
// pending deletion or deleted.
func (s *Service) ScheduleOrgDeletion(ctx context.Context, actor, orgID string, days int) (keys.Lifecycle, error) {
	return s.schedule(ctx, actor, orgID, "", days)
}

// CancelOrgDeletion cancels the org's scheduled deletion and restores its
// service at once on every node. Conflict unless it is pending deletion
// and its shred has not started.
func (s *Service) CancelOrgDeletion(ctx context.Context, actor, orgID string) error {
	return s.cancel(ctx, actor, orgID, "")
}

// ScheduleKeyDeletion schedules the shred of data key name, like
// ScheduleOrgDeletion; a disabled key can be scheduled too.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, actor, orgID, name string, days int) (keys.Lifecycle, error) {
	if name == "" {
		return keys.Lifecycle{}, &fault.Error{Kind: fault.NotFound, Resource: "key in org " + orgID}
	}
	return s.schedule(ctx, actor, orgID, name, days)
}

// CancelKeyDeletion cancels the key's scheduled deletion: it is enabled
// again at once.
func (s *Service) CancelKeyDeletion(ctx context.Context, actor, orgID, name string) error {
	if name == "" {
		return &fault.Error{Kind: fault.NotFound, Resource: "key in org " + orgID}
	}
	return s.cancel(ctx, actor, orgID, name)
}

func target(orgID, keyName string) (action, tgt string) {
	if keyName == "" {
		return "org", "org/" + orgID
	}
	return "key", "key/" + keyName
}

func (s *Service) schedule(ctx context.Context, actor, orgID, keyName string, days int) (keys.Lifecycle, error) {
	days, err := waiting(days)
	if err != nil {
		return keys.Lifecycle{}, err
	}
	if keyName == "" {
		err = s.org(ctx, orgID)
	} else {
		err = s.key(ctx, orgID, keyName)
	}
	if err != nil {
		return keys.Lifecycle{}, err
	}
	now := s.cfg.Now().UTC()
	date := now.Add(time.Duration(days) * 24 * time.Hour).Truncate(time.Microsecond)
	l := keys.Lifecycle{State: keys.LifecyclePendingDeletion, DeletionDate: date, ChangedBy: actor, ChangedAt: now}
	from := []keys.LifecycleState{keys.LifecycleEnabled}
	if keyName != "" {
		from = append(from, keys.LifecycleDisabled)
	}
	what, tgt := target(orgID, keyName)
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: what + ".deletion.schedule", Target: tgt,
		Details: map[string]string{"deletion_date": date.Format(time.RFC3339), "waiting_days": strconv.Itoa(days)}}
	kind := JobOrg
	if keyName != "" {
		kind = JobKey
	}
	j := &jobs.Job{OrgID: orgID, Kind: kind, Target: keyName, NotBefore: date, CreatedAt: now}
	if err := s.st.SetLifecycle(ctx, orgID, keyName, from, l, j, ev); err != nil {
		return keys.Lifecycle{}, err
	}
	s.applied(orgID)
	s.log.Info("deletion scheduled", slog.String("org_id", orgID), slog.String("key", keyName), slog.Time("deletion_date", date))
	return l, nil
}

func (s *Service) cancel(ctx context.Context, actor, orgID, keyName string) error {
	var err error
	if keyName == "" {
		err = s.org(ctx, orgID)
	} else {
		err = s.key(ctx, orgID, keyName)
	}
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	what, tgt := target(orgID, keyName)
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: what + ".deletion.cancel", Target: tgt, Details: map[string]string{}}
	l := keys.Lifecycle{State: keys.LifecycleEnabled, ChangedBy: actor, ChangedAt: now}
	if err := s.st.SetLifecycle(ctx, orgID, keyName, []keys.LifecycleState{keys.LifecyclePendingDeletion}, l, nil, ev); err != nil {
		return err
	}
	s.applied(orgID)
	return nil
}

// DisableKey disables data key name: encrypt and decrypt are refused with
// key_disabled until EnableKey. Conflict unless the key is enabled.
func (s *Service) DisableKey(ctx context.Context, actor, orgID, name string) error {
	return s.setEnabled(ctx, actor, orgID, name, false)
}

// EnableKey enables a disabled data key. Conflict unless it is disabled.
func (s *Service) EnableKey(ctx context.Context, actor, orgID, name string) error {
	return s.setEnabled(ctx, actor, orgID, name, true)
}

func (s *Service) setEnabled(ctx context.Context, actor, orgID, name string, enable bool) error {
	if err := s.key(ctx, orgID, name); err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	l := keys.Lifecycle{State: keys.LifecycleDisabled, ChangedBy: actor, ChangedAt: now}
	from, action := keys.LifecycleEnabled, "key.disable"
	if enable {
		l.State, from, action = keys.LifecycleEnabled, keys.LifecycleDisabled, "key.enable"
	}
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: action, Target: "key/" + name, Details: map[string]string{}}
	if err := s.st.SetLifecycle(ctx, orgID, name, []keys.LifecycleState{from}, l, nil, ev); err != nil {
		return err
	}
	s.applied(orgID)
	return nil
}

// handler is the [jobs.Handler] of the shred jobs.
type handler struct{ s *Service }

func (h handler) Run(ctx context.Context, j *jobs.Job) error { return h.s.shred(ctx, j) }

func (h handler) Fail(ctx context.Context, j jobs.Job, cause error) error {
	s := h.s
	j.State, j.Error, j.UpdatedAt = jobs.Failed, fault.Message(cause), s.cfg.Now().UTC()
	what, tgt := target(j.OrgID, j.Target)
	ev := audit.Event{OrgID: j.OrgID, Time: j.UpdatedAt, Actor: "orgkms", Action: what + ".shred.failed", Target: tgt, Details: map[string]string{"error": j.Error}}
	return s.st.FinishShredJob(ctx, j, &ev)
}

// Steps of a shred job.
const (
	StepErased   = "erased"
	StepScrubbed = "scrubbed"
)

// shred runs j from its last durable step: erase, then scrub.
func (s *Service) shred(ctx context.Context, j *jobs.Job) error {
	if j.Step == "" {
		inv, err := s.st.ShredInventory(ctx, j.OrgID, j.Target)
		if err != nil {
			return err
		}
		now := s.cfg.Now().UTC()
		what, tgt := target(j.OrgID, j.Target)
		ev := audit.Event{OrgID: j.OrgID, Time: now, Actor: "orgkms", Action: what + ".shredded", Target: tgt, Details: inventoryDetails(inv, j.Target == "")}
		erased := *j
		erased.Step = StepErased
		if err := s.st.Shred(ctx, erased, now, ev); err != nil {
			return err
		}
		*j = erased
		s.runner.Step(j, StepErased)
		s.applied(j.OrgID)
		s.log.Info("shredded", slog.String("org_id", j.OrgID), slog.String("key", j.Target), slog.Int("root_keys", len(inv.RootKeys)))
	}
	if err := s.st.ScrubShredded(ctx); err != nil {
		return err
	}
	done := *j
	done.Step, done.State, done.Error, done.UpdatedAt = StepScrubbed, jobs.Done, "", s.cfg.Now().UTC()
	if err := s.st.FinishShredJob(ctx, done, nil); err != nil {
		return err
	}
	*j = done
	s.runner.Step(j, StepScrubbed)
	return nil
}

// inventoryDetails are the audit details of a shred: counts and IDs,
// never bytes.
func inventoryDetails(inv Inventory, org bool) map[string]string {
	names := make([]string, 0, len(inv.Versions))
	n := 0
	for name, vs := range inv.Versions {
		names = append(names, name)
		n += len(vs)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, name := range names {
		vs := make([]string, len(inv.Versions[name]))
		for k, v := range inv.Versions[name] {
			vs[k] = strconv.FormatUint(uint64(v), 10)
		}
		parts[i] = name + ":" + strings.Join(vs, ",")
	}
	d := map[string]string{"data_key_versions": strconv.Itoa(n), "keys": strings.Join(parts, " ")}
	if org {
		ids := make([]string, len(inv.RootKeys))
		for i, id := range inv.RootKeys {
			ids[i] = strconv.FormatInt(id, 10)
		}
		d["root_key_wrappings"] = strconv.Itoa(len(inv.RootKeys))
		d["root_key_wrapping_ids"] = strings.Join(ids, ",")
		d["data_keys"] = strconv.Itoa(len(names))
		d["cmk_record"] = "closed"
	}
	return d
}
