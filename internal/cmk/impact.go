package cmk

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// ImpactAction names a destructive step that [Service.Impact] previews.
type ImpactAction string

const (
	ImpactDisable     ImpactAction = "disable"      // customer managed key → platform key (POST …/cmk/disable)
	ImpactReplace     ImpactAction = "replace"      // old customer managed key → a new one (configure, then enable)
	ImpactFallback    ImpactAction = "fallback"     // a lost org → a new platform root key (POST …/cmk/fallback)
	ImpactDecryptOnly ImpactAction = "decrypt-only" // decrypt-only mode (POST …/cmk/decrypt-only)
	ImpactRevoke      ImpactAction = "revoke"       // a revocation, scheduled or immediate (POST …/cmk/revocation)
	ImpactDeleteOrg   ImpactAction = "delete-org"   // org deletion (DELETE /v1/orgs/{org})
	ImpactDisableKey  ImpactAction = "disable-key"  // one data key disabled (POST …/keys/{key}/disable)
	ImpactDeleteKey   ImpactAction = "delete-key"   // one data key deleted (DELETE …/keys/{key})
)

// ImpactActions are the actions [Service.Impact] previews, in the order
// help and errors list them.
var ImpactActions = []ImpactAction{ImpactDisable, ImpactReplace, ImpactFallback, ImpactDecryptOnly, ImpactRevoke, ImpactDeleteOrg, ImpactDisableKey, ImpactDeleteKey}

// KeyAction reports whether a is a step on one data key (it needs a key
// name).
func (a ImpactAction) KeyAction() bool { return a == ImpactDisableKey || a == ImpactDeleteKey }

// CMKAction reports whether a is a change of the org's customer managed
// key or of its staged revocation (it needs the cmk.manage action).
func (a ImpactAction) CMKAction() bool {
	switch a {
	case ImpactDisable, ImpactReplace, ImpactFallback, ImpactDecryptOnly, ImpactRevoke:
		return true
	}
	return false
}

// ImpactActionNames is the list of actions for messages: "disable,
// replace, …".
func ImpactActionNames() string {
	s := make([]string, len(ImpactActions))
	for i, a := range ImpactActions {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// ParseImpactAction checks an action name and the key that goes with it:
// Kind Invalid naming the field (action or key) when the action is missing
// or unknown, when a key action has no key, or when another action has
// one.
func ParseImpactAction(action, key string) (ImpactAction, error) {
	a := ImpactAction(strings.TrimSpace(action))
	switch {
	case a == "":
		return "", &fault.Error{Kind: fault.Invalid, Field: "action", Reason: "is required: one of " + ImpactActionNames()}
	case !slices.Contains(ImpactActions, a):
		return "", &fault.Error{Kind: fault.Invalid, Field: "action", Reason: fmt.Sprintf("%q is not an action orgkms previews: use one of %s", action, ImpactActionNames())}
	case a.KeyAction() && key == "":
		return "", &fault.Error{Kind: fault.Invalid, Field: "key", Reason: "is required for " + string(a) + ": the name of the data key"}
	case !a.KeyAction() && key != "":
		return "", &fault.Error{Kind: fault.Invalid, Field: "key", Reason: "applies to disable-key and delete-key only; " + string(a) + " concerns the whole org"}
	}
	if key != "" {
		if err := keys.ValidateKeyName(key); err != nil {
			return "", &fault.Error{Kind: fault.Invalid, Field: "key", Reason: "is not a valid key name"}
		}
	}
	return a, nil
}

// ImpactCaller is one caller's count of calls in an [Impact].
type ImpactCaller struct {
	Principal string // as the org's usage records name it; another org's token is "(token of another org)"
	Calls     int64
}

// KeyImpact is what one data key saw in the window of an [Impact].
type KeyImpact struct {
	Name     string
	Versions int   // versions the key holds
	Calls    int64 // every recorded call: encrypt, decrypt, rewrap, datakey, any outcome
	Encrypt  int64 // encrypt calls
	Decrypt  int64 // decrypt calls
	Refused  int64 // the calls of the window the step would refuse
	Callers  []ImpactCaller
	LastUse  time.Time // the last recorded call; zero when none in the window
}

// Rewrap is the re-wrap a step needs, and its estimate.
type Rewrap struct {
	Required bool
	// Wraps is how many root key wrappings the job writes (one per org);
	// VaultCalls how many master-key calls it makes at most: an unwrap on
	// the key in use (when the root key is not in memory), then a wrap and
	// a verifying unwrap on the target key.
	Wraps, VaultCalls int
	// Rate is the calls per second the estimate used, RateSource where it
	// came from ("vault budget" or "platform key").
	Rate       float64
	RateSource string
	// Waiting is how many calls wait in the vault's budget now, ahead of
	// the job's.
	Waiting          int
	EstimatedSeconds float64
}

// Impact answers "what breaks if I do this now" for a destructive step on
// an org. It never holds key material, and only the org's own usage.
type Impact struct {
	Action ImpactAction
	OrgID  string
	Key    string // the data key of a key action
	State  State  // the org's CMK state now
	// Possible reports whether the step can be taken in the current
	// state; Blocked says why not, and what to do.
	Possible bool
	Blocked  string
	// WhatBreaks is one sentence for a person.
	WhatBreaks string
	// Since and Until are the window of the usage counts (the last 24
	// hours).
	Since, Until time.Time
	Keys         []KeyImpact
	Calls        int64 // over Keys
	Refused      int64 // over Keys: the calls of the window the step would refuse
	// RefusedCallers is how many callers made the refused calls.
	RefusedCallers int
	Callers        []ImpactCaller
	Rewrap         Rewrap
	// FallbackPossible reports whether, in the key's current state, the
	// org can still go back to the platform key without losing data;
	// FallbackReason says why (not).
	FallbackPossible bool
	FallbackReason   string
	// RefusedFrom is when the step starts refusing calls: zero for now, or
	// the time of a scheduled revocation.
	RefusedFrom time.Time
}

// ImpactWindow is the window of usage an [Impact] counts.
const ImpactWindow = 24 * time.Hour

// PlatformCallSeconds is the time the impact estimate assumes for one call
// to a master key that has no vault budget (the platform key).
const PlatformCallSeconds = 0.05

// impactMaxRecords bounds the usage records one preview reads.
const impactMaxRecords = 200 * keys.MaxUsagePage

// refusedOps are the data-plane operations a step refuses (nil: none).
func refusedOps(a ImpactAction) []string {
	switch a {
	case ImpactDisable, ImpactReplace:
		return nil
	case ImpactFallback:
		return []string{"decrypt", "rewrap"} // of ciphertexts made before the fall back
	case ImpactDecryptOnly:
		return []string{"encrypt", "rewrap", "datakey"}
	}
	return keys.UsageOps
}

// Impact previews action on the org (on its data key key for a key
// action): the org's data keys, their calls over the last 24 hours by
// caller, the last use, the re-wrap the step needs and an estimate of its
// duration, and whether falling back to the platform key stays possible.
// It changes nothing and writes no audit event.
//
// It returns Kind Invalid for a bad action or key (see
// [ParseImpactAction]), NotFound for an unknown org or data key.
func (s *Service) Impact(ctx context.Context, orgID string, action ImpactAction, key string) (Impact, error) {
	if _, err := ParseImpactAction(string(action), key); err != nil {
		return Impact{}, err
	}
	st, err := s.Status(ctx, orgID)
	if err != nil {
		return Impact{}, err
	}
	now := s.now().UTC()
	im := Impact{Action: action, OrgID: orgID, Key: key, State: st.Record.State, Until: now, Since: now.Add(-ImpactWindow)}
	var dks []keys.DataKey
	if action.KeyAction() {
		dk, err := s.cfg.Keys.GetDataKey(ctx, orgID, key)
		if err != nil {
			return Impact{}, err
		}
		dks = []keys.DataKey{dk}
	} else if dks, err = s.cfg.Keys.ListDataKeys(ctx, orgID); err != nil {
		return Impact{}, err
	}
	if err := s.impactUsage(ctx, &im, dks); err != nil {
		return Impact{}, err
	}
	orgLife, err := s.cfg.Keys.OrgLifecycle(ctx, orgID)
	if err != nil {
		return Impact{}, err
	}
	var keyLife keys.Lifecycle
	if action.KeyAction() {
		ls, err := s.cfg.Keys.KeyLifecycles(ctx, orgID)
		if err != nil {
			return Impact{}, err
		}
		keyLife = ls[key]
	}
	im.Possible, im.Blocked = impactPossible(action, st, orgLife, keyLife)
	im.FallbackPossible, im.FallbackReason = fallbackPossible(action, st)
	im.Rewrap = s.impactRewrap(action, st)
	if action == ImpactRevoke && st.Staged.Mode == StagedRevoke {
		im.RefusedFrom = st.Staged.At.UTC()
	}
	if action == ImpactDecryptOnly && st.Staged.Mode == StagedDecryptOnly {
		im.RefusedFrom = st.Staged.At.UTC()
	}
	if !im.Possible {
		// A step that cannot be taken refuses nothing.
		im.Refused, im.RefusedCallers = 0, 0
		for i := range im.Keys {
			im.Keys[i].Refused = 0
		}
		im.WhatBreaks = "Nothing: the step is not possible now (" + im.Blocked + ")."
		return im, nil
	}
	if orgLife.State == keys.LifecyclePendingDeletion && (action == ImpactDecryptOnly || action == ImpactRevoke) {
		// The pending deletion refuses every call already: the step adds
		// nothing until the deletion is cancelled.
		later := whatBreaks(im)
		im.Refused, im.RefusedCallers = 0, 0
		for i := range im.Keys {
			im.Keys[i].Refused = 0
		}
		im.WhatBreaks = "Nothing more is refused now: every call of the org is refused already with " + fault.OrgPendingDeletion.Code() +
			" until its deletion on " + orgLife.DeletionDate.UTC().Format(time.RFC3339) + ". If the deletion is cancelled: " + later
		return im, nil
	}
	im.WhatBreaks = whatBreaks(im)
	return im, nil
}

// impactUsage counts the org's usage of dks over im's window into im.
func (s *Service) impactUsage(ctx context.Context, im *Impact, dks []keys.DataKey) error {
	byKey := map[string]*KeyImpact{}
	callers := map[string]map[string]int64{} // key → principal → calls
	refusedBy := map[string]bool{}
	for _, dk := range dks {
		byKey[dk.Name] = &KeyImpact{Name: dk.Name, Versions: len(dk.Versions)}
		if len(dk.Versions) == 0 {
			byKey[dk.Name].Versions = int(dk.LatestVersion)
		}
		callers[dk.Name] = map[string]int64{}
	}
	refuses := refusedOps(im.Action)
	f := keys.UsageFilter{Since: im.Since.Truncate(time.Minute), Key: im.Key, Limit: keys.MaxUsagePage}
	for read := 0; read < impactMaxRecords; {
		page, err := s.cfg.Keys.QueryUsage(ctx, im.OrgID, f)
		if err != nil {
			return err
		}
		for _, u := range page {
			k := byKey[u.KeyName]
			if k == nil {
				continue // a name no data key of the org has (a refused call)
			}
			k.Calls += u.Count
			switch u.Op {
			case "encrypt":
				k.Encrypt += u.Count
			case "decrypt":
				k.Decrypt += u.Count
			}
			if slices.Contains(refuses, u.Op) {
				k.Refused += u.Count
				refusedBy[u.Principal] = true
			}
			callers[u.KeyName][u.Principal] += u.Count
			last := u.Last
			if last.IsZero() {
				last = u.Minute
			}
			if last.After(k.LastUse) {
				k.LastUse = last.UTC()
			}
		}
		read += len(page)
		if len(page) < f.Limit {
			break
		}
		f.After = &page[len(page)-1]
	}
	total := map[string]int64{}
	for _, dk := range dks {
		k := byKey[dk.Name]
		k.Callers = sortedCallers(callers[dk.Name])
		for p, n := range callers[dk.Name] {
			total[p] += n
		}
		im.Calls += k.Calls
		im.Refused += k.Refused
		im.Keys = append(im.Keys, *k)
	}
	im.Callers = sortedCallers(total)
	im.RefusedCallers = len(refusedBy)
	return nil
}

// sortedCallers lists m busiest first, then by name.
func sortedCallers(m map[string]int64) []ImpactCaller {
	out := make([]ImpactCaller, 0, len(m))
	for p, n := range m {
		out = append(out, ImpactCaller{Principal: p, Calls: n})
	}
	slices.SortFunc(out, func(a, b ImpactCaller) int {
		if a.Calls != b.Calls {
			if a.Calls > b.Calls {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Principal, b.Principal)
	})
	return out
}

// impactPossible reports whether action can be taken now, and if not why.
func impactPossible(action ImpactAction, st Status, org, key keys.Lifecycle) (bool, string) {
	state := st.Record.State
	busy := "a key operation is in progress (" + string(state) + "); try again when it finishes"
	if org.State == keys.LifecycleDeleted {
		return false, "the org was deleted"
	}
	switch action {
	case ImpactDisable:
		switch {
		case state == StatePlatform:
			return false, "customer managed keys are not enabled for this org"
		case state == StateRevoked || state == StateLost:
			return false, "the customer managed key is unusable (" + string(state) + "): orgkms needs it to move the org back to the platform key; restore access to it first"
		case st.Staged.Revoked:
			return false, "the org's keys are revoked in orgkms; lift the revocation first (orgkms cmk cancel-revocation)"
		case state != StateActive && state != StateAuthorized:
			return false, busy
		}
	case ImpactReplace:
		switch {
		case state == StateRevoked || state == StateLost:
			return false, "the customer managed key in use is unusable (" + string(state) + "): orgkms needs it to move the root key to the new key; restore access to it first"
		case state != StateActive:
			return false, "only an org on an active customer managed key can replace it; this org is " + string(state)
		}
		// Active: the replacement is configure (when no new key is
		// configured yet), then enable.
	case ImpactFallback:
		if state != StateLost {
			return false, "only an org whose customer managed key was purged (state lost) can fall back to a new platform root key; this org is " + string(state)
		}
	case ImpactDecryptOnly:
		if st.Staged.DecryptOnly {
			return false, "the org is in decrypt-only mode already"
		}
	case ImpactRevoke:
		if st.Staged.Revoked {
			return false, "the org's keys are revoked in orgkms already"
		}
	case ImpactDeleteOrg:
		if org.State == keys.LifecyclePendingDeletion {
			return false, "the org is scheduled for deletion already, on " + org.DeletionDate.UTC().Format(time.RFC3339)
		}
	case ImpactDisableKey, ImpactDeleteKey:
		// While the org waits for its deletion its keys' lifecycle cannot
		// change (the change is refused with org_pending_deletion).
		if org.State == keys.LifecyclePendingDeletion {
			return false, "the org is scheduled for deletion on " + org.DeletionDate.UTC().Format(time.RFC3339) + ": its keys are refused already and cannot change"
		}
		if key.State == keys.LifecycleDeleted || key.State == keys.LifecyclePendingDeletion || (action == ImpactDisableKey && key.State != keys.LifecycleEnabled) {
			return false, "the key is " + key.Text(false) + " already"
		}
	}
	return true, ""
}

// fallbackPossible reports whether, in the CMK record's current state, the
// org can go back to the platform key without losing data, and why (not).
func fallbackPossible(action ImpactAction, st Status) (bool, string) {
	switch st.Record.State {
	case StatePlatform:
		return true, "the org is on the platform key: nothing to fall back from"
	case StateAuthorized:
		return true, "the customer managed key is not in use yet: the org is on the platform key"
	case StateActive:
		if st.Staged.Revoked {
			return false, "the org's keys are revoked in orgkms: lift the revocation first, then disable the customer managed key"
		}
		return true, "the customer managed key still unwraps the root key: disabling it moves the org back to the platform key without data loss"
	case StateRevoked:
		return false, "the customer managed key is unusable (" + orElse(st.Record.Reason, "revoked") + "): orgkms needs it to unwrap the root key; restore access to it first"
	case StateLost:
		if action == ImpactFallback {
			return true, "the key was purged: falling back gives the org a new platform root key, and the data encrypted before is lost"
		}
		return false, "the key was purged: only a fall back to a new platform root key, losing the data encrypted before, is possible (orgkms cmk fallback)"
	}
	return false, "a key operation is in progress (" + string(st.Record.State) + "); falling back is possible once it finishes and the key is still usable"
}

// impactRewrap is the re-wrap action needs, with its estimate.
func (s *Service) impactRewrap(action ImpactAction, st Status) Rewrap {
	var rw Rewrap
	switch {
	case action == ImpactDisable && st.Record.State == StateActive,
		action == ImpactReplace && st.Record.State == StateActive:
		rw = Rewrap{Required: true, Wraps: 1, VaultCalls: 3}
	case action == ImpactFallback && st.Record.State == StateLost:
		rw = Rewrap{Required: true, Wraps: 1, VaultCalls: 2} // a wrap and a verifying unwrap on the platform key
	default:
		return rw
	}
	rw.Rate, rw.RateSource = 1/PlatformCallSeconds, "platform key"
	if b := st.VaultBudget; b != nil && b.Rate > 0 && action != ImpactFallback {
		rw.Rate, rw.RateSource = b.Rate, "vault budget"
		for _, n := range b.Waiting {
			rw.Waiting += n
		}
	}
	secs := float64(rw.Waiting+rw.VaultCalls) / rw.Rate
	rw.EstimatedSeconds = float64(int64(secs*100+0.5)) / 100
	if rw.EstimatedSeconds < 0.01 {
		rw.EstimatedSeconds = 0.01
	}
	return rw
}

// whatBreaks is the one-sentence answer of im.
func whatBreaks(im Impact) string {
	from := "at once"
	if !im.RefusedFrom.IsZero() {
		from = "from " + im.RefusedFrom.Format(time.RFC3339)
	}
	n := fmt.Sprintf("%d %s from %d %s in the last 24 h", im.Refused, plural(im.Refused, "call", "calls"), im.RefusedCallers, plural(int64(im.RefusedCallers), "caller", "callers"))
	switch im.Action {
	case ImpactDisable:
		if im.State == StateAuthorized {
			return "Nothing is refused and nothing is re-wrapped: the customer managed key is not in use yet; its authorization and configuration are forgotten."
		}
		return "Nothing is refused: orgkms moves the org's root key back to the platform key and applications keep working; the customer managed key must stay usable until the move finishes."
	case ImpactReplace:
		return "Nothing is refused: orgkms re-wraps the org's root key with the new key and applications keep working; the old key must stay usable until the replacement finishes."
	case ImpactFallback:
		return fmt.Sprintf("Data encrypted before the fall back stays unrecoverable: its decrypts and rewraps fail with %s (%s); new data works at once.", fault.CMKDestroyed.Code(), n)
	case ImpactDecryptOnly:
		return fmt.Sprintf("Encrypt, rewrap and datakey calls are refused with %s %s (%s); decrypts keep working.", fault.OrgDecryptOnly.Code(), from, n)
	case ImpactRevoke:
		return fmt.Sprintf("Every call to the org's %d data %s is refused with %s %s (%s) until the org's key administrators lift the revocation.", len(im.Keys), plural(int64(len(im.Keys)), "key", "keys"), fault.OrgRevoked.Code(), from, n)
	case ImpactDeleteOrg:
		return fmt.Sprintf("Every call to the org's %d data %s is refused with %s at once (%s); after the waiting period the keys are destroyed and the org's data is unrecoverable.", len(im.Keys), plural(int64(len(im.Keys)), "key", "keys"), fault.OrgPendingDeletion.Code(), n)
	case ImpactDisableKey:
		return fmt.Sprintf("Every call to key %s is refused with %s at once (%s) until it is enabled again.", im.Key, fault.DataKeyDisabled.Code(), n)
	case ImpactDeleteKey:
		return fmt.Sprintf("Every call to key %s is refused with %s at once (%s); after the waiting period its versions are destroyed and its ciphertexts are unrecoverable.", im.Key, fault.DataKeyPendingDeletion.Code(), n)
	}
	return ""
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
