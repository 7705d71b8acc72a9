package keys

import (
	"strings"
	"sync"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// redactor hides the platform master key's location.
type redactor struct {
	once sync.Once
	r    *strings.Replacer
}

// RedactPlatformKey returns text with every mention of where the platform
// master key lives (its reference, e.g. local:///var/lib/orgkms/master.key,
// or its provider ID: a file path, an environment variable, a vault URI)
// replaced by "platform" words. Orgs must never learn the platform's
// internals: the API and the console pass every error message, audit detail
// and status text shown to an org through it.
func (s *Service) RedactPlatformKey(text string) string {
	s.redact.once.Do(func() {
		var pairs []string
		for _, ref := range append([]masterkey.Ref{s.platformKey}, s.previous...) {
			if ref.ID == "" {
				continue
			}
			pairs = append(pairs,
				ref.String(), "platform",
				"local master key "+ref.ID, "the platform master key",
				"local key "+ref.ID, "the platform master key",
				"master key file "+ref.ID, "the platform master key file",
			)
			if name, ok := strings.CutPrefix(ref.ID, "env:"); ok && name != "" {
				pairs = append(pairs, "environment variable "+name, "the platform master key's setting")
			}
			pairs = append(pairs, ref.ID, "the platform master key")
		}
		s.redact.r = strings.NewReplacer(pairs...)
	})
	if !strings.Contains(text, s.platformKey.ID) && !strings.Contains(text, "environment variable") && !s.mentionsPrevious(text) {
		return text
	}
	return s.redact.r.Replace(text)
}

func (s *Service) mentionsPrevious(text string) bool {
	for _, p := range s.previous {
		if p.ID != "" && strings.Contains(text, p.ID) {
			return true
		}
	}
	return false
}

// AuditKeyName is how an audit event names the master key ref: "platform"
// for the platform master key (current or previous), whose location an org never learns (not even
// at rest in its own audit chain, which its admins export and verify), and
// the ref itself for a customer's key.
func (s *Service) AuditKeyName(ref masterkey.Ref) string {
	if s.IsPlatformKey(ref) {
		return "platform"
	}
	return ref.String()
}

// PlatformKeyFault is what an org is told when the platform master key
// fails for it (wrapping a new root key, unwrapping its root key, falling
// back). The driver's own words name the platform's internals (an HSM's
// token and key labels, a file, a vault), so the error keeps its kind (its
// code, its retry hint) but its words come from the error table, about "the
// platform master key"; the driver's error stays only in the chain
// (err.Error(), which the server logs for the operator). Integrity and
// Internal errors pass through: their messages are already generic.
func PlatformKeyFault(op string, err error) error {
	if err == nil {
		return nil
	}
	kind := fault.KindOf(err)
	switch kind {
	case fault.Internal, fault.Integrity:
		return err
	}
	generic := &fault.Error{Kind: kind, Resource: "the platform master key", Provider: "the platform master key's provider"}
	out := &fault.Error{Kind: kind, Op: op, Err: err}
	if fe := fault.As(err); fe != nil {
		generic.Permission = fe.Permission
		out.Permission = fe.Permission
		out.RetryAfter = fe.RetryAfter
	}
	out.Reason = fault.Message(generic)
	if !strings.Contains(out.Reason, "platform") {
		out.Reason = "the platform master key: " + out.Reason
	}
	return out
}
