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
	CMKConsentRevoked    // the customer withdrew admin consent: orgkms cannot obtain a token in their tenant

	MethodNotAllowed // the route exists, but not for the request's HTTP method (API router)

	// Kinds of webhooks (package notify).
	WebhookURLInsecure      // a webhook URL is http:// while webhooks.allow_http is off
	WebhookAddressForbidden // a webhook URL's host is (or resolves to) a private, loopback or otherwise non-public address
	// Kinds of staged revocation (internal/cmk staged.go): the org's key
	// administrators restricted the org themselves.
	OrgDecryptOnly // the org is in decrypt-only mode: encrypt, rewrap and datakey are refused
	OrgRevoked     // the org's key administrators revoked the org in orgkms (a scheduled revocation took effect)
	// Org deletion and the data-key lifecycle (issue 11).
	OrgPendingDeletion     // the org is scheduled for deletion: its data plane is refused until the deletion is cancelled
	OrgDeleted             // the org was deleted and crypto-shredded: its data is unrecoverable
	DataKeyDisabled        // the data key is disabled: encrypt and decrypt are refused until it is enabled
	DataKeyPendingDeletion // the data key is scheduled for deletion: refused until the deletion is cancelled
	DataKeyDeleted         // the data key was deleted and crypto-shredded: its ciphertexts are unrecoverable
)

// Row is one line of the error table: everything a Kind means to a caller.
// API responses, CLI hints and console pages all read it; nothing else maps
// a Kind to a status, a retry decision or words.
type Row struct {
	Code      string // stable snake_case code, sent in API error bodies
	Status    int    // HTTP status of the API and the console
	Retryable bool   // a caller may retry the same request later
	// Message is the customer message when the error names no Reason.
	// "%s" stands for the error's Resource, or for Subject when it has none.
	Message string
	Subject string // what "%s" reads when the error has no Resource
	// Hint says what to do about it, in words for whoever made the call
	// (CLI hint lines, console remedies); "" when the message says it all.
	Hint string
}

// table is the error table, indexed by Kind. Status 424 (Failed Dependency)
// means "your request was fine, but a key you control is not".
var table = [...]Row{
	Internal: {Code: "internal", Status: 500,
		Message: "internal error"},
	Invalid: {Code: "invalid_argument", Status: 400,
		Message: "the request is invalid", Hint: "check the named field against the API reference (GET /v1/openapi.json)"},
	Integrity: {Code: "ciphertext_invalid", Status: 400,
		Message: "ciphertext is invalid: it was not produced by this org, key and context, or it was modified",
		Hint:    "decrypt with the same org, key and context that encrypted it, and pass the ciphertext unmodified"},
	NotFound: {Code: "not_found", Status: 404,
		Message: "%s not found", Subject: "object"},
	Conflict: {Code: "conflict", Status: 409,
		Message: "%s conflicts with the current state", Subject: "object",
		Hint: "the object exists already or its state forbids this now: show it (e.g. \"orgkms org show\", \"orgkms cmk status\") and act on what it says"},
	TooLarge: {Code: "payload_too_large", Status: 413,
		Message: "payload too large", Hint: "send at most 4 MiB of plaintext per item and 1000 items per batch"},
	Unauthenticated: {Code: "unauthenticated", Status: 401,
		Message: "missing or invalid credentials: send an API token as \"Authorization: Bearer <token>\"",
		Hint:    "set ORGKMS_TOKEN to a valid API token (orgkms dev writes one to DATA/dev.env)"},
	Forbidden: {Code: "permission_denied", Status: 403,
		Message: "the caller's roles do not allow this action",
		Hint:    "use a token with the needed role; \"orgkms whoami\" shows the current one"},
	KeyNotFound: {Code: "master_key_not_found", Status: 424,
		Message: "%s was not found; check the key name and version, or recover it if it was deleted", Subject: "master key",
		Hint: "check the vault URI, key name and version; \"orgkms cmk test\" runs every check"},
	KeyDisabled: {Code: "master_key_disabled", Status: 424,
		Message: "%s is disabled or outside its validity period; enable it to restore access", Subject: "master key",
		Hint: "enable the key version in the vault and check its activation and expiration dates, then run \"orgkms cmk test\""},
	KeyDestroyed: {Code: "master_key_destroyed", Status: 424,
		Message: "%s was destroyed; data protected by it is unrecoverable", Subject: "master key",
		Hint: "choose another key: data wrapped only by a destroyed key cannot be recovered"},
	PermissionDenied: {Code: "master_key_permission_missing", Status: 424,
		Message: "permission missing: %p on %s; grant it to orgkms", Subject: "the master key",
		Hint: "grant orgkms' application the named permission on the key (access policy or role), then run \"orgkms cmk test\""},
	CredentialsInvalid: {Code: "master_key_credentials_invalid", Status: 424,
		Message: "credentials for %v are invalid, expired or not consented",
		Hint:    "authorize orgkms for the key's tenant again (orgkms cmk authorize), then run \"orgkms cmk test\""},
	Unavailable: {Code: "unavailable", Status: 503, Retryable: true,
		Message: "%s is unavailable; retry later", Subject: "a dependency", Hint: "retry in a moment; the condition is transient"},
	RateLimited: {Code: "rate_limited", Status: 429, Retryable: true,
		Message: "too many requests; retry later", Hint: "wait for the time in Retry-After, then retry"},
	VersionRetired: {Code: "key_version_retired", Status: 400,
		Message: "the ciphertext's key version was retired for decryption; lower the key's min_decryption_version or rewrap ciphertexts before retiring versions",
		Hint:    "lower the key's minimum decryption version: orgkms key config --org ORG KEY --min-decryption-version N"},

	CMKDisabled: {Code: "cmk_key_disabled", Status: 424,
		Message: "the org's customer managed key is disabled; its administrators must enable it in their key vault",
		Hint:    "enable the key in the vault and check its activation and expiration dates; \"orgkms cmk status\" shows why it is unusable"},
	CMKPermissionMissing: {Code: "cmk_permission_missing", Status: 424,
		Message: "orgkms lost access to the org's customer managed key; its administrators must restore the access policy or consent",
		Hint:    "give orgkms' application Get, Wrap Key and Unwrap Key on the key again; \"orgkms cmk status\" shows what is missing"},
	CMKDeleted: {Code: "cmk_key_deleted", Status: 424,
		Message: "the org's customer managed key was deleted; its administrators can recover it before it is purged",
		Hint:    "recover the deleted key in the vault before its purge date; \"orgkms cmk status\" shows the date"},
	CMKDestroyed: {Code: "cmk_key_destroyed", Status: 424,
		Message: "the org's customer managed key was purged: the org's data is unrecoverable",
		Hint:    "data encrypted for this org cannot be recovered; \"orgkms cmk status\" shows the way out"},
	CMKConsentRevoked: {Code: "cmk_consent_revoked", Status: 424,
		Message: "orgkms is no longer authorized in the org's Entra ID tenant (admin consent was withdrawn); an administrator of the tenant must grant consent again",
		Hint:    "grant admin consent again: \"orgkms cmk authorize --tenant TENANT_ID\" (console: Settings → Security → Step 1, Authorize), accept as an administrator of the tenant, then run \"orgkms cmk test\""},

	MethodNotAllowed: {Code: "method_not_allowed", Status: 405,
		Message: "this route does not accept the request's HTTP method", Hint: "use a method the Allow header lists; see the API reference (GET /v1/openapi.json)"},

	WebhookURLInsecure: {Code: "webhook_url_insecure", Status: 400,
		Message: "the webhook URL must use https://",
		Hint:    "give an https:// URL; plain http:// is accepted only when the operator sets webhooks.allow_http (development)"},
	WebhookAddressForbidden: {Code: "webhook_address_forbidden", Status: 400,
		Message: "the webhook URL's host is not a public address",
		Hint:    "give a URL whose host resolves to public addresses only; private, loopback and link-local receivers need the operator's webhooks.allow_private_addresses"},
	OrgDecryptOnly: {Code: "org_decrypt_only", Status: 424,
		Message: "the org is in decrypt-only mode: its key administrators allow decryption of existing data only, and refuse encrypt, rewrap and datakey",
		Hint:    "decrypt still works; the org's key administrators end the mode: \"orgkms cmk decrypt-only off ORG\" (console: Settings → Security); \"orgkms cmk status\" shows who set it and why"},
	OrgRevoked: {Code: "org_revoked", Status: 424,
		Message: "the org's key administrators revoked its keys in orgkms: every use of the org's keys is refused",
		Hint:    "the org's key administrators lift the revocation: \"orgkms cmk cancel-revocation ORG\" (console: Settings → Security); \"orgkms cmk status\" shows who scheduled it and when"},
	OrgPendingDeletion: {Code: "org_pending_deletion", Status: 409,
		Message: "%s is scheduled for deletion: its keys are refused until the deletion is cancelled", Subject: "the org",
		Hint: "cancel the deletion before its date to restore service at once: orgkms org cancel-deletion ORG (console: the org overview)"},
	OrgDeleted: {Code: "org_deleted", Status: 410,
		Message: "%s was deleted and its keys were destroyed: its data is unrecoverable", Subject: "the org",
		Hint: "data encrypted for a deleted org cannot be recovered; a new org needs a new org ID"},
	DataKeyDisabled: {Code: "key_disabled", Status: 409,
		Message: "%s is disabled: encrypt and decrypt are refused until it is enabled", Subject: "the data key",
		Hint: "enable the key: orgkms key enable --org ORG KEY"},
	DataKeyPendingDeletion: {Code: "key_pending_deletion", Status: 409,
		Message: "%s is scheduled for deletion: encrypt and decrypt are refused until the deletion is cancelled", Subject: "the data key",
		Hint: "cancel the deletion before its date: orgkms key cancel-deletion --org ORG KEY"},
	DataKeyDeleted: {Code: "key_deleted", Status: 410,
		Message: "%s was deleted and its versions were destroyed: its ciphertexts are unrecoverable", Subject: "the data key",
		Hint: "data encrypted with a deleted key cannot be recovered; create a new key with another name"},
}

// Kinds returns every Kind, in table order.
func Kinds() []Kind {
	ks := make([]Kind, len(table))
	for i := range table {
		ks[i] = Kind(i)
	}
	return ks
}

// Info returns the table row of k; an unknown Kind reads as Internal.
func (k Kind) Info() Row {
	if k < 0 || int(k) >= len(table) {
		return table[Internal]
	}
	return table[k]
}

// Code returns the stable snake_case code of k, as sent in API error bodies.
func (k Kind) Code() string { return k.Info().Code }

func (k Kind) String() string { return k.Code() }

// KindFromCode is the inverse of [Kind.Code]; unknown codes give Internal.
func KindFromCode(code string) Kind {
	for k, row := range table {
		if row.Code == code {
			return Kind(k)
		}
	}
	return Internal
}

// Retryable reports whether a caller may retry an operation that failed with k.
func (k Kind) Retryable() bool { return k.Info().Retryable }

// HTTPStatus is the HTTP status of an error of kind k, for the API and the
// console alike.
func (k Kind) HTTPStatus() int { return k.Info().Status }

// CustomerKeyKind is the kind an org's callers see when its customer
// managed key fails with k: a master-key kind the customer can fix (disabled,
// not found, destroyed, a permission or consent missing) becomes the cmk_*
// kind of the data plane, the same whether a live call or the probe found
// it. ok is false for every other kind (transient, orgkms' own).
func (k Kind) CustomerKeyKind() (_ Kind, ok bool) {
	switch k {
	case PermissionDenied, CredentialsInvalid:
		return CMKPermissionMissing, true
	case KeyNotFound:
		return CMKDeleted, true
	case KeyDestroyed:
		return CMKDestroyed, true
	case KeyDisabled:
		return CMKDisabled, true
	case CMKConsentRevoked:
		return CMKConsentRevoked, true
	}
	return k, false
}

// Hint is what to do about an error of kind k, or "".
func (k Kind) Hint() string { return k.Info().Hint }

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
// to do. It is built from the fields of the outermost *Error and the table
// only, never from the text of wrapped errors, so it is safe to show to any
// caller.
func Message(err error) string {
	fe := As(err)
	if fe == nil {
		if KindOf(err) == Unavailable {
			return "the operation timed out or was cancelled; retry"
		}
		return table[Internal].Message
	}
	row := fe.Kind.Info()
	if fe.Kind == Internal {
		return row.Message
	}
	if fe.Reason != "" {
		if fe.Kind == Invalid && !strings.HasPrefix(fe.Reason, fe.Field+" ") {
			return fieldPrefix(fe.Field) + fe.Reason
		}
		return fe.Reason
	}
	if fe.Kind == Invalid {
		return fieldPrefix(fe.Field) + row.Message
	}
	return strings.NewReplacer(
		"%s", orElse(fe.Resource, row.Subject),
		"%p", orElse(fe.Permission, "a required permission"),
		"%v", orElse(fe.Provider, "the master-key provider"),
	).Replace(row.Message)
}

func fieldPrefix(field string) string {
	if field == "" {
		return ""
	}
	return field + ": "
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

// Attributed returns a copy of e with Op, Provider and Resource set where e
// leaves them empty: a driver names the operation and key of a failure it
// passes on without renaming what an inner layer already named.
func (e *Error) Attributed(op, provider, resource string) *Error {
	c := *e
	if c.Op == "" {
		c.Op = op
	}
	if c.Provider == "" {
		c.Provider = provider
	}
	if c.Resource == "" {
		c.Resource = resource
	}
	return &c
}
