package fault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind classifies an error. The zero value is Internal.
type Kind int

const (
	Internal           Kind = iota // a bug or an unexpected failure of orgkms itself
	Invalid                        // the request is malformed: a field is missing, too long, of the wrong form
	Integrity                      // a ciphertext was not produced by this key and context, or was modified
	NotFound                       // an org, key or version does not exist
	Conflict                       // the object exists already, or is in a state that forbids the action
	TooLarge                       // a payload or batch exceeds a limit
	Unauthenticated                // the caller presented no valid credentials (API middleware)
	Forbidden                      // the caller is authenticated but lacks a role (API middleware)
	KeyNotFound                    // the master key does not exist (or was deleted)
	KeyDisabled                    // the master key (version) is disabled, expired or not yet valid
	KeyDestroyed                   // the master key was purged: data wrapped by it is unrecoverable
	PermissionDenied               // the master-key provider refused an operation for lack of a permission
	CredentialsInvalid             // orgkms' credentials for the provider are invalid, expired or not consented
	Unavailable                    // the provider or the database is unreachable, throttled or timed out; retry
	RateLimited                    // the caller sent too many requests; retry later
	VersionRetired                 // the ciphertext's key version is below the key's minimum decryption version

	// Kinds of an org whose customer managed key is unusable: every data
	// plane call for that org fails fast with one of these until the
	// customer restores the key.
	CMKDisabled          // the CMK is disabled or outside its validity dates
	CMKPermissionMissing // orgkms lost a permission on the CMK, or consent was revoked
	CMKDeleted           // the CMK is soft-deleted: recoverable until its purge date
	CMKDestroyed         // the CMK was purged: the org's data is unrecoverable
)

var kindNames = [...]string{
	Internal:           "internal",
	Invalid:            "invalid_argument",
	Integrity:          "ciphertext_invalid",
	NotFound:           "not_found",
	Conflict:           "conflict",
	TooLarge:           "payload_too_large",
	Unauthenticated:    "unauthenticated",
	Forbidden:          "permission_denied",
	KeyNotFound:        "master_key_not_found",
	KeyDisabled:        "master_key_disabled",
	KeyDestroyed:       "master_key_destroyed",
	PermissionDenied:   "master_key_permission_missing",
	CredentialsInvalid: "master_key_credentials_invalid",
	Unavailable:        "unavailable",
	RateLimited:        "rate_limited",
	VersionRetired:     "key_version_retired",

	CMKDisabled:          "cmk_key_disabled",
	CMKPermissionMissing: "cmk_permission_missing",
	CMKDeleted:           "cmk_key_deleted",
	CMKDestroyed:         "cmk_key_destroyed",
}

// Code returns the stable snake_case code of k, as sent in API error bodies.
func (k Kind) Code() string {
	if k < 0 || int(k) >= len(kindNames) {
		return kindNames[Internal]
	}
	return kindNames[k]
}

func (k Kind) String() string { return k.Code() }

// KindFromCode is the inverse of [Kind.Code]; unknown codes give Internal.
func KindFromCode(code string) Kind {
	for k, name := range kindNames {
		if name == code {
			return Kind(k)
		}
	}
	return Internal
}

// Retryable reports whether a caller may retry an operation that failed with k.
func (k Kind) Retryable() bool { return k == Unavailable || k == RateLimited }

// Error is the error type of orgkms. Every field except Err may be shown to
// the customer; Err is for logs only.
type Error struct {
	Kind       Kind
	Op         string        // the operation, e.g. "unwrap", "encrypt", "create org"
	Resource   string        // the object, e.g. "org acme key default", "azurekv key contoso-kv/orgkms-cmk@3f2a..."
	Field      string        // for Invalid: which field
	Reason     string        // a short customer-readable reason, lowercase, no final period
	Permission string        // for PermissionDenied: the missing permission, e.g. "unwrapKey"
	Provider   string        // for master-key kinds: "azurekv", "local", ...
	RetryAfter time.Duration // for Unavailable/RateLimited: a hint, 0 when unknown
	Err        error         // the underlying error, for logs and errors.As only
}

// E builds an *Error. It is a convenience for the common case.
func E(kind Kind, op, resource, reason string) *Error {
	return &Error{Kind: kind, Op: op, Resource: resource, Reason: reason}
}

// Wrap builds an *Error of kind around err.
func Wrap(kind Kind, op string, err error) *Error {
	return &Error{Kind: kind, Op: op, Err: err}
}

// Error returns op, resource and the customer message, plus the underlying
// error for logs. It never contains key material as long as callers honour
// the package invariant.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	b.WriteString(Message(e))
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, &Error{Kind: k}) match on the kind alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Op == "" && t.Resource == "" && t.Err == nil
}

// KindOf returns the Kind of err: the Kind of the outermost *Error in its
// chain, Unavailable for context deadline and cancellation, Internal
// otherwise. KindOf(nil) is Internal; callers check err != nil first.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Unavailable
	}
	return Internal
}

// As returns the outermost *Error of err, or nil.
func As(err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}

// Message renders the customer-facing message of err: what happened and what
// to do. It is built from the fields of the outermost *Error only, never from
// the text of wrapped errors, so it is safe to show to any caller.
func Message(err error) string {
	fe := As(err)
	if fe == nil {
		if KindOf(err) == Unavailable {
			return "the operation timed out or was cancelled; retry"
		}
		return "internal error"
	}
	subject := fe.Resource
	reason := fe.Reason
	switch fe.Kind {
	case Invalid:
		return joinReason(fieldPrefix(fe.Field), reason, "the request is invalid")
	case Integrity:
		return joinReason("", reason, "ciphertext is invalid: it was not produced by this org, key and context, or it was modified")
	case NotFound:
		return joinReason("", reason, orElse(subject, "object")+" not found")
	case Conflict:
		return joinReason("", reason, orElse(subject, "object")+" conflicts with the current state")
	case TooLarge:
		return joinReason("", reason, "payload too large")
	case Unauthenticated:
		return joinReason("", reason, "missing or invalid credentials: send an API token as \"Authorization: Bearer <token>\"")
	case Forbidden:
		return joinReason("", reason, "the caller's roles do not allow this action")
	case KeyNotFound:
		return joinReason("", reason, orElse(subject, "master key")+" was not found; check the key name and version, or recover it if it was deleted")
	case KeyDisabled:
		return joinReason("", reason, orElse(subject, "master key")+" is disabled or outside its validity period; enable it to restore access")
	case KeyDestroyed:
		return joinReason("", reason, orElse(subject, "master key")+" was destroyed; data protected by it is unrecoverable")
	case PermissionDenied:
		perm := fe.Permission
		if perm == "" {
			perm = "a required permission"
		}
		return joinReason("", reason, "permission missing: "+perm+" on "+orElse(subject, "the master key")+"; grant it to orgkms")
	case CredentialsInvalid:
		return joinReason("", reason, "credentials for "+orElse(fe.Provider, "the master-key provider")+" are invalid, expired or not consented")
	case Unavailable:
		return joinReason("", reason, orElse(subject, "a dependency")+" is unavailable; retry later")
	case RateLimited:
		return joinReason("", reason, "too many requests; retry later")
	case CMKDisabled:
		return joinReason("", reason, "the org's customer managed key is disabled; its administrators must enable it in their key vault")
	case CMKPermissionMissing:
		return joinReason("", reason, "orgkms lost access to the org's customer managed key; its administrators must restore the access policy or consent")
	case CMKDeleted:
		return joinReason("", reason, "the org's customer managed key was deleted; its administrators can recover it before it is purged")
	case CMKDestroyed:
		return joinReason("", reason, "the org's customer managed key was purged: the org's data is unrecoverable")
	case VersionRetired:
		return joinReason("", reason, "the ciphertext's key version was retired for decryption; lower the key's min_decryption_version or rewrap ciphertexts before retiring versions")
	}
	return "internal error"
}

func fieldPrefix(field string) string {
	if field == "" {
		return ""
	}
	return field + ": "
}

func joinReason(prefix, reason, fallback string) string {
	if reason == "" {
		return prefix + fallback
	}
	return prefix + reason
}

func orElse(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Invalidf returns an Invalid error for field with a formatted reason.
func Invalidf(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// HTTPStatus is the HTTP status of an error of kind k, for the API and the
// console alike. 424 (Failed Dependency) means "your request was fine, but a
// key you control is not".
func (k Kind) HTTPStatus() int {
	switch k {
	case Invalid, Integrity, VersionRetired:
		return 400
	case NotFound:
		return 404
	case Conflict:
		return 409
	case TooLarge:
		return 413
	case Unauthenticated:
		return 401
	case Forbidden:
		return 403
	case KeyNotFound, KeyDisabled, KeyDestroyed, PermissionDenied, CredentialsInvalid,
		CMKDisabled, CMKPermissionMissing, CMKDeleted, CMKDestroyed:
		return 424
	case Unavailable:
		return 503
	case RateLimited:
		return 429
	}
	return 500
}
