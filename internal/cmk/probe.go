package cmk

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// probeConcurrency bounds concurrent probes (each makes two remote calls).
const probeConcurrency = 32

// probeBatch bounds the orgs one probe claim leases.
const probeBatch = 256

// probeLoop claims the orgs due for a probe every tick (ProbeInterval/10,
// at most 1s) and probes them: each claim moves the org's probe lease one
// interval ahead, so the whole cluster probes each org once per interval
// and a customer's vault sees O(orgs) calls whatever the node count.
func (s *Service) probeLoop(ctx context.Context) {
	t := time.NewTicker(max(10*time.Millisecond, min(time.Second, s.cfg.ProbeInterval/10)))
	defer t.Stop()
	for {
		if err := s.ProbeDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("probe round failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeDue claims the orgs due for a probe, in batches, and probes them
// with bounded concurrency, until none is due.
func (s *Service) ProbeDue(ctx context.Context) error {
	for ctx.Err() == nil {
		ids, err := s.st.ClaimProbes(ctx, s.cfg.NodeID, s.now(), s.cfg.ProbeInterval, probeBatch)
		if err != nil {
			return err
		}
		s.probeOrgs(ctx, ids)
		if len(ids) < probeBatch {
			return nil
		}
	}
	return nil
}

func (s *Service) probeOrgs(ctx context.Context, ids []string) {
	// One description per distinct key per round: orgs sharing a customer
	// key (often thousands) share its Describe; each org still proves its
	// own unwrap.
	round := &describeRound{m: map[string]*described{}}
	// The records of the whole page in one read, not one per org; if the
	// read fails each probe reads its own.
	var pre map[string]Record
	if len(ids) > 1 {
		rs, err := s.st.GetCMKs(ctx, ids)
		if err == nil {
			pre = make(map[string]Record, len(rs))
			for _, r := range rs {
				pre[r.OrgID] = r
			}
		} else if ctx.Err() == nil {
			s.log.Warn("reading the probe round's records failed; reading them one by one", slog.String("error", err.Error()))
		}
	}
	sem := make(chan struct{}, probeConcurrency)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		abandoned []string
	)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var rec *Record
			if pre != nil {
				r, ok := pre[id]
				if !ok {
					r = Record{OrgID: id, State: StatePlatform} // no record: nothing to probe
				}
				rec = &r
			}
			err := s.probe(ctx, id, rec, round)
			switch {
			case err != nil && ctx.Err() != nil:
				mu.Lock()
				abandoned = append(abandoned, id)
				mu.Unlock()
			case err != nil:
				s.log.Warn("probe failed", slog.String("org_id", id), slog.String("error", err.Error()))
			}
		})
	}
	wg.Wait()
	s.startRotations(ctx, round.starts)
	s.releaseProbes(ctx, abandoned)
}

// releaseProbes hands back the leases of the probes this node claimed but
// did not finish because it is stopping, so that the next claim (another
// node's, or this one's after a restart) probes them at once instead of a
// probe interval later: a rolling restart must not stretch the time in
// which a revocation is seen.
func (s *Service) releaseProbes(ctx context.Context, ids []string) {
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.st.ReleaseProbes(rctx, s.cfg.NodeID, ids, s.now()); err != nil {
		s.log.Warn("cannot hand back abandoned probes; the orgs are probed one probe interval later",
			slog.Int("orgs", len(ids)), slog.String("error", err.Error()))
	}
}

// ProbeAll probes every org whose root key is wrapped by a CMK at once,
// leases or not (an operator's or a test's full round).
func (s *Service) ProbeAll(ctx context.Context) error {
	recs, err := s.st.ListCMK(ctx, StateActive, StateRevoked, StateLost)
	if err != nil {
		return err
	}
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.OrgID
	}
	s.probeOrgs(ctx, ids)
	return nil
}

// Probe checks one org's CMK and moves its state: a new version starts a
// rotation; disabled, expired, deleted, permission or consent gone revokes
// (purging the org's keys from memory); usable again restores; purged is
// lost. Throttling and outages are not revocation: the org keeps being
// served from the cache and is reported degraded.
func (s *Service) Probe(ctx context.Context, orgID string) error {
	return s.probe(ctx, orgID, nil, nil)
}

// describeRound memoizes, for one probe round, the description of each
// distinct key (by its unversioned reference, which names the tenant): the
// first org to need a key describes it, the others wait for that answer.
type describeRound struct {
	mu sync.Mutex
	m  map[string]*described
	// starts are the rotations the round's probes found, started together
	// when the round ends (Store.StartJobs: one transaction per
	// startBatch orgs instead of one per org).
	starts []JobStart
}

// described is one key's description in a round.
type described struct {
	done chan struct{}
	desc masterkey.Description
	err  error

	ownersOnce sync.Once
	owners     map[string]struct{} // the ownership tag's org IDs
}

// describe returns the key's description, from the round's memo if a
// round is given.
func (r *describeRound) describe(ctx context.Context, keeper *masterkey.Keeper, ref masterkey.Ref) (*described, error) {
	if r == nil {
		d := &described{}
		d.desc, d.err = keeper.Describe(ctx, ref)
		return d, nil
	}
	key := ref.Unversioned().String()
	r.mu.Lock()
	d, ok := r.m[key]
	if !ok {
		d = &described{done: make(chan struct{})}
		r.m[key] = d
	}
	r.mu.Unlock()
	if !ok {
		d.desc, d.err = keeper.Describe(ctx, ref)
		close(d.done)
		return d, nil
	}
	select {
	case <-d.done:
		return d, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// owns reports whether the described key is meant for orgID: by its
// cloud's own proof (an [OrgBoundCloud]) or by the ownership tag.
func (s *Service) owns(rec Record, d *described, orgID string) bool {
	if ob, ok := s.cloudOf(rec).(OrgBoundCloud); ok {
		return ob.OwnsKey(orgID, d.desc.Key)
	}
	return d.taggedFor(orgID)
}

// taggedFor reports whether the described version's ownership tag names
// orgID; within a round the tag is split once, not scanned per org.
func (d *described) taggedFor(orgID string) bool {
	if d.done == nil {
		return taggedFor(d.desc.Tags, orgID)
	}
	d.ownersOnce.Do(func() {
		d.owners = map[string]struct{}{}
		for _, o := range strings.FieldsFunc(d.desc.Tags[OwnershipTag], func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
			d.owners[o] = struct{}{}
		}
	})
	_, ok := d.owners[orgID]
	return ok
}

// probe probes the org, its record pre when read already (else read here).
func (s *Service) probe(ctx context.Context, orgID string, pre *Record, round *describeRound) error {
	ctx = budget.With(ctx, budget.Probe, orgID) // the vault budget's class
	var rec Record
	if pre != nil {
		rec = *pre
	} else {
		var err error
		if rec, err = s.record(ctx, orgID); err != nil {
			return err
		}
	}
	switch rec.State {
	case StateActive, StateRevoked, StateLost:
	default:
		return nil
	}
	ref, err := s.cfg.Keepers.ParseRef(rec.ActiveKeyURI)
	if err != nil {
		return err
	}
	keeper, err := s.cfg.Keepers.Keeper(ref)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	rec.LastProbeAt = now
	d, err := round.describe(ctx, keeper, ref)
	if err != nil {
		return err
	}
	desc, err := d.desc, d.err
	if err == nil && !desc.UsableAt(now) {
		err = &fault.Error{Kind: fault.KeyDisabled, Reason: s.disabledReason(desc, rec, now)}
		if r, ok := s.pendingDeletion(ctx, rec, keeper, ref, desc); ok {
			err.(*fault.Error).Reason = r
		}
	}
	rotated := err == nil && s.rotated(rec, desc)
	// Every version followed must carry the org's ownership tag, like the
	// key at Enable: an untagged newer version is not followed; the current
	// version keeps wrapping and the org gets a warning with the remedy.
	warning := ""
	if rotated && !s.owns(rec, d, orgID) {
		rotated, warning = false, s.untaggedWarning(rec, desc.Key.Version)
	}
	if err == nil && !rotated {
		// A real unwrap of the org's root key: proves the unwrap permission.
		// (After a rotation, the re-wrap job proves it instead.)
		roots, rerr := s.st.RootKeys(ctx, orgID)
		if rerr != nil {
			return rerr
		}
		if w := roots[0].Wrapped.Key; w.Provider != ref.Provider || w.ID != ref.ID {
			// The record and the stored wrapping disagree: a job switched
			// the org while this probe ran. Judge nothing this round.
			s.log.Warn("probe skipped: org changed during the probe", slog.String("org_id", orgID))
			return nil
		}
		raw, uerr := keeper.Unwrap(ctx, roots[0].Wrapped, keys.RootAAD(orgID))
		clear(raw)
		err = uerr
	}
	if err != nil {
		return s.probeFailed(ctx, rec, ref, keeper, err)
	}
	// Healthy.
	wasBlocked := rec.State != StateActive
	if !wasBlocked && s.Guard(ctx, orgID) != nil {
		// Another node sharing the store recorded the restore first: the
		// record is active and the key just worked, but this node still
		// refuses the org.
		s.block(orgID, nil)
		s.log.Info("customer managed key usable again", slog.String("org_id", orgID))
	}
	rec.LastProbeError, rec.Degraded = "", false
	rec.PurgeSuspectedSince, rec.PurgeChecks = time.Time{}, 0
	var ev *audit.Event
	if warning != "" && warning != rec.Warning {
		ev = &audit.Event{OrgID: orgID, Time: now, Actor: "orgkms", Action: "cmk.rotation_not_followed", Target: "cmk",
			Details: map[string]string{"version": desc.Key.Version, "reason": "no " + OwnershipTag + " tag naming the org"}}
	}
	rec.Warning = warning
	if wasBlocked {
		rec.State, rec.Reason, rec.ReasonCode, rec.RevokedSince, rec.RecoverableUntil = StateActive, "", "", time.Time{}, time.Time{}
		rec.Bump, rec.UpdatedAt = BumpRestored, now
		ev = &audit.Event{OrgID: orgID, Time: now, Actor: "orgkms", Action: "cmk.restored", Target: "cmk"}
	}
	if rotated && !wasBlocked {
		return s.startRotation(ctx, rec, desc.Key.Version, round) // stores rec too
	}
	if err := s.st.PutCMK(ctx, rec, ev); err != nil {
		return ignoreStale(err)
	}
	if wasBlocked {
		s.block(orgID, nil)
		s.changed(orgID)
		s.log.Info("customer managed key usable again", slog.String("org_id", orgID))
	}
	if rotated {
		return s.startRotation(ctx, rec, desc.Key.Version, round)
	}
	return nil
}

// untaggedWarning is the warning of an org whose key has a newer version
// without the org's ownership tag.
func (s *Service) untaggedWarning(rec Record, version string) string {
	return s.reasonFor(rec, ReasonUntagged, Vars{"version": version, "active": rec.ActiveVersion, "tag": OwnershipTag, "org": rec.OrgID})
}

func (s *Service) disabledReason(d masterkey.Description, rec Record, now time.Time) string {
	// {version}: the version described (the current one, for a cloud
	// whose versions are enabled one by one).
	switch v := d.Key.Version; {
	case !d.Enabled:
		return s.reasonFor(rec, ReasonDisabled, Vars{"version": v})
	case !d.NotBefore.IsZero() && now.Before(d.NotBefore):
		return s.reasonFor(rec, ReasonNotYetActive, Vars{"date": d.NotBefore.UTC().Format(time.RFC3339), "version": v})
	default:
		return s.reasonFor(rec, ReasonExpired, Vars{"date": d.Expires.UTC().Format(time.RFC3339), "version": v})
	}
}

// pendingDeletion is the reason for a key of a [PendingDeletionCloud]
// whose deletion is scheduled, naming the date; false for any other key.
func (s *Service) pendingDeletion(ctx context.Context, rec Record, keeper *masterkey.Keeper, ref masterkey.Ref, d masterkey.Description) (string, bool) {
	pc, ok := s.cloudOf(rec).(PendingDeletionCloud)
	if !ok || !pc.PendingDeletion(d) {
		return "", false
	}
	dk, ok, err := keeper.DeletedKey(ctx, ref.Unversioned())
	if err != nil || !ok || dk.ScheduledPurge.IsZero() {
		return "", false
	}
	return s.reasonFor(rec, ReasonDeleted, Vars{"date": dk.ScheduledPurge.UTC().Format(time.RFC3339)}), true
}

// activeKeyName returns the vault and key name of the key wrapping the
// org's root key (not of a newly configured, unverified one); the
// configured key while none is in use.
func (s *Service) activeKeyName(rec Record) (vault, name string) {
	if k, ok := s.locate(rec.ActiveKeyURI); ok {
		return k.Short, k.Name
	}
	if k, ok := s.locate(rec.KeyURI); ok {
		return k.Short, k.Name
	}
	return "", rec.KeyName
}

// reasonFor is the cloud's text of reason r for the org's key, with v and
// the key's {key}, {vault} and {tenant}.
func (s *Service) reasonFor(rec Record, r Reason, v Vars) string {
	c := s.cloudOf(rec)
	if c == nil {
		return string(r)
	}
	vault, name := s.activeKeyName(rec)
	all := Vars{"key": name, "vault": vault, "tenant": rec.TenantID}
	for k, val := range v {
		all[k] = val
	}
	return c.Wording().reason(r, all)
}

func (s *Service) probeFailed(ctx context.Context, rec Record, ref masterkey.Ref, keeper *masterkey.Keeper, err error) error {
	now := rec.LastProbeAt
	kind := fault.KindOf(err)
	rec.LastProbeError = fault.Message(err)
	switch kind {
	case fault.KeyDisabled, fault.KeyNotFound, fault.KeyDestroyed, fault.PermissionDenied, fault.CredentialsInvalid, fault.CMKConsentRevoked:
		// The customer's key is unusable: revocation, below.
	default:
		// Not revocation (throttling, outage, or a fault of orgkms itself
		// such as a stored wrapping failing its integrity check): keep
		// serving from the cache until its TTL, report degraded.
		if kind == fault.Integrity || kind == fault.Internal || kind == fault.Invalid {
			s.log.Error("probe: the org's stored root key wrapping did not unwrap", slog.String("org_id", rec.OrgID),
				slog.String("kind", kind.Code()), slog.String("error", err.Error()))
		}
		rec.Degraded = true
		return ignoreStale(s.st.PutCMK(ctx, rec, nil))
	}
	code, reason := fault.CMKDisabled, fault.Message(err)
	var until time.Time
	purged := false // this probe is evidence of a purge
	switch kind {
	case fault.PermissionDenied:
		code = fault.CMKPermissionMissing
		if fe := fault.As(err); fe != nil && fe.Permission != "" {
			reason = s.reasonFor(rec, ReasonPermissionLost, Vars{"permission": fe.Permission})
		}
	case fault.CMKConsentRevoked:
		code = fault.CMKConsentRevoked // the driver's reason says what to do
	case fault.CredentialsInvalid:
		code = fault.CMKPermissionMissing
		reason = s.reasonFor(rec, ReasonUnauthorized, Vars{"error": fault.Message(err)})
	case fault.KeyNotFound, fault.KeyDestroyed:
		del, ok, derr := keeper.DeletedKey(ctx, ref)
		dkind := fault.KindOf(derr)
		switch {
		case derr == nil && ok:
			code, until = fault.CMKDeleted, del.ScheduledPurge
			reason = s.reasonFor(rec, ReasonDeleted, Vars{"date": del.ScheduledPurge.UTC().Format(time.RFC3339)})
		case dkind == fault.Unavailable:
			rec.Degraded = true
			return ignoreStale(s.st.PutCMK(ctx, rec, nil))
		case derr != nil && dkind != fault.KeyNotFound && dkind != fault.KeyDestroyed:
			// The deleted entry could not be read (e.g. a permission):
			// no evidence either way.
			code = fault.CMKDeleted
			reason = s.reasonFor(rec, ReasonDeletedUnknown, Vars{"error": fault.Message(derr)})
		default:
			// Absent, and not listed as deleted: a purge, or a delete that
			// the cloud does not list yet. Only repeated evidence over time
			// proves a purge.
			if rec.PurgeSuspectedSince.IsZero() {
				rec.PurgeSuspectedSince, rec.PurgeChecks = now, 0
			}
			rec.PurgeChecks++
			purged = true
			if rec.PurgeChecks >= s.cfg.PurgeConfirmChecks && now.Sub(rec.PurgeSuspectedSince) >= s.cfg.PurgeConfirmAfter {
				code = fault.CMKDestroyed
				reason = s.reasonFor(rec, ReasonPurged, Vars{"date": rec.PurgeSuspectedSince.Format(time.RFC3339)})
			} else {
				code = fault.CMKDeleted
				reason = s.reasonFor(rec, ReasonDeletedUnlisted, nil)
			}
		}
	}
	if !purged {
		rec.PurgeSuspectedSince, rec.PurgeChecks = time.Time{}, 0
	}
	newState := StateRevoked
	if code == fault.CMKDestroyed {
		newState = StateLost
	}
	changed := rec.State != newState || rec.ReasonCode != code.Code()
	if rec.State == StateActive {
		rec.RevokedSince = now
	}
	rec.State, rec.ReasonCode, rec.Reason, rec.RecoverableUntil, rec.Degraded = newState, code.Code(), reason, until, false
	var ev *audit.Event
	if changed {
		rec.Bump, rec.UpdatedAt = string(newState), now // BumpRevoked or BumpLost
		ev = &audit.Event{OrgID: rec.OrgID, Time: now, Actor: "orgkms", Action: "cmk." + string(newState), Target: "cmk", Details: map[string]string{"reason": code.Code()}}
	}
	if err := s.st.PutCMK(ctx, rec, ev); err != nil {
		// A stale record: the org changed while the probe ran (e.g. it was
		// moved off this key). The next round judges it afresh.
		return ignoreStale(err)
	}
	s.block(rec.OrgID, blockError(rec))
	if changed {
		s.changed(rec.OrgID)
		s.log.Warn("customer managed key unusable", slog.String("org_id", rec.OrgID), slog.String("kind", code.Code()))
	}
	return nil
}

// ignoreStale turns the Conflict of a write based on a stale record into
// success: the probe's view is outdated and the next round starts afresh.
func ignoreStale(err error) error {
	if fault.KindOf(err) == fault.Conflict {
		return nil
	}
	return err
}

// startRotation starts the rotation of the org to version: at once
// without a round, else with the round's other rotations when it ends.
func (s *Service) startRotation(ctx context.Context, rec Record, version string, round *describeRound) error {
	st, err := s.rotationStart(rec, version)
	if err != nil {
		return err
	}
	if round != nil {
		round.mu.Lock()
		round.starts = append(round.starts, st)
		round.mu.Unlock()
		return nil
	}
	if _, err := s.st.StartJob(ctx, st.Job, st.Record, st.Event); err != nil {
		if fault.KindOf(err) == fault.Conflict {
			return nil // a job is already running for the org
		}
		return err
	}
	s.kick()
	return nil
}

// rotationStart is the job, record and event of the org's rotation to
// version.
func (s *Service) rotationStart(rec Record, version string) (JobStart, error) {
	active, err := masterkey.ParseRef(rec.ActiveKeyURI)
	if err != nil {
		return JobStart{}, err
	}
	now := s.now().UTC()
	j := Job{OrgID: rec.OrgID, Kind: JobRotate, Target: active.WithVersion(version).String(), State: JobPending, CreatedAt: now, UpdatedAt: now, NotBefore: now}
	rec.State, rec.UpdatedAt = StateRotating, now
	ev := audit.Event{OrgID: rec.OrgID, Time: now, Actor: "orgkms", Action: "cmk.rotate.start", Target: "cmk",
		Details: map[string]string{"from_version": rec.ActiveVersion, "to_version": version}}
	return JobStart{Job: j, Record: rec, Event: ev}, nil
}

// startBatch bounds the rotations one transaction starts: a probe claim's
// worth (probeBatch), so a transaction holds SQLite's writer (and the org
// locks on PostgreSQL) for a few milliseconds, not for a whole ProbeAll.
const startBatch = probeBatch

// startRotations starts the rotations a probe round found, startBatch per
// transaction. A start that conflicts (the org changed meanwhile, or a job
// already runs) is left to the next round, as a single start would be.
func (s *Service) startRotations(ctx context.Context, starts []JobStart) {
	for len(starts) > 0 && ctx.Err() == nil {
		n := min(len(starts), startBatch)
		res, err := s.st.StartJobs(ctx, starts[:n])
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("start rotations failed", slog.Int("orgs", n), slog.String("error", err.Error()))
			}
			return
		}
		for i, r := range res {
			if r.Err != nil && fault.KindOf(r.Err) != fault.Conflict {
				s.log.Warn("start rotation failed", slog.String("org_id", starts[i].Job.OrgID), slog.String("error", r.Err.Error()))
			}
		}
		starts = starts[n:]
		s.kick()
	}
}
