package awskms

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Config configures the driver.
type Config struct {
	// AllowedRegions, when not empty, are the only Regions whose keys the
	// driver accepts (cmk.aws.allowed_regions).
	AllowedRegions []string
	// Region is the platform's home Region, used to load the platform's
	// credentials (e.g. for IMDS or SSO); default eu-west-1. KMS and STS
	// are always called in the key's Region.
	Region string
	// Credentials are the platform's own AWS credentials, which assume
	// customers' roles; nil means the SDK's default chain (environment,
	// shared files, container or instance role).
	Credentials aws.CredentialsProvider
	// HTTPClient carries every request; nil means the SDK's default.
	HTTPClient aws.HTTPClient
	// KMSEndpoint and STSEndpoint, when set, replace AWS's endpoints
	// (emulators and tests).
	KMSEndpoint, STSEndpoint string
	// SessionDuration is the lifetime of assumed-role sessions; default 15m
	// (the AssumeRole minimum), at most 12h.
	SessionDuration time.Duration
	// ExpiryWindow renews assumed-role credentials this long before they
	// expire; default 1m.
	ExpiryWindow time.Duration
	// MaxAttempts is the SDK's attempts per call (retries of throttling and
	// 5xx included); default 3.
	MaxAttempts int
	// Timeout bounds each driver call, retries included; default 10s.
	Timeout time.Duration
	// MaxClients bounds the cached clients, one per Region, role and
	// external ID (so about one per org on a customer key); the least
	// recently used is dropped beyond it and built again (with a new
	// AssumeRole) on its next use. Default 4096.
	MaxClients int
	// Gate, when set, admits every HTTP attempt to AWS KMS (the SDK's
	// retries included) under the request budget of the key's account and
	// Region (masterkey.Vault{Cloud: "aws", Name: "ACCOUNT/REGION"}), and
	// hears of each throttled answer (ThrottlingException and the other
	// throttling codes, or HTTP 429), which pauses every call to that
	// account and Region for the Retry-After (AWS sends none: the gate's
	// default). STS calls do not draw from it.
	Gate masterkey.Gate
}

// Provider is the AWS KMS driver. It is safe for concurrent use.
type Provider struct {
	cfg  Config
	base aws.Config

	mu      sync.Mutex
	closed  bool
	clients map[clientKey]*remote
	tick    uint64 // use counter: remote.used orders the cache by recency
}

type clientKey struct{ region, role, externalID string }

// remote is the KMS client of one Region and role, with the role's
// credential provider (nil without a role).
type remote struct {
	kms    *kms.Client
	assume *stscreds.AssumeRoleProvider
	creds  aws.CredentialsProvider
	gate   masterkey.Gate // Config.Gate; nil for none
	used   uint64
}

// New returns a driver. It loads the platform's credentials lazily: no AWS
// call is made before the first use of a key.
func New(cfg Config) (*Provider, error) {
	if cfg.SessionDuration == 0 {
		cfg.SessionDuration = 15 * time.Minute
	}
	if cfg.SessionDuration < 15*time.Minute || cfg.SessionDuration > 12*time.Hour {
		return nil, fmt.Errorf("awskms: session duration must be between 15m and 12h")
	}
	if cfg.ExpiryWindow <= 0 {
		cfg.ExpiryWindow = time.Minute
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 4096
	}
	if cfg.Region == "" {
		cfg.Region = "eu-west-1"
	}
	for _, r := range cfg.AllowedRegions {
		if !regionRe.MatchString(r) {
			return nil, fmt.Errorf("awskms: allowed region %q is not a Region name like eu-west-2", r)
		}
	}
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(cfg.Region),
		awsconfig.WithRetryMaxAttempts(cfg.MaxAttempts),
	}
	if cfg.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(cfg.Credentials))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, awsconfig.WithHTTPClient(cfg.HTTPClient))
	}
	base, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("awskms: load AWS configuration: %w", err)
	}
	return &Provider{cfg: cfg, base: base, clients: map[clientKey]*remote{}}, nil
}

// Driver returns the registry entry of this driver.
func (p *Provider) Driver() masterkey.Driver {
	return masterkey.Driver{Scheme: Scheme, ParseRef: func(uri string) (masterkey.Ref, error) {
		k, err := ParseURI(uri, p.cfg.AllowedRegions)
		if err != nil {
			return masterkey.Ref{}, err
		}
		return k.Ref(), nil
	}}
}

// Timeout is the bound of one driver call.
func (p *Provider) Timeout() time.Duration { return p.cfg.Timeout }

// AllowedRegions returns the Regions whose keys the driver accepts; empty
// means any.
func (p *Provider) AllowedRegions() []string { return slices.Clone(p.cfg.AllowedRegions) }

// ParseKey parses a key from the parts a customer enters, as [ParseKey]
// with the driver's allowed Regions.
func (p *Provider) ParseKey(keyARN, roleARN, externalID string) (Key, error) {
	return ParseKey(keyARN, roleARN, externalID, p.cfg.AllowedRegions)
}

// NativeAAD reports that AWS KMS binds the associated data itself (as the
// encryption context).
func (p *Provider) NativeAAD() bool { return true }

func (p *Provider) key(ref masterkey.Ref) (Key, error) {
	if ref.Provider != Scheme {
		return Key{}, invalid("master_key", "not an awskms key: "+ref.Provider)
	}
	return KeyOf(ref, p.cfg.AllowedRegions)
}

// remote returns the cached client of k's Region and role.
func (p *Provider) remote(k Key) (*remote, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, &fault.Error{Kind: fault.Unavailable, Provider: Scheme, Reason: "the AWS KMS driver is closed"}
	}
	ck := clientKey{k.ARN.Region, k.RoleARN, k.ExternalID}
	p.tick++
	if r, ok := p.clients[ck]; ok {
		r.used = p.tick
		return r, nil
	}
	if len(p.clients) >= p.cfg.MaxClients {
		p.evictOldest()
	}
	r := &remote{creds: p.base.Credentials, gate: p.cfg.Gate, used: p.tick}
	if k.RoleARN != "" {
		stsc := sts.NewFromConfig(p.base, func(o *sts.Options) {
			o.Region = k.ARN.Region
			if p.cfg.STSEndpoint != "" {
				o.BaseEndpoint = aws.String(p.cfg.STSEndpoint)
			}
		})
		ext, session := k.ExternalID, k.SessionName()
		r.assume = stscreds.NewAssumeRoleProvider(stsc, k.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.ExternalID = aws.String(ext)
			o.RoleSessionName = session
			o.Duration = p.cfg.SessionDuration
		})
		r.creds = aws.NewCredentialsCache(r.assume, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = p.cfg.ExpiryWindow })
	}
	creds := r.creds
	r.kms = kms.NewFromConfig(p.base, func(o *kms.Options) {
		o.Region = k.ARN.Region
		o.Credentials = creds
		if p.cfg.KMSEndpoint != "" {
			o.BaseEndpoint = aws.String(p.cfg.KMSEndpoint)
		}
	})
	p.clients[ck] = r
	return r, nil
}

// evictOldest drops the least recently used client (p.mu held). A scan:
// it runs only when a new client is built on a full cache.
func (p *Provider) evictOldest() {
	var oldest clientKey
	first := true
	for k, r := range p.clients {
		if first || r.used < p.clients[oldest].used {
			oldest, first = k, false
		}
	}
	delete(p.clients, oldest)
}

func (p *Provider) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.cfg.Timeout)
}

// encryptionContext is the KMS encryption context binding aad: one pair,
// orgkms:aad = aad when it is UTF-8 (readable in the customer's
// CloudTrail), orgkms:aad-b64 = base64(aad) otherwise; nil for no aad.
func encryptionContext(aad []byte) map[string]string {
	switch {
	case len(aad) == 0:
		return nil
	case utf8.Valid(aad):
		return map[string]string{"orgkms:aad": string(aad)}
	default:
		return map[string]string{"orgkms:aad-b64": base64.StdEncoding.EncodeToString(aad)}
	}
}

// Describe reports the key's state. Description.Key.Version is the key's
// current key material ID (see [Provider.MaterialID]) unless ref names a
// version. AWS keeps one state for all of a key's material: Enabled is true
// only in state Enabled.
func (p *Provider) Describe(ctx context.Context, ref masterkey.Ref) (masterkey.Description, error) {
	k, err := p.key(ref)
	if err != nil {
		return masterkey.Description{}, err
	}
	r, err := p.remote(k)
	if err != nil {
		return masterkey.Description{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	md, err := p.describeKey(ctx, r, k)
	if err != nil {
		return masterkey.Description{}, err
	}
	d := masterkey.Description{Enabled: md.KeyState == types.KeyStateEnabled, KeyType: string(md.KeySpec),
		Algorithm: string(types.EncryptionAlgorithmSpecSymmetricDefault), Operations: []string{string(md.KeyUsage)}, NativeAAD: true}
	if md.KeySpec == types.KeySpecSymmetricDefault {
		d.KeySize = 256
	}
	if md.PendingDeletionWindowInDays != nil {
		d.SoftDeleteDays = int(*md.PendingDeletionWindowInDays)
	}
	if k.Version == "" {
		v, err := p.materialID(ctx, r, k, md)
		if err != nil {
			return masterkey.Description{}, err
		}
		k.Version = v
		rotationStatus(ctx, r, k, &d)
	}
	d.Key = k.Ref()
	return d, nil
}

// rotationStatus reads the key's automatic rotation (GetKeyRotationStatus)
// into d. The permission kms:GetKeyRotationStatus is optional: without it,
// or on any failure, d.RotationKnown stays false and Describe goes on (the
// material ID, not this status, is how rotations are followed).
func rotationStatus(ctx context.Context, r *remote, k Key, d *masterkey.Description) {
	out, err := r.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(k.ARN.String())}, r.gated(k))
	if err != nil || out == nil {
		return
	}
	d.RotationKnown, d.AutoRotation = true, out.KeyRotationEnabled
	if out.RotationPeriodInDays != nil {
		d.RotationPeriod = time.Duration(*out.RotationPeriodInDays) * 24 * time.Hour
	}
	if out.NextRotationDate != nil {
		d.NextRotation = out.NextRotationDate.UTC()
	}
}

// describeKey calls DescribeKey and checks the key is one orgkms can use
// (a symmetric encryption key, and the key the ARN names).
func (p *Provider) describeKey(ctx context.Context, r *remote, k Key) (*types.KeyMetadata, error) {
	out, err := r.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.ARN.String())}, r.gated(k))
	if err != nil {
		return nil, classify(opDescribe, k, err)
	}
	md := out.KeyMetadata
	if md == nil || aws.ToString(md.Arn) != k.ARN.String() {
		return nil, &fault.Error{Kind: fault.Unavailable, Op: opDescribe, Provider: Scheme, Resource: resource(k), Reason: "AWS KMS described another key than " + k.ARN.String()}
	}
	if md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt {
		return nil, &fault.Error{Kind: fault.Invalid, Field: "key_arn", Op: opDescribe, Provider: Scheme, Resource: resource(k),
			Reason: fmt.Sprintf("key %s is a %s key for %s: orgkms needs a symmetric encryption key (key spec SYMMETRIC_DEFAULT, key usage ENCRYPT_DECRYPT)", k.ARN, md.KeySpec, md.KeyUsage)}
	}
	return md, nil
}

// OriginalMaterial is the version reported for a key that was never
// rotated when AWS reports no key material ID (see [Provider.MaterialID]).
const OriginalMaterial = "original"

// MaterialID returns the ID of the key's current key material, which is
// the version this driver reports: AWS keeps the key ID and ARN across
// rotations and changes only the backing material, so a new material ID is
// a rotation. It is DescribeKey's CurrentKeyMaterialId; where AWS does not
// report one, the KeyMaterialId of the latest ListKeyRotations entry (or
// "r" and its rotation date in Unix seconds, when the entry has no material
// ID), or [OriginalMaterial] when the key was never rotated.
func (p *Provider) MaterialID(ctx context.Context, ref masterkey.Ref) (string, error) {
	d, err := p.Describe(ctx, ref.Unversioned())
	if err != nil {
		return "", err
	}
	return d.Key.Version, nil
}

func (p *Provider) materialID(ctx context.Context, r *remote, k Key, md *types.KeyMetadata) (string, error) {
	if id := aws.ToString(md.CurrentKeyMaterialId); id != "" {
		if !materialRe.MatchString(id) {
			return "", &fault.Error{Kind: fault.Unavailable, Op: opDescribe, Provider: Scheme, Resource: resource(k), Reason: "AWS KMS reported a malformed key material ID"}
		}
		return id, nil
	}
	var latest *types.RotationsListEntry
	var marker *string
	for {
		out, err := r.kms.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(k.ARN.String()), Marker: marker}, r.gated(k))
		if err != nil {
			return "", classify(opListRotations, k, err)
		}
		for i := range out.Rotations {
			e := &out.Rotations[i]
			if latest == nil || aws.ToTime(e.RotationDate).After(aws.ToTime(latest.RotationDate)) {
				latest = e
			}
		}
		if !out.Truncated || out.NextMarker == nil {
			break
		}
		marker = out.NextMarker
	}
	switch {
	case latest == nil:
		return OriginalMaterial, nil
	case materialRe.MatchString(aws.ToString(latest.KeyMaterialId)):
		return *latest.KeyMaterialId, nil
	default:
		return fmt.Sprintf("r%d", aws.ToTime(latest.RotationDate).Unix()), nil
	}
}

// Wrap encrypts dek with the key's current material (AWS KMS always
// encrypts with it; a version in ref is ignored), binding aad as the
// encryption context. The result names the material ID read just before
// Encrypt: should a rotation come between, it names the older material,
// which only makes orgkms re-wrap once more.
func (p *Provider) Wrap(ctx context.Context, ref masterkey.Ref, dek, aad []byte) (masterkey.Wrapped, error) {
	k, err := p.key(ref)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	r, err := p.remote(k)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	md, err := p.describeKey(ctx, r, k)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	if md.KeyState != types.KeyStateEnabled {
		return masterkey.Wrapped{}, stateError(opEncrypt, k, md)
	}
	version, err := p.materialID(ctx, r, k, md)
	if err != nil {
		return masterkey.Wrapped{}, err
	}
	out, err := r.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k.ARN.String()), Plaintext: dek, EncryptionContext: encryptionContext(aad)}, r.gated(k))
	if err != nil {
		return masterkey.Wrapped{}, p.explain(ctx, r, k, classify(opEncrypt, k, err))
	}
	if arn := aws.ToString(out.KeyId); arn != k.ARN.String() {
		return masterkey.Wrapped{}, &fault.Error{Kind: fault.Unavailable, Op: opEncrypt, Provider: Scheme, Resource: resource(k), Reason: "AWS KMS encrypted with another key than " + k.ARN.String()}
	}
	k.Version = version
	return masterkey.Wrapped{Ciphertext: out.CiphertextBlob, Key: k.Ref()}, nil
}

// Unwrap decrypts ciphertext with the key named in ref (passed as KeyId,
// so a blob of another key fails as IncorrectKeyException) and aad as the
// encryption context. AWS picks the material from the blob: old material
// keeps decrypting after a rotation.
func (p *Provider) Unwrap(ctx context.Context, ref masterkey.Ref, ciphertext, aad []byte) ([]byte, error) {
	k, err := p.key(ref)
	if err != nil {
		return nil, err
	}
	r, err := p.remote(k)
	if err != nil {
		return nil, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	out, err := r.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(k.ARN.String()), CiphertextBlob: ciphertext,
		EncryptionContext: encryptionContext(aad), EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault}, r.gated(k))
	if err != nil {
		return nil, p.explain(ctx, r, k, classify(opDecrypt, k, err))
	}
	if arn := aws.ToString(out.KeyId); arn != k.ARN.String() {
		return nil, &fault.Error{Kind: fault.Integrity, Op: opDecrypt, Provider: Scheme, Resource: resource(k), Reason: "the ciphertext was produced by another key than " + k.ARN.String()}
	}
	return out.Plaintext, nil
}

// explain completes a key-state error (the key is disabled or in another
// state than Enabled) with the state DescribeKey reports: the deletion date
// of a key pending deletion, and what to do.
func (p *Provider) explain(ctx context.Context, r *remote, k Key, err error) error {
	fe := fault.As(err)
	if fe == nil || fe.Kind != fault.KeyDisabled || ctx.Err() != nil {
		return err
	}
	out, derr := r.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.ARN.String())}, r.gated(k))
	if derr != nil || out.KeyMetadata == nil || out.KeyMetadata.KeyState == types.KeyStateEnabled {
		return err
	}
	se := stateError(fe.Op, k, out.KeyMetadata).(*fault.Error)
	se.Err = fe.Err
	return se
}

// stateError is the error of a crypto operation on a key in md's state,
// which is not Enabled.
func stateError(op string, k Key, md *types.KeyMetadata) error {
	e := &fault.Error{Kind: fault.KeyDisabled, Op: op, Provider: Scheme, Resource: resource(k)}
	switch md.KeyState {
	case types.KeyStateDisabled:
		e.Reason = disabledReason(k)
	case types.KeyStatePendingDeletion, types.KeyStatePendingReplicaDeletion:
		e.Reason = pendingDeletionReason(k, aws.ToTime(md.DeletionDate))
	default:
		e.Reason = fmt.Sprintf("key %s is in state %s, in which AWS KMS refuses to use it: wait for it to become Enabled, or check it in the AWS KMS console", k.ARN, md.KeyState)
	}
	return e
}

func disabledReason(k Key) string {
	return fmt.Sprintf("key %s is disabled: enable it in the AWS KMS console (Customer managed keys → the key → Key actions → Enable) or with EnableKey", k.ARN)
}

func pendingDeletionReason(k Key, when time.Time) string {
	date := "a date AWS did not report"
	if !when.IsZero() {
		date = when.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("key %s is scheduled for deletion on %s: cancel it with CancelKeyDeletion (AWS KMS console → Key actions → Cancel key deletion), then enable the key", k.ARN, date)
}

// DeletedKey reports the deletion date of a key pending deletion (AWS's
// recoverable deletion: CancelKeyDeletion restores it until that date). It
// returns Kind KeyNotFound when the key is not pending deletion, or is gone.
func (p *Provider) DeletedKey(ctx context.Context, ref masterkey.Ref) (masterkey.DeletedKey, error) {
	k, err := p.key(ref)
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	r, err := p.remote(k)
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	md, err := p.describeKey(ctx, r, k)
	if err != nil {
		return masterkey.DeletedKey{}, err
	}
	if md.KeyState != types.KeyStatePendingDeletion {
		return masterkey.DeletedKey{}, &fault.Error{Kind: fault.KeyNotFound, Op: opDescribe, Provider: Scheme, Resource: resource(k), Reason: "key " + k.ARN.String() + " is not pending deletion"}
	}
	d := masterkey.DeletedKey{ScheduledPurge: aws.ToTime(md.DeletionDate)}
	if md.PendingDeletionWindowInDays != nil && !d.ScheduledPurge.IsZero() {
		d.DeletedAt = d.ScheduledPurge.Add(-time.Duration(*md.PendingDeletionWindowInDays) * 24 * time.Hour)
	}
	return d, nil
}

// CheckCredentials checks that orgkms can act for the key's account: for a
// key with a role, a fresh AssumeRole (bypassing the cache) with the org's
// external ID; otherwise that the platform's credentials resolve. It does
// not touch the key.
func (p *Provider) CheckCredentials(ctx context.Context, ref masterkey.Ref) error {
	k, err := p.key(ref)
	if err != nil {
		return err
	}
	r, err := p.remote(k)
	if err != nil {
		return err
	}
	ctx, cancel := p.budget(ctx)
	defer cancel()
	var src aws.CredentialsProvider = r.creds
	if r.assume != nil {
		src = r.assume
	}
	if src == nil {
		return &fault.Error{Kind: fault.CredentialsInvalid, Op: opAssumeRole, Provider: Scheme, Reason: "the platform has no AWS credentials: the platform operator must configure them"}
	}
	if _, err := src.Retrieve(ctx); err != nil {
		return classify(opAssumeRole, k, err)
	}
	return nil
}

// Close drops the cached clients and credentials. Later calls fail with
// Kind Unavailable.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	clear(p.clients)
	return nil
}

// resource names k in errors: the key ARN (not secret; no external ID).
func resource(k Key) string { return "awskms key " + k.ARN.String() }

var _ interface {
	masterkey.Provider
	masterkey.CredentialChecker
	masterkey.DeletionInspector
	masterkey.NativeAADer
} = (*Provider)(nil)
