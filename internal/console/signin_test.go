package console

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxy", "203.0.113.9:5000", nil, nil, "203.0.113.9"},
		{"xff ignored by default", "203.0.113.9:5000", []string{"192.0.2.1"}, nil, "203.0.113.9"},
		{"xff from an untrusted peer ignored", "203.0.113.9:5000", []string{"192.0.2.1"}, proxies, "203.0.113.9"},
		{"trusted proxy", "10.1.2.3:5000", []string{"192.0.2.1"}, proxies, "192.0.2.1"},
		{"client-chosen left entries ignored", "10.1.2.3:5000", []string{"198.51.100.1, 192.0.2.1"}, proxies, "192.0.2.1"},
		{"chain of trusted proxies", "10.1.2.3:5000", []string{"192.0.2.1, 10.9.9.9"}, proxies, "192.0.2.1"},
		{"several headers", "10.1.2.3:5000", []string{"198.51.100.1", "192.0.2.1"}, proxies, "192.0.2.1"},
		{"only proxies", "10.1.2.3:5000", []string{"10.4.4.4"}, proxies, "10.4.4.4"},
		{"no header from a proxy", "10.1.2.3:5000", nil, proxies, "10.1.2.3"},
		{"malformed hop", "10.1.2.3:5000", []string{"192.0.2.1, garbage"}, proxies, "10.1.2.3"},
		{"ipv6 proxy", "[2001:db8::1]:443", []string{"2001:db9::5"}, proxies, "2001:db9::5"},
		{"ipv4-mapped peer", "[::ffff:10.1.2.3]:443", []string{"192.0.2.1"}, proxies, "192.0.2.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/console/signin", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tc.trusted); got != tc.want {
				t.Errorf("clientAddr(%s, %q) = %q, want %q", tc.remote, tc.xff, got, tc.want)
			}
		})
	}
}
