package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/orgkms/orgkms/internal/auth"
	"github.com/orgkms/orgkms/internal/server"
)

// ensureBootstrapToken creates an operator token when none exists and
// writes it to DATA_DIR/bootstrap-token (mode 0600). It returns the path, or
// "" when tokens already exist.
func ensureBootstrapToken(ctx context.Context, s *server.Server) (string, error) {
	n, err := s.Tokens.Count(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	_, secret, err := s.Tokens.Create(ctx, "orgkms:bootstrap", auth.CreateTokenRequest{
		Principal: "bootstrap-operator", Roles: []auth.Role{auth.RoleOperator}, Description: "created at first start; revoke once you have your own tokens"})
	if err != nil {
		return "", err
	}
	p := filepath.Join(s.Config.DataDir, "bootstrap-token")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return p, nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
