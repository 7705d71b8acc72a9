package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadFileEnvDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"addr":"127.0.0.1:9000","cache_ttl":"1m","log_format":"text"}`), 0o600)
	c, err := Load(p, []string{"ORGKMS_CACHE_TTL=2m", "ORGKMS_DATA_DIR=/srv/kms", "OTHER=x"})
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if c.Addr != "127.0.0.1:9000" || time.Duration(c.CacheTTL) != 2*time.Minute || c.DataDir != "/srv/kms" || c.Database != "/srv/kms/orgkms.db" || c.MasterKey != "local:///srv/kms/master.key" {
		t.Fatalf("unexpected config %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejects(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"adr":"x"}`), 0o600)
	if _, err := Load(p, nil); err == nil {
		t.Fatal("unknown field accepted")
	}
	bad := []Config{{Addr: "nope"}, {LogLevel: "loud"}, {TLSCert: "x"}}
	for _, c := range bad {
		c.Defaults()
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want error", c)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"trusted_proxies":["10.0.0.0/8"]}`), 0o600)
	for _, tc := range []struct {
		name    string
		environ []string
		want    []string
		wantErr bool
	}{
		{"file", nil, []string{"10.0.0.0/8"}, false},
		{"env overrides", []string{"ORGKMS_TRUSTED_PROXIES=192.0.2.10, 2001:db8::/32"}, []string{"192.0.2.10/32", "2001:db8::/32"}, false},
		{"not a cidr", []string{"ORGKMS_TRUSTED_PROXIES=proxy.internal"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(p, tc.environ)
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			err = c.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			got, err := c.TrustedProxyPrefixes()
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("TrustedProxyPrefixes() = %v, %v; want %v", got, err, tc.want)
			}
			for i := range got {
				if got[i].String() != tc.want[i] {
					t.Errorf("prefix %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
	var c Config
	c.Defaults()
	if ps, err := c.TrustedProxyPrefixes(); err != nil || len(ps) != 0 {
		t.Errorf("default trusted proxies = %v, %v; want none", ps, err)
	}
}
