package cmk

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
	"github.com/orgkms/orgkms/internal/envelope"
	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/keys"
)

// FallBack is the way out of state lost: the org's customer managed key was
// purged, so its root key, and every data key version wrapped by it, is
// gone for good. FallBack gives the org a new root key wrapped by the
// platform key and a new version of each data key, made the minimum
// decryption version; it records the loss (Record.DataLostAt, audit event
// cmk.fallback). Ciphertexts made before then fail with cmk_key_destroyed;
// new data works. The org ends in state platform and may start the CMK flow
// again.
//
// It is safe to repeat after a crash: until the final switch, which is one
// transaction, the org stays lost, and the data key versions an interrupted
// run added are below the minimum decryption version of the next run.
// Conflict unless the org is lost.
func (s *Service) FallBack(ctx context.Context, actor, orgID string) (Status, error) {
	return retryStale(func() (Status, error) { return s.fallBackOnce(ctx, actor, orgID) })
}

func (s *Service) fallBackOnce(ctx context.Context, actor, orgID string) (Status, error) {
	if _, err := s.st.GetOrg(ctx, orgID); err != nil {
		return Status{}, err
	}
	rec, err := s.record(ctx, orgID)
	if err != nil {
		return Status{}, err
	}
	if rec.State != StateLost {
		return Status{}, &fault.Error{Kind: fault.Conflict, Op: "fall back", Reason: "only an org whose customer managed key was purged (state lost) can fall back to a new platform root key; this org is " + string(rec.State)}
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	defer clear(raw)
	root, err := envelope.NewKey(raw)
	if err != nil {
		return Status{}, &fault.Error{Kind: fault.Internal, Op: "fall back", Err: err}
	}
	now := s.now().UTC()

	// New data key versions under the new root key, the only ones allowed
	// to decrypt.
	dks, err := s.st.ListDataKeys(ctx, orgID)
	if err != nil {
		return Status{}, err
	}
	for _, dk := range dks {
		material := make([]byte, 32)
		rand.Read(material)
		v := dk.LatestVersion + 1
		dv := keys.DataKeyVersion{Version: v, CreatedAt: now, Wrapped: envelope.WrapKey(root, material, keys.DataKeyAAD(orgID, dk.Name, v))}
		clear(material)
		ver := strconv.FormatUint(uint64(v), 10)
		ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "key.rotate", Target: "key/" + dk.Name, Details: map[string]string{"version": ver, "reason": "data loss fallback"}}
		if err := s.st.AddDataKeyVersion(ctx, orgID, dk.Name, dv, ev); err != nil {
			return Status{}, err
		}
		ev = audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "key.set_min_decryption_version", Target: "key/" + dk.Name,
			Details: map[string]string{"min_decryption_version": ver, "previous": strconv.FormatUint(uint64(dk.MinDecryptionVersion), 10), "reason": "data loss fallback"}}
		if err := s.st.SetMinDecryptionVersion(ctx, orgID, dk.Name, v, ev); err != nil {
			return Status{}, err
		}
	}

	// The new root key, wrapped by the platform key: copy → verify → switch.
	pk := s.cfg.Keys.PlatformKey()
	keeper, err := s.cfg.Keepers.Keeper(pk)
	if err != nil {
		return Status{}, err
	}
	w, err := keeper.Wrap(ctx, pk, raw, keys.RootAAD(orgID))
	if err != nil {
		return Status{}, keys.PlatformKeyFault("fall back", err)
	}
	id, err := s.st.AddPendingWrapping(ctx, orgID, keys.RootKeyWrapping{OrgID: orgID, Wrapped: w, State: keys.WrappingPending, CreatedAt: now})
	if err != nil {
		return Status{}, err
	}
	got, err := keeper.Unwrap(ctx, w, keys.RootAAD(orgID))
	if err != nil {
		return Status{}, keys.PlatformKeyFault("fall back", err)
	}
	same := subtle.ConstantTimeCompare(got, raw) == 1
	clear(got)
	if !same {
		return Status{}, &fault.Error{Kind: fault.Internal, Op: "fall back", Reason: "the new root key wrapping does not unwrap to the new root key"}
	}
	vault, name := s.activeKeyName(rec)
	lost := Record{OrgID: orgID, State: StatePlatform, UpdatedAt: now, DataLostAt: now, Revision: rec.Revision, Bump: BumpFellBack}
	ev := audit.Event{OrgID: orgID, Time: now, Actor: actor, Action: "cmk.fallback", Target: "cmk", Details: map[string]string{
		"data_lost_at": now.Format(time.RFC3339), "purged_key": fmt.Sprintf("%s/%s", vault, name), "data_keys": strconv.Itoa(len(dks))}}
	if err := s.st.SwitchWrapping(ctx, orgID, id, pk.Unversioned(), lost, ev, nil); err != nil {
		return Status{}, err
	}
	s.mu.Lock()
	if s.dataLost == nil {
		s.dataLost = map[string]time.Time{}
	}
	s.dataLost[orgID] = now
	s.mu.Unlock()
	s.block(orgID, nil)
	s.cfg.Keys.Cache().Purge(orgID)
	s.changed(orgID)
	s.log.Warn("org fell back to a new platform root key after losing its customer managed key", slog.String("org_id", orgID))
	return s.Status(ctx, orgID)
}

// DataLost reports when the org lost its data and fell back to a new root
// key ([Service.FallBack]); zero when never. It is keys.Config.DataLost.
func (s *Service) DataLost(orgID string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dataLost[orgID]
}
