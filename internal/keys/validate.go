package keys

import (
	"regexp"

	"github.com/orgkms/orgkms/internal/fault"
)

var (
	orgIDPattern   = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	keyNamePattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9])?$`)
)

// ValidateOrgID checks an org ID: 1-63 lowercase letters, digits and inner hyphens.
func ValidateOrgID(id string) error {
	if !orgIDPattern.MatchString(id) {
		return &fault.Error{Kind: fault.Invalid, Field: "id", Reason: "org id must be 1-63 lowercase letters, digits or hyphens, starting and ending with a letter or digit (e.g. \"acme\")"}
	}
	return nil
}

// ValidateKeyName checks a data key name.
func ValidateKeyName(name string) error {
	if !keyNamePattern.MatchString(name) {
		return &fault.Error{Kind: fault.Invalid, Field: "name", Reason: "key name must be 1-64 lowercase letters, digits, '.', '_' or '-', starting and ending with a letter or digit (e.g. \"default\")"}
	}
	return nil
}
