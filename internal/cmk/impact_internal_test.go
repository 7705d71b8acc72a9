package cmk

import (
	"errors"
	"testing"

	"github.com/orgkms/orgkms/internal/budget"
	"github.com/orgkms/orgkms/internal/fault"
)

// The re-wrap estimate: (calls waiting in the vault's budget + the job's
// calls) / the budget's rate, or the platform key's nominal rate.
func TestImpactRewrapEstimate(t *testing.T) {
	s := &Service{}
	active := Status{Record: Record{State: StateActive}}
	withBudget := active
	withBudget.VaultBudget = &budget.State{Rate: 10, Waiting: map[string]int{"load": 2}}
	tests := []struct {
		name     string
		action   ImpactAction
		st       Status
		required bool
		source   string
		secs     float64
	}{
		{"disable on the platform key's rate", ImpactDisable, active, true, "platform key", 0.15},
		{"disable at the vault budget's rate", ImpactDisable, withBudget, true, "vault budget", 0.5},
		{"replace at the vault budget's rate", ImpactReplace, withBudget, true, "vault budget", 0.5},
		{"fallback of a lost org", ImpactFallback, Status{Record: Record{State: StateLost}}, true, "platform key", 0.1},
		{"disable before activation", ImpactDisable, Status{Record: Record{State: StateAuthorized}}, false, "", 0},
		{"revoke", ImpactRevoke, withBudget, false, "", 0},
		{"delete-org", ImpactDeleteOrg, withBudget, false, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := s.impactRewrap(tt.action, tt.st)
			if rw.Required != tt.required || rw.RateSource != tt.source || rw.EstimatedSeconds != tt.secs {
				t.Errorf("impactRewrap(%s) = %+v, want required %v, source %q, %v s", tt.action, rw, tt.required, tt.source, tt.secs)
			}
			if rw.Required && rw.Wraps != 1 {
				t.Errorf("wraps = %d, want 1 (one root key per org)", rw.Wraps)
			}
		})
	}
}

func TestParseImpactAction(t *testing.T) {
	for _, tt := range []struct {
		action, key, wantField string
	}{
		{"", "", "action"}, {"nope", "", "action"}, {"disable-key", "", "key"}, {"disable", "k", "key"}, {"delete-key", "../x", "key"},
		{"disable", "", ""}, {"delete-key", "k", ""},
	} {
		_, err := ParseImpactAction(tt.action, tt.key)
		var fe *fault.Error
		switch {
		case tt.wantField == "" && err != nil:
			t.Errorf("ParseImpactAction(%q, %q) = %v, want nil", tt.action, tt.key, err)
		case tt.wantField != "" && (!errors.As(err, &fe) || fe.Kind != fault.Invalid || fe.Field != tt.wantField):
			t.Errorf("ParseImpactAction(%q, %q) = %v, want Invalid on field %s", tt.action, tt.key, err, tt.wantField)
		}
	}
}
