package cmk

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/orgkms/orgkms/internal/fault"
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

// The checks, in order. IDs are stable (the console and CLI key on them).
var checkNames = []struct{ id, name string }{
	{"consent", "Consent granted"},
	{"configured", "Key configured"},
	{"token", "Token obtained"},
	{"vault", "Vault reachable"},
	{"key", "Key exists"},
	{"version", "Key version"},
	{"enabled", "Key enabled and within its dates"},
	{"type", "Key type and size"},
	{"operations", "Permitted operations"},
	{"ownership", "Key tagged for this org"},
	{"roundtrip", "Wrap and unwrap round trip"},
	{"deletion", "Soft delete and purge protection"},
	{"latency", "Latency"},
}

// SlowProbe is the round-trip latency above which Test Managed Key warns.
const SlowProbe = time.Second

// Test runs every check of Test Managed Key on the org's configured key.
// It never returns an error: each problem is a failed check with a remedy.
func (s *Service) Test(ctx context.Context, orgID string) Report {
	checks := make([]Check, len(checkNames))
	for i, c := range checkNames {
		checks[i] = Check{ID: c.id, Name: c.name, Status: Skip, Detail: "not run: fix the failures above first"}
	}
	set := func(id string, st CheckStatus, detail, remedy string) {
		for i := range checks {
			if checks[i].ID == id {
				checks[i].Status, checks[i].Detail, checks[i].Remedy = st, detail, remedy
			}
		}
	}
	rep := Report{}
	finish := func() Report {
		rep.Checks = checks
		rep.OK = !slices.ContainsFunc(checks, func(c Check) bool { return c.Status == Fail || c.Status == Skip && c.ID != "latency" })
		return rep
	}
	if err := s.requireCloud(); err != nil {
		set("consent", Fail, fault.Message(err), "ask the platform operator to enable customer managed keys")
		return finish()
	}
	if !s.testAllowed(orgID) {
		set("consent", Fail, "Test Managed Key was run too often for this org", "wait a few seconds and test again")
		return finish()
	}
	rec, err := s.record(ctx, orgID)
	if err != nil {
		set("consent", Fail, fault.Message(err), "retry in a moment")
		return finish()
	}
	if rec.ConsentedAt.IsZero() {
		set("consent", Fail, "orgkms is not authorized in your Entra ID tenant", "complete Step 1: enter your tenant ID and click Authorize, then accept as an administrator of the tenant")
		return finish()
	}
	set("consent", Pass, fmt.Sprintf("granted in tenant %s by %s on %s", rec.TenantID, rec.ConsentedBy, rec.ConsentedAt.Format("2006-01-02 15:04 MST")), "")
	ref, err := s.configuredRef(rec)
	if err != nil {
		set("configured", Fail, "no key is configured", "complete Step 2: enter the Key Vault URI, key name and (optionally) key version")
		return finish()
	}
	rep.Key = s.cfg.Cloud.KeyURI(ref)
	set("configured", Pass, fmt.Sprintf("vault %s, key %s, version %s", rec.VaultURI, rec.KeyName, orElse(rec.KeyVersion, "latest (rotations are followed)")), "")
	keeper, err := s.cfg.Keepers.Keeper(ref)
	if err != nil {
		set("token", Fail, fault.Message(err), "")
		return finish()
	}
	if err := keeper.CheckCredentials(ctx, ref); err != nil {
		if fault.KindOf(err) == fault.CMKConsentRevoked {
			// Consent was recorded, but Entra ID says it is gone.
			set("consent", Fail, fault.Message(err), remedyFor(err, rec))
			set("token", Fail, "no token: orgkms is not authorized in tenant "+rec.TenantID, "")
			return finish()
		}
		set("token", Fail, fault.Message(err), remedyFor(err, rec))
		return finish()
	}
	set("token", Pass, "orgkms obtained a token in tenant "+rec.TenantID, "")

	start := time.Now()
	desc, err := keeper.Describe(ctx, ref.Unversioned())
	if err != nil {
		switch fault.KindOf(err) {
		case fault.Unavailable:
			set("vault", Fail, fault.Message(err), "check the Key Vault URI, and that the vault's firewall allows orgkms")
		case fault.KeyNotFound:
			set("vault", Pass, "vault "+rec.VaultURI+" answered", "")
			set("key", Fail, fault.Message(err), "check the key name (Key Vault → Keys); if it was deleted, recover it")
		case fault.PermissionDenied:
			set("vault", Pass, "vault "+rec.VaultURI+" answered", "")
			set("key", Fail, fault.Message(err), "add the Get and List key permissions for orgkms in the vault's access policies")
		default:
			set("vault", Fail, fault.Message(err), remedyFor(err, rec))
		}
		return finish()
	}
	latestRTT := time.Since(start)
	set("vault", Pass, "vault "+rec.VaultURI+" answered in "+latestRTT.Round(time.Millisecond).String(), "")
	set("key", Pass, "key "+rec.KeyName+" exists; current version "+desc.Key.Version, "")
	use := desc
	if ref.Version != "" && !strings.EqualFold(ref.Version, desc.Key.Version) {
		d, err := keeper.Describe(ctx, ref)
		if err != nil {
			set("version", Fail, fault.Message(err), "check the key version (Key Vault → Keys → "+rec.KeyName+" → versions), or leave it empty to use the latest")
			return finish()
		}
		use = d
		set("version", Pass, "version "+ref.Version+" exists; orgkms will start with it and follow newer versions", "")
	} else if ref.Version != "" {
		set("version", Pass, "version "+ref.Version+" is the current version", "")
	} else {
		set("version", Pass, "using the current version "+desc.Key.Version+"; orgkms follows rotations automatically", "")
	}
	rep.Version = use.Key.Version
	now := s.now()
	switch {
	case !use.Enabled:
		set("enabled", Fail, "version "+use.Key.Version+" is disabled", "enable the key version in the Azure portal (Keys → "+rec.KeyName+" → version → Enabled)")
		return finish()
	case !use.NotBefore.IsZero() && now.Before(use.NotBefore):
		set("enabled", Fail, "version "+use.Key.Version+" is not active until "+use.NotBefore.UTC().Format(time.RFC3339), "clear or move the activation date of the key version")
		return finish()
	case !use.Expires.IsZero() && !now.Before(use.Expires):
		set("enabled", Fail, "version "+use.Key.Version+" expired on "+use.Expires.UTC().Format(time.RFC3339), "set a later expiration date, or rotate the key")
		return finish()
	case !use.Expires.IsZero() && use.Expires.Sub(now) < 30*24*time.Hour:
		set("enabled", Warn, "version "+use.Key.Version+" expires on "+use.Expires.UTC().Format(time.RFC3339), "rotate the key or extend its expiration date before then; an expired key cannot wrap")
	default:
		set("enabled", Pass, "enabled, no date restriction blocks use", "")
	}
	switch {
	case use.KeyType == "oct-HSM" && use.KeySize >= 256:
		set("type", Pass, "oct-HSM AES-256 (Managed HSM), wrapped with A256KW", "")
	case (use.KeyType == "RSA" || use.KeyType == "RSA-HSM") && use.KeySize >= 2048:
		set("type", Pass, fmt.Sprintf("%s %d-bit, wrapped with RSA-OAEP-256", use.KeyType, use.KeySize), "")
	case use.KeyType == "RSA" || use.KeyType == "RSA-HSM":
		set("type", Fail, fmt.Sprintf("%s %d-bit is too small", use.KeyType, use.KeySize), "create an RSA key of 2048 bits or more")
		return finish()
	default:
		set("type", Fail, "key type "+use.KeyType+" cannot wrap keys", "use an RSA (2048 bits or more) or RSA-HSM key, or an oct-HSM key in a Managed HSM")
		return finish()
	}
	if missing := missingOperations(use.Operations); len(missing) > 0 {
		permitted := "none"
		if len(use.Operations) > 0 {
			permitted = strings.Join(use.Operations, ", ")
		}
		labels := make([]string, len(missing))
		for i, op := range missing {
			labels[i] = permissionLabel(op)
		}
		set("operations", Fail,
			fmt.Sprintf("version %s of key %s does not permit %s (its permitted operations: %s)", use.Key.Version, rec.KeyName, strings.Join(missing, " and "), permitted),
			fmt.Sprintf("add %s to the permitted operations of key %s (Keys → %s → version → Permitted operations), then test again", strings.Join(labels, " and "), rec.KeyName, rec.KeyName))
		return finish()
	}
	set("operations", Pass, "wrapKey and unwrapKey are permitted", "")
	// Proof that the customer means this key for this org: consent alone
	// cannot prove it (a consent callback carries no signed assertion, and
	// one tenant's vault may serve several customers of the platform).
	if !taggedFor(use.Tags, orgID) {
		set("ownership", Fail, fmt.Sprintf("version %s of key %s has no tag %s naming org %s", use.Key.Version, rec.KeyName, OwnershipTag, orgID),
			fmt.Sprintf("in the Azure portal, open Keys → %s → version %s → Tags and add %s = %s (several orgs: separate their IDs with commas)", rec.KeyName, use.Key.Version, OwnershipTag, orgID))
		return finish()
	}
	set("ownership", Pass, fmt.Sprintf("tag %s names org %s", OwnershipTag, orgID), "")
	probe := keeper.Probe(ctx, ref)
	rep.Latency = probe.Latency
	if !probe.OK() {
		detail := fault.Message(probe.Err)
		remedy := remedyFor(probe.Err, rec)
		if fe := fault.As(probe.Err); fe != nil && fe.Kind == fault.PermissionDenied {
			detail = "permission missing: " + fe.Permission
			remedy = "add the " + permissionLabel(fe.Permission) + " key permission for orgkms in the vault's access policies (or assign Key Vault Crypto Service Encryption User)"
		}
		set("roundtrip", Fail, detail, remedy)
		return finish()
	}
	set("roundtrip", Pass, "wrapped and unwrapped a test key with version "+probe.Wrapped.Version, "")
	switch {
	case desc.SoftDeleteDays == 0:
		set("deletion", Warn, "soft delete is off: deleting the key would destroy the org's data at once", "turn on soft delete and purge protection for the vault")
	case !desc.PurgeProtection:
		set("deletion", Warn, fmt.Sprintf("soft delete keeps deleted keys for %d days, but purge protection is off: a purge would destroy the org's data", desc.SoftDeleteDays), "turn on purge protection for the vault (Properties → Purge protection)")
	default:
		set("deletion", Pass, fmt.Sprintf("soft delete (%d days) and purge protection are on", desc.SoftDeleteDays), "")
	}
	if probe.Latency > SlowProbe {
		set("latency", Warn, "a round trip took "+probe.Latency.Round(time.Millisecond).String(), "a vault in a region near orgkms keeps activation and rotation fast")
	} else {
		set("latency", Pass, "a round trip took "+probe.Latency.Round(time.Millisecond).String(), "")
	}
	return finish()
}

// missingOperations returns the key operations orgkms needs that ops (a
// key's key_ops) lacks; none when ops is nil (the vault reported no
// restriction).
func missingOperations(ops []string) []string {
	if ops == nil {
		return nil
	}
	var missing []string
	for _, need := range []string{"wrapKey", "unwrapKey"} {
		if !slices.ContainsFunc(ops, func(op string) bool { return strings.EqualFold(op, need) }) {
			missing = append(missing, need)
		}
	}
	return missing
}

func permissionLabel(p string) string {
	switch p {
	case "wrapKey":
		return "Wrap Key"
	case "unwrapKey":
		return "Unwrap Key"
	case "get":
		return "Get"
	case "list":
		return "List"
	}
	return p
}

// remedyFor suggests what the customer can do about err.
func remedyFor(err error, rec Record) string {
	switch fault.KindOf(err) {
	case fault.CredentialsInvalid, fault.CMKConsentRevoked:
		return "authorize orgkms again in tenant " + rec.TenantID + " (Step 1), as an administrator of that tenant"
	case fault.PermissionDenied:
		return "grant orgkms Get, List, Wrap Key and Unwrap Key in the vault's access policies"
	case fault.KeyDisabled:
		return "enable the key in the Azure portal"
	case fault.KeyNotFound:
		return "check the key name and version; recover the key if it was deleted"
	case fault.Unavailable:
		return "retry in a moment; if it persists, check the vault's firewall and the Key Vault URI"
	}
	return ""
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
