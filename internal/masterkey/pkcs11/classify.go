package pkcs11

import (
	"context"
	"errors"

	p11 "github.com/miekg/pkcs11"

	"github.com/orgkms/orgkms/internal/fault"
)

// kindOf maps a PKCS#11 return value to a Kind and a reason naming the
// remedy. ok is false for a value with no entry (Internal).
//
// CKR_GENERAL_ERROR is Unavailable here; only the AES-GCM decryption of a
// blob maps it to Integrity, after it checked the session still works (see
// Provider.decrypt): SoftHSM2 answers a failed tag check that way.
func kindOf(rv p11.Error) (fault.Kind, string) {
	switch rv {
	case p11.CKR_PIN_INCORRECT, p11.CKR_PIN_INVALID, p11.CKR_PIN_LEN_RANGE:
		return fault.CredentialsInvalid, "the HSM refused the PIN: put the token's user PIN in the file or variable pin-source names"
	case p11.CKR_PIN_EXPIRED:
		return fault.CredentialsInvalid, "the token's user PIN expired: set a new one with the HSM's tools (C_SetPIN) and update the PIN source"
	case p11.CKR_PIN_LOCKED:
		return fault.CredentialsInvalid, "the token's user PIN is locked after too many wrong attempts: the security officer must reset it (C_InitPIN, e.g. softhsm2-util or the HSM's admin tool), then fix the PIN source"
	case p11.CKR_USER_PIN_NOT_INITIALIZED:
		return fault.CredentialsInvalid, "the token has no user PIN yet: the security officer must set one (C_InitPIN)"
	case p11.CKR_DEVICE_ERROR, p11.CKR_DEVICE_MEMORY, p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT,
		p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_SESSION_COUNT,
		p11.CKR_HOST_MEMORY, p11.CKR_FUNCTION_FAILED, p11.CKR_CRYPTOKI_NOT_INITIALIZED, p11.CKR_USER_NOT_LOGGED_IN,
		p11.CKR_SLOT_ID_INVALID, p11.CKR_GENERAL_ERROR, p11.CKR_OPERATION_ACTIVE, p11.CKR_FUNCTION_CANCELED,
		p11.CKR_CANT_LOCK:
		return fault.Unavailable, "the HSM is unavailable (device error, token removed or session lost); retry later"
	case p11.CKR_KEY_HANDLE_INVALID, p11.CKR_OBJECT_HANDLE_INVALID:
		return fault.KeyNotFound, "the key object is gone from the token"
	case p11.CKR_KEY_FUNCTION_NOT_PERMITTED:
		return fault.KeyDisabled, "the key does not allow this operation (CKA_ENCRYPT or CKA_DECRYPT is false): set it true again on the token"
	case p11.CKR_KEY_TYPE_INCONSISTENT, p11.CKR_KEY_SIZE_RANGE:
		return fault.Invalid, "the key object is not an AES-256 secret key"
	case p11.CKR_MECHANISM_INVALID, p11.CKR_MECHANISM_PARAM_INVALID:
		return fault.Invalid, "the HSM does not offer AES-GCM (CKM_AES_GCM) with a 12-byte IV and a 128-bit tag for this key"
	case p11.CKR_ENCRYPTED_DATA_INVALID, p11.CKR_ENCRYPTED_DATA_LEN_RANGE:
		return fault.Integrity, "wrapped key was not produced by this HSM key for this org, or was modified"
	}
	return fault.Internal, ""
}

// classify makes err a *fault.Error of this driver. resource names the key
// (never the PIN).
func classify(op string, err error, resource string) error {
	if err == nil {
		return nil
	}
	if fe := fault.As(err); fe != nil {
		if fe.Provider == "" || fe.Op == "" {
			return fe.Attributed(op, Scheme, resource)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &fault.Error{Kind: fault.Unavailable, Op: op, Resource: resource, Provider: Scheme, Reason: "gave up waiting for an HSM session", Err: err}
	}
	var rv p11.Error
	if errors.As(err, &rv) {
		kind, reason := kindOf(rv)
		return &fault.Error{Kind: kind, Op: op, Resource: resource, Provider: Scheme, Reason: reason, Err: err}
	}
	return &fault.Error{Kind: fault.Internal, Op: op, Resource: resource, Provider: Scheme, Err: err}
}

// sessionLost reports whether err means the session (or the token behind
// it) is gone, so the pool drops the session and the call is retried once on
// a fresh one.
func sessionLost(err error) bool {
	var rv p11.Error
	if !errors.As(err, &rv) {
		return false
	}
	switch rv {
	case p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED, p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT,
		p11.CKR_USER_NOT_LOGGED_IN, p11.CKR_CRYPTOKI_NOT_INITIALIZED, p11.CKR_OBJECT_HANDLE_INVALID, p11.CKR_KEY_HANDLE_INVALID:
		return true
	}
	return false
}

// tokenLost reports whether err means the whole token connection must be
// rebuilt (slot looked up again, login again).
func tokenLost(err error) bool {
	var rv p11.Error
	if !errors.As(err, &rv) {
		return false
	}
	switch rv {
	case p11.CKR_DEVICE_REMOVED, p11.CKR_TOKEN_NOT_PRESENT, p11.CKR_USER_NOT_LOGGED_IN, p11.CKR_SLOT_ID_INVALID, p11.CKR_CRYPTOKI_NOT_INITIALIZED:
		return true
	}
	return false
}
