// Package gcpcloud is the Google Cloud cloud of customer managed keys:
// symmetric keys in Google Cloud KMS (driver internal/masterkey/gcpkms),
// authorized by a grant to orgkms' service account on the key. It supplies
// package cmk with the field a customer enters, the checks of Test Managed
// Key and the revocation reasons, all in the Google Cloud console's words.
//
// It imports the gcpkms driver, and so the Google Cloud client: the server
// builds it only where the driver is built (not with -tags no_gcpkms).
package gcpcloud

import (
	"fmt"
	"strings"

	"github.com/orgkms/orgkms/internal/cmk"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
	"github.com/orgkms/orgkms/internal/masterkey/gcpkms"
)

// Name is the cloud's name in cmk.clouds and the API.
const Name = "gcp"

// The roles a customer grants orgkms' service account on the key.
const (
	RoleEncrypterDecrypter = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
	RoleViewer             = "roles/cloudkms.viewer"
)

// Cloud is the [cmk.Cloud] of Google Cloud KMS with a grant to orgkms'
// service account.
type Cloud struct {
	// ServiceAccount is the e-mail of the service account orgkms calls
	// Cloud KMS as (cmk.gcp.service_account): the principal the customer
	// grants the roles to.
	ServiceAccount string
	// AllowedLocations are the Cloud KMS locations accepted
	// (cmk.gcp.allowed_locations); empty: any.
	AllowedLocations []string
}

var (
	_ cmk.Cloud                = Cloud{}
	_ cmk.PendingDeletionCloud = Cloud{}
)

// Name returns "gcp".
func (Cloud) Name() string { return Name }

// DisplayName returns "Google Cloud KMS".
func (Cloud) DisplayName() string { return "Google Cloud KMS" }

// Scheme returns the gcpkms master-key scheme.
func (Cloud) Scheme() string { return gcpkms.Scheme }

// Authorization is a grant, in the customer's Cloud console, of two roles
// on the key to orgkms' service account: Encrypter/Decrypter for the data
// plane, Viewer for the state checks (the driver reads the key and its
// versions: cloudkms.cryptoKeys.get, cloudkms.cryptoKeyVersions.get).
func (c Cloud) Authorization(string) cmk.Authorization {
	return cmk.Authorization{Method: cmk.AuthGrant, Service: "Google Cloud KMS",
		TenantLabel: "Project",
		TenantHelp:  "The project of the key ring, as in the key's resource name (projects/PROJECT/...).",
		Instructions: "In the Google Cloud console, open Security → Key Management → your key ring → your key → Permissions → Grant access. " +
			"Under New principals enter orgkms' service account `" + c.ServiceAccount + "`, and assign the role Cloud KMS CryptoKey Encrypter/Decrypter (`" + RoleEncrypterDecrypter + "`). " +
			"Click Add another role, assign Cloud KMS Viewer (`" + RoleViewer + "`), and Save.",
		Access: "Cloud KMS CryptoKey Encrypter/Decrypter lets orgkms encrypt and decrypt the org's root key with your key (with additional authenticated data naming the org); " +
			"Cloud KMS Viewer lets it read the key's state, so it notices a disabled version or a new primary version. " +
			"Then add the label `orgkms-org = {org}` to the key (Security → Key Management → key ring → key → Edit labels): it proves the key is meant for this org.",
		Values: []cmk.Value{{Name: "service_account", Label: "orgkms service account", Value: c.ServiceAccount}}}
}

// NormalizeTenant validates a project ID or number.
func (Cloud) NormalizeTenant(tenant string) (string, error) {
	tenant = strings.TrimSpace(tenant)
	if _, err := gcpkms.ParseKeyName("projects/"+tenant+"/locations/global/keyRings/r/cryptoKeys/k", nil); err != nil {
		return "", &fault.Error{Kind: fault.Invalid, Field: "project", Reason: "the project must be a Google Cloud project ID (6-30 lowercase letters, digits and hyphens, starting with a letter) or a project number"}
	}
	return tenant, nil
}

// ConsentURL is never called: a grant has no consent page.
func (Cloud) ConsentURL(string, string, string) string { return "" }

// The fields a customer enters.
const (
	FieldKeyName    = "key_name"
	FieldKeyVersion = "key_version"
)

// Fields are the key's resource name and an optional version.
func (Cloud) Fields() []cmk.Field {
	return []cmk.Field{
		{Name: FieldKeyName, Label: "Key resource name", Required: true, Size: 90,
			Example: "projects/acme-prod/locations/europe-west4/keyRings/orgkms/cryptoKeys/orgkms-cmk",
			Help:    "Security → Key Management → key ring → key → ⋮ → Copy resource name. A symmetric encrypt/decrypt key (purpose ENCRYPT_DECRYPT). A copied version name (…/cryptoKeyVersions/N) is accepted: orgkms starts with that version."},
		{Name: FieldKeyVersion, Label: "Key version", Version: true, Size: 10, Example: "1",
			Help: "Leave empty to follow the primary version: when the key rotates, orgkms moves to the new primary version by itself. A given version is where orgkms starts; it then follows newer primary versions."},
	}
}

// ParseKey validates a Cloud KMS key resource name (a pasted
// CryptoKeyVersion name is split into the key and its version) and the
// optional version.
func (c Cloud) ParseKey(fields map[string]string, _ string) (masterkey.Ref, cmk.KeyLocation, error) {
	for name := range fields {
		if name != FieldKeyName && name != FieldKeyVersion {
			return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: name, Reason: fmt.Sprintf("a Google Cloud KMS key has no field %q: give key_name and optionally key_version", name)}
		}
	}
	name := strings.TrimSpace(fields[FieldKeyName])
	if name == "" {
		return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: FieldKeyName, Reason: "enter the key's resource name (Security → Key Management → key ring → key → ⋮ → Copy resource name)"}
	}
	k, err := gcpkms.ParseKeyName(name, c.AllowedLocations)
	if err != nil {
		return masterkey.Ref{}, cmk.KeyLocation{}, err
	}
	if v := strings.TrimSpace(fields[FieldKeyVersion]); v != "" {
		if k.Version != "" && k.Version != v {
			return masterkey.Ref{}, cmk.KeyLocation{}, &fault.Error{Kind: fault.Invalid, Field: FieldKeyVersion, Reason: fmt.Sprintf("the key resource name names version %s, the key version field %s: give one", k.Version, v)}
		}
		k.Version = v
		if k, err = gcpkms.ParseKeyName(k.VersionName(), c.AllowedLocations); err != nil {
			return masterkey.Ref{}, cmk.KeyLocation{}, err
		}
	}
	return k.Ref(), locationOf(k), nil
}

// locationOf is where k lives: Container the key ring's resource name,
// Short the key ring, Name the key, Tenant the project.
func locationOf(k gcpkms.KeyName) cmk.KeyLocation {
	return cmk.KeyLocation{Container: "projects/" + k.Project + "/locations/" + k.Location + "/keyRings/" + k.KeyRing,
		Short: k.KeyRing, Name: k.CryptoKey, Tenant: k.Project}
}

// KeyFields returns the fields of a configured key.
func (Cloud) KeyFields(loc cmk.KeyLocation, version string) map[string]string {
	return map[string]string{FieldKeyName: loc.Container + "/cryptoKeys/" + loc.Name, FieldKeyVersion: version}
}

// KeyURI renders a gcpkms ref.
func (Cloud) KeyURI(ref masterkey.Ref) string { return ref.Unversioned().String() }

// Locate splits a master-key URI of a customer key
// (gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[#V]) into its key
// ring and key.
func (Cloud) Locate(uri string) (cmk.KeyLocation, bool) {
	ref, err := gcpkms.ParseRef(uri, nil)
	if err != nil {
		return cmk.KeyLocation{}, false
	}
	k, err := gcpkms.KeyOf(ref, nil)
	if err != nil {
		return cmk.KeyLocation{}, false
	}
	return locationOf(k), true
}

// Rotated: a rotation in Cloud KMS makes a new version primary; Describe
// of the unversioned key names the primary version.
func (Cloud) Rotated(active string, desc masterkey.Description) bool {
	return desc.Key.Version != "" && desc.Key.Version != active
}

// Wording returns the Google Cloud table of checks and reasons.
func (Cloud) Wording() *cmk.Wording { return &wording }

// Where names a key as the Google Cloud console does: in its key ring, of
// its project.
func (Cloud) Where(loc cmk.KeyLocation) string {
	return "Google Cloud KMS key " + loc.Name + " in key ring " + loc.Short + " of project " + loc.Tenant
}

// VersionLabel labels the key version in use.
func (Cloud) VersionLabel() string { return "Current key version" }

// PendingDeletion: a version that is not Enabled may be scheduled for
// destruction (DESTROY_SCHEDULED, restorable until its destroy time); the
// driver's DeletedKey tells it from a DISABLED one, so the probe's reason
// names the destroy date, like the data plane's error.
func (Cloud) PendingDeletion(d masterkey.Description) bool { return !d.Enabled }
