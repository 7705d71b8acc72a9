package events

// rule maps one audit action to a notification: its type, the data it
// always carries (set) and the audit details copied into it (keep, or
// every detail and the target with keepAll).
type rule struct {
	typ     Type
	set     map[string]string
	keep    []string
	keepAll bool
}

// rules maps audit actions to notifications; see the package doc
// ("Publishing an event"). cmk.<job>.failed is mapped in FromAudit for
// every job kind.
var rules = map[string]rule{
	"cmk.activate.done":   {typ: StateChanged, set: map[string]string{"state": "active"}, keep: []string{"from", "to", "key", "key_version"}},
	"cmk.replace.done":    {typ: StateChanged, set: map[string]string{"state": "active", "replaced": "true"}, keep: []string{"from", "to"}},
	"cmk.restored":        {typ: StateChanged, set: map[string]string{"state": "active", "restored": "true"}},
	"cmk.revoked":         {typ: StateChanged, set: map[string]string{"state": "revoked"}, keep: []string{"reason"}},
	"cmk.lost":            {typ: StateChanged, set: map[string]string{"state": "lost"}, keep: []string{"reason"}},
	"cmk.deactivate.done": {typ: StateChanged, set: map[string]string{"state": "platform"}},
	"cmk.fallback":        {typ: StateChanged, set: map[string]string{"state": "platform", "fallen_back": "true"}, keep: []string{"data_lost_at", "purged_key"}},
	"cmk.rotate.done":     {typ: RotationFollowed, keep: []string{"from", "to"}},

	// Deletion features (org deletion, data-key deletion) publish by
	// using these audit actions.
	"org.deletion.schedule": {typ: DeletionScheduled, keepAll: true},
	"key.deletion.schedule": {typ: DeletionScheduled, keepAll: true},
}
