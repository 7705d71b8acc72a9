package awskms

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Scheme is the URI scheme of this driver.
const Scheme = "awskms"

var (
	partitionRe  = regexp.MustCompile(`^aws(-cn|-us-gov|-iso|-iso-b|-iso-e|-iso-f|-eusc)?$`)
	regionRe     = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	accountRe    = regexp.MustCompile(`^[0-9]{12}$`)
	keyIDRe      = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$`)
	roleNameRe   = regexp.MustCompile(`^[A-Za-z0-9+=,.@_/-]{1,512}$`)
	externalIDRe = regexp.MustCompile(`^[A-Za-z0-9_+=,.@:/\\-]+$`)
	materialRe   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// KeyARN is a parsed, normalized AWS KMS key ARN,
// arn:PARTITION:kms:REGION:ACCOUNT:key/KEY-ID.
type KeyARN struct {
	Partition string // aws, aws-cn, aws-us-gov, ...
	Region    string // e.g. eu-west-2
	Account   string // 12 digits
	KeyID     string // a lowercase UUID, or mrk-... for a multi-Region key
}

// String returns the ARN.
func (a KeyARN) String() string {
	return "arn:" + a.Partition + ":kms:" + a.Region + ":" + a.Account + ":key/" + a.KeyID
}

func invalid(field, reason string) error {
	return &fault.Error{Kind: fault.Invalid, Field: field, Reason: reason}
}

const keyARNForm = "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (copy the ARN from the key's page in the AWS KMS console)"

// ParseKeyARN parses and normalizes a key ARN as a customer enters it:
// surrounding space and the case of the key ID do not matter. It refuses
// aliases (an alias can be repointed at another key), bare key IDs (they
// name no Region or account) and, when allowedRegions is not empty, a
// Region not in it. Errors are Kind Invalid, field key_arn.
func ParseKeyARN(s string, allowedRegions []string) (KeyARN, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "alias/") || strings.Contains(s, ":alias/") {
		return KeyARN{}, invalid("key_arn", "an alias is not accepted, because it can be repointed at another key: give the key ARN, "+keyARNForm)
	}
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" {
		if keyIDRe.MatchString(strings.ToLower(s)) {
			return KeyARN{}, invalid("key_arn", "a bare key ID names no Region or account: give the key ARN, "+keyARNForm)
		}
		return KeyARN{}, invalid("key_arn", "the key ARN must look like "+keyARNForm)
	}
	a := KeyARN{Partition: parts[1], Region: parts[3], Account: parts[4]}
	id, ok := strings.CutPrefix(parts[5], "key/")
	if !ok {
		return KeyARN{}, invalid("key_arn", "the key ARN must name a key (…:key/KEY-ID), e.g. "+keyARNForm)
	}
	a.KeyID = strings.ToLower(id)
	switch {
	case !partitionRe.MatchString(a.Partition):
		return KeyARN{}, invalid("key_arn", "the key ARN's partition must be aws, aws-cn or aws-us-gov")
	case !regionRe.MatchString(a.Region):
		return KeyARN{}, invalid("key_arn", "the key ARN's Region must look like eu-west-2")
	case !accountRe.MatchString(a.Account):
		return KeyARN{}, invalid("key_arn", "the key ARN's account must be 12 digits")
	case !keyIDRe.MatchString(a.KeyID):
		return KeyARN{}, invalid("key_arn", "the key ID in the ARN must be a UUID (or mrk-… for a multi-Region key)")
	}
	if len(allowedRegions) > 0 && !slices.Contains(allowedRegions, a.Region) {
		return KeyARN{}, invalid("key_arn", "keys in Region "+a.Region+" are not accepted by this orgkms: use a key in "+strings.Join(allowedRegions, ", "))
	}
	return a, nil
}

// ParseRoleARN parses and checks an IAM role ARN,
// arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME, and returns it trimmed.
// Errors are Kind Invalid, field role_arn.
func ParseRoleARN(s string) (string, error) {
	s = strings.TrimSpace(s)
	parts := strings.SplitN(s, ":", 6)
	bad := invalid("role_arn", "the role ARN must look like arn:aws:iam::ACCOUNT:role/NAME (copy it from the role's page in the IAM console)")
	if len(parts) != 6 || parts[0] != "arn" || !partitionRe.MatchString(parts[1]) || parts[2] != "iam" || parts[3] != "" || !accountRe.MatchString(parts[4]) {
		return "", bad
	}
	name, ok := strings.CutPrefix(parts[5], "role/")
	if !ok || !roleNameRe.MatchString(name) || strings.HasSuffix(name, "/") {
		return "", bad
	}
	return s, nil
}

// CheckExternalID checks an STS external ID: 2-1224 letters, digits and
// _+=,.@:/\- (the AssumeRole API's rule). orgkms generates it, one per org;
// it is not secret but the customer must not choose it.
func CheckExternalID(s string) error {
	if len(s) < 2 || len(s) > 1224 || !externalIDRe.MatchString(s) {
		return invalid("external_id", "the external ID must be 2-1224 letters, digits or _+=,.@:/\\-")
	}
	return nil
}

// Key is an AWS KMS key as orgkms uses it: the key ARN, and for a
// customer's key the role orgkms assumes to use it.
type Key struct {
	ARN KeyARN
	// RoleARN is the role in the key's account orgkms assumes with
	// ExternalID; "" means the platform's own credentials call KMS directly
	// (a platform master key in the platform's account).
	RoleARN    string
	ExternalID string
	// Version is a key material ID ([Provider.Describe]); "" = current.
	Version string
}

// ParseKey builds a Key from the parts a customer enters (key ARN, role
// ARN) and the org's external ID orgkms generated. roleARN "" means no
// role (then externalID must be "" too).
func ParseKey(keyARN, roleARN, externalID string, allowedRegions []string) (Key, error) {
	a, err := ParseKeyARN(keyARN, allowedRegions)
	if err != nil {
		return Key{}, err
	}
	k := Key{ARN: a, ExternalID: externalID}
	if strings.TrimSpace(roleARN) == "" {
		if externalID != "" {
			return Key{}, invalid("role_arn", "an external ID needs a role ARN")
		}
		return k, nil
	}
	if k.RoleARN, err = ParseRoleARN(roleARN); err != nil {
		return Key{}, err
	}
	if err := CheckExternalID(externalID); err != nil {
		return Key{}, err
	}
	return k, nil
}

// Ref returns the masterkey.Ref of k. Its text form is
//
//	awskms://arn:aws:kms:REGION:ACCOUNT:key/KEY-ID[?external_id=E&role=ROLE-ARN][#MATERIAL-ID]
//
// with the query values URL-escaped and sorted, so one key has one ref.
func (k Key) Ref() masterkey.Ref {
	id := k.ARN.String()
	if k.RoleARN != "" {
		id += "?" + url.Values{"role": {k.RoleARN}, "external_id": {k.ExternalID}}.Encode()
	}
	return masterkey.Ref{Provider: Scheme, ID: id, Version: k.Version}
}

// URI returns the text form of k's ref.
func (k Key) URI() string { return k.Ref().String() }

// SessionName is the RoleSessionName orgkms uses for k's role: it names
// the org's external ID by a hash, so the customer's CloudTrail tells orgkms'
// sessions of different orgs apart without showing the ID itself.
func (k Key) SessionName() string {
	h := sha256.Sum256([]byte(k.ExternalID))
	return "orgkms-" + hex.EncodeToString(h[:8])
}

// ParseURI parses the text form of an awskms ref (see [Key.Ref]) and checks
// it as [ParseKey] does.
func ParseURI(uri string, allowedRegions []string) (Key, error) {
	ref, err := masterkey.ParseRef(uri)
	if err != nil {
		return Key{}, err
	}
	if ref.Provider != Scheme {
		return Key{}, invalid("master_key", "expected awskms://"+keyARNForm)
	}
	return KeyOf(ref, allowedRegions)
}

// KeyOf parses a Ref of this driver.
func KeyOf(ref masterkey.Ref, allowedRegions []string) (Key, error) {
	arn, query, _ := strings.Cut(ref.ID, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return Key{}, invalid("master_key", "the query of an awskms ref must be role=ROLE-ARN&external_id=ID")
	}
	for name, vs := range q {
		if (name != "role" && name != "external_id") || len(vs) != 1 {
			return Key{}, invalid("master_key", "the query of an awskms ref may only hold role and external_id, once each")
		}
	}
	k, err := ParseKey(arn, q.Get("role"), q.Get("external_id"), allowedRegions)
	if err != nil {
		return Key{}, err
	}
	if _, ok := q["external_id"]; ok && k.RoleARN == "" {
		return Key{}, invalid("role_arn", "an external ID needs a role ARN")
	}
	if ref.Version != "" && !materialRe.MatchString(ref.Version) {
		return Key{}, invalid("master_key", "the version of an awskms ref is a key material ID")
	}
	k.Version = ref.Version
	return k, nil
}
