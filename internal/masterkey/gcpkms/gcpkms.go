package gcpkms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Config configures the driver. The zero value talks to Google with
// Application Default Credentials.
type Config struct {
	// Endpoint is the Cloud KMS gRPC endpoint, host:port; default
	// cloudkms.googleapis.com:443 (the client's own default).
	Endpoint string
	// CredentialsFile is the platform's own service-account (or workload
	// identity federation) credentials JSON file; "" uses Application
	// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, the metadata
	// server, workload identity). Customers never hand orgkms credentials:
	// they grant orgkms' service account on their key.
	CredentialsFile string
	// Insecure dials Endpoint in plaintext without any credentials. Only
	// for the in-process fake in tests and development; production always
	// dials TLS.
	Insecure bool
	// AllowedLocations are the Cloud KMS locations whose keys are accepted
	// (e.g. "europe-west4", "europe"); empty accepts any.
	AllowedLocations []string
	// Timeout bounds each operation, the client's retries included;
	// default 6s.
	Timeout time.Duration
	// ClientOptions are appended to the client's options (tests).
	ClientOptions []option.ClientOption
	// Gate, when set, admits every RPC attempt to Cloud KMS (the client's
	// retries included) under the request budget of the key's project and
	// location (masterkey.Vault{Cloud: "gcp", Name: "PROJECT/LOCATION"}),
	// and hears of each RESOURCE_EXHAUSTED answer, which pauses every call
	// to that project and location for its RetryInfo delay (the gate's
	// default when Google sends none).
	Gate masterkey.Gate
}

// DefaultTimeout is the default of Config.Timeout.
const DefaultTimeout = 6 * time.Second

// sdkClient is the part of *kms.KeyManagementClient this driver uses.
type sdkClient interface {
	GetCryptoKey(ctx context.Context, req *kmspb.GetCryptoKeyRequest, opts ...gax.CallOption) (*kmspb.CryptoKey, error)
	GetCryptoKeyVersion(ctx context.Context, req *kmspb.GetCryptoKeyVersionRequest, opts ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	Encrypt(ctx context.Context, req *kmspb.EncryptRequest, opts ...gax.CallOption) (*kmspb.EncryptResponse, error)
	Decrypt(ctx context.Context, req *kmspb.DecryptRequest, opts ...gax.CallOption) (*kmspb.DecryptResponse, error)
	Close() error
}

// Provider implements masterkey.Provider, masterkey.DeletionInspector and
// masterkey.CredentialChecker for Google Cloud KMS.
type Provider struct {
	cfg   Config
	cl    sdkClient
	creds *auth.Credentials // nil when Insecure

	closeOnce sync.Once
	closeErr  error
}

var (
	_ masterkey.Provider          = (*Provider)(nil)
	_ masterkey.DeletionInspector = (*Provider)(nil)
	_ masterkey.CredentialChecker = (*Provider)(nil)
	_ masterkey.NativeAADer       = (*Provider)(nil)
)

// Open returns a provider whose client talks to cfg.Endpoint. The gRPC
// connection is made lazily: Open fails only on a bad configuration (an
// unreadable or malformed credentials file), never because Google is
// unreachable.
func Open(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	p := &Provider{cfg: cfg}
	if cfg.Insecure {
		if cfg.CredentialsFile != "" {
			return nil, errors.New("gcpkms: insecure (plaintext, unauthenticated) mode takes no credentials file")
		}
		opts = append(opts, option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else {
		creds, err := loadCredentials(cfg.CredentialsFile)
		if err != nil {
			return nil, err
		}
		p.creds = creds
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	if cfg.Gate != nil {
		opts = append(opts, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(gateInterceptor(cfg.Gate))))
	}
	opts = append(opts, cfg.ClientOptions...)
	cl, err := kms.NewKeyManagementClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcpkms: create the Cloud KMS client: %w", err)
	}
	p.cl = cl
	return p, nil
}

// credentialTypes are the credential files a platform's own identity may
// take: a service-account key, workload identity federation, or an
// impersonated service account.
var credentialTypes = map[string]credentials.CredType{
	string(credentials.ServiceAccount):             credentials.ServiceAccount,
	string(credentials.ExternalAccount):            credentials.ExternalAccount,
	string(credentials.ImpersonatedServiceAccount): credentials.ImpersonatedServiceAccount,
}

// loadCredentials reads the platform's credentials file, or detects
// Application Default Credentials when path is "". Errors never quote the
// file's contents.
func loadCredentials(path string) (*auth.Credentials, error) {
	opts := &credentials.DetectOptions{Scopes: kms.DefaultAuthScopes()}
	if path == "" {
		c, err := credentials.DetectDefault(opts)
		if err != nil {
			return nil, fmt.Errorf("gcpkms: no Application Default Credentials found: set cmk.gcp.credentials_file or GOOGLE_APPLICATION_CREDENTIALS, or run where a service account is attached")
		}
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gcpkms: read credentials file: %w", err)
	}
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, fmt.Errorf("gcpkms: credentials file %s is not JSON", path)
	}
	typ, ok := credentialTypes[head.Type]
	if !ok {
		return nil, fmt.Errorf("gcpkms: credentials file %s has type %q; want service_account, external_account or impersonated_service_account", path, safeType(head.Type))
	}
	c, err := credentials.NewCredentialsFromJSON(typ, b, opts)
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("gcpkms: credentials file %s is not valid %s credentials", path, typ)
	}
	return c, nil
}

func safeType(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r == '_' {
			return r
		}
		return -1
	}, s)
}

// Driver returns the registry entry of this driver, using p's allowed
// locations.
func (p *Provider) Driver() masterkey.Driver {
	return masterkey.Driver{Scheme: Scheme, ParseRef: func(uri string) (masterkey.Ref, error) { return ParseRef(uri, p.cfg.AllowedLocations) }}
}

// Timeout is the bound of one operation of the driver, retries included.
func (p *Provider) Timeout() time.Duration { return p.cfg.Timeout }

// NativeAAD reports that Cloud KMS binds the associated data itself.
func (p *Provider) NativeAAD() bool { return true }

// ParseKey parses a key resource name as a customer enters it, against the
// allowed locations.
func (p *Provider) ParseKey(name string) (KeyName, error) {
	return ParseKeyName(name, p.cfg.AllowedLocations)
}

// Key parses a ref of this driver.
func (p *Provider) Key(ref masterkey.Ref) (KeyName, error) { return KeyOf(ref, p.cfg.AllowedLocations) }

func (p *Provider) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.Timeout)
}

// retry is the retry policy of Encrypt, Decrypt and the reads: the
// client's default codes (UNAVAILABLE, DEADLINE_EXCEEDED) plus
// RESOURCE_EXHAUSTED, which the client does not retry but Google advises
// retrying with backoff (quotas are enforced per second or minute). Calls
// stay bounded by Config.Timeout.
var retry = gax.WithRetry(func() gax.Retryer {
	return gax.OnCodes([]codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted},
		gax.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2})
})

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// errCorrupted is returned when a response's checksums show it was
// corrupted on the way: transient, Google's advice is to retry.
func errCorrupted(op string, k KeyName, what string) error {
	return &fault.Error{Kind: fault.Unavailable, Op: op, Provider: Scheme, Resource: k.resource(), RetryAfter: outageRetryAfter,
		Reason: "the Cloud KMS response failed its integrity check (" + what + "); retry"}
}

// Wrap encrypts dek with aad as additional authenticated data under the
// key's primary version (or under ref's version, when it names one) and
// records the version the service used, from the response's name. It sends
// CRC32C checksums of the plaintext and AAD and checks that the service
// verified them and that the ciphertext matches its checksum; a mismatch
// is Kind Unavailable (retryable).
func (p *Provider) Wrap(ctx context.Context, ref masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	k, err := p.Key(ref)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	resp, err := p.cl.Encrypt(ctx, &kmspb.EncryptRequest{
		Name:                              k.VersionName(),
		Plaintext:                         dek,
		PlaintextCrc32C:                   wrapperspb.Int64(crc(dek)),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(crc(aad)),
	}, retry)
	if err != nil {
		return masterkey.Wrapped{}, p.classifyUse(ctx, opEncrypt, k, err)
	}
	if !resp.GetVerifiedPlaintextCrc32C() || !resp.GetVerifiedAdditionalAuthenticatedDataCrc32C() {
		return masterkey.Wrapped{}, errCorrupted(opEncrypt, k, "the request checksums were not verified")
	}
	if resp.GetCiphertextCrc32C() == nil || resp.GetCiphertextCrc32C().GetValue() != crc(resp.GetCiphertext()) {
		return masterkey.Wrapped{}, errCorrupted(opEncrypt, k, "ciphertext checksum mismatch")
	}
	v, ok := parseVersionName(k, resp.GetName())
	if !ok || (k.Version != "" && v != k.Version) {
		return masterkey.Wrapped{}, &fault.Error{Kind: fault.Internal, Op: opEncrypt, Provider: Scheme, Resource: k.resource(),
			Reason: "Cloud KMS did not name a version of the requested key in its answer"}
	}
	k.Version = v
	return masterkey.Wrapped{Ciphertext: resp.GetCiphertext(), Key: k.Ref()}, nil
}

// Unwrap decrypts ciphertext with aad. Cloud KMS requires the CryptoKey
// name on Decrypt and finds the version from the ciphertext; ref.Version
// (the version recorded at Wrap) names the version in errors and must be
// set. Decrypt does not report which version it used, so the driver
// cannot compare it with ref.Version; sending the key name is what stops a
// ciphertext of another key. Kind Integrity if the ciphertext was not made
// by this key with aad; Unavailable if the plaintext fails its checksum.
func (p *Provider) Unwrap(ctx context.Context, ref masterkey.Ref, ciphertext, aad []byte) ([]byte, error) {
	k, err := p.Key(ref)
	if err != nil {
		return nil, err
	}
	if k.Version == "" {
		return nil, &fault.Error{Kind: fault.Internal, Op: opDecrypt, Provider: Scheme, Resource: k.resource(), Reason: "unwrap needs the key version recorded at wrap"}
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	resp, err := p.cl.Decrypt(ctx, &kmspb.DecryptRequest{
		Name:                              k.Name(),
		Ciphertext:                        ciphertext,
		CiphertextCrc32C:                  wrapperspb.Int64(crc(ciphertext)),
		AdditionalAuthenticatedData:       aad,
		AdditionalAuthenticatedDataCrc32C: wrapperspb.Int64(crc(aad)),
	}, retry)
	if err != nil {
		return nil, p.classifyUse(ctx, opDecrypt, k, err)
	}
	pt := resp.GetPlaintext()
	if resp.GetPlaintextCrc32C() == nil || resp.GetPlaintextCrc32C().GetValue() != crc(pt) {
		clear(pt)
		return nil, errCorrupted(opDecrypt, k, "plaintext checksum mismatch")
	}
	return pt, nil
}

// classifyUse classifies an Encrypt or Decrypt error; for a version
// scheduled for destruction (the KEY_DESTROY_SCHEDULED violation) it reads
// the version to name the date in the reason (best effort: without it the
// reason names no date).
func (p *Provider) classifyUse(ctx context.Context, op string, k KeyName, err error) error {
	ce := classify(op, k, err)
	typ, subject := violationOf(err)
	if typ != violationDestroyScheduled || ctx.Err() != nil {
		return ce
	}
	kv := k
	v, ok := parseVersionName(k, subject)
	if !ok {
		return ce
	}
	kv.Version = v
	ver, gerr := p.cl.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: kv.VersionName()}, retry)
	if gerr != nil || ver.GetState() != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED || ver.GetDestroyTime() == nil {
		return ce
	}
	c := *fault.As(ce)
	c.Reason = VersionStatus(k, ver).Reason
	return &c
}

// Describe reads the key (GetCryptoKey). Without a version in ref it
// describes the primary version (Description.Key.Version names it: a new
// primary is a rotation); with one, that version (GetCryptoKeyVersion).
// Only an ENABLED version is Enabled. A DESTROYED version is Kind
// KeyDestroyed; a key whose purpose is not ENCRYPT_DECRYPT, or whose
// algorithm is not GOOGLE_SYMMETRIC_ENCRYPTION, is Kind Invalid.
func (p *Provider) Describe(ctx context.Context, ref masterkey.Ref) (masterkey.Description, error) {
	k, err := p.Key(ref)
	if err != nil {
		return masterkey.Description{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	ck, err := p.cl.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: k.Name()}, retry)
	if err != nil {
		return masterkey.Description{}, classify(opGet, k, err)
	}
	if ck.GetPurpose() != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return masterkey.Description{}, &fault.Error{Kind: fault.Invalid, Field: "key_name", Op: opGet, Provider: Scheme, Resource: k.resource(),
			Reason: fmt.Sprintf("key %s has purpose %s: orgkms needs a symmetric encrypt/decrypt key (purpose ENCRYPT_DECRYPT)", k.CryptoKey, ck.GetPurpose())}
	}
	ver := ck.GetPrimary()
	if k.Version != "" {
		if ver, err = p.cl.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: k.VersionName()}, retry); err != nil {
			return masterkey.Description{}, classify(opGetVersion, k, err)
		}
	}
	if ver == nil {
		return masterkey.Description{}, &fault.Error{Kind: fault.KeyDisabled, Op: opGet, Provider: Scheme, Resource: k.resource(),
			Reason: "key " + k.CryptoKey + " has no primary version: make an enabled version primary (" + consolePath(k) + " → Make primary)"}
	}
	return DescribeVersion(k, ck, ver)
}

// DescribeVersion builds the description of version ver of key ck (as
// GetCryptoKey and GetCryptoKeyVersion return them) of key k: Enabled only
// when ENABLED. It returns Kind Internal if ver is not a version of k,
// Invalid for an algorithm other than GOOGLE_SYMMETRIC_ENCRYPTION, and
// KeyDestroyed for a DESTROYED version.
func DescribeVersion(k KeyName, ck *kmspb.CryptoKey, ver *kmspb.CryptoKeyVersion) (masterkey.Description, error) {
	v, ok := parseVersionName(k, ver.GetName())
	if !ok {
		return masterkey.Description{}, &fault.Error{Kind: fault.Internal, Op: opGet, Provider: Scheme, Resource: k.resource(),
			Reason: "Cloud KMS did not name a version of the requested key in its answer"}
	}
	kv := k
	kv.Version = v
	if ver.GetAlgorithm() != kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION {
		return masterkey.Description{}, &fault.Error{Kind: fault.Invalid, Field: "key_name", Op: opGet, Provider: Scheme, Resource: kv.resource(),
			Reason: fmt.Sprintf("version %s of key %s has algorithm %s: orgkms needs GOOGLE_SYMMETRIC_ENCRYPTION", v, k.CryptoKey, ver.GetAlgorithm())}
	}
	st := VersionStatus(k, ver)
	if st.Kind == fault.KeyDestroyed {
		return masterkey.Description{}, &fault.Error{Kind: fault.KeyDestroyed, Op: opGet, Provider: Scheme, Resource: kv.resource(), Reason: st.Reason}
	}
	d := masterkey.Description{
		Key:             kv.Ref(),
		Enabled:         st.Usable,
		KeyType:         "AES-256",
		KeySize:         256,
		Algorithm:       ver.GetAlgorithm().String(),
		Operations:      []string{"encrypt", "decrypt"},
		NativeAAD:       true,
		PurgeProtection: true, // Cloud KMS always schedules destruction; it cannot be made immediate
	}
	if pl := ver.GetProtectionLevel(); pl != kmspb.ProtectionLevel_SOFTWARE && pl != kmspb.ProtectionLevel_PROTECTION_LEVEL_UNSPECIFIED {
		d.KeyType = "AES-256-" + pl.String()
	}
	if ds := ck.GetDestroyScheduledDuration(); ds != nil {
		d.SoftDeleteDays = int(ds.AsDuration() / (24 * time.Hour))
	} else {
		d.SoftDeleteDays = 30 // Google's default
	}
	if len(ck.GetLabels()) > 0 {
		d.Tags = make(map[string]string, len(ck.GetLabels()))
		for lk, lv := range ck.GetLabels() {
			d.Tags[lk] = lv
		}
	}
	return d, nil
}

// DeletedKey reports a version scheduled for destruction: ScheduledPurge
// is its destroy_time (DeletedAt is unknown, Google does not record when
// destruction was scheduled). It returns Kind KeyNotFound when the version
// (ref's, or the primary) is not DESTROY_SCHEDULED, and KeyDestroyed when
// it is already DESTROYED.
func (p *Provider) DeletedKey(ctx context.Context, ref masterkey.Ref) (masterkey.DeletedKey, error) {
	k, err := p.Key(ref)
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	if k.Version == "" {
		ck, err := p.cl.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: k.Name()}, retry)
		if err != nil {
			return masterkey.DeletedKey{}, classify(opGet, k, err)
		}
		v, ok := parseVersionName(k, ck.GetPrimary().GetName())
		if !ok {
			return masterkey.DeletedKey{}, &fault.Error{Kind: fault.KeyNotFound, Op: opGet, Provider: Scheme, Resource: k.resource(), Reason: "key " + k.CryptoKey + " has no primary version"}
		}
		k.Version = v
	}
	ver, err := p.cl.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: k.VersionName()}, retry)
	if err != nil {
		return masterkey.DeletedKey{}, classify(opGetVersion, k, err)
	}
	switch ver.GetState() {
	case kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
		var d masterkey.DeletedKey
		if t := ver.GetDestroyTime(); t != nil {
			d.ScheduledPurge = t.AsTime()
		}
		return d, nil
	case kmspb.CryptoKeyVersion_DESTROYED:
		return masterkey.DeletedKey{}, &fault.Error{Kind: fault.KeyDestroyed, Op: opGetVersion, Provider: Scheme, Resource: k.resource(),
			Reason: fmt.Sprintf("version %s of key %s was destroyed in Cloud KMS: data wrapped by it is unrecoverable", k.Version, k.CryptoKey)}
	}
	return masterkey.DeletedKey{}, &fault.Error{Kind: fault.KeyNotFound, Op: opGetVersion, Provider: Scheme, Resource: k.resource(),
		Reason: fmt.Sprintf("version %s of key %s is not scheduled for destruction (state %s)", k.Version, k.CryptoKey, ver.GetState())}
}

// CheckCredentials obtains an access token with the platform's own
// credentials (Kind CredentialsInvalid if they are refused). In Insecure
// mode there are no credentials and it returns nil.
func (p *Provider) CheckCredentials(ctx context.Context, ref masterkey.Ref) error {
	k, err := p.Key(ref)
	if err != nil {
		return err
	}
	if p.creds == nil {
		return nil
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	if _, err := p.creds.Token(ctx); err != nil {
		if ctx.Err() != nil {
			return classify("token", k, ctx.Err())
		}
		return &fault.Error{Kind: fault.CredentialsInvalid, Op: "token", Provider: Scheme, Resource: k.resource(), Err: err,
			Reason: "orgkms could not obtain a Google access token with its service-account credentials: the platform operator must check cmk.gcp.credentials_file"}
	}
	return nil
}

// Close closes the client's connection; closing twice is not an error.
// Calls after Close fail.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() { p.closeErr = p.cl.Close() })
	return p.closeErr
}
