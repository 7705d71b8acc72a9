package kmsplugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	kmsapi "k8s.io/kms/apis/v2"

	"github.com/orgkms/orgkms/client"
)

// Defaults of Config.
const (
	DefaultKey             = "default"
	DefaultCallTimeout     = 2 * time.Second // below the apiserver's default kms.timeout of 3s
	DefaultStatusTTL       = 5 * time.Second
	DefaultRefreshInterval = 30 * time.Second // below Go's 90s idle-connection timeout
)

// Context is the orgkms encryption context (associated data) of every
// ciphertext the plugin makes: a ciphertext of the plugin decrypts only
// through the plugin (or with this context), and no other ciphertext of the
// org's key decrypts through it.
var Context = []byte("orgkms.io/kubernetes-kms-v2")

// probeContext binds the health probe's ciphertexts, which are thrown away.
var probeContext = []byte("orgkms.io/kubernetes-kms-v2-probe")

// AnnotationKeyVersion is the annotation naming the data key version that
// encrypted a DEK seed (informative: the ciphertext names it too).
const AnnotationKeyVersion = "key-version.orgkms.io"

// Limits of KMS v2 (k8s.io/apiserver kmsv2 envelope).
const (
	maxKeyID      = 1024
	maxCiphertext = 1024
)

// Config configures a Plugin.
type Config struct {
	Client *client.Client // required: the orgkms server and the plugin's token (role service on Org)
	Org    string         // required
	Key    string         // the org's data key; default DefaultKey
	// CallTimeout bounds each call to orgkms, retries included; keep it
	// below the apiserver's kms.timeout. Default DefaultCallTimeout.
	CallTimeout time.Duration
	// StatusTTL is how long a Status answer is reused; default
	// DefaultStatusTTL.
	StatusTTL time.Duration
	// RefreshInterval is how often Serve refreshes the state in the
	// background (a warm connection, a fresh answer); default
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
}

// Plugin implements the KMS v2 KeyManagementService. Safe for concurrent use.
type Plugin struct {
	kmsapi.UnimplementedKeyManagementServiceServer
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	state   state
	refresh chan struct{} // closed when the refresh in flight ends; nil when none
}

// state is what Status answers, as of at.
type state struct {
	at       time.Time
	keyID    string // "" until a healthy refresh
	version  uint32 // the data key's latest version behind keyID
	wrapping string // master key URI and version
	healthz  string // "ok" or the reason
}

var _ kmsapi.KeyManagementServiceServer = (*Plugin)(nil)

// New returns a plugin for cfg.
func New(cfg Config) (*Plugin, error) {
	if cfg.Client == nil {
		return nil, errors.New("kmsplugin: no orgkms client")
	}
	if cfg.Org == "" {
		return nil, errors.New("kmsplugin: no org")
	}
	if cfg.Key == "" {
		cfg.Key = DefaultKey
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.StatusTTL <= 0 {
		cfg.StatusTTL = DefaultStatusTTL
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Plugin{cfg: cfg, log: cfg.Logger, state: state{healthz: "not checked yet"}}, nil
}

// call returns the context of one orgkms call: bounded by CallTimeout,
// carrying uid as the request ID.
func (p *Plugin) call(ctx context.Context, uid string) (context.Context, context.CancelFunc) {
	if uid != "" {
		ctx = client.WithRequestID(ctx, uid)
	}
	return context.WithTimeout(ctx, p.cfg.CallTimeout)
}

// Status implements KeyManagementService.Status.
func (p *Plugin) Status(ctx context.Context, _ *kmsapi.StatusRequest) (*kmsapi.StatusResponse, error) {
	st := p.current(ctx)
	keyID := st.keyID
	if keyID == "" {
		// Never healthy so far: a placeholder the apiserver accepts; it
		// reports the plugin unhealthy for healthz anyway.
		keyID = "orgkms:" + p.cfg.Key + ":unknown"
	}
	return &kmsapi.StatusResponse{Version: "v2", Healthz: st.healthz, KeyId: keyID}, nil
}

// current returns the state, refreshed when older than StatusTTL. One
// refresh runs at a time; concurrent callers wait for it (or their ctx).
func (p *Plugin) current(ctx context.Context) state {
	for {
		p.mu.Lock()
		st := p.state
		if !st.at.IsZero() && p.cfg.Now().Sub(st.at) < p.cfg.StatusTTL {
			p.mu.Unlock()
			return st
		}
		done := p.refresh
		if done == nil {
			done = make(chan struct{})
			p.refresh = done
			p.mu.Unlock()
			st = p.doRefresh(ctx)
			p.mu.Lock()
			p.refresh = nil
			p.mu.Unlock()
			close(done)
			return st
		}
		p.mu.Unlock()
		select {
		case <-done:
			p.mu.Lock()
			st = p.state
			p.mu.Unlock()
			return st
		case <-ctx.Done():
			return state{keyID: st.keyID, healthz: "orgkms did not answer in time: " + ctx.Err().Error()}
		}
	}
}

// Refresh checks orgkms now and returns the healthz it found.
func (p *Plugin) Refresh(ctx context.Context) string {
	p.mu.Lock()
	p.state.at = time.Time{}
	p.mu.Unlock()
	return p.current(ctx).healthz
}

// doRefresh asks orgkms for the org's state: CMK status (the wrapping and
// whether it is revoked), then a probe encrypt (orgkms serves the org, and
// the data key's latest version). It stores and returns the new state.
func (p *Plugin) doRefresh(ctx context.Context) state {
	cctx, cancel := p.call(ctx, "")
	defer cancel()
	st := state{at: p.cfg.Now()}
	p.mu.Lock()
	st.keyID, st.version, st.wrapping = p.state.keyID, p.state.version, p.state.wrapping // kept while unhealthy
	p.mu.Unlock()
	cmk, err := p.cfg.Client.CMKStatus(cctx, p.cfg.Org)
	if err == nil {
		if reason := revoked(cmk); reason != "" {
			st.healthz = reason
			return p.store(st)
		}
		_, v, err2 := p.cfg.Client.Encrypt(cctx, p.cfg.Org, p.cfg.Key, []byte("kms-plugin health probe"), probeContext)
		if err2 == nil {
			st.version, st.wrapping = v, wrappingOf(cmk)
			st.keyID, st.healthz = p.keyID(v, st.wrapping), "ok"
			return p.store(st)
		}
		err = err2
	}
	st.healthz = healthzOf(err)
	return p.store(st)
}

func (p *Plugin) store(st state) state {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.healthz != "ok" && (p.state.healthz == "ok" || p.state.at.IsZero()) {
		p.log.Warn("kms plugin unhealthy", slog.String("org_id", p.cfg.Org), slog.String("key_ring", p.cfg.Key), slog.String("reason", st.healthz))
	} else if st.healthz == "ok" && p.state.healthz != "ok" {
		p.log.Info("kms plugin healthy", slog.String("org_id", p.cfg.Org), slog.String("key_ring", p.cfg.Key), slog.String("key_id", st.keyID))
	}
	p.state = st
	return st
}

// markUnhealthy records that orgkms refused the org's key, so that Status
// says so at once instead of after StatusTTL.
func (p *Plugin) markUnhealthy(err error) {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	st.at, st.healthz = p.cfg.Now(), healthzOf(err)
	p.store(st)
}

// revoked returns why the org's customer managed key is unusable, or "".
func revoked(s client.CMKStatus) string {
	switch s.State {
	case "revoked", "lost":
		reason := "the org's customer managed key is " + s.State
		if s.ReasonCode != "" {
			reason += " (" + s.ReasonCode + ")"
		}
		if s.Reason != "" {
			reason += ": " + s.Reason
		}
		return reason
	}
	return ""
}

// wrappingOf names the master key that wraps the org's root key now.
func wrappingOf(s client.CMKStatus) string {
	w := s.MasterKey + "@" + s.CurrentVersion
	if s.DataLostAt != nil {
		w += " lost " + s.DataLostAt.UTC().Format(time.RFC3339Nano)
	}
	return w
}

// keyID is the key_id of the data key at version v under wrapping.
func (p *Plugin) keyID(v uint32, wrapping string) string {
	h := sha256.New()
	for _, s := range []string{p.cfg.Org, p.cfg.Key, strconv.FormatUint(uint64(v), 10), wrapping} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return fmt.Sprintf("orgkms:%s:v%d:%s", p.cfg.Key, v, hex.EncodeToString(h.Sum(nil)[:12]))
}

// healthzOf is the healthz reason of an orgkms failure.
func healthzOf(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return "orgkms refused: " + e.Code + ": " + oneLine(e.Message)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "orgkms did not answer in time"
	}
	return "orgkms unreachable: " + oneLine(err.Error())
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// keyUnusable reports whether err says the org's key is unusable (revoked,
// lost, its master key disabled or gone): the plugin is unhealthy.
func keyUnusable(err error) bool {
	code := client.ErrorCode(err)
	return strings.HasPrefix(code, "cmk_") || strings.HasPrefix(code, "master_key_")
}

// grpcError maps an orgkms failure of op to a gRPC status.
func grpcError(op string, err error) error {
	code := codes.Internal
	var e *client.Error
	switch {
	case errors.As(err, &e):
		switch client.Code(e.Code) {
		case client.CodeInvalidArgument, client.CodeCiphertextInvalid, client.CodePayloadTooLarge:
			code = codes.InvalidArgument
		case client.CodeKeyVersionRetired:
			code = codes.FailedPrecondition
		case client.CodeUnavailable, client.CodeRateLimited:
			code = codes.Unavailable
		case client.CodeUnauthenticated:
			code = codes.Unauthenticated
		case client.CodePermissionDenied:
			code = codes.PermissionDenied
		case client.CodeNotFound:
			code = codes.NotFound
		default:
			if keyUnusable(err) {
				code = codes.FailedPrecondition
			}
		}
		msg := fmt.Sprintf("orgkms %s: %s: %s", op, e.Code, oneLine(e.Message))
		if e.RequestID != "" {
			msg += " (request " + e.RequestID + ")"
		}
		return status.Error(code, msg)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		code = codes.Unavailable
	default:
		code = codes.Unavailable // no answer from orgkms: a connection failure
	}
	return status.Error(code, "orgkms "+op+": "+oneLine(err.Error()))
}

// Encrypt implements KeyManagementService.Encrypt.
func (p *Plugin) Encrypt(ctx context.Context, req *kmsapi.EncryptRequest) (*kmsapi.EncryptResponse, error) {
	if len(req.Plaintext) == 0 {
		return nil, status.Error(codes.InvalidArgument, "encrypt: empty plaintext")
	}
	cctx, cancel := p.call(ctx, req.Uid)
	defer cancel()
	ct, v, err := p.cfg.Client.Encrypt(cctx, p.cfg.Org, p.cfg.Key, req.Plaintext, Context)
	if err != nil {
		if keyUnusable(err) {
			p.markUnhealthy(err)
		}
		return nil, grpcError("encrypt", err)
	}
	if len(ct) > maxCiphertext {
		return nil, status.Errorf(codes.InvalidArgument, "encrypt: a %d-byte plaintext gives a %d-byte ciphertext; KMS v2 allows %d", len(req.Plaintext), len(ct), maxCiphertext)
	}
	keyID, err := p.keyIDOf(ctx, v)
	if err != nil {
		return nil, err
	}
	return &kmsapi.EncryptResponse{Ciphertext: ct, KeyId: keyID,
		Annotations: map[string][]byte{AnnotationKeyVersion: []byte(strconv.FormatUint(uint64(v), 10))}}, nil
}

// keyIDOf returns the key_id of version v: the current one when v is the
// version behind it, else after a refresh (the key was rotated since), so
// that Encrypt and Status agree, as the apiserver requires.
func (p *Plugin) keyIDOf(ctx context.Context, v uint32) (string, error) {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st.healthz == "ok" && st.version == v {
		return st.keyID, nil
	}
	p.Refresh(ctx)
	p.mu.Lock()
	st = p.state
	p.mu.Unlock()
	if st.healthz != "ok" {
		return "", status.Error(codes.Unavailable, "encrypt: "+st.healthz)
	}
	if st.version != v {
		// The key rotated again between the two calls: the apiserver
		// would discard this seed, so it retries at its next poll.
		return "", status.Errorf(codes.Unavailable, "encrypt: the org's key changed during the call (version %d, now %d); retry", v, st.version)
	}
	return st.keyID, nil
}

// Decrypt implements KeyManagementService.Decrypt. key_id and annotations
// are not needed: the orgkms ciphertext names its key version.
func (p *Plugin) Decrypt(ctx context.Context, req *kmsapi.DecryptRequest) (*kmsapi.DecryptResponse, error) {
	if len(req.Ciphertext) == 0 {
		return nil, status.Error(codes.InvalidArgument, "decrypt: empty ciphertext")
	}
	cctx, cancel := p.call(ctx, req.Uid)
	defer cancel()
	pt, err := p.cfg.Client.Decrypt(cctx, p.cfg.Org, p.cfg.Key, req.Ciphertext, Context)
	if err != nil {
		if keyUnusable(err) {
			p.markUnhealthy(err)
		}
		return nil, grpcError("decrypt", err)
	}
	return &kmsapi.DecryptResponse{Plaintext: pt}, nil
}
