package envelope_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/orgkms/orgkms/internal/envelope"
)

func TestKeyRedacted(t *testing.T) {
	raw := make([]byte, envelope.KeySize)
	for i := range raw {
		raw[i] = byte(0xc0 + i) // distinctive bytes, none of them printable ASCII
	}
	k := mustKey(t, raw)
	k1 := envelope.K1(k)
	secrets := [][]byte{raw, k1[:]}
	leaks := func(out string) string {
		for _, s := range secrets {
			for _, enc := range []string{
				string(s),
				hex.EncodeToString(s),
				strings.ToUpper(hex.EncodeToString(s)),
				fmt.Sprint(s[:4]), // "[192 193 194 195]"
				fmt.Sprintf("%#v", s[:4]),
			} {
				if strings.Contains(out, enc) {
					return enc
				}
			}
		}
		return ""
	}

	type holder struct {
		Key   *envelope.Key
		Value envelope.Key
		key   *envelope.Key
	}
	h := holder{Key: k, Value: *k, key: k}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for name, arg := range map[string]any{"*Key": k, "Key": *k, "holder": h, "&holder": &h} {
			out := fmt.Sprintf(verb, arg)
			if enc := leaks(out); enc != "" {
				t.Errorf("Sprintf(%q, %s) = %q leaks %q", verb, name, out, enc)
			}
			if name == "*Key" || name == "Key" {
				if out != "[redacted]" {
					t.Errorf("Sprintf(%q, %s) = %q, want [redacted]", verb, name, out)
				}
			}
		}
	}
	if s := k.String(); s != "[redacted]" {
		t.Errorf("String() = %q", s)
	}
	if s := k.GoString(); s != "[redacted]" {
		t.Errorf("GoString() = %q", s)
	}

	for name, newHandler := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(newHandler(&buf))
		log.Info("key loaded", "key", k, "value", *k, slog.Any("any", k), slog.Group("g", "key", k), "holder", h)
		out := buf.String()
		if enc := leaks(out); enc != "" {
			t.Errorf("%s handler output %q leaks %q", name, out, enc)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s handler output %q does not say [redacted]", name, out)
		}
	}
}
