package masterkey

import (
	"context"
	"time"
)

// Vault names one remote key service whose request limit is shared by every
// key in it, as the driver of its cloud knows it: for Azure the vault host,
// for AWS the account and region, for Google the project and location.
// Cloud is "azure", "aws" or "gcp".
type Vault struct {
	Cloud string
	Name  string
}

// Gate admits remote calls to a vault under a budget shared by every org on
// it (internal/budget implements it). A driver calls Admit before every HTTP
// attempt to a vault (retries included) and the returned done once the
// attempt has an answer, saying whether the vault throttled it (HTTP 429 or
// the cloud's throttling code) and the Retry-After it sent (0 when none).
//
// Admit returns Kind Unavailable with a RetryAfter when ctx ends before the
// budget admits the call, or when the vault asked for a pause that outlasts
// ctx's deadline. Implementations are safe for concurrent use.
type Gate interface {
	Admit(ctx context.Context, v Vault) (done func(throttled bool, retryAfter time.Duration), err error)
}

// VaultNamer is implemented by drivers whose keys live in vaults with a
// shared request limit: Vault names the vault of ref (false when ref is
// not one of the driver's keys).
type VaultNamer interface {
	Vault(ref Ref) (Vault, bool)
}

// Vault names the vault of key, when the driver has vaults (see
// [VaultNamer]).
func (k *Keeper) Vault(key Ref) (Vault, bool) {
	if n, ok := k.p.(VaultNamer); ok {
		return n.Vault(key)
	}
	return Vault{}, false
}
