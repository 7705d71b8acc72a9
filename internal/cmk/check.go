package cmk

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// CheckStatus is the outcome of one check of Test Managed Key.
type CheckStatus string

const (
	Pass CheckStatus = "pass"
	Warn CheckStatus = "warn"
	Fail CheckStatus = "fail"
	Skip CheckStatus = "skip" // not run because an earlier check failed
)

// Check is one check of Test Managed Key.
type Check struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail"`
	Remedy string      `json:"remedy,omitempty"`
}

// Report is the result of Test Managed Key.
type Report struct {
	OK      bool          `json:"ok"` // no check failed (warnings allowed)
	Key     string        `json:"key,omitempty"`
	Version string        `json:"version,omitempty"` // the version that would be used
	Checks  []Check       `json:"checks"`
	Latency time.Duration `json:"-"`
}

// Count returns the number of checks with status st.
func (r Report) Count(st CheckStatus) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == st {
			n++
		}
	}
	return n
}

// Summary says in one line how Test Managed Key went: "All checks passed"
// only when every check passed, "Passed with 1 warning" when one warned,
// "2 of 13 checks failed" otherwise.
func (r Report) Summary() string {
	if !r.OK {
		return fmt.Sprintf("%d of %d checks failed", r.Count(Fail), len(r.Checks))
	}
	switch w := r.Count(Warn); w {
	case 0:
		return "All checks passed"
	case 1:
		return "Passed with 1 warning"
	default:
		return fmt.Sprintf("Passed with %d warnings", w)
	}
}

// FirstFailure describes the first failed check.
func (r Report) FirstFailure() string {
	for _, c := range r.Checks {
		if c.Status == Fail {
			return c.Name + ": " + c.Detail
		}
	}
	return ""
}

// SlowProbe is the round-trip latency above which Test Managed Key warns.
const SlowProbe = time.Second

// Test runs every check of Test Managed Key on the org's configured key.
// It never returns an error: each problem is a failed check with a remedy.
// The engine is the cloud's table ([Wording.Checks]): this function decides
// which outcome each check has, the table says it in the cloud's words.
func (s *Service) Test(ctx context.Context, orgID string) Report {
	ctx = budget.With(ctx, budget.Test, orgID) // the vault budget's class
	rep := Report{}
	rec, recErr := s.record(ctx, orgID)
	cloud := s.cloudOf(rec)
	if cloud == nil {
		err := s.requireCloud()
		rep.Checks = []Check{{ID: "consent", Name: "Consent granted", Status: Fail, Detail: fault.Message(err), Remedy: "ask the platform operator to enable customer managed keys"}}
		return rep
	}
	w := cloud.Wording()
	checks := make([]Check, len(w.Checks))
	for i, c := range w.Checks {
		checks[i] = Check{ID: c.ID, Name: c.Name, Status: Skip, Detail: "not run: fix the failures above first"}
	}
	vars := Vars{"org": orgID, "tag": OwnershipTag, "tenant": rec.TenantID, "vault_uri": rec.VaultURI, "key": rec.KeyName}
	// raw sets a check's result as given.
	raw := func(id string, st CheckStatus, detail, remedy string) {
		for i := range checks {
			if checks[i].ID == id {
				checks[i].Status, checks[i].Detail, checks[i].Remedy = st, detail, remedy
			}
		}
	}
	// set sets a check's result from the table's text for outcome.
	set := func(id string, st CheckStatus, outcome string) {
		t := Text{}
		if c := w.check(id); c != nil {
			t = c.Text(outcome)
		}
		raw(id, st, vars.Expand(t.Detail), vars.Expand(t.Remedy))
	}
	fail := func(id, outcome string, err error) {
		vars["error"] = fault.Message(err)
		vars["remedy"] = s.remedyFor(w, err, rec)
		set(id, Fail, outcome)
	}
	finish := func() Report {
		rep.Checks = checks
		rep.OK = !slices.ContainsFunc(checks, func(c Check) bool { return c.Status == Fail || c.Status == Skip && c.ID != "latency" })
		return rep
	}
	if !s.testAllowed(orgID) {
		raw("consent", Fail, "Test Managed Key was run too often for this org", "wait a few seconds and test again")
		return finish()
	}
	if recErr != nil {
		raw("consent", Fail, fault.Message(recErr), "retry in a moment")
		return finish()
	}
	if rec.ConsentedAt.IsZero() {
		set("consent", Fail, "fail:missing")
		return finish()
	}
	vars["by"], vars["at"] = rec.ConsentedBy, rec.ConsentedAt.Format("2006-01-02 15:04 MST")
	set("consent", Pass, "pass")
	ref, err := s.configuredRef(rec)
	if err != nil {
		set("configured", Fail, "fail")
		return finish()
	}
	rep.Key = cloud.KeyURI(ref)
	vars["configured_version"] = orElse(rec.KeyVersion, "latest (rotations are followed)")
	set("configured", Pass, "pass")
	keeper, err := s.cfg.Keepers.Keeper(ref)
	if err != nil {
		raw("token", Fail, fault.Message(err), "")
		return finish()
	}
	if err := keeper.CheckCredentials(ctx, ref); err != nil {
		if fault.KindOf(err) == fault.CMKConsentRevoked {
			// Consent was recorded, but the cloud says it is gone.
			fail("consent", "fail:revoked", err)
			fail("token", "fail:revoked", err)
			return finish()
		}
		fail("token", "fail", err)
		return finish()
	}
	set("token", Pass, "pass")

	start := time.Now()
	desc, err := keeper.Describe(ctx, ref.Unversioned())
	if err != nil {
		switch fault.KindOf(err) {
		case fault.Unavailable:
			fail("vault", "fail:unavailable", err)
		case fault.KeyNotFound:
			set("vault", Pass, "pass:answered")
			fail("key", "fail:not_found", err)
		case fault.PermissionDenied:
			set("vault", Pass, "pass:answered")
			fail("key", "fail:permission", err)
		default:
			fail("vault", "fail", err)
		}
		return finish()
	}
	latestRTT := time.Since(start)
	vars["rtt"] = latestRTT.Round(time.Millisecond).String()
	vars["current"] = desc.Key.Version
	set("vault", Pass, "pass")
	set("key", Pass, "pass")
	use := desc
	vars["version"] = ref.Version
	if ref.Version != "" && !strings.EqualFold(ref.Version, desc.Key.Version) {
		d, err := keeper.Describe(ctx, ref)
		if err != nil {
			fail("version", "fail", err)
			return finish()
		}
		use = d
		set("version", Pass, "pass:older")
	} else if ref.Version != "" {
		set("version", Pass, "pass:current")
	} else {
		set("version", Pass, "pass")
	}
	rep.Version = use.Key.Version
	vars["version"] = use.Key.Version
	now := s.now()
	switch {
	case !use.Enabled:
		set("enabled", Fail, "fail:disabled")
		return finish()
	case !use.NotBefore.IsZero() && now.Before(use.NotBefore):
		vars["date"] = use.NotBefore.UTC().Format(time.RFC3339)
		set("enabled", Fail, "fail:not_yet_active")
		return finish()
	case !use.Expires.IsZero() && !now.Before(use.Expires):
		vars["date"] = use.Expires.UTC().Format(time.RFC3339)
		set("enabled", Fail, "fail:expired")
		return finish()
	case !use.Expires.IsZero() && use.Expires.Sub(now) < 30*24*time.Hour:
		vars["date"] = use.Expires.UTC().Format(time.RFC3339)
		set("enabled", Warn, "warn")
	default:
		set("enabled", Pass, "pass")
	}
	// The cloud's own checks of the key's description, before the
	// operations.
	if !s.evaluate(w, "operations", use, vars, set) {
		return finish()
	}
	if w.MissingOperations != nil {
		if missing := w.MissingOperations(use); len(missing) > 0 {
			permitted := "none"
			if len(use.Operations) > 0 {
				permitted = strings.Join(use.Operations, ", ")
			}
			labels := make([]string, len(missing))
			for i, op := range missing {
				labels[i] = w.permission(op)
			}
			vars["missing"], vars["permitted"], vars["labels"] = strings.Join(missing, " and "), permitted, strings.Join(labels, " and ")
			set("operations", Fail, "fail")
			return finish()
		}
		set("operations", Pass, "pass")
	}
	// Proof that the customer means this key for this org: consent alone
	// cannot prove it (a consent callback carries no signed assertion, and
	// one tenant's vault may serve several customers of the platform).
	if ob, ok := cloud.(OrgBoundCloud); ok && !ob.OwnsKey(orgID, use.Key) || !ok && !taggedFor(use.Tags, orgID) {
		set("ownership", Fail, "fail")
		return finish()
	}
	set("ownership", Pass, "pass")
	probe := keeper.Probe(ctx, ref)
	rep.Latency = probe.Latency
	if !probe.OK() {
		if fe := fault.As(probe.Err); fe != nil && fe.Kind == fault.PermissionDenied {
			vars["permission"], vars["permission_label"] = fe.Permission, w.permission(fe.Permission)
			fail("roundtrip", "fail:permission", probe.Err)
		} else {
			fail("roundtrip", "fail", probe.Err)
		}
		return finish()
	}
	vars["version"] = probe.Wrapped.Version
	set("roundtrip", Pass, "pass")
	// The cloud's own checks after the round trip judge the key as
	// described unversioned (e.g. the vault's deletion protection).
	if !s.evaluate(w, "latency", desc, vars, set) {
		return finish()
	}
	vars["rtt"] = probe.Latency.Round(time.Millisecond).String()
	if probe.Latency > SlowProbe {
		set("latency", Warn, "warn")
	} else {
		set("latency", Pass, "pass")
	}
	return finish()
}

// evaluate runs the cloud's own checks (those with Evaluate) placed in the
// table right before the generic check before ("operations" or "latency");
// false when one failed.
func (s *Service) evaluate(w *Wording, before string, d masterkey.Description, vars Vars, set func(id string, st CheckStatus, outcome string)) bool {
	i := slices.IndexFunc(w.Checks, func(c CheckSpec) bool { return c.ID == before })
	if i < 0 {
		return true
	}
	for j := i - 1; j >= 0 && w.Checks[j].Evaluate != nil; j-- {
		i = j
	}
	for _, c := range w.Checks[i:] {
		if c.Evaluate == nil {
			break
		}
		st, outcome, more := c.Evaluate(d, vars)
		for k, v := range more {
			vars[k] = v
		}
		set(c.ID, st, outcome)
		if st == Fail {
			return false
		}
	}
	return true
}

// remedyFor suggests what the customer can do about err, in the cloud's
// words.
func (s *Service) remedyFor(w *Wording, err error, rec Record) string {
	return Vars{"tenant": rec.TenantID}.Expand(w.Remedies[fault.KindOf(err).Code()])
}

// OwnershipTag is the key tag by which a customer marks a key as theirs to
// use for an org: its value lists org IDs, separated by commas or spaces.
const OwnershipTag = "orgkms-org"

// taggedFor reports whether the ownership tag lists orgID. It walks the
// value in place: the probe asks it for every org on every check.
func taggedFor(tags map[string]string, orgID string) bool {
	rest := tags[OwnershipTag]
	for rest != "" {
		i := strings.IndexAny(rest, ", ;")
		if i < 0 {
			return rest == orgID
		}
		if rest[:i] == orgID {
			return true
		}
		rest = rest[i+1:]
	}
	return false
}

// Test Managed Key calls the customer's vault several times: each org may
// run it at most testBurst times at once, then once per testEvery, so no org
// can use up a vault's request budget that other orgs share.
const (
	testEvery = time.Second
	testBurst = 10
)

func (s *Service) testAllowed(orgID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.testLimits == nil || len(s.testLimits) > 100_000 {
		s.testLimits = map[string]*rate.Limiter{}
	}
	l, ok := s.testLimits[orgID]
	if !ok {
		l = rate.NewLimiter(rate.Every(testEvery), testBurst)
		s.testLimits[orgID] = l
	}
	return l.AllowN(s.now(), 1)
}
