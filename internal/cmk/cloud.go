package cmk

import (
	"strings"

	"github.com/orgkms/orgkms/internal/masterkey"
)

// Cloud is the customer-facing side of one cloud's key service: how a
// customer authorizes orgkms, the fields by which they name a key, and the
// wording of every check and revocation in the customer's own console's
// words. The lifecycle in this package knows no cloud: a cloud is a package
// of its own (internal/cmk/azurecloud) that implements Cloud over its
// masterkey driver, and the server offers the clouds of cmk.clouds.
type Cloud interface {
	// Name is the cloud's name, e.g. "azure" (the value of cmk.clouds and
	// of the API's cloud field).
	Name() string
	// DisplayName is the cloud's name for people, e.g. "Azure Key Vault".
	DisplayName() string
	// Scheme is the master-key scheme of the cloud's keys (e.g. "azurekv"):
	// a record's key URI names its cloud by it.
	Scheme() string

	// Authorization says how a customer authorizes orgkms for org.
	Authorization(orgID string) Authorization
	// NormalizeTenant validates and normalizes the account the customer
	// authorizes orgkms in (Azure: the Entra ID tenant), with an error
	// naming the field in the customer's words.
	NormalizeTenant(tenant string) (string, error)
	// ConsentURL is the page where the customer's administrator authorizes
	// orgkms in tenant; it redirects to redirectURI with state. Only called
	// when Authorization().Method is [AuthConsent].
	ConsentURL(tenant, state, redirectURI string) string

	// Fields are the fields a customer enters to name a key, in order.
	Fields() []Field
	// ParseKey validates and normalizes the fields a customer entered
	// (keyed by Field.Name; absent means empty) into the key's master-key
	// ref (unversioned when no version is given) and its location. Errors
	// are *fault.Error of kind Invalid naming the field.
	ParseKey(fields map[string]string, tenant string) (masterkey.Ref, KeyLocation, error)
	// KeyFields are the fields of a configured key, as the customer would
	// enter them again (the inverse of ParseKey).
	KeyFields(loc KeyLocation, version string) map[string]string
	// KeyURI renders ref as a master-key URI.
	KeyURI(ref masterkey.Ref) string
	// Locate splits a master-key URI of one of the cloud's keys into where
	// the key lives, as the customer names it.
	Locate(uri string) (KeyLocation, bool)

	// Wording is the cloud's table of Test Managed Key checks and its
	// revocation reasons.
	Wording() *Wording
	// Rotated reports whether desc (the key's current state, described
	// unversioned) shows a new key version to follow, the org's key being
	// at version active.
	Rotated(active string, desc masterkey.Description) bool
}

// OrgBoundCloud is a [Cloud] whose key refs name the org themselves (AWS:
// orgkms assumes the customer's role with the org's external ID, which the
// role's trust policy requires). ParseOrgKey replaces ParseKey at
// configure, and OwnsKey replaces the ownership tag: the ref itself proves
// the customer means the key for the org.
type OrgBoundCloud interface {
	Cloud
	ParseOrgKey(orgID string, fields map[string]string, tenant string) (masterkey.Ref, KeyLocation, error)
	// OwnsKey reports whether key (as described) is bound to orgID.
	OwnsKey(orgID string, key masterkey.Ref) bool
}

// PendingDeletionCloud is a [Cloud] whose keys are still described while
// their deletion is scheduled (AWS KMS: state PendingDeletion, unusable
// until CancelKeyDeletion). PendingDeletion tells such a key from a
// disabled one by its description; the probe then gives [ReasonDeleted]
// with the date the driver's DeletedKey reports.
type PendingDeletionCloud interface {
	Cloud
	PendingDeletion(d masterkey.Description) bool
}

// parseKey parses the fields of cloud's key for orgID.
func parseKey(cloud Cloud, orgID string, fields map[string]string, tenant string) (masterkey.Ref, KeyLocation, error) {
	if ob, ok := cloud.(OrgBoundCloud); ok {
		return ob.ParseOrgKey(orgID, fields, tenant)
	}
	return cloud.ParseKey(fields, tenant)
}

// AuthMethod is how a customer authorizes orgkms.
type AuthMethod string

const (
	// AuthConsent: an administrator grants consent on the cloud's page
	// (Azure admin consent), orgkms receives a callback.
	AuthConsent AuthMethod = "consent"
	// AuthGrant: the customer grants orgkms access in their own console
	// (an IAM role trusting orgkms with an external ID, a grant to orgkms'
	// service account) following Instructions; there is no Authorize step:
	// Configure records the authorization for the account of the key
	// (KeyLocation.Tenant), and Test Managed Key proves it.
	AuthGrant AuthMethod = "grant"
)

// Authorization is how a customer authorizes orgkms in one cloud. Its
// texts are the customer's console's words; they may mark `code` spans
// with backquotes and name the org as {org}.
type Authorization struct {
	Method AuthMethod
	// Service names where the customer's key lives, e.g. "Azure Key Vault
	// or Managed HSM".
	Service string
	// TenantLabel names the account authorized, e.g. "Tenant ID";
	// TenantHelp says where to find it, TenantMissing what to enter when
	// it is missing (consent only).
	TenantLabel   string
	TenantHelp    string
	TenantMissing string
	// Instructions say what the customer does to authorize orgkms.
	Instructions string
	// Access says what the customer grants orgkms on the key afterwards.
	Access string
	// Values are what the customer must copy into their console (AWS: the
	// external ID of the org; Google: orgkms' service account).
	Values []Value
}

// Value is one value shown to the customer.
type Value struct {
	Name  string
	Label string
	Value string
}

// Field is one field a customer enters to name a key. Help may mark
// `code` spans with backquotes and name the org as {org}.
type Field struct {
	Name     string // API and CLI spelling, e.g. "vault_uri"
	Label    string
	Help     string
	Example  string
	Required bool
	// Version marks the field of the key version (empty = follow the
	// latest).
	Version bool
	// URL marks a field holding a URL; Size is the input's width in
	// characters (0: the browser's default). For forms only.
	URL  bool
	Size int
}

// KeyLocation is where a customer's key lives, as the customer names it.
type KeyLocation struct {
	// Container is the canonical spelling of the key's container (Azure:
	// the vault URI https://contoso-kv.vault.azure.net/): two spellings of
	// one container give the same string.
	Container string
	// Short is the container's short name (Azure: contoso-kv).
	Short  string
	Name   string // the key's name, e.g. orgkms-cmk
	Tenant string
}

// Text is one message of a check or a reason, with its remedy. Both may
// name values as {name}, replaced from the [Vars] of the call.
type Text struct {
	Detail string
	Remedy string
}

// Vars are the values the texts of a [Wording] may name: {org}, {tenant},
// {vault} (short name), {vault_uri}, {key}, {version}, {tag}, {error},
// {date}, ... Missing names are left as they are.
type Vars map[string]string

// Expand replaces every {name} of s by its value in v.
func (v Vars) Expand(s string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	pairs := make([]string, 0, 2*len(v))
	for k, val := range v {
		pairs = append(pairs, "{"+k+"}", val)
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// CheckSpec is one check of Test Managed Key in a cloud's table.
type CheckSpec struct {
	ID       string // stable: the console and CLI key on it
	Name     string
	Verifies string // what the check verifies, in one sentence
	// Outcomes are the check's texts by outcome, keyed "pass", "warn",
	// "fail" or "fail:CASE" (a particular failure the engine names, e.g.
	// "fail:not_found"); a missing text falls back to "fail" or "pass".
	Outcomes map[string]Text
	// Evaluate, when set, judges the key's description (the check is the
	// cloud's own, e.g. key type or soft delete): it returns the outcome
	// and the texts' values. The engine stops at a failure.
	Evaluate func(d masterkey.Description, v Vars) (CheckStatus, string, Vars)
}

// Wording is a cloud's table of checks and its reasons.
type Wording struct {
	// Checks are the checks of Test Managed Key in order. The engine runs
	// the generic checks by ID: consent, configured, token, vault, key,
	// version, enabled, operations, ownership, roundtrip, latency; any
	// other check must have Evaluate.
	Checks []CheckSpec
	// Reasons are the texts the probe and the service give the customer
	// when their key is unusable, keyed by [Reason]; Remedies suggest what
	// to do about an error, keyed by its fault kind code.
	Reasons  map[Reason]string
	Remedies map[string]string
	// Permission labels a driver's permission name (fault.Error.Permission)
	// in the customer's console's words, e.g. wrapKey → "Wrap Key".
	Permission func(p string) string
	// Operations lists the key operations that the description does not
	// permit (none when it reports no restriction), for the check
	// "operations"; nil means the cloud has no such restriction.
	MissingOperations func(d masterkey.Description) []string
}

// Reason names one text of [Wording.Reasons].
type Reason string

// The reasons orgkms gives for an unusable key.
const (
	ReasonDisabled        Reason = "disabled"          // {key} {vault} {version}
	ReasonNotYetActive    Reason = "not_yet_active"    // {key} {vault} {version} {date}
	ReasonExpired         Reason = "expired"           // {key} {vault} {version} {date}
	ReasonUntagged        Reason = "untagged"          // {key} {vault} {version} {active} {tag} {org}
	ReasonPermissionLost  Reason = "permission_lost"   // {permission} {key} {vault}
	ReasonUnauthorized    Reason = "unauthorized"      // {tenant} {error}
	ReasonDeleted         Reason = "deleted"           // {key} {vault} {date} (recoverable until)
	ReasonDeletedUnknown  Reason = "deleted_unknown"   // {key} {vault} {error}
	ReasonDeletedUnlisted Reason = "deleted_unlisted"  // {key} {vault}
	ReasonPurged          Reason = "purged"            // {key} {vault} {date} (absent since)
	ReasonNoKeyConfigured Reason = "no_key_configured" // enable or test before configure
)

// Text returns the check's text for outcome ("pass", "warn", "fail" or
// "fail:CASE"), falling back from "fail:CASE" to "fail".
func (c CheckSpec) Text(outcome string) Text {
	if t, ok := c.Outcomes[outcome]; ok {
		return t
	}
	if i := strings.IndexByte(outcome, ':'); i > 0 {
		return c.Outcomes[outcome[:i]]
	}
	return Text{}
}

// check returns the spec of check id, or nil.
func (w *Wording) check(id string) *CheckSpec {
	for i := range w.Checks {
		if w.Checks[i].ID == id {
			return &w.Checks[i]
		}
	}
	return nil
}

// reason returns the expanded text of r.
func (w *Wording) reason(r Reason, v Vars) string { return v.Expand(w.Reasons[r]) }

func (w *Wording) permission(p string) string {
	if w.Permission == nil {
		return p
	}
	return w.Permission(p)
}

// cloudOf returns the cloud of rec: the one whose scheme its key has, else
// the first offered (nil when none is).
func (s *Service) cloudOf(rec Record) Cloud {
	for _, uri := range []string{rec.ActiveKeyURI, rec.KeyURI} {
		scheme, _, ok := strings.Cut(uri, ":")
		if !ok {
			continue
		}
		for _, c := range s.cfg.Clouds {
			if c.Scheme() == scheme {
				return c
			}
		}
	}
	if len(s.cfg.Clouds) == 0 {
		return nil
	}
	return s.cfg.Clouds[0]
}

// Clouds returns the clouds offered, the default first.
func (s *Service) Clouds() []Cloud { return s.cfg.Clouds }

// Cloud returns the offered cloud named name ("" = the default), or nil.
func (s *Service) Cloud(name string) Cloud {
	for _, c := range s.cfg.Clouds {
		if name == "" || c.Name() == name {
			return c
		}
	}
	return nil
}

// locate splits a master-key URI with the cloud of its scheme.
func (s *Service) locate(uri string) (KeyLocation, bool) {
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok {
		return KeyLocation{}, false
	}
	for _, c := range s.cfg.Clouds {
		if c.Scheme() == scheme {
			return c.Locate(uri)
		}
	}
	return KeyLocation{}, false
}

// rotated reports whether desc shows a new version of the org's active key
// to follow, by its cloud's rule (a different current version when no
// cloud is offered any more).
func (s *Service) rotated(rec Record, desc masterkey.Description) bool {
	if c := s.cloudOf(rec); c != nil {
		return c.Rotated(rec.ActiveVersion, desc)
	}
	return !strings.EqualFold(desc.Key.Version, rec.ActiveVersion)
}
