package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/orgkms/orgkms/internal/envelope"
	"github.com/orgkms/orgkms/internal/fault"
)

// Ciphertext is the result of an encryption.
type Ciphertext struct {
	Bytes      []byte
	KeyVersion uint32
}

// Item is one element of a batch request.
type Item struct {
	Plaintext  []byte // encrypt
	Ciphertext []byte // decrypt, rewrap
	Context    []byte
}

// ItemResult is one element of a batch response: either a result or Err.
type ItemResult struct {
	Plaintext  []byte
	Ciphertext []byte
	KeyVersion uint32
	Err        error
}

func checkContext(c []byte) error {
	if len(c) > MaxContext {
		return &fault.Error{Kind: fault.Invalid, Field: "context", Reason: fmt.Sprintf("is %d bytes; at most %d are allowed", len(c), MaxContext)}
	}
	return nil
}

func checkBatch(n int) error {
	if n == 0 {
		return &fault.Error{Kind: fault.Invalid, Field: "batch", Reason: "is empty"}
	}
	if n > MaxBatch {
		return &fault.Error{Kind: fault.TooLarge, Field: "batch", Reason: fmt.Sprintf("has %d items; at most %d are allowed per request", n, MaxBatch)}
	}
	return nil
}

// keyRing resolves org and key for a data-plane operation.
func (s *Service) keyRing(ctx context.Context, orgID, name string, wantVersion uint32) (*orgEntry, *ring, error) {
	if err := ValidateKeyName(name); err != nil {
		return nil, nil, &fault.Error{Kind: fault.NotFound, Resource: "key " + name + " in org " + orgID}
	}
	e, err := s.entry(ctx, orgID)
	if err != nil {
		return nil, nil, err
	}
	r, err := s.ring(ctx, e, name, wantVersion)
	if err != nil {
		return nil, nil, err
	}
	if r.refuse != nil {
		return nil, nil, r.refuse
	}
	return e, r, nil
}

// producing is keyRing for an operation that produces new ciphertext: it
// also consults the Produce guard.
func (s *Service) producing(ctx context.Context, orgID, name string) (*ring, error) {
	_, r, err := s.keyRing(ctx, orgID, name, 0)
	if err != nil {
		return nil, err
	}
	if s.produce != nil {
		if err := s.produce(ctx, orgID); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Encrypt encrypts plaintext under the latest version of org's key name,
// bound to the caller's context.
func (s *Service) Encrypt(ctx context.Context, actor, orgID, name string, plaintext, context []byte) (Ciphertext, error) {
	res, err := s.EncryptBatch(ctx, actor, orgID, name, []Item{{Plaintext: plaintext, Context: context}})
	if err != nil {
		return Ciphertext{}, err
	}
	if res[0].Err != nil {
		return Ciphertext{}, res[0].Err
	}
	return Ciphertext{Bytes: res[0].Ciphertext, KeyVersion: res[0].KeyVersion}, nil
}

// EncryptBatch encrypts each item; failures of one item are in its result.
// An error that concerns the whole request (batch size, org or key missing,
// master key unusable) is returned as the error.
func (s *Service) EncryptBatch(ctx context.Context, actor, orgID, name string, items []Item) ([]ItemResult, error) {
	out := make([]ItemResult, len(items))
	if err := checkBatch(len(items)); err != nil {
		return nil, err
	}
	r, err := s.producing(ctx, orgID, name)
	if err != nil {
		s.usage.refused(orgID, name, "encrypt", actor, len(items), err)
		return nil, err
	}
	k := r.versions[r.latest]
	b := envelope.Binding{OrgID: orgID, KeyName: name}
	ok := 0
	for i, it := range items {
		if len(it.Plaintext) > MaxPlaintext {
			out[i].Err = &fault.Error{Kind: fault.TooLarge, Field: "plaintext", Reason: fmt.Sprintf("is %d bytes; at most %d are allowed per item", len(it.Plaintext), MaxPlaintext)}
			continue
		}
		if err := checkContext(it.Context); err != nil {
			out[i].Err = err
			continue
		}
		b.Context = it.Context
		ct, err := envelope.Encrypt(make([]byte, 0, len(it.Plaintext)+envelope.Overhead), k, r.latest, it.Plaintext, b)
		if err != nil {
			out[i].Err = &fault.Error{Kind: fault.Internal, Op: "encrypt", Err: err}
			continue
		}
		out[i].Ciphertext, out[i].KeyVersion = ct, r.latest
		ok++
	}
	s.usage.results(orgID, name, "encrypt", actor, ok, out)
	return out, nil
}

// Decrypt decrypts a ciphertext of org's key name made with the same context.
// It returns Kind Integrity if the ciphertext was not produced by this org,
// key and context, or was modified, and VersionRetired if its version is
// below the key's minimum decryption version.
func (s *Service) Decrypt(ctx context.Context, actor, orgID, name string, ciphertext, context []byte) ([]byte, uint32, error) {
	res, err := s.DecryptBatch(ctx, actor, orgID, name, []Item{{Ciphertext: ciphertext, Context: context}})
	if err != nil {
		return nil, 0, err
	}
	return res[0].Plaintext, res[0].KeyVersion, res[0].Err
}

// DecryptBatch decrypts each item; failures are per item.
func (s *Service) DecryptBatch(ctx context.Context, actor, orgID, name string, items []Item) ([]ItemResult, error) {
	out := make([]ItemResult, len(items))
	if err := checkBatch(len(items)); err != nil {
		return nil, err
	}
	var maxV uint32
	for _, it := range items {
		if h, err := envelope.ParseHeader(it.Ciphertext); err == nil && h.KeyVersion > maxV {
			maxV = h.KeyVersion
		}
	}
	_, r, err := s.keyRing(ctx, orgID, name, maxV)
	if err != nil {
		s.usage.refused(orgID, name, "decrypt", actor, len(items), err)
		return nil, err
	}
	ok := 0
	for i, it := range items {
		pt, v, err := s.open(r, orgID, name, it.Ciphertext, it.Context)
		out[i].Plaintext, out[i].KeyVersion, out[i].Err = pt, v, err
		if err == nil {
			ok++
		}
	}
	s.usage.results(orgID, name, "decrypt", actor, ok, out)
	return out, nil
}

var errMalformed = &fault.Error{Kind: fault.Integrity, Op: "decrypt", Reason: "ciphertext is malformed: it is not an orgkms ciphertext, or it was truncated or modified"}

func (s *Service) open(r *ring, orgID, name string, ct, context []byte) ([]byte, uint32, error) {
	if err := checkContext(context); err != nil {
		return nil, 0, err
	}
	h, err := envelope.ParseHeader(ct)
	if err != nil {
		return nil, 0, errMalformed
	}
	if at, lost := r.lost[h.KeyVersion]; lost {
		return nil, 0, &fault.Error{Kind: fault.CMKDestroyed, Op: "decrypt", Resource: "key " + name,
			Reason: fmt.Sprintf("ciphertext was encrypted with version %d of key %s before the org's data loss on %s (its customer managed key was purged): it is unrecoverable; data encrypted since then decrypts", h.KeyVersion, name, at.UTC().Format(time.RFC3339))}
	}
	k, ok := r.versions[h.KeyVersion]
	if !ok {
		return nil, 0, &fault.Error{Kind: fault.Integrity, Op: "decrypt",
			Reason: fmt.Sprintf("ciphertext names version %d of key %s, which does not exist: it was not produced by this org and key", h.KeyVersion, name)}
	}
	if h.KeyVersion < r.minDec {
		return nil, 0, &fault.Error{Kind: fault.VersionRetired, Op: "decrypt", Resource: "key " + name,
			Reason: fmt.Sprintf("ciphertext was encrypted with version %d of key %s, below its min_decryption_version %d; rewrap ciphertexts before retiring versions, or lower min_decryption_version", h.KeyVersion, name, r.minDec)}
	}
	pt, err := envelope.Decrypt(nil, k, ct, envelope.Binding{OrgID: orgID, KeyName: name, Context: context})
	if err != nil {
		if errors.Is(err, envelope.ErrInvalid) {
			return nil, 0, errMalformed
		}
		return nil, 0, &fault.Error{Kind: fault.Integrity, Op: "decrypt"}
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, h.KeyVersion, nil
}

// Rewrap decrypts each ciphertext and encrypts it again under the latest
// version of the key, with the same context. Plaintext never leaves the
// server.
func (s *Service) RewrapBatch(ctx context.Context, actor, orgID, name string, items []Item) ([]ItemResult, error) {
	out := make([]ItemResult, len(items))
	if err := checkBatch(len(items)); err != nil {
		return nil, err
	}
	r, err := s.producing(ctx, orgID, name)
	if err != nil {
		s.usage.refused(orgID, name, "rewrap", actor, len(items), err)
		return nil, err
	}
	latest := r.versions[r.latest]
	ok := 0
	for i, it := range items {
		pt, _, err := s.open(r, orgID, name, it.Ciphertext, it.Context)
		if err != nil {
			out[i].Err = err
			continue
		}
		ct, err := envelope.Encrypt(nil, latest, r.latest, pt, envelope.Binding{OrgID: orgID, KeyName: name, Context: it.Context})
		clear(pt)
		if err != nil {
			out[i].Err = &fault.Error{Kind: fault.Internal, Op: "rewrap", Err: err}
			continue
		}
		out[i].Ciphertext, out[i].KeyVersion = ct, r.latest
		ok++
	}
	s.usage.results(orgID, name, "rewrap", actor, ok, out)
	return out, nil
}

// Rewrap is the single-item form of RewrapBatch.
func (s *Service) Rewrap(ctx context.Context, actor, orgID, name string, ciphertext, context []byte) (Ciphertext, error) {
	res, err := s.RewrapBatch(ctx, actor, orgID, name, []Item{{Ciphertext: ciphertext, Context: context}})
	if err != nil {
		return Ciphertext{}, err
	}
	if res[0].Err != nil {
		return Ciphertext{}, res[0].Err
	}
	return Ciphertext{Bytes: res[0].Ciphertext, KeyVersion: res[0].KeyVersion}, nil
}

// DataKeyResult is a freshly generated data key for client-side encryption.
type DataKeyResult struct {
	Plaintext  []byte // nil for wrapped-only requests
	Ciphertext []byte // the key encrypted under org's key name
	KeyVersion uint32
}

// GenerateDataKey returns a random key of bits (128, 256 or 512) encrypted
// under org's key name, and the plaintext unless wrappedOnly.
func (s *Service) GenerateDataKey(ctx context.Context, actor, orgID, name string, bits int, wrappedOnly bool, context []byte) (DataKeyResult, error) {
	if bits == 0 {
		bits = 256
	}
	if bits != 128 && bits != 256 && bits != 512 {
		return DataKeyResult{}, &fault.Error{Kind: fault.Invalid, Field: "bits", Reason: "must be 128, 256 or 512"}
	}
	if err := checkContext(context); err != nil {
		return DataKeyResult{}, err
	}
	r, err := s.producing(ctx, orgID, name)
	if err != nil {
		s.usage.refused(orgID, name, "datakey", actor, 1, err)
		return DataKeyResult{}, err
	}
	dk := make([]byte, bits/8)
	if _, err := rand.Read(dk); err != nil {
		return DataKeyResult{}, &fault.Error{Kind: fault.Internal, Op: "datakey", Err: err}
	}
	ct, err := envelope.Encrypt(nil, r.versions[r.latest], r.latest, dk, envelope.Binding{OrgID: orgID, KeyName: name, Context: context})
	if err != nil {
		return DataKeyResult{}, &fault.Error{Kind: fault.Internal, Op: "datakey", Err: err}
	}
	res := DataKeyResult{Ciphertext: ct, KeyVersion: r.latest}
	if wrappedOnly {
		clear(dk)
	} else {
		res.Plaintext = dk
	}
	s.usage.add(orgID, name, "datakey", actor, 1)
	return res, nil
}
