package azurekv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"golang.org/x/time/rate"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Config configures the driver.
type Config struct {
	// ClientID and ClientSecret are the platform's multi-tenant Entra ID
	// application. Required.
	ClientID     string
	ClientSecret string
	// AuthorityHost is the Entra ID authority; default
	// https://login.microsoftonline.com/ (sovereign clouds and the emulator
	// set their own).
	AuthorityHost string
	// ExtraHostSuffixes are additional allowed vault host suffixes (an
	// operator-configured test host). DefaultHostSuffixes always apply.
	ExtraHostSuffixes []string
	// HTTPClient carries every request (trusted CAs, proxies, the
	// emulator's dialer); default http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds each operation of the driver (Describe, Wrap, Unwrap,
	// the token check), its retries included; default 6s. TryTimeout bounds
	// each HTTP attempt within it (default 3s), so that a vault that accepts
	// connections but never answers costs at most MaxRetries+1 attempts.
	Timeout    time.Duration
	TryTimeout time.Duration
	// MaxRetries of throttled and failed attempts; default 2, negative for
	// none. RetryDelay is the base backoff (default 200ms), doubled per
	// attempt up to MaxRetryDelay (default 1s). A Retry-After the vault
	// sends is honoured when it is at most MaxRetryDelay; a longer one ends
	// the call at once with Unavailable and that Retry-After, for the
	// caller to wait instead of holding a request open.
	MaxRetries    int
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// AttributeTTL is how long Wrap trusts key attributes read by a recent
	// Describe or Wrap of the same version instead of reading them again
	// (default 5s). A probe followed by a re-wrap then costs one read.
	AttributeTTL time.Duration
	// VaultRate is the per-vault request rate limit shared by all orgs
	// (requests per second, default 200, i.e. half of Key Vault's 4,000 per
	// 10 s for RSA-2048), with burst VaultBurst (default 50).
	VaultRate  float64
	VaultBurst int
	// Gate, when set, replaces VaultRate and VaultBurst: every HTTP
	// attempt to a vault (retries included) waits for its admission
	// (masterkey.Vault{Cloud: "azure", Name: the vault host}) and reports
	// whether the vault throttled it. Throttled attempts are then retried
	// by the driver (at most MaxRetries times) through the gate, which
	// holds every call to that vault until the Retry-After has passed,
	// instead of by the SDK.
	Gate masterkey.Gate
}

// Provider implements masterkey.Provider for Azure Key Vault.
type Provider struct {
	cfg      Config
	suffixes []string

	mu       sync.Mutex
	attrs    map[string]attrEntry     // recent key attributes, by kid
	creds    map[string]*tenantCred   // by tenant
	clients  map[string]sdkClient     // by tenant|host
	limiters map[string]*rate.Limiter // by host
}

// Defaults of the Config fields of the same names.
const (
	DefaultTimeout       = 6 * time.Second
	DefaultTryTimeout    = 3 * time.Second
	DefaultMaxRetries    = 2
	DefaultRetryDelay    = 200 * time.Millisecond
	DefaultMaxRetryDelay = time.Second
)

var _ masterkey.Provider = (*Provider)(nil)

// sdkClient is the part of *azkeys.Client this driver uses.
type sdkClient interface {
	GetKey(ctx context.Context, name, version string, o *azkeys.GetKeyOptions) (azkeys.GetKeyResponse, error)
	WrapKey(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.WrapKeyOptions) (azkeys.WrapKeyResponse, error)
	UnwrapKey(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.UnwrapKeyOptions) (azkeys.UnwrapKeyResponse, error)
}

// New returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("azurekv: the platform's Entra ID application client ID and secret are required")
	}
	if cfg.AuthorityHost == "" {
		cfg.AuthorityHost = "https://login.microsoftonline.com/"
	}
	if !strings.HasSuffix(cfg.AuthorityHost, "/") {
		cfg.AuthorityHost += "/"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TryTimeout <= 0 {
		cfg.TryTimeout = DefaultTryTimeout
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = -1 // azcore: no retries
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = DefaultRetryDelay
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = DefaultMaxRetryDelay
	}
	if cfg.AttributeTTL == 0 {
		cfg.AttributeTTL = 5 * time.Second
	}
	if cfg.VaultRate == 0 {
		cfg.VaultRate = 200
	}
	if cfg.VaultBurst == 0 {
		cfg.VaultBurst = 50
	}
	suffixes := append([]string(nil), DefaultHostSuffixes...)
	for _, s := range cfg.ExtraHostSuffixes {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" {
			if !strings.HasPrefix(s, ".") {
				s = "." + s
			}
			suffixes = append(suffixes, s)
		}
	}
	return &Provider{cfg: cfg, suffixes: suffixes, attrs: map[string]attrEntry{}, creds: map[string]*tenantCred{}, clients: map[string]sdkClient{}, limiters: map[string]*rate.Limiter{}}, nil
}

// Driver returns the registry entry of this driver, using p's allowed hosts.
func (p *Provider) Driver() masterkey.Driver {
	return masterkey.Driver{Scheme: Scheme, ParseRef: func(uri string) (masterkey.Ref, error) { return parseRef(uri, p.suffixes) }}
}

// Timeout is the bound of one operation of the driver, retries included.
func (p *Provider) Timeout() time.Duration { return p.cfg.Timeout }

// HostSuffixes returns the allowed vault host suffixes.
func (p *Provider) HostSuffixes() []string { return p.suffixes }

// ParseKey parses a key as a customer enters it.
func (p *Provider) ParseKey(vaultURI, name, version, tenant string) (KeyID, error) {
	return ParseKeyID(vaultURI, name, version, tenant, p.suffixes)
}

func (p *Provider) options() azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: p.cfg.HTTPClient,
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: p.cfg.AuthorityHost},
		Retry: policy.RetryOptions{MaxRetries: int32(p.cfg.MaxRetries), TryTimeout: p.cfg.TryTimeout,
			RetryDelay: p.cfg.RetryDelay, MaxRetryDelay: p.cfg.MaxRetryDelay},
		Telemetry: policy.TelemetryOptions{Disabled: true},
	}
}

// vaultOptions are the options of a vault's client: with a Gate, the SDK
// does not retry a throttled attempt itself (call does, through the gate).
func (p *Provider) vaultOptions() azcore.ClientOptions {
	o := p.options()
	if p.cfg.Gate != nil {
		o.Retry.StatusCodes = []int{http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout}
	}
	return o
}

// remote is what an operation needs to call one vault: its SDK client, the
// vault's rate limiter (or the gate and the vault's name in it) and the
// tenant's credential.
type remote struct {
	cl      sdkClient
	lim     *rate.Limiter
	cred    *tenantCred
	gate    masterkey.Gate
	vault   masterkey.Vault
	retries int // of throttled attempts, with a gate
}

func (p *Provider) newCredential(tenant string) (azcore.TokenCredential, error) {
	c, err := azidentity.NewClientSecretCredential(tenant, p.cfg.ClientID, p.cfg.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: p.options(), DisableInstanceDiscovery: true})
	if err != nil {
		return nil, &fault.Error{Kind: fault.CredentialsInvalid, Provider: Scheme, Err: err}
	}
	return c, nil
}

func (p *Provider) client(k KeyID) (remote, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cred, ok := p.creds[k.Tenant]
	if !ok {
		tenant := k.Tenant
		c, err := p.newCredential(tenant)
		if err != nil {
			return remote{}, err
		}
		cred = &tenantCred{tenant: tenant, cred: c, renew: func() (azcore.TokenCredential, error) { return p.newCredential(tenant) }}
		p.creds[k.Tenant] = cred
	}
	ck := k.Tenant + "|" + k.Host
	cl, ok := p.clients[ck]
	if !ok {
		c, err := azkeys.NewClient(k.VaultURL(), cred, &azkeys.ClientOptions{ClientOptions: p.vaultOptions()})
		if err != nil {
			return remote{}, &fault.Error{Kind: fault.Invalid, Field: "vault_uri", Err: err}
		}
		cl = c
		p.clients[ck] = cl
	}
	if p.cfg.Gate != nil {
		return remote{cl: cl, cred: cred, gate: p.cfg.Gate, vault: masterkey.Vault{Cloud: "azure", Name: k.Host}, retries: max(0, p.cfg.MaxRetries)}, nil
	}
	lim, ok := p.limiters[k.Host]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(p.cfg.VaultRate), p.cfg.VaultBurst)
		p.limiters[k.Host] = lim
	}
	return remote{cl: cl, lim: lim, cred: cred}, nil
}

// tenantCred is the credential of one customer tenant. It refuses tokens
// for any other tenant with a typed error (the SDK asks for the tenant named
// by the vault's challenge), and it can drop its cached token: a credential
// caches its token until it expires (about an hour), and a token the vault
// refuses must not be offered again.
type tenantCred struct {
	tenant string
	renew  func() (azcore.TokenCredential, error)

	mu   sync.Mutex
	cred azcore.TokenCredential
	gen  uint64 // incremented by every renewal
}

// errOtherTenant is the tenant a vault's challenge named when it is not the
// authorized one; classify turns it into a message naming the vault.
type errOtherTenant struct{ vaultTenant, authorized string }

func (e *errOtherTenant) Error() string {
	return "the vault's challenge names tenant " + e.vaultTenant + ", not the authorized tenant " + e.authorized
}

func (c *tenantCred) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if o.TenantID != "" && !strings.EqualFold(o.TenantID, c.tenant) {
		return azcore.AccessToken{}, &errOtherTenant{vaultTenant: o.TenantID, authorized: c.tenant}
	}
	c.mu.Lock()
	cred := c.cred
	c.mu.Unlock()
	return cred.GetToken(ctx, o)
}

// generation identifies the credential (and so its cached token) in use.
func (c *tenantCred) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// renewAfter replaces the credential, and with it its cached token, unless
// another caller already replaced the one of generation gen.
func (c *tenantCred) renewAfter(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	fresh, err := c.renew()
	if err != nil {
		return // keep the old one; the retry reports its error
	}
	c.cred, c.gen = fresh, c.gen+1
}

// invoke runs one SDK call f on r under the vault's rate limit. When the
// vault refuses the token (401), it drops the tenant's cached token and
// tries once more with a fresh one: a token can be refused long before it
// expires (consent withdrawn, the token revoked), and only the token
// endpoint's answer says why. Errors are classified for operation op.
func invoke[T any](ctx context.Context, r remote, k KeyID, op string, f func() (T, error)) (T, error) {
	gen := r.cred.generation()
	out, err := call(ctx, r, f)
	if tokenRefused(err) && ctx.Err() == nil {
		r.cred.renewAfter(gen)
		out, err = call(ctx, r, f)
	}
	if err != nil {
		return out, classify(op, k, err)
	}
	return out, nil
}

// tokenRefused reports whether err is the vault's 401.
func tokenRefused(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusUnauthorized
}

// budget bounds one operation of the driver by Config.Timeout.
func (p *Provider) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.Timeout)
}

// call runs f under the vault's gate (each attempt admitted, and a
// throttled one retried through it) or its rate limit, and turns an SDK
// panic into an error.
func call[T any](ctx context.Context, r remote, f func() (T, error)) (out T, err error) {
	if r.gate == nil {
		if err := r.lim.Wait(ctx); err != nil {
			return out, &fault.Error{Kind: fault.Unavailable, Reason: "rate limit wait cancelled", Err: err}
		}
		return protect(f)
	}
	for attempt := 0; ; attempt++ {
		done, err := r.gate.Admit(ctx, r.vault)
		if err != nil {
			return out, err
		}
		out, err = protect(f)
		throttled, after := throttledAnswer(err)
		done(throttled, after)
		if !throttled || attempt >= r.retries || ctx.Err() != nil {
			return out, err
		}
	}
}

// throttledAnswer reports whether err is the vault's 429, with the
// Retry-After it sent.
func throttledAnswer(err error) (bool, time.Duration) {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusTooManyRequests {
		return true, retryAfter(re.RawResponse)
	}
	return false, 0
}

// protect runs f, turning an SDK panic into an error.
func protect[T any](f func() (T, error)) (out T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &fault.Error{Kind: fault.Unavailable, Reason: "the vault's response could not be processed", Err: fmt.Errorf("azure sdk panic: %v", r)}
		}
	}()
	return f()
}

func (p *Provider) keyID(ref masterkey.Ref) (KeyID, error) { return keyIDOf(ref, p.suffixes) }

// Key parses a ref of this driver (as [KeyID.Ref] makes them); Invalid if
// it is not one.
func (p *Provider) Key(ref masterkey.Ref) (KeyID, error) { return p.keyID(ref) }

// Vault names the vault of ref for its request budget: its host.
func (p *Provider) Vault(ref masterkey.Ref) (masterkey.Vault, bool) {
	k, err := p.keyID(ref)
	if err != nil {
		return masterkey.Vault{}, false
	}
	return masterkey.Vault{Cloud: "azure", Name: k.Host}, true
}

var _ masterkey.VaultNamer = (*Provider)(nil)

// Describe reports the attributes of ref's version, or of the current
// version when ref has none.
func (p *Provider) Describe(ctx context.Context, ref masterkey.Ref) (masterkey.Description, error) {
	k, err := p.keyID(ref)
	if err != nil {
		return masterkey.Description{}, err
	}
	r, err := p.client(k)
	if err != nil {
		return masterkey.Description{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	resp, err := invoke(ctx, r, k, "get", func() (azkeys.GetKeyResponse, error) { return r.cl.GetKey(ctx, k.Name, k.Version, nil) })
	if err != nil {
		return masterkey.Description{}, err
	}
	d, err := p.describe(k, resp.KeyBundle)
	if err != nil {
		return masterkey.Description{}, err
	}
	p.remember(k, d)
	return d, nil
}

// describe reads a key bundle of key k. The version comes from the
// bundle's kid, which must name k: a version orgkms records must be one of
// the key it asked for.
func (p *Provider) describe(k KeyID, b azkeys.KeyBundle) (masterkey.Description, error) {
	d := masterkey.Description{Key: k.Ref()}
	if b.Key != nil {
		if b.Key.KID != nil {
			kid, err := p.checkKID(k, string(*b.Key.KID))
			if err != nil {
				return masterkey.Description{}, err
			}
			d.Key.Version = kid.Version
		}
		if b.Key.Kty != nil {
			d.KeyType = string(*b.Key.Kty)
		}
		if len(b.Key.N) > 0 {
			d.KeySize = len(b.Key.N) * 8
		}
		for _, op := range b.Key.KeyOps {
			if op != nil {
				d.Operations = append(d.Operations, string(*op))
			}
		}
		if d.Operations == nil {
			d.Operations = []string{}
		}
	}
	d.Algorithm = algorithmFor(d.KeyType)
	for k, v := range b.Tags {
		if v != nil {
			if d.Tags == nil {
				d.Tags = map[string]string{}
			}
			d.Tags[k] = *v
		}
	}
	if d.KeyType == string(azkeys.KeyTypeOctHSM) && d.KeySize == 0 {
		d.KeySize = 256
	}
	if a := b.Attributes; a != nil {
		d.Enabled = a.Enabled == nil || *a.Enabled
		if a.NotBefore != nil {
			d.NotBefore = *a.NotBefore
		}
		if a.Expires != nil {
			d.Expires = *a.Expires
		}
		if a.RecoverableDays != nil {
			d.SoftDeleteDays = int(*a.RecoverableDays)
		}
		if a.RecoveryLevel != nil {
			lvl := string(*a.RecoveryLevel)
			if strings.Contains(lvl, "Recoverable") && d.SoftDeleteDays == 0 {
				d.SoftDeleteDays = 90
			}
			d.PurgeProtection = strings.Contains(lvl, "Recoverable") && !strings.Contains(lvl, "Purgeable")
		}
	}
	return d, nil
}

// checkKID parses a kid the vault returned for key k and checks that it
// names k.
func (p *Provider) checkKID(k KeyID, raw string) (KeyID, error) {
	kid, err := parseKID(raw, p.suffixes)
	if err == nil && !k.sameKey(kid) {
		err = &fault.Error{Kind: fault.Internal, Provider: Scheme, Reason: "the vault returned the identifier of another key"}
	}
	if err != nil {
		fe := *fault.As(err)
		fe.Resource = resource(k)
		return KeyID{}, &fe
	}
	return kid, nil
}

func algorithmFor(kty string) string {
	if kty == string(azkeys.KeyTypeOctHSM) || kty == string(azkeys.KeyTypeOct) {
		return string(azkeys.EncryptionAlgorithmA256KW)
	}
	return string(azkeys.EncryptionAlgorithmRSAOAEP256)
}

// Wrap checks that the key may wrap now, then wraps dek with its current
// version (or the version in ref).
func (p *Provider) Wrap(ctx context.Context, ref masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	k, err := p.keyID(ref)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	r, err := p.client(k)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	// The service does not always refuse to wrap with a disabled or expired
	// key: check the attributes of the exact version first (read at most
	// AttributeTTL ago).
	d, ok := p.recent(k)
	if !ok {
		resp, err := invoke(ctx, r, k, "get", func() (azkeys.GetKeyResponse, error) { return r.cl.GetKey(ctx, k.Name, k.Version, nil) })
		if err != nil {
			return masterkey.Wrapped{}, err
		}
		if d, err = p.describe(k, resp.KeyBundle); err != nil {
			return masterkey.Wrapped{}, err
		}
		p.remember(k, d)
	}
	if !d.UsableAt(time.Now()) {
		reason := fmt.Sprintf("key %s version %s in vault %s is disabled", k.Name, d.Key.Version, k.Vault())
		if d.Enabled {
			reason = fmt.Sprintf("key %s version %s in vault %s is outside its activation/expiration dates", k.Name, d.Key.Version, k.Vault())
		}
		return masterkey.Wrapped{}, &fault.Error{Kind: fault.KeyDisabled, Op: "wrap", Provider: Scheme, Resource: resource(k), Reason: reason}
	}
	k.Version = d.Key.Version
	alg := azkeys.EncryptionAlgorithm(d.Algorithm)
	wr, err := invoke(ctx, r, k, "wrapKey", func() (azkeys.WrapKeyResponse, error) {
		return r.cl.WrapKey(ctx, k.Name, k.Version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: dek}, nil)
	})
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	if wr.KID == nil {
		return masterkey.Wrapped{}, &fault.Error{Kind: fault.Internal, Op: "wrap", Provider: Scheme, Resource: resource(k), Reason: "vault did not return the versioned key ID"}
	}
	kid, err := p.checkKID(k, string(*wr.KID))
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	if kid.Version == "" {
		return masterkey.Wrapped{}, &fault.Error{Kind: fault.Internal, Op: "wrap", Provider: Scheme, Resource: resource(k), Reason: "vault did not return the versioned key ID"}
	}
	k.Version = kid.Version
	return masterkey.Wrapped{Ciphertext: wr.Result, Key: k.Ref()}, nil
}

// Unwrap unwraps with exactly ref.Version.
func (p *Provider) Unwrap(ctx context.Context, ref masterkey.Ref, ciphertext, aad []byte) ([]byte, error) {
	k, err := p.keyID(ref)
	if err != nil {
		return nil, err
	}
	if k.Version == "" {
		return nil, &fault.Error{Kind: fault.Internal, Op: "unwrap", Provider: Scheme, Resource: resource(k), Reason: "unwrap needs the exact key version"}
	}
	r, err := p.client(k)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	alg := azkeys.EncryptionAlgorithmRSAOAEP256
	if len(ciphertext) < 256 { // RSA output is the modulus size (>= 256 bytes); AES key wrap output is payload+8
		alg = azkeys.EncryptionAlgorithmA256KW
	}
	ur, err := invoke(ctx, r, k, "unwrapKey", func() (azkeys.UnwrapKeyResponse, error) {
		return r.cl.UnwrapKey(ctx, k.Name, k.Version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: ciphertext}, nil)
	})
	if err != nil {
		return nil, err
	}
	return ur.Result, nil
}

// Close forgets clients and credentials.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.creds)
	clear(p.clients)
	return nil
}

func resource(k KeyID) string {
	v := ""
	if k.Version != "" {
		v = " version " + k.Version
	}
	return "key " + k.Name + v + " in vault " + k.Vault()
}

// CheckCredentials obtains a fresh token for the key's vault in the key's
// tenant: never a cached one, which the vault would honour until it expires
// even after the customer withdrew consent.
func (p *Provider) CheckCredentials(ctx context.Context, ref masterkey.Ref) error {
	k, err := p.keyID(ref)
	if err != nil {
		return err
	}
	cred, err := p.newCredential(k.Tenant)
	if err != nil {
		return classify("token", k, err)
	}
	scope := "https://vault.azure.net/.default"
	if k.ManagedHSM() {
		scope = "https://managedhsm.azure.net/.default"
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	_, err = call(ctx, remote{lim: rate.NewLimiter(rate.Inf, 1)}, func() (azcore.AccessToken, error) {
		return cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}, TenantID: k.Tenant})
	})
	if err != nil {
		return classify("token", k, err)
	}
	return nil
}

// DeletedKey reports a soft-deleted key's purge date; KeyNotFound when the
// key is not in the deleted state.
func (p *Provider) DeletedKey(ctx context.Context, ref masterkey.Ref) (masterkey.DeletedKey, error) {
	k, err := p.keyID(ref)
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	r, err := p.client(k)
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	dc, ok := r.cl.(interface {
		GetDeletedKey(ctx context.Context, name string, o *azkeys.GetDeletedKeyOptions) (azkeys.GetDeletedKeyResponse, error)
	})
	if !ok {
		return masterkey.DeletedKey{}, &fault.Error{Kind: fault.KeyNotFound, Provider: Scheme, Resource: resource(k)}
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	resp, err := invoke(ctx, r, k, "get", func() (azkeys.GetDeletedKeyResponse, error) { return dc.GetDeletedKey(ctx, k.Name, nil) })
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	var d masterkey.DeletedKey
	if resp.DeletedDate != nil {
		d.DeletedAt = *resp.DeletedDate
	}
	if resp.ScheduledPurgeDate != nil {
		d.ScheduledPurge = *resp.ScheduledPurgeDate
	}
	return d, nil
}

type attrEntry struct {
	d  masterkey.Description
	at time.Time
}

// remember records the attributes of k's version (and, when k names no
// version, of the current version under both names).
func (p *Provider) remember(k KeyID, d masterkey.Description) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.attrs) > 100_000 {
		clear(p.attrs)
	}
	kv := k
	kv.Version = d.Key.Version
	p.attrs[kv.URI()] = attrEntry{d, now}
	if k.Version == "" {
		p.attrs[k.URI()] = attrEntry{d, now}
	}
}

func (p *Provider) recent(k KeyID) (masterkey.Description, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.attrs[k.URI()]
	if !ok || time.Since(e.at) > p.cfg.AttributeTTL {
		return masterkey.Description{}, false
	}
	return e.d, true
}
