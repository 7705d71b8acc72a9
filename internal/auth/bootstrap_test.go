package auth_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/store/sqlite"
)

func TestBootstrapTokenLeft(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "orgkms.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := auth.NewService(st, nil, nil, 0)
	ctx := t.Context()
	file := filepath.Join(dir, "bootstrap-token")
	check := func(when string, want bool) {
		t.Helper()
		_, left, err := svc.BootstrapTokenLeft(ctx, file)
		if err != nil || left != want {
			t.Errorf("BootstrapTokenLeft %s = %v, %v; want %v", when, left, err, want)
		}
	}
	check("without a file", false)
	boot, secret, err := svc.Create(ctx, "orgkms:bootstrap", auth.CreateTokenRequest{Principal: "bootstrap-operator", Roles: []auth.Role{auth.RoleOperator}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("as the only token", false)
	if _, _, err := svc.Create(ctx, "test", auth.CreateTokenRequest{Principal: "billing", Roles: []auth.Role{auth.RoleService}}); err != nil {
		t.Fatal(err)
	}
	check("with a service token besides", false)
	if _, _, err := svc.Create(ctx, "test", auth.CreateTokenRequest{Principal: "ops", Roles: []auth.Role{auth.RoleOperator}}); err != nil {
		t.Fatal(err)
	}
	tok, left, err := svc.BootstrapTokenLeft(ctx, file)
	if err != nil || !left || tok.ID != boot.ID {
		t.Errorf("BootstrapTokenLeft with another operator token = %v %v, %v; want the bootstrap token %s", tok.ID, left, err, boot.ID)
	}
	if err := svc.Revoke(ctx, "test", boot.ID); err != nil {
		t.Fatal(err)
	}
	check("once revoked", false)
}
