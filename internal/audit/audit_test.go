package audit

import (
	"errors"
	"testing"
	"time"
)

func chain(n int) []Event {
	var out []Event
	var prev Event
	for i := range n {
		e := Chain(prev, Event{OrgID: "acme", Time: time.Unix(int64(1700000000+i), 0), Actor: "token:t", Action: "key.rotate", Target: "key/default", Details: map[string]string{"version": "2"}})
		out = append(out, e)
		prev = e
	}
	return out
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func([]Event) []Event
		wantSeq int64 // 0 = valid
	}{
		{"intact", func(e []Event) []Event { return e }, 0},
		{"modified detail", func(e []Event) []Event { e[2].Details = map[string]string{"version": "9"}; return e }, 3},
		{"modified actor", func(e []Event) []Event { e[1].Actor = "token:evil"; return e }, 2},
		{"removed event", func(e []Event) []Event { return append(e[:1], e[2:]...) }, 3},
		{"swapped events", func(e []Event) []Event { e[1], e[2] = e[2], e[1]; return e }, 3},
		{"rehashed but unlinked", func(e []Event) []Event { e[3].Action = "x"; e[3].Hash = Hash(e[3]); return e }, 5},
		{"truncated tail is valid", func(e []Event) []Event { return e[:3] }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.mutate(chain(5)))
			if tt.wantSeq == 0 {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) || ve.Seq != tt.wantSeq {
				t.Fatalf("Verify = %v, want break at %d", err, tt.wantSeq)
			}
		})
	}
}
