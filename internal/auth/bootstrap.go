package auth

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// BootstrapTokenLeft reports whether the operator token written at first
// start to file (DATA_DIR/bootstrap-token) is still valid although another
// valid operator token exists: the operator has their own tokens, and the
// bootstrap one, readable by anyone who can read the data directory, should
// be revoked. It returns that token, or false when the file is absent or
// its token revoked, expired, or the only operator token.
func (s *Service) BootstrapTokenLeft(ctx context.Context, file string) (Token, bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Token{}, false, nil
	}
	if err != nil {
		return Token{}, false, err
	}
	p, err := s.Authenticate(ctx, strings.TrimSpace(string(b)))
	if err != nil {
		if errors.Is(err, errBadToken) {
			return Token{}, false, nil
		}
		return Token{}, false, err
	}
	tokens, err := s.store.ListTokens(ctx)
	if err != nil {
		return Token{}, false, err
	}
	now := s.now()
	var boot Token
	others := false
	for _, t := range tokens {
		switch {
		case t.ID == p.TokenID:
			boot = t
		case t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)) && t.OrgID == "" && slices.Contains(t.Roles, RoleOperator):
			others = true
		}
	}
	return boot, others && boot.ID != "", nil
}
