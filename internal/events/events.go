package events

import (
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/audit"
)

// Type names a notification. The values are part of the API: receivers
// switch on them.
type Type string

const (
	// StateChanged: the org's customer managed key changed state. Data:
	// state (active, revoked, lost, platform), fallen_back "true" when the
	// org fell back to the platform key, reason (a stable code) when
	// revoked or lost.
	StateChanged Type = "cmk.state_changed"
	// RotationFollowed: orgkms re-wrapped the org's root key with a new
	// version of its customer managed key. Data: from, to.
	RotationFollowed Type = "cmk.rotation_followed"
	// JobFailed: a background job of the org failed. Data: job, error.
	JobFailed Type = "job.failed"
	// DeletionScheduled: the org, or one of its data keys, was scheduled
	// for deletion. Data: the scheduling audit event's details (e.g.
	// delete_at), and target.
	DeletionScheduled Type = "deletion.scheduled"
	// Ping is sent by POST /v1/orgs/{org}/webhooks/{id}/test only.
	Ping Type = "ping"
)

// Types returns every type a webhook can subscribe to, in a stable order.
func Types() []Type {
	return []Type{StateChanged, RotationFollowed, JobFailed, DeletionScheduled, Ping}
}

// Valid reports whether t is a known type.
func (t Type) Valid() bool {
	for _, k := range Types() {
		if k == t {
			return true
		}
	}
	return false
}

// Event is one notification: what a webhook receives as its body.
type Event struct {
	ID    string            `json:"id"`   // "evt_" + 32 hex digits
	Type  Type              `json:"type"` // what happened
	OrgID string            `json:"org"`
	Time  time.Time         `json:"time"`
	Data  map[string]string `json:"data"`
}

// Body returns the JSON body a webhook receives for e: an object with id,
// type, org, time (RFC 3339, UTC) and data.
func (e Event) Body() []byte {
	if e.Data == nil {
		e.Data = map[string]string{}
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil { // a struct of strings and a time: cannot fail
		panic("events: marshal event: " + err.Error())
	}
	return b
}

// FromAudit returns the notification that the stored audit event ev
// (Seq and Hash set) records, and false when it records none.
func FromAudit(ev audit.Event) (Event, bool) {
	if ev.OrgID == "" || ev.OrgID == audit.Platform {
		return Event{}, false
	}
	r, ok := rules[ev.Action]
	if !ok {
		// Job failures: cmk.<kind>.failed for every job kind.
		if strings.HasPrefix(ev.Action, "cmk.") && strings.HasSuffix(ev.Action, ".failed") {
			r = rule{typ: JobFailed, set: map[string]string{"job": strings.TrimSuffix(strings.TrimPrefix(ev.Action, "cmk."), ".failed")}, keep: []string{"error"}}
		} else {
			return Event{}, false
		}
	}
	data := maps.Clone(r.set)
	if data == nil {
		data = map[string]string{}
	}
	for _, k := range r.keep {
		if v, ok := ev.Details[k]; ok {
			data[k] = v
		}
	}
	if r.keepAll {
		for k, v := range ev.Details {
			data[k] = v
		}
		if ev.Target != "" {
			data["target"] = ev.Target
		}
	}
	data["audit_seq"] = strconv.FormatInt(ev.Seq, 10)
	id := ev.Hash
	if len(id) > 32 {
		id = id[:32]
	}
	return Event{ID: "evt_" + id, Type: r.typ, OrgID: ev.OrgID, Time: ev.Time.UTC(), Data: data}, true
}
