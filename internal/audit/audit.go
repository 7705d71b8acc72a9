package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// Platform is the org ID of the platform's own chain (tokens, users, ...).
const Platform = "_platform"

// Event is one audit record.
type Event struct {
	OrgID    string            `json:"org_id"`
	Seq      int64             `json:"seq"` // 1-based position in the org's chain
	Time     time.Time         `json:"time"`
	Actor    string            `json:"actor"`  // principal, e.g. "token:ops-bootstrap", "user:alice@acme"
	Action   string            `json:"action"` // e.g. "org.create", "key.rotate", "cmk.enable"
	Target   string            `json:"target"` // e.g. "key/default"
	Details  map[string]string `json:"details,omitempty"`
	PrevHash string            `json:"prev_hash"` // hex; "" for the first event
	Hash     string            `json:"hash"`      // hex SHA-256 over every other field
}

// Chain fills e's Seq, PrevHash and Hash so that it follows prev. A zero prev
// (Seq 0) starts a chain.
func Chain(prev Event, e Event) Event {
	e.Seq = prev.Seq + 1
	e.PrevHash = prev.Hash
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	e.Hash = Hash(e)
	return e
}

// Hash computes the hash of e over a canonical, length-prefixed encoding of
// every field except Hash itself.
func Hash(e Event) string {
	var b bytes.Buffer
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		b.Write(n[:])
		b.WriteString(s)
	}
	field("orgkms/audit/v1")
	field(e.OrgID)
	field(fmt.Sprint(e.Seq))
	field(e.Time.UTC().Format(time.RFC3339Nano))
	field(e.Actor)
	field(e.Action)
	field(e.Target)
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	field(fmt.Sprint(len(keys)))
	for _, k := range keys {
		field(k)
		field(e.Details[k])
	}
	field(e.PrevHash)
	sum := sha256.Sum256(b.Bytes())
	return hex.EncodeToString(sum[:])
}

// VerifyError says where a chain is broken.
type VerifyError struct {
	OrgID  string
	Seq    int64
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit chain of %s broken at event %d: %s", e.OrgID, e.Seq, e.Reason)
}

// Verify checks that events (one org's chain, in order, starting at Seq 1)
// link and hash correctly. It returns a *VerifyError naming the first bad
// event.
func Verify(events []Event) error {
	var prev Event
	for i, e := range events {
		want := int64(i + 1)
		if e.Seq != want {
			return &VerifyError{OrgID: e.OrgID, Seq: e.Seq, Reason: fmt.Sprintf("expected sequence number %d: an event was removed or reordered", want)}
		}
		if i > 0 && e.OrgID != prev.OrgID {
			return &VerifyError{OrgID: e.OrgID, Seq: e.Seq, Reason: "event belongs to another org"}
		}
		if e.PrevHash != prev.Hash {
			return &VerifyError{OrgID: e.OrgID, Seq: e.Seq, Reason: "previous-hash link does not match the preceding event"}
		}
		if Hash(e) != e.Hash {
			return &VerifyError{OrgID: e.OrgID, Seq: e.Seq, Reason: "event content does not match its hash: it was modified"}
		}
		prev = e
	}
	return nil
}
