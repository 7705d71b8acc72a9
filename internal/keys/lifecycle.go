package keys

import (
	"context"
	"fmt"
	"time"

	"github.com/orgkms/orgkms/internal/fault"
)

// LifecycleState is where an org or a data key stands in its deletion
// lifecycle. The zero value is the normal, usable state.
type LifecycleState string

const (
	LifecycleEnabled         LifecycleState = ""                 // usable
	LifecycleDisabled        LifecycleState = "disabled"         // data keys only: refused until enabled
	LifecyclePendingDeletion LifecycleState = "pending_deletion" // refused; shredded at DeletionDate unless cancelled
	LifecycleDeleted         LifecycleState = "deleted"          // shredded: refused forever
)

// Lifecycle is the deletion lifecycle of an org or a data key.
type Lifecycle struct {
	State        LifecycleState
	DeletionDate time.Time // when a pending deletion shreds; zero otherwise
	ChangedBy    string    // who made the last change
	ChangedAt    time.Time
	ShreddedAt   time.Time // when the shred ran; zero until then
}

// Text is the lifecycle for people, as the CLI and the console name it:
// "active" (an org) or "enabled" (a data key), "disabled", "pending
// deletion until DATE", "deleted".
func (l Lifecycle) Text(org bool) string {
	switch l.State {
	case LifecycleEnabled:
		if org {
			return "active"
		}
		return "enabled"
	case LifecyclePendingDeletion:
		if l.DeletionDate.IsZero() {
			return "pending deletion"
		}
		return "pending deletion until " + l.DeletionDate.UTC().Format(time.RFC3339)
	}
	return string(l.State)
}

// LifecycleStore is the part of a store that records the deletion
// lifecycle of orgs and data keys. A [Store] that implements it lets the
// [Service] refuse the data plane of an org or key that is disabled,
// pending deletion or deleted. Both SQL backends implement it.
type LifecycleStore interface {
	// OrgLifecycle returns the org's lifecycle; the zero Lifecycle when it
	// has none. NotFound if the org does not exist.
	OrgLifecycle(ctx context.Context, orgID string) (Lifecycle, error)
	// KeyLifecycles returns the lifecycle of each of the org's data keys
	// that has one (keys without one are enabled), by key name.
	KeyLifecycles(ctx context.Context, orgID string) (map[string]Lifecycle, error)
}

// OrgRefusal is the error of the data plane of an org in lifecycle l; nil
// when l lets the org be used.
func OrgRefusal(orgID string, l Lifecycle) error {
	switch l.State {
	case LifecyclePendingDeletion:
		return &fault.Error{Kind: fault.OrgPendingDeletion, Resource: "org " + orgID,
			Reason: fmt.Sprintf("org %s is scheduled for deletion on %s: its keys are refused; cancel the deletion before then to restore service (orgkms org cancel-deletion %s, or POST /v1/orgs/%s/cancel-deletion)",
				orgID, l.DeletionDate.UTC().Format(time.RFC3339), orgID, orgID)}
	case LifecycleDeleted:
		return &fault.Error{Kind: fault.OrgDeleted, Resource: "org " + orgID,
			Reason: fmt.Sprintf("org %s was deleted and its keys were destroyed on %s: its data is unrecoverable", orgID, l.ShreddedAt.UTC().Format(time.RFC3339))}
	}
	return nil
}

// KeyRefusal is the error of the data plane of data key name in lifecycle
// l; nil when l lets the key be used.
func KeyRefusal(orgID, name string, l Lifecycle) error {
	res := "key " + name + " in org " + orgID
	switch l.State {
	case LifecycleDisabled:
		return &fault.Error{Kind: fault.DataKeyDisabled, Resource: res,
			Reason: fmt.Sprintf("key %s of org %s is disabled: encrypt and decrypt are refused until it is enabled (orgkms key enable --org %s %s)", name, orgID, orgID, name)}
	case LifecyclePendingDeletion:
		return &fault.Error{Kind: fault.DataKeyPendingDeletion, Resource: res,
			Reason: fmt.Sprintf("key %s of org %s is scheduled for deletion on %s: encrypt and decrypt are refused; cancel the deletion before then (orgkms key cancel-deletion --org %s %s)",
				name, orgID, l.DeletionDate.UTC().Format(time.RFC3339), orgID, name)}
	case LifecycleDeleted:
		return &fault.Error{Kind: fault.DataKeyDeleted, Resource: res,
			Reason: fmt.Sprintf("key %s of org %s was deleted and its versions were destroyed on %s: its ciphertexts are unrecoverable", name, orgID, l.ShreddedAt.UTC().Format(time.RFC3339))}
	}
	return nil
}

// OrgLifecycle returns the org's deletion lifecycle (the zero Lifecycle
// when the store records none).
func (s *Service) OrgLifecycle(ctx context.Context, orgID string) (Lifecycle, error) {
	ls, ok := s.store.(LifecycleStore)
	if !ok {
		if _, err := s.store.GetOrg(ctx, orgID); err != nil {
			return Lifecycle{}, err
		}
		return Lifecycle{}, nil
	}
	return ls.OrgLifecycle(ctx, orgID)
}

// KeyLifecycles returns the lifecycle of each of the org's data keys that
// has one, by name.
func (s *Service) KeyLifecycles(ctx context.Context, orgID string) (map[string]Lifecycle, error) {
	ls, ok := s.store.(LifecycleStore)
	if !ok {
		return map[string]Lifecycle{}, nil
	}
	return ls.KeyLifecycles(ctx, orgID)
}

// keyLifecycle returns the lifecycle of one data key.
func (s *Service) keyLifecycle(ctx context.Context, orgID, name string) (Lifecycle, error) {
	ls, ok := s.store.(LifecycleStore)
	if !ok {
		return Lifecycle{}, nil
	}
	m, err := ls.KeyLifecycles(ctx, orgID)
	if err != nil {
		return Lifecycle{}, err
	}
	return m[name], nil
}
