package cmk

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/jobs"
)

// Bounds of a scheduled revocation's time: at least [Config.RevocationMinLead]
// (default DefaultRevocationMinLead) and at most MaxRevocationLead ahead.
const (
	DefaultRevocationMinLead = 5 * time.Minute
	MaxRevocationLead        = 90 * 24 * time.Hour
	// MaxStagedReason is the longest reason a customer may give.
	MaxStagedReason = 200
)

// newStagedRunner returns the job runner of the scheduled revocations,
// on their own job table.
func (s *Service) newStagedRunner() (*jobs.Runner, error) {
	return jobs.New(jobs.Config{Store: s.st.StagedJobs(), Handler: stagedJobs{s}, NodeID: s.cfg.NodeID, Lease: s.cfg.JobLease, Poll: s.cfg.JobPoll,
		Shared: s.cfg.SharedStore, MaxAttempts: maxAttempts, Observer: s.cfg.JobObserver, Now: s.cfg.Now, Logger: s.cfg.Logger})
}

// Staged returns the org's staged revocation state. NotFound when the org
// does not exist.
func (s *Service) Staged(ctx context.Context, orgID string) (Staged, error) {
	return s.st.GetStaged(ctx, orgID)
}

// ProduceGuard is the keys.Service guard of the operations that produce
// new ciphertext (encrypt, rewrap, datakey): it refuses them with Kind
// OrgDecryptOnly while the org is in decrypt-only mode, from memory.
func (s *Service) ProduceGuard(_ context.Context, orgID string) error {
	s.mu.Lock()
	st, ok := s.staged[orgID]
	s.mu.Unlock()
	if ok && st.DecryptOnly {
		return &fault.Error{Kind: fault.OrgDecryptOnly, Resource: "org " + orgID}
	}
	return nil
}

// stagedBlock is the data-plane error of an org whose own administrators
// revoked it (a scheduled revocation of mode revoke took effect), or nil.
func (s *Service) stagedBlock(orgID string) error {
	s.mu.Lock()
	st, ok := s.staged[orgID]
	s.mu.Unlock()
	if ok && st.Revoked {
		return &fault.Error{Kind: fault.OrgRevoked, Resource: "org " + orgID}
	}
	return nil
}

// applyStaged makes st this node's view of the org's staged state: a
// revoked org's unwrapped keys are dropped from memory at once.
func (s *Service) applyStaged(st Staged) {
	s.mu.Lock()
	if st.DecryptOnly || st.Revoked {
		s.staged[st.OrgID] = st
	} else {
		delete(s.staged, st.OrgID)
	}
	s.mu.Unlock()
	if st.Revoked {
		s.cfg.Keys.Cache().Purge(st.OrgID)
	}
}

// loadStaged reads every org's staged state into memory (LoadBlocks).
func (s *Service) loadStaged(ctx context.Context) error {
	all, err := s.st.ListStaged(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	clear(s.staged)
	s.mu.Unlock()
	for _, st := range all {
		s.applyStaged(st)
	}
	return nil
}

// reloadStaged reads the org's staged state into memory (Reload).
func (s *Service) reloadStaged(ctx context.Context, orgID string) error {
	st, err := s.st.GetStaged(ctx, orgID)
	if fault.KindOf(err) == fault.NotFound {
		st, err = Staged{OrgID: orgID}, nil
	}
	if err != nil {
		return err
	}
	s.applyStaged(st)
	return nil
}

// checkReason validates a customer's reason text.
func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case !utf8.ValidString(reason):
		return "", &fault.Error{Kind: fault.Invalid, Field: "reason", Reason: "must be UTF-8 text"}
	case utf8.RuneCountInString(reason) > MaxStagedReason:
		return "", &fault.Error{Kind: fault.Invalid, Field: "reason", Reason: fmt.Sprintf("is longer than %d characters", MaxStagedReason)}
	case strings.ContainsFunc(reason, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", &fault.Error{Kind: fault.Invalid, Field: "reason", Reason: "must be one line without control characters"}
	}
	return reason, nil
}

// SetDecryptOnly turns the org's decrypt-only mode on or off. While on,
// the org's existing data stays readable (decrypt) and every operation
// that produces new ciphertext (encrypt, rewrap, datakey) is refused with
// org_decrypt_only on every node: the change raises the org's generation.
// It applies to every org, on a customer managed key or the platform key.
// Setting the mode it is already in changes nothing. NotFound when the org
// does not exist; Invalid for a bad reason.
func (s *Service) SetDecryptOnly(ctx context.Context, actor, orgID string, on bool, reason string) (Staged, error) {
	reason, err := checkReason(reason)
	if err != nil {
		return Staged{}, err
	}
	return retryStale(func() (Staged, error) {
		st, err := s.st.GetStaged(ctx, orgID)
		if err != nil {
			return Staged{}, err
		}
		if st.DecryptOnly == on {
			return st, nil
		}
		now := s.now().UTC()
		w := StagedWrite{State: st, Bump: BumpDecryptOnly}
		w.Event.Time, w.Event.Actor, w.Event.Target = now, actor, "cmk"
		if on {
			w.State.DecryptOnly, w.State.DecryptOnlyReason, w.State.DecryptOnlyBy, w.State.DecryptOnlySince = true, reason, actor, now
			w.Event.Action, w.Event.Details = "cmk.decrypt_only.on", map[string]string{"reason": reason}
		} else {
			w.State.DecryptOnly, w.State.DecryptOnlyReason, w.State.DecryptOnlyBy, w.State.DecryptOnlySince = false, "", "", time.Time{}
			w.Bump, w.Event.Action = BumpDecryptOnlyOff, "cmk.decrypt_only.off"
			w.Event.Details = map[string]string{"reason": reason, "since": st.DecryptOnlySince.Format(time.RFC3339), "set_by": st.DecryptOnlyBy}
		}
		w.State.UpdatedAt = now
		out, err := s.st.PutStaged(ctx, w)
		if err != nil {
			return Staged{}, err
		}
		s.applyStaged(out)
		s.changed(orgID)
		return out, nil
	})
}

// ScheduleRevocation schedules the org's revocation at at, in mode
// (StagedRevoke when ""): a durable job applies it then, once, on one
// node, and every node honours it. at must be at least
// Config.RevocationMinLead and at most MaxRevocationLead ahead (Invalid,
// field at); an org has one scheduled revocation at a time (Conflict).
// NotFound when the org does not exist.
func (s *Service) ScheduleRevocation(ctx context.Context, actor, orgID string, at time.Time, mode StagedMode, reason string) (Staged, error) {
	if mode == "" {
		mode = StagedRevoke
	}
	if mode != StagedRevoke && mode != StagedDecryptOnly {
		return Staged{}, &fault.Error{Kind: fault.Invalid, Field: "mode", Reason: fmt.Sprintf("must be %q or %q, not %q", StagedRevoke, StagedDecryptOnly, trimText(string(mode), 40))}
	}
	reason, err := checkReason(reason)
	if err != nil {
		return Staged{}, err
	}
	now := s.now().UTC()
	at = at.UTC().Truncate(time.Microsecond)
	switch {
	case at.IsZero():
		return Staged{}, &fault.Error{Kind: fault.Invalid, Field: "at", Reason: "is required: the time of the revocation, RFC 3339 (e.g. 2030-01-02T15:04:05Z)"}
	case at.Before(now.Add(s.cfg.RevocationMinLead)):
		return Staged{}, &fault.Error{Kind: fault.Invalid, Field: "at", Reason: fmt.Sprintf("must be at least %s from now (%s); for a revocation now, disable the key in your vault", s.cfg.RevocationMinLead, now.Format(time.RFC3339))}
	case at.After(now.Add(MaxRevocationLead)):
		return Staged{}, &fault.Error{Kind: fault.Invalid, Field: "at", Reason: fmt.Sprintf("must be at most %d days from now", int(MaxRevocationLead/(24*time.Hour)))}
	}
	out, err := retryStale(func() (Staged, error) {
		st, err := s.st.GetStaged(ctx, orgID)
		if err != nil {
			return Staged{}, err
		}
		switch {
		case st.Mode != "":
			return Staged{}, &fault.Error{Kind: fault.Conflict, Op: "schedule revocation", Resource: "org " + orgID,
				Reason: fmt.Sprintf("a revocation (%s) is already scheduled at %s by %s: cancel it first", st.Mode, st.At.Format(time.RFC3339), st.ScheduledBy)}
		case mode == StagedRevoke && st.Revoked:
			return Staged{}, &fault.Error{Kind: fault.Conflict, Op: "schedule revocation", Resource: "org " + orgID, Reason: "the org is revoked already"}
		case mode == StagedDecryptOnly && st.DecryptOnly:
			return Staged{}, &fault.Error{Kind: fault.Conflict, Op: "schedule revocation", Resource: "org " + orgID, Reason: "the org is in decrypt-only mode already"}
		}
		w := StagedWrite{State: st, Schedule: &jobs.Job{OrgID: orgID, Kind: JobStaged, Target: string(mode), NotBefore: at, CreatedAt: now}}
		w.State.Mode, w.State.At, w.State.Reason, w.State.ScheduledBy, w.State.ScheduledAt, w.State.UpdatedAt = mode, at, reason, actor, now, now
		w.Event.Time, w.Event.Actor, w.Event.Action, w.Event.Target = now, actor, "cmk.revocation.schedule", "cmk"
		w.Event.Details = map[string]string{"mode": string(mode), "at": at.Format(time.RFC3339), "reason": reason}
		return s.st.PutStaged(ctx, w)
	})
	if err != nil {
		return Staged{}, err
	}
	s.stagedRunner.Kick()
	return out, nil
}

// CancelRevocation cancels the org's scheduled revocation while its time
// has not come (Conflict afterwards: it is being applied); with none
// scheduled, it lifts a revocation in effect (mode revoke), serving the
// org again on every node. Conflict when there is neither. NotFound when
// the org does not exist.
func (s *Service) CancelRevocation(ctx context.Context, actor, orgID string) (Staged, error) {
	return retryStale(func() (Staged, error) {
		st, err := s.st.GetStaged(ctx, orgID)
		if err != nil {
			return Staged{}, err
		}
		now := s.now().UTC()
		w := StagedWrite{State: st}
		w.Event.Time, w.Event.Actor, w.Event.Target = now, actor, "cmk"
		switch {
		case st.Mode != "":
			j, err := s.st.GetStagedJob(ctx, st.JobID)
			if err != nil && fault.KindOf(err) != fault.NotFound {
				return Staged{}, err
			}
			failed := err == nil && j.State == jobs.Failed
			if !failed && (j.State == jobs.Running || !now.Before(st.At)) {
				return Staged{}, &fault.Error{Kind: fault.Conflict, Op: "cancel revocation", Resource: "org " + orgID,
					Reason: fmt.Sprintf("the revocation scheduled at %s is being applied; it can no longer be cancelled", st.At.Format(time.RFC3339))}
			}
			w.Cancel = st.JobID
			w.Event.Action = "cmk.revocation.cancel"
			w.Event.Details = map[string]string{"mode": string(st.Mode), "at": st.At.Format(time.RFC3339), "scheduled_by": st.ScheduledBy}
			w.State.Mode, w.State.At, w.State.Reason, w.State.ScheduledBy, w.State.ScheduledAt, w.State.JobID = "", time.Time{}, "", "", time.Time{}, 0
		case st.Revoked:
			w.Bump, w.Event.Action = BumpStagedLifted, "cmk.revocation.lift"
			w.Event.Details = map[string]string{"since": st.RevokedSince.Format(time.RFC3339), "scheduled_by": st.RevokedBy}
			w.State.Revoked, w.State.RevokedReason, w.State.RevokedBy, w.State.RevokedSince = false, "", "", time.Time{}
		default:
			return Staged{}, &fault.Error{Kind: fault.Conflict, Op: "cancel revocation", Resource: "org " + orgID, Reason: "no revocation is scheduled or in effect for this org"}
		}
		w.State.UpdatedAt = now
		out, err := s.st.PutStaged(ctx, w)
		if err != nil {
			return Staged{}, err
		}
		if w.Bump != "" {
			s.applyStaged(out)
			s.changed(orgID)
		}
		return out, nil
	})
}

// stagedJobs is the [jobs.Handler] of the scheduled revocations.
type stagedJobs struct{ s *Service }

// Run applies the scheduled revocation of job j, once: in one fenced
// transaction the org's state changes, its generation is raised (every
// node drops its keys and honours the new state) and the event
// cmk.revocation.apply is appended. A job whose schedule was cancelled or
// replaced meanwhile ends done without a change.
func (h stagedJobs) Run(ctx context.Context, j *Job) error {
	s := h.s
	out, err := retryStale(func() (Staged, error) {
		st, err := s.st.GetStaged(ctx, j.OrgID)
		if err != nil && fault.KindOf(err) != fault.NotFound {
			return Staged{}, err
		}
		now := s.now().UTC()
		done := *j
		done.State, done.Step, done.UpdatedAt, done.LeaseUntil = JobDone, "applied", now, time.Time{}
		if err != nil || st.JobID != j.ID || st.Mode == "" {
			done.Step = "skipped"
			return Staged{}, s.st.FinishStagedJob(ctx, done, nil)
		}
		w := StagedWrite{State: st}
		w.Event.Time, w.Event.Actor, w.Event.Action, w.Event.Target = now, "orgkms", "cmk.revocation.apply", "cmk"
		w.Event.Details = map[string]string{"mode": string(st.Mode), "at": st.At.Format(time.RFC3339), "scheduled_by": st.ScheduledBy, "node": s.cfg.NodeID}
		switch st.Mode {
		case StagedRevoke:
			w.Bump = BumpStagedRevoked
			w.State.Revoked, w.State.RevokedReason, w.State.RevokedBy, w.State.RevokedSince = true, st.Reason, st.ScheduledBy, now
		case StagedDecryptOnly:
			w.Bump = BumpDecryptOnly
			w.State.DecryptOnly, w.State.DecryptOnlyReason, w.State.DecryptOnlyBy, w.State.DecryptOnlySince = true, st.Reason, st.ScheduledBy, now
		}
		w.State.Mode, w.State.At, w.State.Reason, w.State.ScheduledBy, w.State.ScheduledAt, w.State.JobID = "", time.Time{}, "", "", time.Time{}, 0
		w.State.UpdatedAt = now
		if err := s.st.FinishStagedJob(ctx, done, &w); err != nil {
			return Staged{}, err
		}
		*j = done
		st, err = s.st.GetStaged(ctx, j.OrgID)
		if err != nil {
			return w.State, nil // applied; the generation brings every node, this one too, to it
		}
		return st, nil
	})
	if err != nil {
		return err
	}
	if out.OrgID != "" {
		s.applyStaged(out)
		s.changed(j.OrgID)
		s.stagedRunner.Step(j, "applied")
		s.log.Info("scheduled revocation applied", slog.String("org_id", j.OrgID), slog.String("job", fmt.Sprint(j.ID)))
	}
	return nil
}

// Fail ends job j for good after a permanent error: the schedule stays,
// shown with the job's error, and can be cancelled.
func (h stagedJobs) Fail(ctx context.Context, j Job, cause error) error {
	j.State, j.Error, j.UpdatedAt = JobFailed, fault.Message(cause), h.s.now().UTC()
	return h.s.st.FinishStagedJob(ctx, j, nil)
}

// reclaimStaged makes the staged jobs this node held before it restarted
// claimable at once.
func (s *Service) reclaimStaged(ctx context.Context) error {
	all, err := s.st.ListStaged(ctx)
	if err != nil {
		return err
	}
	var held []Job
	for _, st := range all {
		if st.JobID == 0 {
			continue
		}
		j, err := s.st.GetStagedJob(ctx, st.JobID)
		if fault.KindOf(err) == fault.NotFound {
			continue
		}
		if err != nil {
			return err
		}
		held = append(held, j)
	}
	_, err = s.stagedRunner.Reclaim(ctx, held)
	return err
}

// RunPendingStaged runs the due staged jobs on the calling goroutine until
// none is left (tests).
func (s *Service) RunPendingStaged(ctx context.Context) error { return s.stagedRunner.RunPending(ctx) }

// StagedJob returns a staged job (status pages); NotFound if none.
func (s *Service) StagedJob(ctx context.Context, id int64) (Job, error) {
	return s.st.GetStagedJob(ctx, id)
}

// Clock is the service's clock (Config.Now): the countdown of a scheduled
// revocation is read on it.
func (s *Service) Clock() time.Time { return s.now() }

// refuseRevoked refuses op (enable, disable: they use the org's keys) while
// the org's administrators have it revoked in orgkms, as a key disabled in
// the vault would.
func (s *Service) refuseRevoked(ctx context.Context, orgID, op string) error {
	st, err := s.st.GetStaged(ctx, orgID)
	if err != nil {
		return err
	}
	if st.Revoked {
		return &fault.Error{Kind: fault.OrgRevoked, Op: op, Resource: "org " + orgID,
			Reason: "the org's keys are revoked in orgkms (scheduled by " + st.RevokedBy + "); lift the revocation first (orgkms cmk cancel-revocation)"}
	}
	return nil
}

// RevocationMinLead is how far ahead a revocation must be scheduled at
// least (Config.RevocationMinLead).
func (s *Service) RevocationMinLead() time.Duration { return s.cfg.RevocationMinLead }
