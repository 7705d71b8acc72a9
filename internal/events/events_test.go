package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
)

func TestFromAudit(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 0, 0, 0, time.UTC)
	stored := func(action string, details map[string]string) audit.Event {
		return audit.Chain(audit.Event{}, audit.Event{OrgID: "acme", Time: at, Actor: "orgkms", Action: action, Target: "cmk", Details: details})
	}
	cases := []struct {
		action  string
		details map[string]string
		want    Type
		data    map[string]string // a subset of the event's data
	}{
		{"cmk.revoked", map[string]string{"reason": "cmk_key_disabled"}, StateChanged, map[string]string{"state": "revoked", "reason": "cmk_key_disabled"}},
		{"cmk.lost", map[string]string{"reason": "cmk_key_destroyed"}, StateChanged, map[string]string{"state": "lost", "reason": "cmk_key_destroyed"}},
		{"cmk.restored", nil, StateChanged, map[string]string{"state": "active"}},
		{"cmk.activate.done", map[string]string{"from": "platform", "to": "kv/key"}, StateChanged, map[string]string{"state": "active", "to": "kv/key"}},
		{"cmk.fallback", map[string]string{"data_lost_at": "x"}, StateChanged, map[string]string{"state": "platform", "fallen_back": "true", "data_lost_at": "x"}},
		{"cmk.deactivate.done", nil, StateChanged, map[string]string{"state": "platform"}},
		{"cmk.rotate.done", map[string]string{"from": "a", "to": "b"}, RotationFollowed, map[string]string{"from": "a", "to": "b"}},
		{"cmk.rotate.failed", map[string]string{"error": "boom"}, JobFailed, map[string]string{"job": "rotate", "error": "boom"}},
		{"cmk.activate.failed", map[string]string{"error": "boom"}, JobFailed, map[string]string{"job": "activate"}},
		{"org.deletion.schedule", map[string]string{"delete_at": "2026-12-14"}, DeletionScheduled, map[string]string{"delete_at": "2026-12-14", "target": "cmk"}},
		{"key.rotate", nil, "", nil},
		{"cmk.configure", nil, "", nil},
	}
	for _, tc := range cases {
		ev := stored(tc.action, tc.details)
		got, ok := FromAudit(ev)
		if ok != (tc.want != "") || got.Type != tc.want {
			t.Errorf("FromAudit(%s) = %q, %v; want %q", tc.action, got.Type, ok, tc.want)
			continue
		}
		if !ok {
			continue
		}
		if got.ID != "evt_"+ev.Hash[:32] || got.OrgID != "acme" || !got.Time.Equal(at) || got.Data["audit_seq"] != "1" {
			t.Errorf("FromAudit(%s) = %+v, want ID from the hash, org acme, the event's time and seq", tc.action, got)
		}
		for k, v := range tc.data {
			if got.Data[k] != v {
				t.Errorf("FromAudit(%s).Data[%s] = %q, want %q", tc.action, k, got.Data[k], v)
			}
		}
	}
	platform := audit.Chain(audit.Event{}, audit.Event{OrgID: audit.Platform, Time: at, Action: "cmk.revoked"})
	if _, ok := FromAudit(platform); ok {
		t.Errorf("FromAudit(platform chain) notifies, want nothing")
	}
}

func TestBody(t *testing.T) {
	e := Event{ID: "evt_1", Type: StateChanged, OrgID: "acme", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)), Data: map[string]string{"state": "revoked"}}
	var got map[string]any
	if err := json.Unmarshal(e.Body(), &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != "evt_1" || got["type"] != "cmk.state_changed" || got["org"] != "acme" || got["time"] != "2026-01-02T02:04:05Z" ||
		got["data"].(map[string]any)["state"] != "revoked" {
		t.Errorf("Body() = %s", e.Body())
	}
	for _, typ := range Types() {
		if !typ.Valid() {
			t.Errorf("%s.Valid() = false", typ)
		}
	}
	if Type("cmk.bogus").Valid() {
		t.Errorf("cmk.bogus is valid")
	}
}
