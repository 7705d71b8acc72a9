package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func writeConfig(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	p := writeConfig(t, `{"addr":"127.0.0.1:9000","cache_ttl":"1m","log_format":"text","data_dir":"/from/file"}`)
	tests := []struct {
		name  string
		src   Sources
		check func(c Config) string
	}{
		{"file, then environment", Sources{Path: p, Environ: []string{"ORGKMS_CACHE_TTL=2m", "ORGKMS_DATA_DIR=/srv/kms", "OTHER=x"}}, func(c Config) string {
			if c.Addr != "127.0.0.1:9000" || time.Duration(c.CacheTTL) != 2*time.Minute || c.DataDir != "/srv/kms" ||
				c.Database != "/srv/kms/orgkms.db" || c.MasterKey != "local:///srv/kms/master.key" || c.LogFormat != "text" {
				return "file or environment not applied, or defaults not derived from the data directory"
			}
			return ""
		}},
		{"flags win over the environment", Sources{Path: p, Environ: []string{"ORGKMS_LISTEN=127.0.0.1:9100"},
			Flags: func(c *Config) { c.Addr = "127.0.0.1:9200" }}, func(c Config) string {
			if c.Addr != "127.0.0.1:9200" {
				return "addr is not the flag's"
			}
			return ""
		}},
		{"environment wins over the command's base", Sources{Base: Config{Addr: "127.0.0.1:8200", DataDir: ".orgkms-dev", LogFormat: "text"},
			Environ: []string{"ORGKMS_LISTEN=127.0.0.1:9300", "ORGKMS_DATA_DIR=/dev-data", "ORGKMS_LOG_REQUESTS=true", "ORGKMS_CMK_PROBE_INTERVAL=5s"}}, func(c Config) string {
			if c.Addr != "127.0.0.1:9300" || c.DataDir != "/dev-data" || !c.LogRequests || time.Duration(c.CMK.ProbeInterval) != 5*time.Second || c.LogFormat != "text" {
				return "environment not applied over the base"
			}
			return ""
		}},
		{"empty variables are ignored", Sources{Base: Config{Addr: "127.0.0.1:8200"}, Environ: []string{"ORGKMS_LISTEN="}}, func(c Config) string {
			if c.Addr != "127.0.0.1:8200" {
				return "an empty ORGKMS_LISTEN replaced addr"
			}
			return ""
		}},
		{"a data directory flag moves the derived paths", Sources{Flags: func(c *Config) { c.DataDir = "/flag" }}, func(c Config) string {
			if c.Database != "/flag/orgkms.db" || c.MasterKey != "local:///flag/master.key" {
				return "database and master key not under the flag's data directory"
			}
			return ""
		}},
		{"a PostgreSQL URL from the file", Sources{Path: writeConfig(t, `{"database":"postgres://kms:pw@db.internal:5432/kms"}`)}, func(c Config) string {
			if !c.Postgres() || c.Database != "postgres://kms:pw@db.internal:5432/kms" || c.DatabaseName() != "postgres://kms:xxxxx@db.internal:5432/kms" {
				return "database is not the PostgreSQL URL, or its name shows the password"
			}
			return ""
		}},
		{"ORGKMS_DATABASE_URL wins over ORGKMS_DATABASE", Sources{Environ: []string{"ORGKMS_DATABASE=/x/orgkms.db",
			"ORGKMS_DATABASE_URL=postgresql://kms:pw@10.0.0.5/kms?sslmode=verify-full"}}, func(c Config) string {
			if !c.Postgres() || c.Database != "postgresql://kms:pw@10.0.0.5/kms?sslmode=verify-full" {
				return "ORGKMS_DATABASE_URL not applied"
			}
			return ""
		}},
		{"a SQLite path is not PostgreSQL", Sources{Environ: []string{"ORGKMS_DATABASE=/x/orgkms.db"}}, func(c Config) string {
			if c.Postgres() || c.DatabaseName() != "/x/orgkms.db" {
				return "a SQLite path taken for PostgreSQL"
			}
			return ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.src)
			if err != nil {
				t.Fatalf("Load = %v", err)
			}
			if msg := tc.check(c); msg != "" {
				t.Errorf("%s: %+v", msg, c)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Load returned a config that fails Validate: %v", err)
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name     string
		file     string // "" = no file
		environ  []string
		wantText string // the error names what to fix
	}{
		{"unknown field", `{"adr":"x"}`, nil, "adr"},
		{"two JSON values", `{} {}`, nil, "more than one"},
		{"bad addr", `{"addr":"nope"}`, nil, "addr"},
		{"bad log level", `{"log_level":"loud"}`, nil, "log_level"},
		{"cert without key", `{"tls_cert":"x"}`, nil, "tls_key"},
		{"bad duration in file", `{"cache_ttl":"soon"}`, nil, "duration"},
		{"bad duration in environment", "", []string{"ORGKMS_CACHE_TTL=soon"}, "ORGKMS_CACHE_TTL"},
		{"bad boolean in environment", "", []string{"ORGKMS_LOG_REQUESTS=maybe"}, "ORGKMS_LOG_REQUESTS"},
		{"bad listen address in environment", "", []string{"ORGKMS_LISTEN=nope"}, "addr"},
		{"job lease too short", `{"cmk":{"job_lease":"1ms"}}`, nil, "job_lease"},
		{"negative purge proof", `{"cmk":{"purge_confirm_checks":-1,"purge_confirm_after":"20m"}}`, nil, "purge_confirm_checks"},
		{"azure without credentials", `{"cmk":{"cloud":"azure"}}`, nil, "client_id"},
		{"azure offered without credentials", "", []string{"ORGKMS_CMK_CLOUDS=azure"}, "client_id"},
		{"aws offered without the driver", "", []string{"ORGKMS_CMK_CLOUDS=azure, aws", "ORGKMS_AZURE_CLIENT_ID=app", "ORGKMS_AZURE_CLIENT_SECRET=s"}, "cmk.clouds offers aws: set cmk.aws.enabled"},
		{"aws offered without orgkms' account", `{"cmk":{"cloud":"aws","aws":{"enabled":true}}}`, nil, "cmk.aws.account_id"},
		{"aws offered without the external-ID secret", `{"cmk":{"cloud":"aws","aws":{"enabled":true,"account_id":"444455556666"}}}`, []string{"ORGKMS_AWS_EXTERNAL_ID_SECRET=short"}, "cmk.aws.external_id_secret"},
		{"gcp without the driver", `{"cmk":{"cloud":"gcp"}}`, nil, `cmk.cloud (or cmk.clouds) offers gcp: set cmk.gcp.enabled to true and cmk.gcp.service_account`},
		{"gcp without its service account", `{"cmk":{"clouds":["gcp"],"gcp":{"enabled":true}}}`, nil, `offers gcp: set cmk.gcp.enabled to true and cmk.gcp.service_account`},
		{"gcp with a bad service account", `{"cmk":{"cloud":"gcp","gcp":{"enabled":true,"service_account":"orgkms"}}}`, nil, `cmk.gcp.service_account "orgkms" must be a service account e-mail`},
		{"an unknown cloud", `{"cmk":{"clouds":["azure","oracle"],"azure":{"client_id":"app","client_secret":"s"}}}`, nil, `cmk.clouds names "oracle"`},
		{"a cloud twice", `{"cmk":{"clouds":["azure","azure"],"azure":{"client_id":"app","client_secret":"s"}}}`, nil, `names "azure" twice`},
		{"the own cloud not offered", `{"cmk":{"cloud":"gcp","clouds":["azure"],"azure":{"client_id":"app","client_secret":"s"}}}`, nil, "must be one of cmk.clouds"},
		{"another database scheme", `{"database":"mysql://u:pw@h/db"}`, nil, "postgres:// URL"},
		{"a PostgreSQL URL without a host", "", []string{"ORGKMS_DATABASE_URL=postgres:///kms"}, "postgres://user:password@host:5432/dbname"},
		{"a malformed PostgreSQL URL", "", []string{"ORGKMS_DATABASE_URL=postgres://u:S3cret@h:port/db"}, "postgres://user:password@host:5432/dbname"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := Sources{Environ: tc.environ}
			if tc.file != "" {
				src.Path = writeConfig(t, tc.file)
			}
			c, err := Load(src)
			if err == nil {
				t.Fatalf("Load = %+v, nil; want an error naming %q", c, tc.wantText)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Load error = %q, want it to name %q", err, tc.wantText)
			}
			if strings.Contains(err.Error(), "S3cret") {
				t.Errorf("Load error = %q shows the database password", err)
			}
		})
	}
}

// TestCMKClouds: cmk.clouds (or ORGKMS_CMK_CLOUDS, comma-separated) lists
// the clouds offered; cmk.cloud is the one-cloud spelling, and the default
// of the list; the deployment's own cloud is the first offered.
func TestCMKClouds(t *testing.T) {
	creds := []string{"ORGKMS_AZURE_CLIENT_ID=app", "ORGKMS_AZURE_CLIENT_SECRET=s"}
	tests := []struct {
		name      string
		file      string
		environ   []string
		wantCloud string
		want      []string
	}{
		{"off", "", nil, "", nil},
		{"one-cloud spelling", `{"cmk":{"cloud":"azure"}}`, creds, "azure", []string{"azure"}},
		{"list in the file", `{"cmk":{"clouds":["azure"]}}`, creds, "azure", []string{"azure"}},
		{"list in the environment", "", append([]string{"ORGKMS_CMK_CLOUDS= azure ,"}, creds...), "azure", []string{"azure"}},
		{"both", `{"cmk":{"cloud":"azure","clouds":["azure"]}}`, creds, "azure", []string{"azure"}},
		{"gcp", `{"cmk":{"cloud":"gcp","gcp":{"enabled":true,"service_account":"orgkms@orgkms-platform.iam.gserviceaccount.com"}}}`, nil, "gcp", []string{"gcp"}},
		{"gcp and azure", `{"cmk":{"cloud":"gcp","clouds":["gcp","azure"],"gcp":{"enabled":true,"service_account":"orgkms@orgkms-platform.iam.gserviceaccount.com"}}}`, creds, "gcp", []string{"gcp", "azure"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := Sources{Environ: tc.environ}
			if tc.file != "" {
				src.Path = writeConfig(t, tc.file)
			}
			c, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			if c.CMK.Cloud != tc.wantCloud || !slices.Equal(c.CMK.Clouds, tc.want) || !slices.Equal(c.CMK.Offered(), tc.want) {
				t.Errorf("cmk.cloud %q, cmk.clouds %q, offered %q; want %q and %q", c.CMK.Cloud, c.CMK.Clouds, c.CMK.Offered(), tc.wantCloud, tc.want)
			}
		})
	}
	if got := (CMK{Cloud: "azure"}).Offered(); !slices.Equal(got, []string{"azure"}) {
		t.Errorf("Offered of cmk.cloud azure without defaults = %q", got)
	}
}

// TestAzureCallBounds: the Azure driver's per-call timeout, per-attempt
// timeout and retry budget come from cmk.azure, and absurd values are
// refused.
func TestAzureCallBounds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"cmk":{"cloud":"azure","azure":{"client_id":"app","client_secret":"s","timeout":"2s","try_timeout":"500ms","max_retries":-1}}}`), 0o600)
	c, err := Load(Sources{Path: p})
	if err != nil {
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

// FuzzLoad feeds arbitrary JSON files and environment values to Load: it
// never panics, and returns an error or a configuration that passes
// Validate.
func FuzzLoad(f *testing.F) {
	f.Add(`{"addr":"127.0.0.1:9000","cache_ttl":"1m","log_format":"text"}`, "ORGKMS_CACHE_TTL", "2m")
	f.Add(`{"cmk":{"cloud":"azure","probe_interval":"30s","azure":{"client_id":"a","client_secret":"s"}}}`, "ORGKMS_CMK_PROBE_INTERVAL", "-5s")
	f.Add(`{"master_key":"local:env:K","tls_cert":"c","tls_key":"k"}`, "ORGKMS_LISTEN", "[::1]:0")
	f.Add(`{"cache_ttl":"-1h","cmk":{"job_workers":-3}}`, "ORGKMS_LOG_REQUESTS", "1")
	f.Add(`[]`, "ORGKMS_DATA_DIR", "")
	f.Add(`{"log_level":"debug","key_metadata_ttl":"-1s"}`, "ORGKMS_LOG_FORMAT", "xml")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file, name, value string) {
		p := filepath.Join(dir, "c.json")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(Sources{Path: p, Environ: []string{name + "=" + value}})
		if err != nil {
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Load error %v came with a non-zero config %+v", err, c)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Errorf("Load returned a config that fails Validate: %v\n%+v", err, c)
		}
	})
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
			c, err := Load(Sources{Path: p, Environ: tc.environ})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Load() = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				if !strings.Contains(err.Error(), "trusted_proxies") {
					t.Errorf("Load() error %q does not name trusted_proxies", err)
				}
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
	c, err := Load(Sources{})
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := c.TrustedProxyPrefixes(); err != nil || len(ps) != 0 {
		t.Errorf("default trusted proxies = %v, %v; want none", ps, err)
	}
}

// TestLoadPurgeProof: the proof of a purge is configurable.
func TestLoadPurgeProof(t *testing.T) {
	c, err := Load(Sources{Path: writeConfig(t, `{"cmk":{"purge_confirm_checks":5,"purge_confirm_after":"30m"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if c.CMK.PurgeConfirmChecks != 5 || time.Duration(c.CMK.PurgeConfirmAfter) != 30*time.Minute {
		t.Fatalf("purge proof = %d over %v, want 5 over 30m", c.CMK.PurgeConfirmChecks, time.Duration(c.CMK.PurgeConfirmAfter))
	}
}

// TestClusterDefaults: the cluster keys' defaults, and stale_after never
// below two generation checks.
func TestClusterDefaults(t *testing.T) {
	c := Config{Addr: "10.0.0.5:8200"}
	c.Defaults()
	cl := c.Cluster
	if cl.AdvertiseAddress != "10.0.0.5:8200" || cl.HeartbeatInterval != Duration(2*time.Second) || cl.NodeTimeout != Duration(10*time.Second) ||
		cl.GenerationCheck != Duration(2*time.Second) || cl.StaleAfter != Duration(30*time.Second) {
		t.Errorf("cluster defaults = %+v", cl)
	}
	c = Config{}
	c.CMK.ProbeInterval = Duration(time.Second)
	c.Defaults()
	if c.Cluster.StaleAfter != Duration(4*time.Second) {
		t.Errorf("stale_after with a 1s probe interval = %v, want 4s", time.Duration(c.Cluster.StaleAfter))
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	c.Cluster.StaleAfter = Duration(time.Second)
	if err := c.Validate(); err == nil {
		t.Error("Validate(stale_after below generation_check) = nil")
	}
}

func TestPostgresPool(t *testing.T) {
	c, err := Load(Sources{Path: writeConfig(t, `{"database": "postgres://u@db/orgkms", "postgres": {"max_conns": 25, "statement_timeout": "5s", "connect_timeout": "3s"}}`)})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if pg := c.Pool; pg.MaxConns != 25 || pg.StatementTimeout != Duration(5*time.Second) || pg.ConnectTimeout != Duration(3*time.Second) {
		t.Errorf("postgres = %+v", pg)
	}
	for _, bad := range []string{`{"postgres": {"max_conns": -1}}`, `{"postgres": {"max_conns": 5000}}`, `{"postgres": {"connect_timeout": "-1s"}}`} {
		if _, err := Load(Sources{Path: writeConfig(t, bad)}); err == nil || !strings.Contains(err.Error(), "postgres.") {
			t.Errorf("Load(%s) = %v, want an error naming the postgres key", bad, err)
		}
	}
}

func TestPKCS11(t *testing.T) {
	c, err := Load(Sources{Path: writeConfig(t, `{"master_key": "pkcs11:token=orgkms;object=platform-kek", "pkcs11": {"module_path": "/opt/hsm/lib.so", "pin_source": "file:/etc/orgkms/hsm.pin", "pool_size": 8}}`)})
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if p := c.PKCS11; p.ModulePath != "/opt/hsm/lib.so" || p.PINSource != "file:/etc/orgkms/hsm.pin" || p.PoolSize != 8 {
		t.Errorf("pkcs11 = %+v", p)
	}
	for _, bad := range []string{`{"pkcs11": {"pool_size": -1}}`, `{"pkcs11": {"pool_size": 1000}}`, `{"pkcs11": {"module_path": "lib.so"}}`,
		`{"pkcs11": {"pin_source": "123456"}}`, `{"pkcs11": {"pin_source": "file:"}}`, `{"pkcs11": {"pin_source": "env:"}}`} {
		_, err := Load(Sources{Path: writeConfig(t, bad)})
		if err == nil || !strings.Contains(err.Error(), "pkcs11.") {
			t.Errorf("Load(%s) = %v, want an error naming the pkcs11 key", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "123456") {
			t.Errorf("Load(%s) error repeats the PIN: %v", bad, err)
		}
	}
}

func TestPreviousMasterKeys(t *testing.T) {
	c, err := Load(Sources{Path: writeConfig(t, `{"master_key": "local:///k/new.key", "previous_master_keys": ["local:///k/old.key"]}`),
		Environ: []string{"ORGKMS_PREVIOUS_MASTER_KEY_URIS=local:///k/a.key, local:env:OLD_KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"local:///k/a.key", "local:env:OLD_KEY"}; !slices.Equal(c.PreviousMasterKeys, want) {
		t.Fatalf("PreviousMasterKeys = %q, want %q (the variable wins over the file)", c.PreviousMasterKeys, want)
	}
	if time.Duration(c.PlatformKeyCheck) != time.Minute {
		t.Fatalf("platform_key_check default = %v, want 1m", c.PlatformKeyCheck)
	}
	if _, err := Load(Sources{Path: writeConfig(t, `{"master_key": "local:///k/new.key", "previous_master_keys": ["local:///k/new.key"]}`)}); err == nil {
		t.Fatalf("Load with master_key among previous_master_keys succeeded")
	}
}

func TestAWSSection(t *testing.T) {
	good := AWS{Enabled: true, Region: "eu-west-2", AllowedRegions: []string{"eu-west-2", "us-east-1"}, CredentialsSource: "env",
		KMSEndpoint: "https://kms.example.test", SessionDuration: Duration(time.Hour)}
	bad := map[string]AWS{
		"cmk.aws.region":             {Enabled: true, Region: "Europe"},
		"cmk.aws.allowed_regions":    {Enabled: true, AllowedRegions: []string{"eu-west-2", "*"}},
		"cmk.aws.credentials_source": {Enabled: true, CredentialsSource: "file"},
		"cmk.aws.sts_endpoint":       {Enabled: true, STSEndpoint: "sts"},
		"cmk.aws.session_duration":   {Enabled: true, SessionDuration: Duration(time.Minute)},
		"cmk.aws.max_attempts":       {Enabled: true, MaxAttempts: 11},
	}
	load := func(a AWS) error {
		_, err := Load(Sources{Base: Config{CMK: CMK{AWS: a}}})
		return err
	}
	if err := load(good); err != nil {
		t.Fatalf("good cmk.aws: %v", err)
	}
	for field, a := range bad {
		if err := load(a); err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("bad %s: %v", field, err)
		}
	}
	// Off (the default), nothing in the section is checked.
	if err := load(AWS{Region: "Europe"}); err != nil {
		t.Fatalf("disabled cmk.aws: %v", err)
	}
}

// TestAWSCloudOffered: "aws" in cmk.clouds is accepted once the driver is
// enabled with orgkms' account and the external-ID secret (from the
// environment here), and the secret is read from ORGKMS_AWS_EXTERNAL_ID_SECRET.
func TestAWSCloudOffered(t *testing.T) {
	secret := strings.Repeat("x", 32)
	c, err := Load(Sources{Environ: []string{"ORGKMS_CMK_CLOUDS=aws", "ORGKMS_AWS_EXTERNAL_ID_SECRET=" + secret},
		Base: Config{CMK: CMK{AWS: AWS{Enabled: true, AccountID: "444455556666"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CMK.Offered(); len(got) != 1 || got[0] != "aws" || c.CMK.AWS.ExternalIDSecret != secret {
		t.Errorf("offered %v, secret set %v", got, c.CMK.AWS.ExternalIDSecret == secret)
	}
	if _, err := Load(Sources{Base: Config{CMK: CMK{Clouds: []string{"aws"}, AWS: AWS{Enabled: true, AccountID: "444455556666", ExternalIDSecret: secret, PrincipalARN: "orgkms"}}}}); err == nil || !strings.Contains(err.Error(), "cmk.aws.principal_arn") {
		t.Errorf("a principal that is no ARN: %v", err)
	}
}

func TestVaultBudget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(p, []byte(`{"cmk":{"vault_budget":{"azure":40,"gcp":7.5}}}`), 0o600)
	c, err := Load(Sources{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CMK.VaultBudget.Ceilings(); !reflect.DeepEqual(got, map[string]float64{"azure": 40, "gcp": 7.5}) {
		t.Fatalf("Ceilings() = %v, want azure 40 and gcp 7.5 (aws unset: the default)", got)
	}
	for _, bad := range []VaultBudget{{Azure: -1}, {AWS: -0.5}, {GCP: 2e6}} {
		c := Config{CMK: CMK{VaultBudget: bad}}
		c.Defaults()
		if c.Validate() == nil {
			t.Errorf("Validate(cmk.vault_budget %+v) = nil, want error", bad)
		}
	}
}
