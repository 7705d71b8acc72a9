package gcpkmsemu

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Anonymous is the principal of a caller that sends no credentials.
const Anonymous = "anonymous"

// Permissions the fake checks, by Google's names.
const (
	PermGetKey     = "cloudkms.cryptoKeys.get"
	PermGetVersion = "cloudkms.cryptoKeyVersions.get"
	PermList       = "cloudkms.cryptoKeyVersions.list"
	PermEncrypt    = "cloudkms.cryptoKeyVersions.useToEncrypt"
	PermDecrypt    = "cloudkms.cryptoKeyVersions.useToDecrypt"
	PermCreate     = "cloudkms.cryptoKeyVersions.create"
	PermUpdate     = "cloudkms.cryptoKeyVersions.update"
	PermPrimary    = "cloudkms.cryptoKeys.update"
	PermDestroy    = "cloudkms.cryptoKeyVersions.destroy"
	PermRestore    = "cloudkms.cryptoKeyVersions.restore"
)

// EncrypterDecrypter and Viewer are the permissions of the roles
// roles/cloudkms.cryptoKeyEncrypterDecrypter and roles/cloudkms.viewer;
// Admin those of roles/cloudkms.admin that the fake knows.
var (
	EncrypterDecrypter = []string{PermEncrypt, PermDecrypt}
	Viewer             = []string{PermGetKey, PermGetVersion, PermList}
	Admin              = []string{PermGetKey, PermGetVersion, PermList, PermCreate, PermUpdate, PermPrimary, PermDestroy, PermRestore}
)

// DefaultDestroyScheduledDuration is Google's default time between
// DestroyCryptoKeyVersion and the destruction.
const DefaultDestroyScheduledDuration = 30 * 24 * time.Hour

// ciphertextTag starts every ciphertext of the fake, followed by the
// version ID (4 bytes, big endian), a 12-byte nonce and the GCM output.
const ciphertextTag = 0x47

var (
	keyNameRe     = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63}$`)
	versionNameRe = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[a-zA-Z0-9_-]{1,63}/cryptoKeys/[a-zA-Z0-9_-]{1,63})/cryptoKeyVersions/([0-9]{1,10})$`)
)

// Server is the fake KeyManagementService. Its methods are safe for
// concurrent use. The zero value is not usable: use [New].
type Server struct {
	kmspb.UnimplementedKeyManagementServiceServer

	mu       sync.Mutex
	keys     map[string]*cryptoKey
	tokens   map[string]string // bearer token → principal
	now      func() time.Time
	latency  time.Duration
	failNext int
	exhaust  int
	outage   bool
	corrupt  bool
	calls    map[string]int

	exhaustDelay time.Duration // RetryInfo of the injected RESOURCE_EXHAUSTED; 0: none
	limit        int           // calls per window before RESOURCE_EXHAUSTED; 0: no limit
	window       time.Duration
	served       []time.Time // calls counted against limit, within the last window
	requests     []Request
}

type requestKey struct{}

// Request is one call the fake received, as [Server.Requests] lists them.
type Request struct {
	Method    string // e.g. "Encrypt"
	Name      string // the resource name of the request
	At        time.Time
	Exhausted bool // answered RESOURCE_EXHAUSTED
}

type cryptoKey struct {
	name            string
	primary         int // 0: none
	next            int
	versions        map[int]*version
	destroyDuration time.Duration
	labels          map[string]string
	created         time.Time
	iam             map[string]map[string]bool // permission → principal → granted
}

type version struct {
	id          int
	state       kmspb.CryptoKeyVersion_CryptoKeyVersionState
	aead        cipher.AEAD // nil once destroyed
	created     time.Time
	destroyAt   time.Time // DESTROY_SCHEDULED only
	destroyedAt time.Time // DESTROYED only
}

// New returns an empty fake.
func New() *Server {
	return &Server{keys: map[string]*cryptoKey{}, tokens: map[string]string{}, now: time.Now, calls: map[string]int{}}
}

// Start serves s in plaintext on a loopback TCP listener until cleanup's
// function runs (pass t.Cleanup) and returns the address
// ("127.0.0.1:PORT") to give the client as endpoint.
func (s *Server) Start(cleanup func(func())) (string, error) {
	return s.serve(cleanup)
}

// StartTLS is Start over TLS, with a fresh self-signed certificate for
// 127.0.0.1; it returns the pool that trusts it. Over TLS the official
// client sends its credentials' bearer token, which [Server.MapToken]
// maps to a principal.
func (s *Server) StartTLS(cleanup func(func())) (string, *x509.CertPool, error) {
	cert, pool, err := selfSigned()
	if err != nil {
		return "", nil, err
	}
	addr, err := s.serve(cleanup, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	return addr, pool, err
}

func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gcpkmsemu"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}, pool, nil
}

func (s *Server) serve(cleanup func(func()), opts ...grpc.ServerOption) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	// The request reaches begin in the context, for its resource name.
	opts = append(opts, grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(context.WithValue(ctx, requestKey{}, req), req)
	}))
	gs := grpc.NewServer(opts...)
	kmspb.RegisterKeyManagementServiceServer(gs, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(lis) // returns when stopped
	}()
	cleanup(func() { gs.Stop(); <-done })
	return lis.Addr().String(), nil
}

// SetClock replaces the fake's clock (time.Now by default).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetLatency delays every call by d (the caller's deadline still applies).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// FailNext makes the next n calls answer UNAVAILABLE.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// ExhaustNext makes the next n calls answer RESOURCE_EXHAUSTED, as
// Cloud KMS does when a per-second or per-minute quota is exceeded.
func (s *Server) ExhaustNext(n int) { s.ExhaustNextRetry(n, 0) }

// ExhaustNextRetry is [Server.ExhaustNext] with Google's quota details:
// an ErrorInfo (reason RATE_LIMIT_EXCEEDED, domain googleapis.com, the
// quota metric and limit in its metadata) and, when retryDelay > 0, a
// RetryInfo with that delay.
func (s *Server) ExhaustNextRetry(n int, retryDelay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exhaust, s.exhaustDelay = n, retryDelay
}

// SetRateLimit models a per-project, per-location request quota: beyond
// limit calls within any window, a call answers RESOURCE_EXHAUSTED with
// the quota's ErrorInfo (and no RetryInfo); refused calls do not count.
// A limit of 0 removes it.
func (s *Server) SetRateLimit(limit int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limit, s.window, s.served = limit, window, nil
}

// Requests returns every call received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// quotaExceeded is Cloud KMS's answer beyond a quota.
func quotaExceeded(retryDelay time.Duration) error {
	st := status.New(codes.ResourceExhausted, "Quota exceeded for quota metric 'Cryptographic requests' and limit 'Cryptographic requests per minute' of service 'cloudkms.googleapis.com'.")
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: "RATE_LIMIT_EXCEEDED", Domain: "googleapis.com", Metadata: map[string]string{
		"service": "cloudkms.googleapis.com", "quota_metric": "cloudkms.googleapis.com/crypto_requests", "quota_limit": "CryptoRequestsPerMinutePerProject"}}}
	if retryDelay > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retryDelay)})
	}
	if d, err := st.WithDetails(details...); err == nil {
		st = d
	}
	return st.Err()
}

// SetOutage makes every call answer UNAVAILABLE while on.
func (s *Server) SetOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = on
}

// CorruptResponses makes Encrypt and Decrypt answer with checksums that do
// not match their data, as a corruption between Google and the caller would.
func (s *Server) CorruptResponses(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = on
}

// Calls returns how many calls of the RPC method (e.g. "Encrypt") the fake
// received.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// MapToken makes a caller presenting "Authorization: Bearer token" act as
// principal.
func (s *Server) MapToken(token, principal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = principal
}

// KeyOptions are the settings of a key made by [Server.CreateKey].
type KeyOptions struct {
	// DestroyScheduledDuration; default DefaultDestroyScheduledDuration.
	DestroyScheduledDuration time.Duration
	Labels                   map[string]string
	// Principals get roles/cloudkms.cryptoKeyEncrypterDecrypter and
	// roles/cloudkms.viewer (and the admin permissions) on the key; default
	// [Anonymous].
	Principals []string
}

// CreateKey creates an ENCRYPT_DECRYPT key named
// projects/P/locations/L/keyRings/R/cryptoKeys/K with an ENABLED primary
// version 1.
func (s *Server) CreateKey(name string, o KeyOptions) error {
	if !keyNameRe.MatchString(name) {
		return fmt.Errorf("gcpkmsemu: %q is not a CryptoKey resource name", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[name]; ok {
		return fmt.Errorf("gcpkmsemu: key %s exists", name)
	}
	if o.DestroyScheduledDuration == 0 {
		o.DestroyScheduledDuration = DefaultDestroyScheduledDuration
	}
	if len(o.Principals) == 0 {
		o.Principals = []string{Anonymous}
	}
	k := &cryptoKey{name: name, next: 1, versions: map[int]*version{}, destroyDuration: o.DestroyScheduledDuration,
		labels: o.Labels, created: s.now(), iam: map[string]map[string]bool{}}
	for _, p := range o.Principals {
		k.grant(p, append(slices.Clone(EncrypterDecrypter), Admin...)...)
	}
	v, err := k.newVersion(s.now())
	if err != nil {
		return err
	}
	k.primary = v.id
	s.keys[name] = k
	return nil
}

func (k *cryptoKey) grant(principal string, perms ...string) {
	for _, p := range perms {
		if k.iam[p] == nil {
			k.iam[p] = map[string]bool{}
		}
		k.iam[p][principal] = true
	}
}

func (k *cryptoKey) newVersion(now time.Time) (*version, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	v := &version{id: k.next, state: kmspb.CryptoKeyVersion_ENABLED, aead: aead, created: now}
	k.versions[v.id] = v
	k.next++
	return v, nil
}

// Grant gives principal the permissions on key.
func (s *Server) Grant(key, principal string, perms ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[key]
	if !ok {
		return fmt.Errorf("gcpkmsemu: no key %s", key)
	}
	k.grant(principal, perms...)
	return nil
}

// Revoke takes the permissions on key from principal.
func (s *Server) Revoke(key, principal string, perms ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[key]
	if !ok {
		return fmt.Errorf("gcpkmsemu: no key %s", key)
	}
	for _, p := range perms {
		delete(k.iam[p], principal)
	}
	return nil
}

// Rotate creates a new version of key and makes it primary, as automatic
// rotation does; it returns the new version's ID.
func (s *Server) Rotate(key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[key]
	if !ok {
		return "", fmt.Errorf("gcpkmsemu: no key %s", key)
	}
	v, err := k.newVersion(s.now())
	if err != nil {
		return "", err
	}
	k.primary = v.id
	return strconv.Itoa(v.id), nil
}

// SetState sets the state of a version of key directly: ENABLED,
// DISABLED, DESTROY_SCHEDULED (destroy_time = now + the key's duration) or
// DESTROYED (the material is dropped).
func (s *Server) SetState(key, versionID string, st kmspb.CryptoKeyVersion_CryptoKeyVersionState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[key]
	if !ok {
		return fmt.Errorf("gcpkmsemu: no key %s", key)
	}
	id, _ := strconv.Atoi(versionID)
	v, ok := k.versions[id]
	if !ok {
		return fmt.Errorf("gcpkmsemu: no version %s of %s", versionID, key)
	}
	now := s.now()
	s.settle(k, now)
	if v.state == kmspb.CryptoKeyVersion_DESTROYED {
		return fmt.Errorf("gcpkmsemu: version %s of %s is destroyed", versionID, key)
	}
	switch st {
	case kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_DISABLED:
		v.state, v.destroyAt = st, time.Time{}
	case kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
		v.state, v.destroyAt = st, now.Add(k.destroyDuration)
	case kmspb.CryptoKeyVersion_DESTROYED:
		v.destroy(now)
	default:
		return fmt.Errorf("gcpkmsemu: cannot set state %v", st)
	}
	return nil
}

// Versions lists the version IDs of key, in order.
func (s *Server) Versions(key string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[key]
	if !ok {
		return nil
	}
	var out []string
	for _, id := range k.sortedIDs() {
		out = append(out, strconv.Itoa(id))
	}
	return out
}

func (v *version) destroy(now time.Time) {
	v.state, v.aead, v.destroyAt, v.destroyedAt = kmspb.CryptoKeyVersion_DESTROYED, nil, time.Time{}, now
}

func (k *cryptoKey) sortedIDs() []int {
	ids := make([]int, 0, len(k.versions))
	for id := range k.versions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// settle destroys the versions whose destroy_time has passed.
func (s *Server) settle(k *cryptoKey, now time.Time) {
	for _, v := range k.versions {
		if v.state == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED && !now.Before(v.destroyAt) {
			v.destroy(v.destroyAt)
		}
	}
}

// begin is the common start of every RPC: it counts the call, applies the
// latency and the injected failures, and returns the caller's principal.
// It returns with s.mu held on success.
func (s *Server) begin(ctx context.Context, method string) (string, error) {
	s.mu.Lock()
	s.calls[method]++
	at := time.Now()
	var name string
	if req, ok := ctx.Value(requestKey{}).(interface{ GetName() string }); ok {
		name = req.GetName()
	}
	idx := len(s.requests)
	s.requests = append(s.requests, Request{Method: method, Name: name, At: at})
	lat := s.latency
	s.mu.Unlock()
	if lat > 0 {
		t := time.NewTimer(lat)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", status.FromContextError(ctx.Err()).Err()
		}
	}
	principal := Anonymous
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	if auth := md.Get("authorization"); len(auth) > 0 {
		tok, ok := strings.CutPrefix(auth[0], "Bearer ")
		p, known := s.tokens[tok]
		if !ok || !known {
			s.mu.Unlock()
			return "", status.Error(codes.Unauthenticated, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		}
		principal = p
	}
	if s.outage {
		s.mu.Unlock()
		return "", status.Error(codes.Unavailable, "The service is currently unavailable.")
	}
	if s.failNext > 0 {
		s.failNext--
		s.mu.Unlock()
		return "", status.Error(codes.Unavailable, "The service is currently unavailable.")
	}
	if s.exhaust > 0 {
		s.exhaust--
		s.requests[idx].Exhausted = true
		s.mu.Unlock()
		return "", quotaExceeded(s.exhaustDelay)
	}
	if s.limit > 0 {
		i := 0
		for i < len(s.served) && at.Sub(s.served[i]) >= s.window {
			i++
		}
		s.served = s.served[i:]
		if len(s.served) >= s.limit {
			s.requests[idx].Exhausted = true
			s.mu.Unlock()
			return "", quotaExceeded(0)
		}
		s.served = append(s.served, at)
	}
	return principal, nil
}

// lookup returns the key of a CryptoKey name after checking permission
// perm for principal. s.mu is held.
func (s *Server) lookup(name, principal, perm string) (*cryptoKey, error) {
	k, ok := s.keys[name]
	if !ok {
		if !keyNameRe.MatchString(name) {
			return nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not match any known pattern.", name)
		}
		return nil, status.Errorf(codes.NotFound, "CryptoKey %s not found.", name)
	}
	if !k.iam[perm][principal] {
		return nil, denied(perm, name)
	}
	s.settle(k, s.now())
	return k, nil
}

// lookupVersion returns a version from its resource name.
func (s *Server) lookupVersion(name, principal, perm string) (*cryptoKey, *version, error) {
	m := versionNameRe.FindStringSubmatch(name)
	if m == nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not match any known pattern.", name)
	}
	k, err := s.lookup(m[1], principal, perm)
	if err != nil {
		if status.Code(err) == codes.PermissionDenied {
			return nil, nil, denied(perm, name)
		}
		return nil, nil, err
	}
	id, _ := strconv.Atoi(m[2])
	v, ok := k.versions[id]
	if !ok {
		return nil, nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s not found.", name)
	}
	return k, v, nil
}

// denied is Google's PERMISSION_DENIED for perm on resource.
func denied(perm, resource string) error {
	st := status.Newf(codes.PermissionDenied, "Permission '%s' denied on resource '%s' (or it may not exist).", perm, resource)
	st, err := st.WithDetails(&errdetails.ErrorInfo{Reason: "IAM_PERMISSION_DENIED", Domain: "cloudkms.googleapis.com",
		Metadata: map[string]string{"permission": perm, "resource": resource}})
	if err != nil {
		return status.Error(codes.Internal, "error details")
	}
	return st.Err()
}

// notEnabled is Google's FAILED_PRECONDITION for a version that is not
// ENABLED.
func notEnabled(k *cryptoKey, v *version) error {
	name := k.name + "/cryptoKeyVersions/" + strconv.Itoa(v.id)
	typ := map[kmspb.CryptoKeyVersion_CryptoKeyVersionState]string{
		kmspb.CryptoKeyVersion_DISABLED:          "KEY_DISABLED",
		kmspb.CryptoKeyVersion_DESTROY_SCHEDULED: "KEY_DESTROY_SCHEDULED",
		kmspb.CryptoKeyVersion_DESTROYED:         "KEY_DESTROYED",
	}[v.state]
	if typ == "" {
		typ = "KEY_NOT_ENABLED"
	}
	st := status.Newf(codes.FailedPrecondition, "%s is not enabled, current state is: %s.", name, v.state)
	st, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: typ, Subject: name}}})
	if err != nil {
		return status.Error(codes.Internal, "error details")
	}
	return st.Err()
}

func (s *Server) keyProto(k *cryptoKey) *kmspb.CryptoKey {
	ck := &kmspb.CryptoKey{
		Name:                     k.name,
		Purpose:                  kmspb.CryptoKey_ENCRYPT_DECRYPT,
		CreateTime:               timestamppb.New(k.created),
		Labels:                   k.labels,
		DestroyScheduledDuration: durationpb.New(k.destroyDuration),
		VersionTemplate: &kmspb.CryptoKeyVersionTemplate{ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
			Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION},
	}
	if v, ok := k.versions[k.primary]; ok {
		ck.Primary = versionProto(k, v)
	}
	return ck
}

func versionProto(k *cryptoKey, v *version) *kmspb.CryptoKeyVersion {
	p := &kmspb.CryptoKeyVersion{
		Name:            k.name + "/cryptoKeyVersions/" + strconv.Itoa(v.id),
		State:           v.state,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE,
		Algorithm:       kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		CreateTime:      timestamppb.New(v.created),
		GenerateTime:    timestamppb.New(v.created),
	}
	if !v.destroyAt.IsZero() {
		p.DestroyTime = timestamppb.New(v.destroyAt)
	}
	if !v.destroyedAt.IsZero() {
		p.DestroyEventTime = timestamppb.New(v.destroyedAt)
	}
	return p
}

// GetCryptoKey implements the RPC of the same name.
func (s *Server) GetCryptoKey(ctx context.Context, req *kmspb.GetCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	principal, err := s.begin(ctx, "GetCryptoKey")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, err := s.lookup(req.GetName(), principal, PermGetKey)
	if err != nil {
		return nil, err
	}
	return s.keyProto(k), nil
}

// GetCryptoKeyVersion implements the RPC of the same name.
func (s *Server) GetCryptoKeyVersion(ctx context.Context, req *kmspb.GetCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	principal, err := s.begin(ctx, "GetCryptoKeyVersion")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, v, err := s.lookupVersion(req.GetName(), principal, PermGetVersion)
	if err != nil {
		return nil, err
	}
	return versionProto(k, v), nil
}

// ListCryptoKeyVersions implements the RPC of the same name, in version
// order, with page_size (default and maximum 1000) and page_token, and the
// filter "state=ENABLED" (or none).
func (s *Server) ListCryptoKeyVersions(ctx context.Context, req *kmspb.ListCryptoKeyVersionsRequest) (*kmspb.ListCryptoKeyVersionsResponse, error) {
	principal, err := s.begin(ctx, "ListCryptoKeyVersions")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, err := s.lookup(req.GetParent(), principal, PermList)
	if err != nil {
		return nil, err
	}
	var want kmspb.CryptoKeyVersion_CryptoKeyVersionState
	switch f := strings.ReplaceAll(req.GetFilter(), " ", ""); f {
	case "":
	case "state=ENABLED":
		want = kmspb.CryptoKeyVersion_ENABLED
	default:
		return nil, status.Errorf(codes.InvalidArgument, "Invalid filter: %s", req.GetFilter())
	}
	size := int(req.GetPageSize())
	if size <= 0 || size > 1000 {
		size = 1000
	}
	start := 0
	if t := req.GetPageToken(); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, status.Error(codes.InvalidArgument, "Invalid page token.")
		}
		start = n
	}
	var all []*kmspb.CryptoKeyVersion
	for _, id := range k.sortedIDs() {
		if v := k.versions[id]; want == 0 || v.state == want {
			all = append(all, versionProto(k, v))
		}
	}
	resp := &kmspb.ListCryptoKeyVersionsResponse{TotalSize: int32(len(all))}
	if start < len(all) {
		end := min(start+size, len(all))
		resp.CryptoKeyVersions = all[start:end]
		if end < len(all) {
			resp.NextPageToken = strconv.Itoa(end)
		}
	}
	return resp, nil
}

// CreateCryptoKey implements the RPC of the same name for ENCRYPT_DECRYPT
// keys; the caller gets the admin and encrypter/decrypter permissions.
func (s *Server) CreateCryptoKey(ctx context.Context, req *kmspb.CreateCryptoKeyRequest) (*kmspb.CryptoKey, error) {
	principal, err := s.begin(ctx, "CreateCryptoKey")
	if err != nil {
		return nil, err
	}
	s.mu.Unlock() // CreateKey locks
	if req.GetCryptoKey().GetPurpose() != kmspb.CryptoKey_ENCRYPT_DECRYPT {
		return nil, status.Error(codes.InvalidArgument, "The fake supports only purpose ENCRYPT_DECRYPT.")
	}
	name := req.GetParent() + "/cryptoKeys/" + req.GetCryptoKeyId()
	o := KeyOptions{Labels: req.GetCryptoKey().GetLabels(), Principals: []string{principal}}
	if d := req.GetCryptoKey().GetDestroyScheduledDuration(); d != nil {
		o.DestroyScheduledDuration = d.AsDuration()
	}
	if err := s.CreateKey(name, o); err != nil {
		if strings.Contains(err.Error(), "exists") {
			return nil, status.Errorf(codes.AlreadyExists, "CryptoKey %s already exists.", name)
		}
		return nil, status.Errorf(codes.InvalidArgument, "Invalid CryptoKey name %s.", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyProto(s.keys[name]), nil
}

// CreateCryptoKeyVersion implements the RPC of the same name: the new
// version is ENABLED and does not become primary.
func (s *Server) CreateCryptoKeyVersion(ctx context.Context, req *kmspb.CreateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	principal, err := s.begin(ctx, "CreateCryptoKeyVersion")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, err := s.lookup(req.GetParent(), principal, PermCreate)
	if err != nil {
		return nil, err
	}
	v, err := k.newVersion(s.now())
	if err != nil {
		return nil, status.Error(codes.Internal, "key generation failed")
	}
	return versionProto(k, v), nil
}

// UpdateCryptoKeyVersion implements the RPC of the same name for the
// field state (update_mask "state"): ENABLED ↔ DISABLED only.
func (s *Server) UpdateCryptoKeyVersion(ctx context.Context, req *kmspb.UpdateCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	principal, err := s.begin(ctx, "UpdateCryptoKeyVersion")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if paths := req.GetUpdateMask().GetPaths(); len(paths) != 1 || paths[0] != "state" {
		return nil, status.Error(codes.InvalidArgument, "The fake updates only the field state (update_mask: state).")
	}
	k, v, err := s.lookupVersion(req.GetCryptoKeyVersion().GetName(), principal, PermUpdate)
	if err != nil {
		return nil, err
	}
	want := req.GetCryptoKeyVersion().GetState()
	if want != kmspb.CryptoKeyVersion_ENABLED && want != kmspb.CryptoKeyVersion_DISABLED {
		return nil, status.Errorf(codes.InvalidArgument, "Invalid state %s: only ENABLED and DISABLED may be set; use DestroyCryptoKeyVersion or RestoreCryptoKeyVersion.", want)
	}
	if v.state != kmspb.CryptoKeyVersion_ENABLED && v.state != kmspb.CryptoKeyVersion_DISABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is in state %s, which cannot be changed to %s.", versionProto(k, v).Name, v.state, want)
	}
	v.state = want
	return versionProto(k, v), nil
}

// UpdateCryptoKeyPrimaryVersion implements the RPC of the same name; the
// new primary must be ENABLED.
func (s *Server) UpdateCryptoKeyPrimaryVersion(ctx context.Context, req *kmspb.UpdateCryptoKeyPrimaryVersionRequest) (*kmspb.CryptoKey, error) {
	principal, err := s.begin(ctx, "UpdateCryptoKeyPrimaryVersion")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, err := s.lookup(req.GetName(), principal, PermPrimary)
	if err != nil {
		return nil, err
	}
	id, err := strconv.Atoi(req.GetCryptoKeyVersionId())
	v, ok := k.versions[id]
	if err != nil || !ok {
		return nil, status.Errorf(codes.NotFound, "CryptoKeyVersion %s/cryptoKeyVersions/%s not found.", k.name, req.GetCryptoKeyVersionId())
	}
	if v.state != kmspb.CryptoKeyVersion_ENABLED {
		return nil, notEnabled(k, v)
	}
	k.primary = id
	return s.keyProto(k), nil
}

// DestroyCryptoKeyVersion implements the RPC of the same name: an ENABLED
// or DISABLED version becomes DESTROY_SCHEDULED until now + the key's
// destroy_scheduled_duration.
func (s *Server) DestroyCryptoKeyVersion(ctx context.Context, req *kmspb.DestroyCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	principal, err := s.begin(ctx, "DestroyCryptoKeyVersion")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, v, err := s.lookupVersion(req.GetName(), principal, PermDestroy)
	if err != nil {
		return nil, err
	}
	if v.state != kmspb.CryptoKeyVersion_ENABLED && v.state != kmspb.CryptoKeyVersion_DISABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is in state %s and cannot be destroyed.", versionProto(k, v).Name, v.state)
	}
	v.state, v.destroyAt = kmspb.CryptoKeyVersion_DESTROY_SCHEDULED, s.now().Add(k.destroyDuration)
	return versionProto(k, v), nil
}

// RestoreCryptoKeyVersion implements the RPC of the same name: a
// DESTROY_SCHEDULED version becomes DISABLED.
func (s *Server) RestoreCryptoKeyVersion(ctx context.Context, req *kmspb.RestoreCryptoKeyVersionRequest) (*kmspb.CryptoKeyVersion, error) {
	principal, err := s.begin(ctx, "RestoreCryptoKeyVersion")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	k, v, err := s.lookupVersion(req.GetName(), principal, PermRestore)
	if err != nil {
		return nil, err
	}
	if v.state != kmspb.CryptoKeyVersion_DESTROY_SCHEDULED {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is in state %s; only DESTROY_SCHEDULED versions can be restored.", versionProto(k, v).Name, v.state)
	}
	v.state, v.destroyAt = kmspb.CryptoKeyVersion_DISABLED, time.Time{}
	return versionProto(k, v), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) int64 { return int64(crc32.Checksum(b, castagnoli)) }

// checkCRC checks an optional request checksum of field over data.
func checkCRC(field string, data []byte, sum *wrapperspb.Int64Value) (bool, error) {
	if sum == nil {
		return false, nil
	}
	if sum.GetValue() != crc(data) {
		return false, status.Errorf(codes.InvalidArgument, "The checksum in field %s did not match the data in field %s.", field+"_crc32c", field)
	}
	return true, nil
}

// Encrypt implements the RPC of the same name. name is a CryptoKey (its
// primary version is used) or a CryptoKeyVersion.
func (s *Server) Encrypt(ctx context.Context, req *kmspb.EncryptRequest) (*kmspb.EncryptResponse, error) {
	principal, err := s.begin(ctx, "Encrypt")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var k *cryptoKey
	var v *version
	if keyNameRe.MatchString(req.GetName()) {
		if k, err = s.lookup(req.GetName(), principal, PermEncrypt); err != nil {
			return nil, err
		}
		if v = k.versions[k.primary]; v == nil {
			return nil, status.Errorf(codes.FailedPrecondition, "%s has no primary version.", k.name)
		}
	} else if k, v, err = s.lookupVersion(req.GetName(), principal, PermEncrypt); err != nil {
		return nil, err
	}
	if len(req.GetPlaintext()) > 64<<10 || len(req.GetAdditionalAuthenticatedData()) > 64<<10 {
		return nil, status.Error(codes.InvalidArgument, "The plaintext and additional_authenticated_data must each be at most 64 KiB.")
	}
	vp, err := checkCRC("plaintext", req.GetPlaintext(), req.GetPlaintextCrc32C())
	if err != nil {
		return nil, err
	}
	va, err := checkCRC("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C())
	if err != nil {
		return nil, err
	}
	if v.state != kmspb.CryptoKeyVersion_ENABLED {
		return nil, notEnabled(k, v)
	}
	ct := make([]byte, 5, 5+12+len(req.GetPlaintext())+16)
	ct[0] = ciphertextTag
	binary.BigEndian.PutUint32(ct[1:], uint32(v.id))
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, status.Error(codes.Internal, "no randomness")
	}
	ct = append(ct, nonce...)
	ct = v.aead.Seal(ct, nonce, req.GetPlaintext(), aadFor(k.name, req.GetAdditionalAuthenticatedData()))
	sum := crc(ct)
	if s.corrupt {
		sum ^= 1
	}
	return &kmspb.EncryptResponse{Name: versionProto(k, v).Name, Ciphertext: ct, CiphertextCrc32C: wrapperspb.Int64(sum),
		VerifiedPlaintextCrc32C: vp, VerifiedAdditionalAuthenticatedDataCrc32C: va, ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE}, nil
}

// aadFor binds the key name too, so that no version material is ever
// usable under another key's name.
func aadFor(key string, aad []byte) []byte {
	b := make([]byte, 0, len(key)+1+len(aad))
	return append(append(append(b, key...), 0), aad...)
}

// errDecrypt is Google's answer to a ciphertext of another key, a wrong
// AAD or a modified ciphertext.
var errDecrypt = status.Error(codes.InvalidArgument, "Decryption failed: verify that 'name' refers to the correct CryptoKey.")

// Decrypt implements the RPC of the same name. name must be a CryptoKey.
func (s *Server) Decrypt(ctx context.Context, req *kmspb.DecryptRequest) (*kmspb.DecryptResponse, error) {
	principal, err := s.begin(ctx, "Decrypt")
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if !keyNameRe.MatchString(req.GetName()) {
		if versionNameRe.MatchString(req.GetName()) {
			return nil, status.Errorf(codes.InvalidArgument, "Decrypt requires a CryptoKey name, not a CryptoKeyVersion name: %s", url.PathEscape(req.GetName()))
		}
		return nil, status.Errorf(codes.InvalidArgument, "Resource name [%s] does not match any known pattern.", req.GetName())
	}
	k, err := s.lookup(req.GetName(), principal, PermDecrypt)
	if err != nil {
		return nil, err
	}
	if _, err := checkCRC("ciphertext", req.GetCiphertext(), req.GetCiphertextCrc32C()); err != nil {
		return nil, err
	}
	if _, err := checkCRC("additional_authenticated_data", req.GetAdditionalAuthenticatedData(), req.GetAdditionalAuthenticatedDataCrc32C()); err != nil {
		return nil, err
	}
	ct := req.GetCiphertext()
	if len(ct) < 5+12+16 || ct[0] != ciphertextTag {
		return nil, errDecrypt
	}
	v, ok := k.versions[int(binary.BigEndian.Uint32(ct[1:5]))]
	if !ok {
		return nil, errDecrypt
	}
	if v.state != kmspb.CryptoKeyVersion_ENABLED {
		return nil, notEnabled(k, v)
	}
	pt, err := v.aead.Open(nil, ct[5:17], ct[17:], aadFor(k.name, req.GetAdditionalAuthenticatedData()))
	if err != nil {
		return nil, errDecrypt
	}
	sum := crc(pt)
	if s.corrupt {
		sum ^= 1
	}
	return &kmspb.DecryptResponse{Plaintext: pt, PlaintextCrc32C: wrapperspb.Int64(sum), UsedPrimary: v.id == k.primary,
		ProtectionLevel: kmspb.ProtectionLevel_SOFTWARE}, nil
}
