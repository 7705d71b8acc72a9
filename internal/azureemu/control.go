package azureemu

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Errors returned by the control methods (and by [ControlClient], which maps
// the control API's error codes back to them). Test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid argument")
)

// Operation names used by [Emulator.Counters].
const (
	OpChallenge   = "challenge" // request without a token (elicits the 401 challenge)
	OpCreate      = "create"
	OpGet         = "get"
	OpList        = "list"     // GET /keys
	OpVersions    = "versions" // GET /keys/{name}/versions
	OpUpdate      = "update"
	OpDelete      = "delete"
	OpRotate      = "rotate"
	OpWrapKey     = "wrapkey"
	OpUnwrapKey   = "unwrapkey"
	OpEncrypt     = "encrypt"
	OpDecrypt     = "decrypt"
	OpGetDeleted  = "getdeleted"
	OpListDeleted = "listdeleted"
	OpRecover     = "recover"
	OpPurge       = "purge"
	OpOther       = "other"
)

// Tenant is an Entra ID tenant (directory).
type Tenant struct {
	ID     string `json:"id"`     // GUID
	Name   string `json:"name"`   // display name
	Domain string `json:"domain"` // verified domain, {name}.onmicrosoft.com
}

// AppRegistration describes a multi-tenant app to register.
type AppRegistration struct {
	Name string `json:"name"`
	// RedirectURIs are the allowed admin-consent redirect URIs; see the
	// package documentation for the loopback wildcard form.
	RedirectURIs []string `json:"redirect_uris"`
}

// App is a registered application with its client secret.
type App struct {
	ClientID     string   `json:"client_id"`
	Secret       string   `json:"secret"`
	Name         string   `json:"name"`
	HomeTenantID string   `json:"home_tenant_id"`
	RedirectURIs []string `json:"redirect_uris"`
}

// ServicePrincipal is an app's identity inside one tenant.
type ServicePrincipal struct {
	ObjectID string `json:"object_id"`
	AppID    string `json:"app_id"`
	TenantID string `json:"tenant_id"`
}

// VaultOptions are the settings of a new vault or Managed HSM.
type VaultOptions struct {
	SoftDeleteDays  int    `json:"soft_delete_days"` // 7..90, default 90
	PurgeProtection bool   `json:"purge_protection"`
	ManagedHSM      bool   `json:"managed_hsm"`
	Location        string `json:"location"` // default eastus; appears in error messages
}

// Vault describes a vault or Managed HSM.
type Vault struct {
	Name            string `json:"name"`
	TenantID        string `json:"tenant_id"`
	URI             string `json:"uri"` // https://{name}.vault.azure.net/ or https://{name}.managedhsm.azure.net/
	ManagedHSM      bool   `json:"managed_hsm"`
	SoftDeleteDays  int    `json:"soft_delete_days"`
	PurgeProtection bool   `json:"purge_protection"`
	Location        string `json:"location"`
}

// KeyOptions are the settings of a new key.
type KeyOptions struct {
	Kty       string    `json:"kty"`     // RSA (default), RSA-HSM, oct-HSM (Managed HSM only)
	Size      int       `json:"size"`    // RSA 2048 (default), 3072, 4096; oct-HSM 128, 192, 256 (default)
	KeyOps    []string  `json:"key_ops"` // default: all operations of the key type
	NotBefore time.Time `json:"nbf"`     // zero: none
	Expires   time.Time `json:"exp"`     // zero: none
}

// KeyInfo describes a key and its current (or requested) version.
type KeyInfo struct {
	Vault     string     `json:"vault"`
	Name      string     `json:"name"`
	Version   string     `json:"version"`
	KID       string     `json:"kid"`
	Kty       string     `json:"kty"`
	Size      int        `json:"size"`
	KeyOps    []string   `json:"key_ops"`
	Enabled   bool       `json:"enabled"`
	NotBefore *time.Time `json:"nbf,omitempty"`
	Expires   *time.Time `json:"exp,omitempty"`
	Created   time.Time  `json:"created"`
	Updated   time.Time  `json:"updated"`
	// Versions lists every version id, sorted.
	Versions []string `json:"versions"`
	// Deleted is set for a soft-deleted key, with its purge date.
	Deleted            bool       `json:"deleted"`
	ScheduledPurgeDate *time.Time `json:"scheduled_purge_date,omitempty"`
}

// Fault makes a vault misbehave, for every request while set (Count 0) or
// for the next Count requests.
type Fault struct {
	Latency    time.Duration `json:"latency"`     // added before answering
	Status     int           `json:"status"`      // 429 or 5xx; 0 = answer normally (after Latency)
	RetryAfter time.Duration `json:"retry_after"` // Retry-After header on Status; 0 = none
	Outage     bool          `json:"outage"`      // drop the connection without answering
	Count      int           `json:"count"`       // 0 = until cleared
}

// Permissions are the access-policy key permissions the emulator enforces,
// in their canonical spelling.
var Permissions = []string{"get", "list", "update", "create", "import", "delete", "recover", "backup", "restore",
	"decrypt", "encrypt", "unwrapKey", "wrapKey", "verify", "sign", "purge", "rotate", "getrotationpolicy", "setrotationpolicy", "release"}

var (
	vaultNameRE  = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	keyNameRE    = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)
	tenantNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

func (e *Emulator) nowUnix() int64 { return e.now().Unix() }

// persist saves the state; the caller holds e.mu.
func (e *Emulator) persist() error { return e.st.save(e.cfg.Dir) }

// CreateTenant creates a tenant with a new GUID. name becomes the display
// name and the verified domain {name}.onmicrosoft.com (lower-case letters,
// digits and '-'); it must be unique. See also [Emulator.EnsureTenant].
func (e *Emulator) CreateTenant(name string) (Tenant, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.createTenantLocked(name)
}

func (e *Emulator) createTenantLocked(name string) (Tenant, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if !tenantNameRE.MatchString(n) {
		return Tenant{}, fmt.Errorf("tenant name %q: use lower-case letters, digits and '-': %w", name, ErrInvalid)
	}
	if t := e.tenantByNameLocked(n); t != nil {
		return Tenant{}, fmt.Errorf("tenant %q already exists: %w", n, ErrConflict)
	}
	t := &tenantRec{ID: newGUID(), Name: n, Domain: n + ".onmicrosoft.com", Created: e.nowUnix(), SPs: map[string]*spRec{}}
	e.st.Tenants[t.ID] = t
	if err := e.persist(); err != nil {
		delete(e.st.Tenants, t.ID)
		return Tenant{}, err
	}
	return t.public(), nil
}

// EnsureTenant returns the tenant named name, creating it if absent.
func (e *Emulator) EnsureTenant(name string) (Tenant, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.tenantByNameLocked(strings.ToLower(strings.TrimSpace(name))); t != nil {
		return t.public(), nil
	}
	return e.createTenantLocked(name)
}

func (t *tenantRec) public() Tenant { return Tenant{ID: t.ID, Name: t.Name, Domain: t.Domain} }

func (e *Emulator) tenantByNameLocked(name string) *tenantRec {
	for _, t := range e.st.Tenants {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// tenantLocked finds a tenant by GUID, verified domain or (control
// surface only) name.
func (e *Emulator) tenantLocked(ref string) *tenantRec {
	if t := e.directoryLocked(ref); t != nil {
		return t
	}
	return e.tenantByNameLocked(strings.ToLower(strings.TrimSpace(ref)))
}

// directoryLocked finds a tenant as Entra endpoints do: by GUID or verified
// domain.
func (e *Emulator) directoryLocked(ref string) *tenantRec {
	r := strings.ToLower(strings.TrimSpace(ref))
	if t, ok := e.st.Tenants[r]; ok {
		return t
	}
	for _, t := range e.st.Tenants {
		if t.Domain == r {
			return t
		}
	}
	return nil
}

// Tenant returns a tenant by GUID, domain or name.
func (e *Emulator) Tenant(ref string) (Tenant, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(ref)
	if t == nil {
		return Tenant{}, fmt.Errorf("tenant %q: %w", ref, ErrNotFound)
	}
	return t.public(), nil
}

// Tenants lists the tenants, sorted by name.
func (e *Emulator) Tenants() []Tenant {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tenantsLocked()
}

func (e *Emulator) tenantsLocked() []Tenant {
	out := make([]Tenant, 0, len(e.st.Tenants))
	for _, t := range e.st.Tenants {
		out = append(out, t.public())
	}
	slices.SortFunc(out, func(a, b Tenant) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RegisterApp registers a multi-tenant app in its home tenant with a new
// client id and secret, and creates its service principal there.
func (e *Emulator) RegisterApp(homeTenant string, reg AppRegistration) (App, error) {
	for _, u := range reg.RedirectURIs {
		if err := validRedirectURI(u); err != nil {
			return App{}, err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(homeTenant)
	if t == nil {
		return App{}, fmt.Errorf("home tenant %q: %w", homeTenant, ErrNotFound)
	}
	name := strings.TrimSpace(reg.Name)
	if name == "" {
		name = "app"
	}
	a := &appRec{
		ClientID:     newGUID(),
		Name:         name,
		HomeTenantID: t.ID,
		Secret:       newSecret(),
		RedirectURIs: slices.Clone(reg.RedirectURIs),
		Created:      e.nowUnix(),
	}
	e.st.Apps[a.ClientID] = a
	t.SPs[a.ClientID] = &spRec{ObjectID: newGUID(), AppID: a.ClientID, Created: e.nowUnix()}
	if err := e.persist(); err != nil {
		delete(e.st.Apps, a.ClientID)
		delete(t.SPs, a.ClientID)
		return App{}, err
	}
	return a.public(), nil
}

func (a *appRec) public() App {
	return App{ClientID: a.ClientID, Secret: a.Secret, Name: a.Name, HomeTenantID: a.HomeTenantID, RedirectURIs: slices.Clone(a.RedirectURIs)}
}

// App returns a registered app (with its secret).
func (e *Emulator) App(clientID string) (App, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.st.Apps[strings.ToLower(clientID)]
	if !ok {
		return App{}, fmt.Errorf("app %q: %w", clientID, ErrNotFound)
	}
	return a.public(), nil
}

// SetRedirectURIs replaces an app's redirect URIs.
func (e *Emulator) SetRedirectURIs(clientID string, uris []string) error {
	for _, u := range uris {
		if err := validRedirectURI(u); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a, ok := e.st.Apps[strings.ToLower(clientID)]
	if !ok {
		return fmt.Errorf("app %q: %w", clientID, ErrNotFound)
	}
	old := a.RedirectURIs
	a.RedirectURIs = slices.Clone(uris)
	if err := e.persist(); err != nil {
		a.RedirectURIs = old
		return err
	}
	return nil
}

func newSecret() string {
	// Entra secrets are 40 characters from a URL-safe alphabet with a "~".
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
	b := randomBytes(40)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	b[3] = '~'
	return string(b)
}

func validRedirectURI(s string) error {
	wildcard := strings.Contains(s, ":*")
	u, err := url.Parse(strings.Replace(s, ":*", ":0", 1))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("redirect URI %q: want an absolute http(s) URL: %w", s, ErrInvalid)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("redirect URI %q: http is allowed only for localhost: %w", s, ErrInvalid)
	}
	if wildcard && (u.Port() != "0" || !isLoopbackHost(u.Hostname())) {
		return fmt.Errorf("redirect URI %q: a wildcard port is allowed only for loopback hosts: %w", s, ErrInvalid)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// redirectAllowed reports whether uri matches one of the registered URIs.
func redirectAllowed(registered []string, uri string) bool {
	for _, r := range registered {
		if r == uri {
			return true
		}
		pr, err1 := url.Parse(strings.Replace(r, ":*", ":0", 1))
		pu, err2 := url.Parse(uri)
		if err1 != nil || err2 != nil || !strings.Contains(r, ":*") || !isLoopbackHost(pr.Hostname()) {
			continue
		}
		if pu.Scheme != pr.Scheme || pu.Hostname() != pr.Hostname() || pu.Port() == "" {
			continue
		}
		if pr.Path != "" && pr.Path != "/" && pr.Path != pu.Path {
			continue
		}
		return true
	}
	return false
}

// GrantConsent records admin consent of tenant for the app clientID: it
// creates the app's service principal in that tenant (idempotent).
func (e *Emulator) GrantConsent(tenant, clientID string) (ServicePrincipal, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.grantConsentLocked(tenant, clientID)
}

func (e *Emulator) grantConsentLocked(tenant, clientID string) (ServicePrincipal, error) {
	t := e.tenantLocked(tenant)
	if t == nil {
		return ServicePrincipal{}, fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	a, ok := e.st.Apps[strings.ToLower(clientID)]
	if !ok {
		return ServicePrincipal{}, fmt.Errorf("app %q: %w", clientID, ErrNotFound)
	}
	if sp, ok := t.SPs[a.ClientID]; ok {
		return ServicePrincipal{ObjectID: sp.ObjectID, AppID: a.ClientID, TenantID: t.ID}, nil
	}
	sp := &spRec{ObjectID: newGUID(), AppID: a.ClientID, Created: e.nowUnix()}
	t.SPs[a.ClientID] = sp
	if err := e.persist(); err != nil {
		delete(t.SPs, a.ClientID)
		return ServicePrincipal{}, err
	}
	return ServicePrincipal{ObjectID: sp.ObjectID, AppID: a.ClientID, TenantID: t.ID}, nil
}

// RevokeConsent deletes the app's service principal in tenant (as deleting
// the enterprise application does). Token requests then fail with
// AADSTS700016; existing tokens are rejected at once unless
// Config.KeepTokensAfterRevoke. A later consent creates a new service
// principal with a new object id.
func (e *Emulator) RevokeConsent(tenant, clientID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(tenant)
	if t == nil {
		return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	sp, ok := t.SPs[strings.ToLower(clientID)]
	if !ok {
		return fmt.Errorf("consent of app %q in tenant %q: %w", clientID, tenant, ErrNotFound)
	}
	delete(t.SPs, sp.AppID)
	if err := e.persist(); err != nil {
		t.SPs[sp.AppID] = sp
		return err
	}
	return nil
}

// RevokeTokens invalidates every access token issued so far to the app
// clientID in tenant, as a token revocation (or a Continuous Access
// Evaluation event) does: every vault answers them with 401, and tokens
// requested afterwards work as long as consent stands. It works whether or
// not consent was granted, so that with Config.KeepTokensAfterRevoke a test
// can first withdraw consent (tokens still honoured, as in Azure) and then
// end the tokens' life early.
func (e *Emulator) RevokeTokens(tenant, clientID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(tenant)
	if t == nil {
		return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	a, ok := e.st.Apps[strings.ToLower(clientID)]
	if !ok {
		return fmt.Errorf("app %q: %w", clientID, ErrNotFound)
	}
	if t.TokenGens == nil {
		t.TokenGens = map[string]int{}
	}
	t.TokenGens[a.ClientID]++
	if err := e.persist(); err != nil {
		t.TokenGens[a.ClientID]--
		return err
	}
	return nil
}

// ServicePrincipal returns the app's service principal in tenant, if
// consent was granted (or tenant is the app's home tenant).
func (e *Emulator) ServicePrincipal(tenant, clientID string) (ServicePrincipal, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(tenant)
	if t == nil {
		return ServicePrincipal{}, fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	sp, ok := t.SPs[strings.ToLower(clientID)]
	if !ok {
		return ServicePrincipal{}, fmt.Errorf("service principal of app %q in tenant %q: %w", clientID, tenant, ErrNotFound)
	}
	return ServicePrincipal{ObjectID: sp.ObjectID, AppID: sp.AppID, TenantID: t.ID}, nil
}

// CreateVault creates a vault (or, with opts.ManagedHSM, a Managed HSM) owned
// by tenant. Names are 3-24 characters, letters, digits and '-', globally
// unique.
func (e *Emulator) CreateVault(tenant, name string, opts VaultOptions) (Vault, error) {
	if !vaultNameRE.MatchString(name) || strings.Contains(name, "--") {
		return Vault{}, fmt.Errorf("vault name %q: 3-24 letters, digits and '-', starting with a letter: %w", name, ErrInvalid)
	}
	if opts.SoftDeleteDays == 0 {
		opts.SoftDeleteDays = 90
	}
	if opts.SoftDeleteDays < 7 || opts.SoftDeleteDays > 90 {
		return Vault{}, fmt.Errorf("soft delete retention %d days: want 7..90: %w", opts.SoftDeleteDays, ErrInvalid)
	}
	if opts.Location == "" {
		opts.Location = "eastus"
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tenantLocked(tenant)
	if t == nil {
		return Vault{}, fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
	}
	key := strings.ToLower(name)
	if _, ok := e.st.Vaults[key]; ok {
		return Vault{}, fmt.Errorf("vault %q already exists: %w", name, ErrConflict)
	}
	v := &vaultState{
		Name: key, TenantID: t.ID, Location: opts.Location, ManagedHSM: opts.ManagedHSM,
		SoftDeleteDays: opts.SoftDeleteDays, PurgeProtection: opts.PurgeProtection,
		Keys: map[string]*keyState{}, Deleted: map[string]*deletedKey{}, Policies: map[string][]string{},
		Created: e.nowUnix(),
	}
	e.st.Vaults[key] = v
	if err := e.persist(); err != nil {
		delete(e.st.Vaults, key)
		return Vault{}, err
	}
	return v.public(), nil
}

func (v *vaultState) public() Vault {
	return Vault{Name: v.Name, TenantID: v.TenantID, URI: v.uri(), ManagedHSM: v.ManagedHSM,
		SoftDeleteDays: v.SoftDeleteDays, PurgeProtection: v.PurgeProtection, Location: v.Location}
}

func (v *vaultState) uri() string {
	if v.ManagedHSM {
		return "https://" + v.Name + ".managedhsm.azure.net/"
	}
	return "https://" + v.Name + ".vault.azure.net/"
}

// Vault returns a vault by name.
func (e *Emulator) Vault(name string) (Vault, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(name)
	if err != nil {
		return Vault{}, err
	}
	return v.public(), nil
}

func (e *Emulator) vaultLocked(name string) (*vaultState, error) {
	v, ok := e.st.Vaults[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("vault %q: %w", name, ErrNotFound)
	}
	return v, nil
}

// CreateKey creates a key with a first version. It fails with ErrConflict if
// the key exists or is soft-deleted (recover or purge it first).
func (e *Emulator) CreateKey(vault, name string, opts KeyOptions) (KeyInfo, error) {
	e.mu.Lock()
	v, err := e.vaultLocked(vault)
	e.mu.Unlock()
	if err != nil {
		return KeyInfo{}, err
	}
	spec, err := newKeySpec(v.ManagedHSM, opts.Kty, opts.Size, opts.KeyOps)
	if err != nil {
		return KeyInfo{}, err
	}
	if !keyNameRE.MatchString(name) {
		return KeyInfo{}, fmt.Errorf("key name %q: 1-127 letters, digits and '-': %w", name, ErrInvalid)
	}
	var nbf, exp *int64
	if !opts.NotBefore.IsZero() {
		n := opts.NotBefore.Unix()
		nbf = &n
	}
	if !opts.Expires.IsZero() {
		x := opts.Expires.Unix()
		exp = &x
	}
	kv, err := e.newVersion(spec, nbf, exp, nil)
	if err != nil {
		return KeyInfo{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.purgeExpiredLocked(v); err != nil {
		return KeyInfo{}, err
	}
	k, err := e.addKeyLocked(v, name, kv)
	if err != nil {
		return KeyInfo{}, err
	}
	return keyInfo(v, k, kv, nil), nil
}

// addKeyLocked creates key name in v with first version kv.
func (e *Emulator) addKeyLocked(v *vaultState, name string, kv *keyVersion) (*keyState, error) {
	lk := strings.ToLower(name)
	if _, ok := v.Keys[lk]; ok {
		return nil, fmt.Errorf("key %q already exists in vault %s: %w", name, v.Name, ErrConflict)
	}
	if _, ok := v.Deleted[lk]; ok {
		return nil, fmt.Errorf("key %s is currently in a deleted but recoverable state: %w", name, ErrConflict)
	}
	k := &keyState{Name: name, Current: kv.ID, Versions: map[string]*keyVersion{kv.ID: kv}}
	v.Keys[lk] = k
	if err := e.persist(); err != nil {
		delete(v.Keys, lk)
		return nil, err
	}
	return k, nil
}

// RotateKey adds a new version with the same type, size and key_ops and
// makes it current.
func (e *Emulator) RotateKey(vault, name string) (KeyInfo, error) {
	e.mu.Lock()
	v, k, err := e.keyLocked(vault, name)
	var spec keySpec
	if err == nil {
		cur := k.Versions[k.Current]
		spec = keySpec{kty: cur.Kty, size: cur.Size, ops: slices.Clone(cur.KeyOps)}
	}
	e.mu.Unlock()
	if err != nil {
		return KeyInfo{}, err
	}
	kv, err := e.newVersion(spec, nil, nil, nil)
	if err != nil {
		return KeyInfo{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k, err = e.rotateLocked(v, name, kv)
	if err != nil {
		return KeyInfo{}, err
	}
	return keyInfo(v, k, kv, nil), nil
}

func (e *Emulator) rotateLocked(v *vaultState, name string, kv *keyVersion) (*keyState, error) {
	k, ok := v.Keys[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("key %q in vault %s: %w", name, v.Name, ErrNotFound)
	}
	prev := k.Current
	k.Versions[kv.ID] = kv
	k.Current = kv.ID
	if err := e.persist(); err != nil {
		delete(k.Versions, kv.ID)
		k.Current = prev
		return nil, err
	}
	return k, nil
}

// keyLocked finds a live key.
func (e *Emulator) keyLocked(vault, name string) (*vaultState, *keyState, error) {
	v, err := e.vaultLocked(vault)
	if err != nil {
		return nil, nil, err
	}
	k, ok := v.Keys[strings.ToLower(name)]
	if !ok {
		return nil, nil, fmt.Errorf("key %q in vault %s: %w", name, v.Name, ErrNotFound)
	}
	return v, k, nil
}

// GetKey describes a key's current version, or a soft-deleted key.
func (e *Emulator) GetKey(vault, name string) (KeyInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return KeyInfo{}, err
	}
	if err := e.purgeExpiredLocked(v); err != nil {
		return KeyInfo{}, err
	}
	if k, ok := v.Keys[strings.ToLower(name)]; ok {
		return keyInfo(v, k, k.Versions[k.Current], nil), nil
	}
	if d, ok := v.Deleted[strings.ToLower(name)]; ok {
		return keyInfo(v, d.Key, d.Key.Versions[d.Key.Current], d), nil
	}
	return KeyInfo{}, fmt.Errorf("key %q in vault %s: %w", name, v.Name, ErrNotFound)
}

// UpdateKey changes attributes of a version ("" = current): nil leaves a
// field unchanged; a zero time removes nbf or exp.
func (e *Emulator) UpdateKey(vault, name, version string, enabled *bool, nbf, exp *time.Time) (KeyInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, k, err := e.keyLocked(vault, name)
	if err != nil {
		return KeyInfo{}, err
	}
	kv, ok := k.version(version)
	if !ok {
		return KeyInfo{}, fmt.Errorf("key %q version %q in vault %s: %w", name, version, v.Name, ErrNotFound)
	}
	old := *kv
	if enabled != nil {
		kv.Enabled = *enabled
	}
	kv.NBF = unixPtr(nbf, kv.NBF)
	kv.EXP = unixPtr(exp, kv.EXP)
	kv.Updated = e.nowUnix()
	if err := e.persist(); err != nil {
		*kv = old
		return KeyInfo{}, err
	}
	return keyInfo(v, k, kv, nil), nil
}

// SetKeyTags replaces the tags of a version ("" = current), as the customer
// does in the portal (Keys → key → version → Tags).
func (e *Emulator) SetKeyTags(vault, name, version string, tags map[string]string) (KeyInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, k, err := e.keyLocked(vault, name)
	if err != nil {
		return KeyInfo{}, err
	}
	kv, ok := k.version(version)
	if !ok {
		return KeyInfo{}, fmt.Errorf("key %q version %q in vault %s: %w", name, version, v.Name, ErrNotFound)
	}
	old := *kv
	kv.Tags = maps.Clone(tags)
	kv.Updated = e.nowUnix()
	if err := e.persist(); err != nil {
		*kv = old
		return KeyInfo{}, err
	}
	return keyInfo(v, k, kv, nil), nil
}

func unixPtr(t *time.Time, cur *int64) *int64 {
	if t == nil {
		return cur
	}
	if t.IsZero() {
		return nil
	}
	u := t.Unix()
	return &u
}

func (k *keyState) version(version string) (*keyVersion, bool) {
	if version == "" {
		kv, ok := k.Versions[k.Current]
		return kv, ok
	}
	kv, ok := k.Versions[strings.ToLower(version)]
	return kv, ok
}

// DeleteKey soft-deletes a key: every version becomes unusable until
// RecoverKey, and it is purged after the vault's retention.
func (e *Emulator) DeleteKey(vault, name string) (KeyInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, k, err := e.keyLocked(vault, name)
	if err != nil {
		return KeyInfo{}, err
	}
	d, err := e.deleteLocked(v, k)
	if err != nil {
		return KeyInfo{}, err
	}
	return keyInfo(v, k, k.Versions[k.Current], d), nil
}

func (e *Emulator) deleteLocked(v *vaultState, k *keyState) (*deletedKey, error) {
	now := e.nowUnix()
	lk := strings.ToLower(k.Name)
	d := &deletedKey{Key: k, DeletedDate: now, ScheduledPurgeDate: now + int64(v.SoftDeleteDays)*86400}
	delete(v.Keys, lk)
	v.Deleted[lk] = d
	if err := e.persist(); err != nil {
		delete(v.Deleted, lk)
		v.Keys[lk] = k
		return nil, err
	}
	if e.cfg.DeletedKeyLagCalls > 0 {
		e.hidden[v.Name+"/"+lk] = e.cfg.DeletedKeyLagCalls
	}
	return d, nil
}

// deletedHiddenLocked reports whether d, of vault v, is still inside the
// soft-delete delay (Config.DeletedKeyLag, DeletedKeyLagCalls); a GET
// (consume) uses up one of the calls.
func (e *Emulator) deletedHiddenLocked(v *vaultState, d *deletedKey, consume bool) bool {
	if lag := e.cfg.DeletedKeyLag; lag > 0 && e.now().Before(time.Unix(d.DeletedDate, 0).Add(lag)) {
		return true
	}
	id := v.Name + "/" + strings.ToLower(d.Key.Name)
	n := e.hidden[id]
	if n <= 0 {
		return false
	}
	if consume {
		if n == 1 {
			delete(e.hidden, id)
		} else {
			e.hidden[id] = n - 1
		}
	}
	return true
}

// RecoverKey restores a soft-deleted key.
func (e *Emulator) RecoverKey(vault, name string) (KeyInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return KeyInfo{}, err
	}
	k, err := e.recoverLocked(v, name)
	if err != nil {
		return KeyInfo{}, err
	}
	return keyInfo(v, k, k.Versions[k.Current], nil), nil
}

func (e *Emulator) recoverLocked(v *vaultState, name string) (*keyState, error) {
	if err := e.purgeExpiredLocked(v); err != nil {
		return nil, err
	}
	lk := strings.ToLower(name)
	d, ok := v.Deleted[lk]
	if !ok {
		return nil, fmt.Errorf("deleted key %q in vault %s: %w", name, v.Name, ErrNotFound)
	}
	delete(v.Deleted, lk)
	v.Keys[lk] = d.Key
	if err := e.persist(); err != nil {
		delete(v.Keys, lk)
		v.Deleted[lk] = d
		return nil, err
	}
	return d.Key, nil
}

// ErrPurgeProtected is returned by PurgeKey while purge protection holds
// the deleted key.
var ErrPurgeProtected = errors.New("purge protection is enabled for this vault")

// PurgeKey permanently deletes a soft-deleted key. With purge protection it
// fails with ErrPurgeProtected until the retention is over (advance
// Config.Now to get there; the key is then purged automatically anyway).
func (e *Emulator) PurgeKey(vault, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return err
	}
	return e.purgeLocked(v, name)
}

func (e *Emulator) purgeLocked(v *vaultState, name string) error {
	if err := e.purgeExpiredLocked(v); err != nil {
		return err
	}
	lk := strings.ToLower(name)
	d, ok := v.Deleted[lk]
	if !ok {
		return fmt.Errorf("deleted key %q in vault %s: %w", name, v.Name, ErrNotFound)
	}
	if v.PurgeProtection {
		return fmt.Errorf("purge %s in vault %s: %w", name, v.Name, ErrPurgeProtected)
	}
	delete(v.Deleted, lk)
	if err := e.persist(); err != nil {
		v.Deleted[lk] = d
		return err
	}
	return nil
}

// purgeExpiredLocked purges deleted keys whose retention is over.
func (e *Emulator) purgeExpiredLocked(v *vaultState) error {
	now := e.nowUnix()
	changed := false
	for lk, d := range v.Deleted {
		if now >= d.ScheduledPurgeDate {
			delete(v.Deleted, lk)
			changed = true
		}
	}
	if changed {
		return e.persist()
	}
	return nil
}

// SetPolicy sets the access policy of principal (a service principal object
// id or, as an emulator extension, an app client id) on vault, replacing its
// permissions. Permission names are case-insensitive.
func (e *Emulator) SetPolicy(vault, principal string, perms []string) error {
	canon := make([]string, 0, len(perms))
	for _, p := range perms {
		c, ok := canonicalPermission(p)
		if !ok {
			return fmt.Errorf("permission %q: want one of %s: %w", p, strings.Join(Permissions, ", "), ErrInvalid)
		}
		if !slices.Contains(canon, c) {
			canon = append(canon, c)
		}
	}
	principal = strings.ToLower(strings.TrimSpace(principal))
	if principal == "" {
		return fmt.Errorf("empty principal: %w", ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return err
	}
	old, had := v.Policies[principal]
	v.Policies[principal] = canon
	if err := e.persist(); err != nil {
		if had {
			v.Policies[principal] = old
		} else {
			delete(v.Policies, principal)
		}
		return err
	}
	return nil
}

// RemovePolicy removes principal's access policy from vault.
func (e *Emulator) RemovePolicy(vault, principal string) error {
	principal = strings.ToLower(strings.TrimSpace(principal))
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return err
	}
	old, ok := v.Policies[principal]
	if !ok {
		return fmt.Errorf("access policy of %q on vault %s: %w", principal, v.Name, ErrNotFound)
	}
	delete(v.Policies, principal)
	if err := e.persist(); err != nil {
		v.Policies[principal] = old
		return err
	}
	return nil
}

// Policies returns the access policies of vault: principal → permissions.
func (e *Emulator) Policies(vault string) (map[string][]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(v.Policies))
	for p, perms := range v.Policies {
		out[p] = slices.Clone(perms)
	}
	return out, nil
}

func canonicalPermission(p string) (string, bool) {
	for _, c := range Permissions {
		if strings.EqualFold(c, strings.TrimSpace(p)) {
			return c, true
		}
	}
	return "", false
}

// SetFault installs a fault on vault, replacing any previous one.
func (e *Emulator) SetFault(vault string, f Fault) error {
	if f.Status != 0 && f.Status != 429 && (f.Status < 500 || f.Status > 599) {
		return fmt.Errorf("fault status %d: want 429 or 5xx: %w", f.Status, ErrInvalid)
	}
	if f.Latency < 0 || f.RetryAfter < 0 || f.Count < 0 {
		return fmt.Errorf("fault: negative value: %w", ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return err
	}
	e.faults[v.Name] = &f
	return nil
}

// ClearFault removes vault's fault.
func (e *Emulator) ClearFault(vault string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, err := e.vaultLocked(vault)
	if err != nil {
		return err
	}
	delete(e.faults, v.Name)
	return nil
}

// takeFault returns the fault to apply to one request on vault, if any.
func (e *Emulator) takeFault(vault string) (Fault, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, ok := e.faults[vault]
	if !ok {
		return Fault{}, false
	}
	out := *f
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			delete(e.faults, vault)
		}
	}
	return out, true
}

// Counters returns a snapshot of request counts: vault → operation → n.
func (e *Emulator) Counters() map[string]map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]map[string]int, len(e.counters))
	for v, m := range e.counters {
		out[v] = maps.Clone(m)
	}
	return out
}

// VaultCounters returns a snapshot of vault's request counts by operation.
func (e *Emulator) VaultCounters(vault string) map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := maps.Clone(e.counters[strings.ToLower(vault)])
	if m == nil {
		m = map[string]int{}
	}
	return m
}

// ResetCounters sets every counter to zero.
func (e *Emulator) ResetCounters() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.counters = map[string]map[string]int{}
	e.keyCounts = map[string]map[string]int{}
}

// KeyCounters returns a snapshot of the request counts naming key name of
// vault (any version), by operation: with one key per org, a test counts
// each org's vault calls.
func (e *Emulator) KeyCounters(vault, name string) map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := maps.Clone(e.keyCounts[strings.ToLower(vault)+"/"+strings.ToLower(name)])
	if m == nil {
		m = map[string]int{}
	}
	return m
}

func (e *Emulator) countKey(vault, name, op string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := vault + "/" + strings.ToLower(name)
	m := e.keyCounts[k]
	if m == nil {
		m = map[string]int{}
		e.keyCounts[k] = m
	}
	m[op]++
}

func (e *Emulator) count(vault, op string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.counters[vault]
	if m == nil {
		m = map[string]int{}
		e.counters[vault] = m
	}
	m[op]++
}

// keyInfo builds a KeyInfo; the caller holds e.mu.
func keyInfo(v *vaultState, k *keyState, kv *keyVersion, d *deletedKey) KeyInfo {
	info := KeyInfo{
		Vault: v.Name, Name: k.Name, Version: kv.ID, KID: v.uri() + "keys/" + k.Name + "/" + kv.ID,
		Kty: kv.Kty, Size: kv.Size, KeyOps: slices.Clone(kv.KeyOps), Enabled: kv.Enabled,
		Created: time.Unix(kv.Created, 0).UTC(), Updated: time.Unix(kv.Updated, 0).UTC(),
		Versions: slices.Sorted(maps.Keys(k.Versions)),
	}
	if kv.NBF != nil {
		t := time.Unix(*kv.NBF, 0).UTC()
		info.NotBefore = &t
	}
	if kv.EXP != nil {
		t := time.Unix(*kv.EXP, 0).UTC()
		info.Expires = &t
	}
	if d != nil {
		info.Deleted = true
		t := time.Unix(d.ScheduledPurgeDate, 0).UTC()
		info.ScheduledPurgeDate = &t
	}
	return info
}
