package masterkey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// Observer receives one event per remote master-key call. outcome is "ok" or
// a fault code. Implementations must be cheap and safe for concurrent use.
type Observer func(provider, op, outcome string, d time.Duration)

// KeeperOptions configures a [Keeper]. The zero value is valid.
type KeeperOptions struct {
	Timeout  time.Duration // per call; default 10s
	Logger   *slog.Logger  // default slog.Default()
	Observer Observer      // optional
}

// Keeper is the portable type over a [Provider]: it adds per-call timeouts,
// associated-data binding for drivers without native support, a closed
// check, metrics and logging. Safe for concurrent use.
type Keeper struct {
	p         Provider
	name      string
	nativeAAD bool
	opts      KeeperOptions
	closed    atomic.Bool
}

// NewKeeper returns a Keeper over p, which is registered under scheme name.
func NewKeeper(name string, p Provider, opts KeeperOptions) *Keeper {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	k := &Keeper{p: p, name: name, opts: opts}
	if n, ok := p.(NativeAADer); ok {
		k.nativeAAD = n.NativeAAD()
	}
	return k
}

// Provider returns the underlying driver.
func (k *Keeper) Provider() Provider { return k.p }

const (
	aadDigestSize = sha256.Size
	saltSize      = 16
)

var errClosed = &fault.Error{Kind: fault.Unavailable, Reason: "master-key provider is closed"}

// Wrap wraps dek under key. aad must not be empty: it names the tenant.
func (k *Keeper) Wrap(ctx context.Context, key Ref, dek, aad []byte) (Wrapped, error) {
	if len(aad) == 0 {
		return Wrapped{}, &fault.Error{Kind: fault.Internal, Op: "wrap", Reason: "empty associated data"}
	}
	if k.closed.Load() {
		return Wrapped{}, errClosed
	}
	payload := dek
	if !k.nativeAAD {
		// salt ‖ SHA-256(aad) ‖ dek: the salt makes two wraps of the same
		// key differ even under deterministic wrapping (AES key wrap).
		d := sha256.Sum256(aad)
		payload = make([]byte, saltSize, saltSize+aadDigestSize+len(dek))
		if _, err := rand.Read(payload); err != nil {
			return Wrapped{}, &fault.Error{Kind: fault.Internal, Op: "wrap", Err: err}
		}
		payload = append(append(payload, d[:]...), dek...)
		defer clear(payload)
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	start := time.Now()
	w, err := k.p.Wrap(ctx, key, payload, aad)
	k.observe(ctx, "wrap", key, start, err)
	if err != nil {
		return Wrapped{}, classify("wrap", key, err)
	}
	if w.Key.Version == "" {
		return Wrapped{}, &fault.Error{Kind: fault.Internal, Op: "wrap", Resource: key.String(), Reason: "provider did not report the key version"}
	}
	return w, nil
}

// Unwrap unwraps w.Ciphertext with exactly w.Key (which must name a version).
// It returns Kind Integrity if the blob was not wrapped by that key with aad.
func (k *Keeper) Unwrap(ctx context.Context, w Wrapped, aad []byte) ([]byte, error) {
	if len(aad) == 0 {
		return nil, &fault.Error{Kind: fault.Internal, Op: "unwrap", Reason: "empty associated data"}
	}
	if w.Key.Version == "" {
		return nil, &fault.Error{Kind: fault.Internal, Op: "unwrap", Resource: w.Key.String(), Reason: "wrapped key does not record its version"}
	}
	if k.closed.Load() {
		return nil, errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	start := time.Now()
	out, err := k.p.Unwrap(ctx, w.Key, w.Ciphertext, aad)
	k.observe(ctx, "unwrap", w.Key, start, err)
	if err != nil {
		return nil, classify("unwrap", w.Key, err)
	}
	if k.nativeAAD {
		return out, nil
	}
	d := sha256.Sum256(aad)
	if len(out) < saltSize+aadDigestSize || subtle.ConstantTimeCompare(out[saltSize:saltSize+aadDigestSize], d[:]) != 1 {
		clear(out)
		return nil, &fault.Error{Kind: fault.Integrity, Op: "unwrap", Resource: w.Key.String(), Reason: "wrapped key does not belong to this org"}
	}
	dek := append([]byte(nil), out[saltSize+aadDigestSize:]...)
	clear(out)
	return dek, nil
}

// Describe describes key.
func (k *Keeper) Describe(ctx context.Context, key Ref) (Description, error) {
	if k.closed.Load() {
		return Description{}, errClosed
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	start := time.Now()
	d, err := k.p.Describe(ctx, key)
	k.observe(ctx, "describe", key, start, err)
	if err != nil {
		return Description{}, classify("describe", key, err)
	}
	d.NativeAAD = d.NativeAAD || k.nativeAAD
	return d, nil
}

// ProbeStep names a step of [Keeper.Probe].
type ProbeStep string

const (
	StepDescribe ProbeStep = "describe"
	StepUsable   ProbeStep = "usable"
	StepWrap     ProbeStep = "wrap"
	StepUnwrap   ProbeStep = "unwrap"
	StepCompare  ProbeStep = "compare"
)

// ProbeReport is the result of [Keeper.Probe].
type ProbeReport struct {
	Description Description
	Failed      ProbeStep // "" when every step passed
	Err         error     // the *fault.Error of the failed step
	Wrapped     Ref       // the version the test wrap used
	Latency     time.Duration
}

// OK reports whether every step passed.
func (r ProbeReport) OK() bool { return r.Failed == "" }

// Probe checks that key is usable: Describe, then Wrap and Unwrap of a
// random value under test associated data.
func (k *Keeper) Probe(ctx context.Context, key Ref) ProbeReport {
	start := time.Now()
	var rep ProbeReport
	d, err := k.Describe(ctx, key)
	if err != nil {
		rep.Failed, rep.Err = StepDescribe, err
		return rep
	}
	rep.Description = d
	if !d.UsableAt(time.Now()) {
		rep.Failed = StepUsable
		rep.Err = &fault.Error{Kind: fault.KeyDisabled, Op: "probe", Resource: key.String(), Provider: key.Provider}
		return rep
	}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		rep.Failed, rep.Err = StepWrap, err
		return rep
	}
	aad := []byte("orgkms/probe")
	w, err := k.Wrap(ctx, key, secret[:], aad)
	if err != nil {
		rep.Failed, rep.Err = StepWrap, err
		return rep
	}
	rep.Wrapped = w.Key
	got, err := k.Unwrap(ctx, w, aad)
	if err != nil {
		rep.Failed, rep.Err = StepUnwrap, err
		return rep
	}
	if subtle.ConstantTimeCompare(got, secret[:]) != 1 {
		rep.Failed = StepCompare
		rep.Err = &fault.Error{Kind: fault.Integrity, Op: "probe", Resource: key.String(), Reason: "unwrapped value differs from the wrapped one"}
	}
	clear(got)
	rep.Latency = time.Since(start)
	return rep
}

// Close closes the provider. Closing twice is not an error.
func (k *Keeper) Close() error {
	if k.closed.Swap(true) {
		return nil
	}
	return k.p.Close()
}

func (k *Keeper) observe(ctx context.Context, op string, key Ref, start time.Time, err error) {
	d := time.Since(start)
	outcome := "ok"
	if err != nil {
		outcome = fault.KindOf(err).Code()
		k.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "master key call failed",
			slog.String("provider", k.name), slog.String("op", op), slog.String("key_ref", key.String()),
			slog.String("kind", outcome), slog.Duration("duration", d), slog.String("error", err.Error()))
	}
	if k.opts.Observer != nil {
		k.opts.Observer(k.name, op, outcome, d)
	}
}

// classify makes sure every error leaving the keeper is a *fault.Error with
// op and resource set.
func classify(op string, key Ref, err error) error {
	var fe *fault.Error
	if errors.As(err, &fe) {
		if fe.Op == "" || fe.Resource == "" || fe.Provider == "" {
			c := *fe
			if c.Op == "" {
				c.Op = op
			}
			if c.Resource == "" {
				c.Resource = key.String()
			}
			if c.Provider == "" {
				c.Provider = key.Provider
			}
			return &c
		}
		return err
	}
	return &fault.Error{Kind: fault.KindOf(err), Op: op, Resource: key.String(), Provider: key.Provider, Err: err}
}

// CheckCredentials checks the provider's credentials for key when the driver
// can; it returns nil when the driver has no such check.
func (k *Keeper) CheckCredentials(ctx context.Context, key Ref) error {
	c, ok := k.p.(CredentialChecker)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	start := time.Now()
	err := c.CheckCredentials(ctx, key)
	k.observe(ctx, "token", key, start, err)
	if err != nil {
		return classify("token", key, err)
	}
	return nil
}

// DeletedKey reports whether key is soft-deleted. ok is false when the driver
// has no soft delete.
func (k *Keeper) DeletedKey(ctx context.Context, key Ref) (d DeletedKey, ok bool, err error) {
	di, ok := k.p.(DeletionInspector)
	if !ok {
		return DeletedKey{}, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.Timeout)
	defer cancel()
	start := time.Now()
	d, err = di.DeletedKey(ctx, key)
	k.observe(ctx, "get_deleted", key, start, err)
	if err != nil {
		return DeletedKey{}, true, classify("get_deleted", key, err)
	}
	return d, true, nil
}
