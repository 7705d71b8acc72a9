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
