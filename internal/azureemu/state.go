package azureemu

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// stateFile is the name of the persisted state inside Config.Dir.
const stateFile = "state.json"

// stateFormat is bumped when the layout of state.json changes incompatibly.
const stateFormat = 1

// state is everything the emulator persists. It is guarded by Emulator.mu.
type state struct {
	Format   int                    `json:"format"`
	TokenKey []byte                 `json:"token_key"` // HMAC-SHA256 key for access tokens
	Tenants  map[string]*tenantRec  `json:"tenants"`   // by tenant id
	Apps     map[string]*appRec     `json:"apps"`      // by client id
	Vaults   map[string]*vaultState `json:"vaults"`    // by lower-case vault name
}

type tenantRec struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Domain  string `json:"domain"`
	Created int64  `json:"created"`
	// SPs are the service principals of multi-tenant apps in this tenant,
	// by app client id.
	SPs map[string]*spRec `json:"service_principals"`
	// TokenGens is, by app client id, the generation of the app's tokens
	// in this tenant: [Emulator.RevokeTokens] increments it, and a token
	// of an older generation is rejected by every vault.
	TokenGens map[string]int `json:"token_generations,omitempty"`
}

type spRec struct {
	ObjectID string `json:"object_id"`
	AppID    string `json:"app_id"`
	Created  int64  `json:"created"`
}

type appRec struct {
	ClientID     string   `json:"client_id"`
	Name         string   `json:"name"`
	HomeTenantID string   `json:"home_tenant_id"`
	Secret       string   `json:"secret"`
	RedirectURIs []string `json:"redirect_uris"`
	Created      int64    `json:"created"`
}

type vaultState struct {
	Name            string                 `json:"name"`
	TenantID        string                 `json:"tenant_id"`
	Location        string                 `json:"location"`
	ManagedHSM      bool                   `json:"managed_hsm"`
	SoftDeleteDays  int                    `json:"soft_delete_days"`
	PurgeProtection bool                   `json:"purge_protection"`
	Keys            map[string]*keyState   `json:"keys"`         // by lower-case key name
	Deleted         map[string]*deletedKey `json:"deleted_keys"` // by lower-case key name
	Policies        map[string][]string    `json:"policies"`     // lower-case principal → canonical permissions
	Created         int64                  `json:"created"`
}

type keyState struct {
	Name     string                 `json:"name"`
	Current  string                 `json:"current"`
	Versions map[string]*keyVersion `json:"versions"` // by version id (lower-case hex)
}

// keyVersion is one version of a key. Its key material never changes after
// creation, so the parsed key may be used outside the lock.
type keyVersion struct {
	ID      string            `json:"id"`
	Kty     string            `json:"kty"` // as reported: RSA, RSA-HSM, oct-HSM
	Size    int               `json:"size"`
	KeyOps  []string          `json:"key_ops"`
	Enabled bool              `json:"enabled"`
	NBF     *int64            `json:"nbf,omitempty"`
	EXP     *int64            `json:"exp,omitempty"`
	Created int64             `json:"created"`
	Updated int64             `json:"updated"`
	Tags    map[string]string `json:"tags,omitempty"`
	PKCS8   []byte            `json:"pkcs8,omitempty"` // RSA private key
	Oct     []byte            `json:"oct,omitempty"`   // AES key

	rsa *rsa.PrivateKey
}

type deletedKey struct {
	Key                *keyState `json:"key"`
	DeletedDate        int64     `json:"deleted_date"`
	ScheduledPurgeDate int64     `json:"scheduled_purge_date"`
}

func newState() *state {
	return &state{
		Format:   stateFormat,
		TokenKey: randomBytes(32),
		Tenants:  map[string]*tenantRec{},
		Apps:     map[string]*appRec{},
		Vaults:   map[string]*vaultState{},
	}
}

// loadState reads dir/state.json; a missing file yields a fresh state.
func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read emulator state: %w", err)
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("parse emulator state %s: %w", stateFile, err)
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("emulator state %s has format %d, want %d", stateFile, st.Format, stateFormat)
	}
	if len(st.TokenKey) < 32 {
		st.TokenKey = randomBytes(32)
	}
	if st.Tenants == nil {
		st.Tenants = map[string]*tenantRec{}
	}
	if st.Apps == nil {
		st.Apps = map[string]*appRec{}
	}
	if st.Vaults == nil {
		st.Vaults = map[string]*vaultState{}
	}
	for _, t := range st.Tenants {
		if t.SPs == nil {
			t.SPs = map[string]*spRec{}
		}
	}
	for _, v := range st.Vaults {
		if v.Keys == nil {
			v.Keys = map[string]*keyState{}
		}
		if v.Deleted == nil {
			v.Deleted = map[string]*deletedKey{}
		}
		if v.Policies == nil {
			v.Policies = map[string][]string{}
		}
		keys := make([]*keyState, 0, len(v.Keys)+len(v.Deleted))
		for _, k := range v.Keys {
			keys = append(keys, k)
		}
		for _, d := range v.Deleted {
			keys = append(keys, d.Key)
		}
		for _, k := range keys {
			for _, kv := range k.Versions {
				if err := kv.parse(); err != nil {
					return nil, fmt.Errorf("emulator state: vault %s key %s version %s: %w", v.Name, k.Name, kv.ID, err)
				}
			}
		}
	}
	return st, nil
}

// parse decodes the stored key material.
func (kv *keyVersion) parse() error {
	if strings.HasPrefix(kv.Kty, "RSA") {
		k, err := x509.ParsePKCS8PrivateKey(kv.PKCS8)
		if err != nil {
			return err
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return errors.New("not an RSA key")
		}
		kv.rsa = rk
		return nil
	}
	if len(kv.Oct) != kv.Size/8 {
		return errors.New("bad AES key length")
	}
	return nil
}

// save writes the state atomically. The caller holds e.mu.
func (st *state) save(dir string) error {
	if dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode emulator state: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, stateFile), b, 0o600)
}

// writeFileAtomic writes data to a temporary file in the same directory,
// syncs it and renames it over name.
func writeFileAtomic(name string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	if err := f.Chmod(perm); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	if err := os.Rename(tmp, name); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Base(name), err)
	}
	return nil
}
