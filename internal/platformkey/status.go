package platformkey

import (
	"context"
	"sort"
	"time"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// Status is the platform master key as the operator sees it: its current
// version, where the orgs' root keys are, and the re-wrap job.
type Status struct {
	Provider string // the platform key's driver ("local", "pkcs11", ...)
	Version  string // its current version
	// OnCurrent orgs have their root key wrapped by the current version;
	// OnOlder by an older version or a previous platform key (by version
	// in Older); Rewrapping have a copy to the current version pending.
	OnCurrent  int
	OnOlder    int
	Older      []VersionCount
	Rewrapping int
	// CMK orgs have their root key wrapped by a customer managed key (or
	// are moving to or from one): a platform rotation leaves them alone.
	CMK int
	// Unreadable orgs have their root key wrapped by a master key orgkms
	// is not configured with (not master_key, not in
	// previous_master_keys, no customer key): UnreadableOrgs names the
	// first of them, UnknownKeys the keys, Hint says what to configure.
	Unreadable     int
	UnreadableOrgs []string
	UnknownKeys    []string
	Hint           string
	// Job is the latest re-wrap job; nil if none ever ran.
	Job *JobStatus
}

// VersionCount is how many orgs one older platform key version wraps.
type VersionCount struct {
	Version  string
	Previous bool // a version of a previous platform key (another key)
	Orgs     int
}

// JobStatus is the latest platform re-wrap job.
type JobStatus struct {
	ID        int64
	State     string // pending, running, stalled (its holder is gone), done, failed
	Step      string
	Error     string
	Attempts  int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// maxNamed bounds Status.UnreadableOrgs.
const maxNamed = 20

// Status reads the platform key's status. It walks every org's root key
// wrappings (one read per page of orgs).
func (s *Service) Status(ctx context.Context) (Status, error) {
	cur, err := s.Current(ctx)
	if err != nil {
		return Status{}, keys.PlatformKeyFault("describe platform key", err)
	}
	st := Status{Provider: cur.Provider, Version: cur.Version}
	recs, err := s.st.ListCMK(ctx)
	if err != nil {
		return Status{}, err
	}
	onCMK := map[string]bool{}
	for _, r := range recs {
		if r.State != cmk.StatePlatform && r.State != cmk.StateAuthorized {
			onCMK[r.OrgID] = true
		}
	}
	older := map[VersionCount]int{}
	unknown := map[string]bool{}
	after := ""
	for {
		page, err := s.st.RootKeyPage(ctx, after, 1000)
		if err != nil {
			return Status{}, err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].OrgID
		for _, w := range page {
			k := w.Wrapped.Key
			if w.State == keys.WrappingPending {
				if k == cur {
					st.Rewrapping++
				}
				continue
			}
			switch {
			case onCMK[w.OrgID]:
				st.CMK++
			case k == cur:
				st.OnCurrent++
			case s.keys.IsPlatformKey(k):
				st.OnOlder++
				older[VersionCount{Version: k.Version, Previous: k.Unversioned() != cur.Unversioned()}]++
			default:
				st.Unreadable++
				if len(st.UnreadableOrgs) < maxNamed {
					st.UnreadableOrgs = append(st.UnreadableOrgs, w.OrgID)
				}
				unknown[k.Unversioned().String()] = true
			}
		}
	}
	for v, n := range older {
		v.Orgs = n
		st.Older = append(st.Older, v)
	}
	sort.Slice(st.Older, func(i, j int) bool { return st.Older[i].Version < st.Older[j].Version })
	for k := range unknown {
		st.UnknownKeys = append(st.UnknownKeys, k)
	}
	sort.Strings(st.UnknownKeys)
	if st.Unreadable > 0 {
		st.Hint = "these orgs' root keys are wrapped by a master key orgkms is not configured with: add it to previous_master_keys (ORGKMS_PREVIOUS_MASTER_KEY_URIS) on every node and restart; the re-wrap then moves them to master_key"
	}
	j, err := s.st.LatestPlatformJob(ctx)
	switch {
	case fault.KindOf(err) == fault.NotFound:
	case err != nil:
		return Status{}, err
	default:
		state := string(j.State)
		if s.runner.Stalled(j) {
			state = "stalled"
		}
		st.Job = &JobStatus{ID: j.ID, State: state, Step: j.Step, Error: j.Error, Attempts: j.Attempts, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt}
	}
	return st, nil
}
