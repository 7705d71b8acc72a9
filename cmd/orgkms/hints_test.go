package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/orgkms/orgkms/client"
	"github.com/orgkms/orgkms/internal/fault"
)

// TestAPIHintsFromTable: the hint of an API error is the hint of its code
// in the error table, for every kind, and nothing for a code the table
// does not know.
func TestAPIHintsFromTable(t *testing.T) {
	for _, k := range fault.Kinds() {
		t.Run(k.Code(), func(t *testing.T) {
			err := fmt.Errorf("encrypt: %w", &client.Error{Status: k.HTTPStatus(), Code: k.Code(), Message: "m"})
			got := apiHints(err)
			var want []string
			if h := k.Hint(); h != "" {
				want = []string{h}
			}
			if !slices.Equal(got, want) {
				t.Errorf("apiHints(code %s) = %q, want %q (the table's hint)", k.Code(), got, want)
			}
		})
	}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"unknown code", &client.Error{Status: 502, Code: "http_502"}, nil},
		{"not an API error", fmt.Errorf("boom"), nil},
		{"retry after", &client.Error{Status: 503, Code: "unavailable", RetryAfter: 2 * time.Second},
			[]string{fault.Unavailable.Hint(), "the server asks to wait 2s before retrying"}},
	}
	for _, tt := range tests {
		if got := apiHints(tt.err); !slices.Equal(got, tt.want) {
			t.Errorf("apiHints(%s) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
