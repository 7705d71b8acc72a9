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

// TestAzureCallBounds: the Azure driver's per-call timeout, per-attempt
// timeout and retry budget come from cmk.azure, and absurd values are
// refused.
func TestAzureCallBounds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"cmk":{"cloud":"azure","azure":{"client_id":"app","client_secret":"s","timeout":"2s","try_timeout":"500ms","max_retries":-1}}}`), 0o600)
	c, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := c.CMK.Azure; time.Duration(a.Timeout) != 2*time.Second || time.Duration(a.TryTimeout) != 500*time.Millisecond || a.MaxRetries != -1 {
		t.Fatalf("cmk.azure bounds = %v, %v, %d; want 2s, 500ms, -1", a.Timeout, a.TryTimeout, a.MaxRetries)
	}
	for _, bad := range []Azure{{MaxRetries: 11}, {MaxRetries: -2}, {Timeout: Duration(-time.Second)}} {
		bad.ClientID, bad.ClientSecret = "app", "s"
		c := Config{CMK: CMK{Cloud: "azure", Azure: bad}}
		c.Defaults()
		if c.Validate() == nil {
			t.Errorf("Validate(cmk.azure %+v) = nil, want error", bad)
		}
	}
}
