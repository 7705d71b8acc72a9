package cmk

import "testing"

func TestTaggedFor(t *testing.T) {
	tests := []struct {
		value, org string
		want       bool
	}{
		{"acme", "acme", true},
		{"acme,globex", "globex", true},
		{"acme, globex;initech", "initech", true},
		{" acme ", "acme", true},
		{"acme2", "acme", false},
		{"xacme", "acme", false},
		{"", "acme", false},
		{",,", "acme", false},
		{"acme,", "acme", true},
	}
	for _, tt := range tests {
		if got := taggedFor(map[string]string{OwnershipTag: tt.value}, tt.org); got != tt.want {
			t.Errorf("taggedFor(%q, %q) = %v, want %v", tt.value, tt.org, got, tt.want)
		}
	}
	if taggedFor(map[string]string{"other": "acme"}, "acme") {
		t.Error("taggedFor found the org in another tag")
	}
}
