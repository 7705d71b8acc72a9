package pkcs11

import (
	"net/url"
	"os"
	"strings"

	"github.com/orgkms/orgkms/internal/fault"
	"github.com/orgkms/orgkms/internal/masterkey"
)

// Scheme is the URI scheme of this driver.
const Scheme = "pkcs11"

// expectedForm is named by every URI error.
const expectedForm = "expected pkcs11:token=TOKEN;object=KEY_LABEL[?module-path=/path/to/module.so&pin-source=file:/path/to/pin or env:VARIABLE], e.g. pkcs11:token=orgkms;object=platform-kek?pin-source=file:/etc/orgkms/hsm.pin"

// Attrs are the attributes of a pkcs11: key URI (RFC 7512 names).
type Attrs struct {
	Token      string // path attribute token: the token label (required)
	Object     string // path attribute object: the key label (CKA_LABEL) (required)
	ModulePath string // query attribute module-path; "" = the configured default
	PINSource  string // query attribute pin-source: file:PATH or env:VARIABLE; "" = the configured default
}

// ID returns the canonical ID of a: the path attributes in the order token,
// object, then the query attributes module-path, pin-source, each value
// percent-encoded where needed. It is what a stored ref holds.
func (a Attrs) ID() string {
	s := "token=" + escape(a.Token) + ";object=" + escape(a.Object)
	var q []string
	if a.ModulePath != "" {
		q = append(q, "module-path="+escape(a.ModulePath))
	}
	if a.PINSource != "" {
		q = append(q, "pin-source="+escape(a.PINSource))
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// escape percent-encodes what is not an RFC 7512 unreserved or a few safe
// characters ("/" and ":" in paths and sources).
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/', c == ':', c == '@':
			b.WriteByte(c)
		default:
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Driver returns the registry entry of this driver.
func Driver() masterkey.Driver { return masterkey.Driver{Scheme: Scheme, ParseRef: ParseRef} }

// ParseRef parses a pkcs11: key URI (see the package doc), with an optional
// #VERSION (a positive decimal number), and returns it with its canonical ID.
// It returns Kind Invalid naming the expected form; the error never repeats
// a pin-value.
func ParseRef(uri string) (masterkey.Ref, error) {
	if strings.Contains(strings.ToLower(uri), "pin-value") {
		return masterkey.Ref{}, fault.Invalidf("master_key", "a pkcs11: URI must not hold the PIN (pin-value): put it in a file or an environment variable and name it with pin-source=file:PATH or pin-source=env:VARIABLE; %s", expectedForm)
	}
	ref, err := masterkey.ParseRef(uri)
	if err != nil {
		return masterkey.Ref{}, err
	}
	if ref.Provider != Scheme {
		return masterkey.Ref{}, fault.Invalidf("master_key", "%q is not a pkcs11: URI; %s", ref.Provider+":", expectedForm)
	}
	a, err := ParseID(ref.ID)
	if err != nil {
		return masterkey.Ref{}, err
	}
	if ref.Version != "" {
		if _, ok := parseVersion(ref.Version); !ok {
			return masterkey.Ref{}, fault.Invalidf("master_key", "pkcs11 key version %q must be a positive decimal number (the key's CKA_ID); %s", ref.Version, expectedForm)
		}
	}
	ref.ID = a.ID()
	return ref, nil
}

// ParseID parses the ID of a pkcs11 ref: PATH-ATTRS[?QUERY-ATTRS].
func ParseID(id string) (Attrs, error) {
	invalid := func(reason string) (Attrs, error) {
		return Attrs{}, fault.Invalidf("master_key", "pkcs11 key URI: %s; %s", reason, expectedForm)
	}
	path, query, _ := strings.Cut(id, "?")
	var a Attrs
	seen := map[string]bool{}
	for part := range strings.SplitSeq(path, ";") {
		if part == "" {
			return invalid("an empty path attribute")
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return invalid("path attribute " + quote(k) + " has no value")
		}
		val, err := url.PathUnescape(v)
		if err != nil || val == "" {
			return invalid("the value of " + quote(k) + " is empty or badly percent-encoded")
		}
		if seen[k] {
			return invalid("attribute " + quote(k) + " appears twice")
		}
		seen[k] = true
		switch k {
		case "token":
			a.Token = val
		case "object":
			a.Object = val
		case "type":
			if val != "secret-key" {
				return invalid("type must be secret-key (an AES-256 key)")
			}
		default:
			return invalid("unknown path attribute " + quote(k) + " (token, object and type are read)")
		}
	}
	if query != "" {
		for part := range strings.SplitSeq(query, "&") {
			k, v, ok := strings.Cut(part, "=")
			if !ok {
				return invalid("query attribute " + quote(k) + " has no value")
			}
			val, err := url.QueryUnescape(v)
			if err != nil || val == "" {
				return invalid("the value of " + quote(k) + " is empty or badly percent-encoded")
			}
			if seen[k] {
				return invalid("attribute " + quote(k) + " appears twice")
			}
			seen[k] = true
			switch k {
			case "module-path":
				if !strings.HasPrefix(val, "/") {
					return invalid("module-path must be an absolute path to the PKCS#11 module (.so)")
				}
				a.ModulePath = val
			case "pin-source":
				src, err := ParsePINSource(val)
				if err != nil {
					return Attrs{}, err
				}
				a.PINSource = src
			default:
				return invalid("unknown query attribute " + quote(k) + " (module-path and pin-source are read)")
			}
		}
	}
	if a.Token == "" || a.Object == "" {
		return invalid("token and object are required")
	}
	return a, nil
}

// ParsePINSource checks and normalizes a PIN source: file:/ABSOLUTE/PATH
// (also file:///ABSOLUTE/PATH) or env:VARIABLE. It returns Kind Invalid.
func ParsePINSource(s string) (string, error) {
	if p, ok := strings.CutPrefix(s, "file:"); ok {
		p = strings.TrimPrefix(p, "//")
		if strings.HasPrefix(p, "/") && len(p) > 1 {
			return "file:" + p, nil
		}
	}
	if v, ok := strings.CutPrefix(s, "env:"); ok && v != "" && !strings.ContainsAny(v, "=/ ") {
		return s, nil
	}
	return "", fault.Invalidf("master_key", "pin-source must be file:/ABSOLUTE/PATH or env:VARIABLE (the PIN itself never goes in the URI or the config); %s", expectedForm)
}

// readPIN reads the PIN named by src (already parsed). Errors name the
// source, never the PIN.
func readPIN(src string, getenv func(string) string) (string, error) {
	if src == "" {
		return "", &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: "no PIN source: add pin-source=file:PATH or pin-source=env:VARIABLE to the pkcs11: URI, or set pkcs11.pin_source"}
	}
	if name, ok := strings.CutPrefix(src, "env:"); ok {
		v := getenv(name)
		if v == "" {
			return "", &fault.Error{Kind: fault.CredentialsInvalid, Reason: "the PKCS#11 PIN source, environment variable " + name + ", is not set"}
		}
		return v, nil
	}
	path := strings.TrimPrefix(src, "file:")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &fault.Error{Kind: fault.CredentialsInvalid, Reason: "cannot read the PKCS#11 PIN file " + path + ": check it exists and orgkms may read it"}
	}
	pin := strings.TrimRight(string(b), "\r\n")
	clear(b)
	if pin == "" {
		return "", &fault.Error{Kind: fault.CredentialsInvalid, Reason: "the PKCS#11 PIN file " + path + " is empty"}
	}
	return pin, nil
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return "\"" + strings.ReplaceAll(s, "\"", "'") + "\""
}

// parseVersion parses a version: a positive decimal number without leading
// zeros, at most 9 digits.
func parseVersion(s string) (int, bool) {
	if s == "" || len(s) > 9 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}
