package client

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"testing"

	"github.com/orgkms/orgkms/internal/fault"
)

// TestCodesMatchFaultTable: the client's codes are exactly the codes of the
// server's error table, and every Code constant is in Codes.
func TestCodesMatchFaultTable(t *testing.T) {
	var want []string
	for _, k := range fault.Kinds() {
		want = append(want, k.Code())
	}
	var got []string
	for _, c := range Codes() {
		got = append(got, string(c))
	}
	slices.Sort(want)
	slices.Sort(got)
	for _, c := range want {
		if !slices.Contains(got, c) {
			t.Errorf("fault code %s has no client.Code in Codes()", c)
		}
	}
	for _, c := range got {
		if !slices.Contains(want, c) {
			t.Errorf("client.Codes() has %s, which is not a fault code", c)
		}
	}
	if len(got) != len(slices.Compact(slices.Clone(got))) {
		t.Errorf("client.Codes() has duplicates: %v", got)
	}

	// Every constant of type Code declared in codes.go is listed.
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	declared := 0
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, name := range vs.Names {
				declared++
				lit := vs.Values[0].(*ast.BasicLit).Value
				if !slices.Contains(got, lit[1:len(lit)-1]) {
					t.Errorf("constant %s = %s is not in Codes()", name.Name, lit)
				}
			}
		}
	}
	if declared != len(got) {
		t.Errorf("codes.go declares %d Code constants, Codes() returns %d", declared, len(got))
	}
}

func TestErrorsIsCode(t *testing.T) {
	apiErr := &Error{Status: 400, Code: "ciphertext_invalid", Message: "m"}
	wrapped := fmt.Errorf("decrypt invoice: %w", apiErr)
	tests := []struct {
		name string
		err  error
		code Code
		want bool
	}{
		{"same code", apiErr, CodeCiphertextInvalid, true},
		{"wrapped", wrapped, CodeCiphertextInvalid, true},
		{"other code", wrapped, CodeNotFound, false},
		{"not an API error", errors.New("ciphertext_invalid"), CodeCiphertextInvalid, false},
		{"nil", nil, CodeInternal, false},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, tt.code); got != tt.want {
			t.Errorf("errors.Is(%s, %s) = %v, want %v", tt.name, tt.code, got, tt.want)
		}
	}
}
