package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/orgkms/orgkms/internal/masterkey"
)

// Duration is a time.Duration that reads and writes as "5m", "30s".
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is the server configuration. Zero values take the defaults
// documented on each field.
type Config struct {
	Addr      string `json:"addr"`       // listen address; default 127.0.0.1:8200
	DataDir   string `json:"data_dir"`   // default ./orgkms-data
	Database  string `json:"database"`   // SQLite file path, or a postgres:// URL (several nodes on one PostgreSQL); default DATA_DIR/orgkms.db
	MasterKey string `json:"master_key"` // platform master key URI; default local://DATA_DIR/master.key (created on first start)
	// PreviousMasterKeys are the URIs of platform master keys the platform
	// moved away from (master_key names the new one): used only to unwrap
	// the root keys they still wrap until the platform re-wrap job has
	// moved every org to master_key. Default none.
	PreviousMasterKeys []string `json:"previous_master_keys"`
	// PlatformKeyCheck is how often the cluster (one node at a time, under
	// a lease) looks for orgs whose root key is not wrapped by the current
	// version of the platform master key, and re-wraps them; default 1m.
	PlatformKeyCheck Duration `json:"platform_key_check"`
	CacheTTL         Duration `json:"cache_ttl"`        // unwrapped key lifetime in memory; default 5m
	KeyMetadataTTL   Duration `json:"key_metadata_ttl"` // data key metadata refresh; default 10s
	TokenCacheTTL    Duration `json:"token_cache_ttl"`  // verified token cache; default 10s
	TLSCert          string   `json:"tls_cert"`         // PEM certificate; with tls_key, serve HTTPS
	TLSKey           string   `json:"tls_key"`
	LogLevel         string   `json:"log_level"`    // debug, info (default), warn, error
	LogFormat        string   `json:"log_format"`   // json (default) or text
	LogRequests      bool     `json:"log_requests"` // log every request (default: failures only)
	AutoMigrate      bool     `json:"auto_migrate"` // apply schema migrations at start
	PublicURL        string   `json:"public_url"`   // URL browsers reach orgkms at; default http(s)://ADDR
	// TrustedProxies are CIDRs (or addresses) of reverse proxies whose
	// X-Forwarded-For header is believed for the client address that
	// sign-in throttling counts by; default none.
	TrustedProxies []string `json:"trusted_proxies"`
	CMK            CMK      `json:"cmk"`
	Cluster        Cluster  `json:"cluster"`
	Pool           Postgres `json:"postgres"` // PostgreSQL connection pool
	PKCS11         PKCS11   `json:"pkcs11"`   // the pkcs11 master-key driver (master_key = "pkcs11:...")
	Webhooks       Webhooks `json:"webhooks"` // delivery of signed notifications (webhooks.go)
	Usage          Usage    `json:"usage"`    // key-use records (GET /v1/orgs/{org}/usage)
	Orgs           Orgs     `json:"orgs"`
}

// Orgs configures what org administrators may do to their own org.
type Orgs struct {
	// SelfDelete lets an org's administrator holding both the admin and
	// key_admin roles schedule (and cancel) the deletion of their own
	// org; default false: only the platform operator deletes orgs.
	SelfDelete bool `json:"self_delete"`
}

// Usage configures the key-use records.
type Usage struct {
	// Retention is how long usage records are kept (env
	// ORGKMS_USAGE_RETENTION); default 2160h (90 days), at least 1h. The
	// cluster deletes older ones hourly, one node at a time.
	Retention Duration `json:"retention"`
}

// PKCS11 configures the PKCS#11 master-key driver: a platform master key in
// an HSM. A pkcs11: URI's own module-path and pin-source win over these;
// setting them here keeps the stored key reference to the token and key
// labels, so moving the module or the PIN file changes no org's record.
type PKCS11 struct {
	ModulePath string `json:"module_path"` // the PKCS#11 module (.so), an absolute path
	PINSource  string `json:"pin_source"`  // where the user PIN is: file:/ABSOLUTE/PATH or env:VARIABLE (never the PIN itself)
	PoolSize   int    `json:"pool_size"`   // sessions per token; default 4
}

// Postgres tunes the connection pool when database is a postgres:// URL
// (ignored on SQLite). Zero means the default.
type Postgres struct {
	MaxConns         int      `json:"max_conns"`         // connections per node; default 10
	StatementTimeout Duration `json:"statement_timeout"` // server-side bound of each statement; default 30s; negative: none
	ConnectTimeout   Duration `json:"connect_timeout"`   // each connection attempt; default 10s
}

// Cluster configures this node among the nodes sharing one database.
type Cluster struct {
	AdvertiseAddress  string   `json:"advertise_address"`  // the address listed for this node; default addr
	HeartbeatInterval Duration `json:"heartbeat_interval"` // default 2s
	NodeTimeout       Duration `json:"node_timeout"`       // a node whose heartbeat is older is gone; default 10s
	GenerationCheck   Duration `json:"generation_check"`   // every node checks every org's generation this often; default 2s
	// StaleAfter: a node whose last successful generation check is older
	// refuses orgs on a customer key with 503 unavailable; default
	// cmk.probe_interval, at least twice generation_check.
	StaleAfter Duration `json:"stale_after"`
}

// CMK configures customer managed keys.
type CMK struct {
	// Cloud is the deployment's own cloud, "" (off) or "azure": the
	// one-cloud spelling of Clouds, and the default cloud when Clouds
	// offers several.
	Cloud string `json:"cloud"`
	// Clouds are the clouds whose key services are offered to customers
	// (env ORGKMS_CMK_CLOUDS, comma-separated); default [Cloud]. Only
	// "azure" is available in this version.
	Clouds        []string `json:"clouds"`
	CallbackURL   string   `json:"callback_url"`   // consent redirect; default PUBLIC_URL/v1/cmk/callback
	ProbeInterval Duration `json:"probe_interval"` // default 30s
	JobWorkers    int      `json:"job_workers"`    // concurrent re-wrap jobs; default 8
	JobLease      Duration `json:"job_lease"`      // a crashed node's job is resumed after this; default 2m
	// An org is lost (its key purged) only when the key and its deleted
	// entry were absent on PurgeConfirmChecks consecutive probes spanning
	// PurgeConfirmAfter; defaults 3 and 10m.
	PurgeConfirmChecks int      `json:"purge_confirm_checks"`
	PurgeConfirmAfter  Duration `json:"purge_confirm_after"`
	Azure              Azure    `json:"azure"`
	AWS                AWS      `json:"aws"` // the AWS KMS master-key driver (aws.go)
	GCP                GCP      `json:"gcp"` // the gcpkms master-key driver (gcp.go)

	// VaultBudget caps orgkms' requests to each customer vault, shared by
	// every org on it and by every live node (see docs/shared-vaults.md).
	VaultBudget VaultBudget `json:"vault_budget"`
	// RevocationMinLead is how far ahead a revocation must be scheduled at
	// least (POST /v1/orgs/{org}/cmk/revocation); default 5m, at most 90
	// days, the longest lead.
	RevocationMinLead Duration `json:"revocation_min_lead"`
}

// Azure configures the platform's multi-tenant Entra ID application.
type Azure struct {
	ClientID          string   `json:"client_id"`
	ClientSecret      string   `json:"client_secret"`       // or ORGKMS_AZURE_CLIENT_SECRET
	AuthorityHost     string   `json:"authority_host"`      // default https://login.microsoftonline.com/
	ConsentHost       string   `json:"consent_host"`        // where browsers go for admin consent; default authority_host
	CAFile            string   `json:"ca_file"`             // extra CA to trust (e.g. the emulator's)
	EmulatorAddr      string   `json:"emulator_addr"`       // development and tests: send every Azure connection to this address
	ExtraHostSuffixes []string `json:"extra_host_suffixes"` // additional allowed vault host suffixes
	// Timeout bounds each call to Key Vault or Entra ID, retries included
	// (default 6s); TryTimeout each attempt within it (default 3s);
	// MaxRetries the retries of a failed attempt (default 2, -1 for none).
	Timeout    Duration `json:"timeout"`
	TryTimeout Duration `json:"try_timeout"`
	MaxRetries int      `json:"max_retries"`
}

// VaultBudget is the ceiling, per cloud, of orgkms' requests to one
// customer vault (Azure: one vault host; AWS: one account and Region;
// Google: one project and location), in requests per second for the whole
// cluster: each live node spends ceiling / live nodes. 0 means the default,
// which stays well below the cloud's documented limit to leave the rest to
// the customer's own workloads: azure 100 (Key Vault allows 2,000 RSA-2048
// HSM operations per 10 s), aws 250, gcp 100.
type VaultBudget struct {
	Azure float64 `json:"azure"`
	AWS   float64 `json:"aws"`
	GCP   float64 `json:"gcp"`
}

// Ceilings returns the configured ceilings by cloud name, without the
// unset ones.
func (v VaultBudget) Ceilings() map[string]float64 {
	m := map[string]float64{}
	for name, c := range map[string]float64{"azure": v.Azure, "aws": v.AWS, "gcp": v.GCP} {
		if c > 0 {
			m[name] = c
		}
	}
	return m
}

// Sources are the layers of a configuration; each later one overrides the
// earlier ones field by field.
type Sources struct {
	// Base holds the command's own defaults (orgkms dev: its data directory,
	// text logs, migrations on); the zero Config for orgkms serve.
	Base Config
	// Path is the JSON config file; "" = none. Unknown fields are refused.
	Path string
	// Environ holds KEY=VALUE pairs (os.Environ()); the variables of
	// [EnvVars] are read, empty ones ignored.
	Environ []string
	// Flags applies the command-line flags the user set, last.
	Flags func(*Config)
}

// EnvVars are the environment variables Load reads, each naming the config
// field it sets.
var EnvVars = []struct{ Name, Field string }{
	{"ORGKMS_LISTEN", "addr"},
	{"ORGKMS_DATA_DIR", "data_dir"},
	{"ORGKMS_DATABASE", "database"},
	{"ORGKMS_DATABASE_URL", "database"},
	{"ORGKMS_MASTER_KEY_URI", "master_key"},
	{"ORGKMS_PREVIOUS_MASTER_KEY_URIS", "previous_master_keys"},
	{"ORGKMS_PLATFORM_KEY_CHECK", "platform_key_check"},
	{"ORGKMS_CACHE_TTL", "cache_ttl"},
	{"ORGKMS_TLS_CERT", "tls_cert"},
	{"ORGKMS_TLS_KEY", "tls_key"},
	{"ORGKMS_LOG_LEVEL", "log_level"},
	{"ORGKMS_LOG_FORMAT", "log_format"},
	{"ORGKMS_LOG_REQUESTS", "log_requests"},
	{"ORGKMS_PUBLIC_URL", "public_url"},
	{"ORGKMS_CMK_CLOUD", "cmk.cloud"},
	{"ORGKMS_CMK_CLOUDS", "cmk.clouds"},
	{"ORGKMS_CMK_PROBE_INTERVAL", "cmk.probe_interval"},
	{"ORGKMS_AZURE_CLIENT_ID", "cmk.azure.client_id"},
	{"ORGKMS_AZURE_CLIENT_SECRET", "cmk.azure.client_secret"},
	{"ORGKMS_AZURE_AUTHORITY_HOST", "cmk.azure.authority_host"},
	{"ORGKMS_AWS_EXTERNAL_ID_SECRET", "cmk.aws.external_id_secret"},
	{"ORGKMS_TRUSTED_PROXIES", "trusted_proxies"},
}

// Load builds the configuration from src: Base, then the file, then the
// environment, then the flags; then it fills the defaults and validates.
// Every error names the file, variable or field to fix.
func Load(src Sources) (Config, error) {
	c := src.Base
	if src.Path != "" {
		b, err := os.ReadFile(src.Path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		if err := decodeFile(b, &c); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", src.Path, err)
		}
	}
	if err := c.applyEnv(src.Environ); err != nil {
		return Config{}, err
	}
	if src.Flags != nil {
		src.Flags(&c)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// decodeFile decodes one JSON object onto c.
func decodeFile(b []byte, c *Config) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("holds more than one JSON value")
	}
	return nil
}

func (c *Config) applyEnv(environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	set := func(name string, dst *string) {
		if v := env[name]; v != "" {
			*dst = v
		}
	}
	set("ORGKMS_LISTEN", &c.Addr)
	set("ORGKMS_DATA_DIR", &c.DataDir)
	set("ORGKMS_DATABASE", &c.Database)
	set("ORGKMS_DATABASE_URL", &c.Database) // the usual name of a database URL; wins over ORGKMS_DATABASE
	set("ORGKMS_MASTER_KEY_URI", &c.MasterKey)
	if v := env["ORGKMS_PREVIOUS_MASTER_KEY_URIS"]; v != "" {
		// Comma-separated: a master-key URI has no comma of its own.
		c.PreviousMasterKeys = nil
		for u := range strings.SplitSeq(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				c.PreviousMasterKeys = append(c.PreviousMasterKeys, u)
			}
		}
	}
	set("ORGKMS_TLS_CERT", &c.TLSCert)
	set("ORGKMS_TLS_KEY", &c.TLSKey)
	set("ORGKMS_LOG_LEVEL", &c.LogLevel)
	set("ORGKMS_LOG_FORMAT", &c.LogFormat)
	set("ORGKMS_PUBLIC_URL", &c.PublicURL)
	set("ORGKMS_CMK_CLOUD", &c.CMK.Cloud)
	set("ORGKMS_AZURE_CLIENT_ID", &c.CMK.Azure.ClientID)
	set("ORGKMS_AZURE_CLIENT_SECRET", &c.CMK.Azure.ClientSecret)
	set("ORGKMS_AZURE_AUTHORITY_HOST", &c.CMK.Azure.AuthorityHost)
	set("ORGKMS_AWS_EXTERNAL_ID_SECRET", &c.CMK.AWS.ExternalIDSecret)
	if v := env["ORGKMS_CMK_CLOUDS"]; v != "" { // comma-separated
		c.CMK.Clouds = nil
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				c.CMK.Clouds = append(c.CMK.Clouds, name)
			}
		}
	}
	if v := env["ORGKMS_TRUSTED_PROXIES"]; v != "" { // comma-separated
		c.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
	}
	duration := func(name string, dst *Duration) error {
		if v := env[name]; v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q must be a duration such as 5m or 30s", name, v)
			}
			*dst = Duration(d)
		}
		return nil
	}
	if err := duration("ORGKMS_CACHE_TTL", &c.CacheTTL); err != nil {
		return err
	}
	if err := duration("ORGKMS_CMK_PROBE_INTERVAL", &c.CMK.ProbeInterval); err != nil {
		return err
	}
	if err := duration("ORGKMS_PLATFORM_KEY_CHECK", &c.PlatformKeyCheck); err != nil {
		return err
	}
	if err := duration("ORGKMS_USAGE_RETENTION", &c.Usage.Retention); err != nil {
		return err
	}
	if v := env["ORGKMS_LOG_REQUESTS"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("ORGKMS_LOG_REQUESTS=%q must be true or false", v)
		}
		c.LogRequests = b
	}
	return nil
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8200"
	}
	if c.DataDir == "" {
		c.DataDir = "orgkms-data"
	}
	if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if c.Database == "" {
		c.Database = filepath.Join(c.DataDir, "orgkms.db")
	}
	if c.MasterKey == "" {
		c.MasterKey = masterkey.Ref{Provider: "local", ID: filepath.Join(c.DataDir, "master.key")}.String()
	}
	if c.PlatformKeyCheck == 0 {
		c.PlatformKeyCheck = Duration(time.Minute)
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = Duration(5 * time.Minute)
	}
	if c.KeyMetadataTTL == 0 {
		c.KeyMetadataTTL = Duration(10 * time.Second)
	}
	if c.TokenCacheTTL == 0 {
		c.TokenCacheTTL = Duration(10 * time.Second)
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.PublicURL == "" {
		scheme := "http"
		if c.TLSCert != "" {
			scheme = "https"
		}
		c.PublicURL = scheme + "://" + c.Addr
	}
	if len(c.CMK.Clouds) == 0 && c.CMK.Cloud != "" {
		c.CMK.Clouds = []string{c.CMK.Cloud}
	}
	if c.CMK.Cloud == "" && len(c.CMK.Clouds) > 0 {
		c.CMK.Cloud = c.CMK.Clouds[0]
	}
	if c.CMK.CallbackURL == "" {
		c.CMK.CallbackURL = strings.TrimRight(c.PublicURL, "/") + "/v1/cmk/callback"
	}
	if c.CMK.ProbeInterval == 0 {
		c.CMK.ProbeInterval = Duration(30 * time.Second)
	}
	if c.CMK.JobWorkers == 0 {
		c.CMK.JobWorkers = 8
	}
	if c.Usage.Retention == 0 {
		c.Usage.Retention = Duration(90 * 24 * time.Hour)
	}
	if c.CMK.JobLease == 0 {
		c.CMK.JobLease = Duration(2 * time.Minute)
	}
	if c.Cluster.AdvertiseAddress == "" {
		c.Cluster.AdvertiseAddress = c.Addr
	}
	if c.Cluster.HeartbeatInterval == 0 {
		c.Cluster.HeartbeatInterval = Duration(2 * time.Second)
	}
	if c.Cluster.NodeTimeout == 0 {
		c.Cluster.NodeTimeout = Duration(10 * time.Second)
	}
	if c.Cluster.GenerationCheck == 0 {
		c.Cluster.GenerationCheck = Duration(2 * time.Second)
	}
	if c.Cluster.StaleAfter == 0 {
		// The probe interval, but never less than two generation checks:
		// one missed check alone does not make a node stale.
		c.Cluster.StaleAfter = max(c.CMK.ProbeInterval, 2*c.Cluster.GenerationCheck)
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
	}
}

// TrustedProxyPrefixes parses TrustedProxies: CIDRs such as 10.0.0.0/8 or
// single addresses.
func (c Config) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %q is neither a CIDR (10.0.0.0/8) nor an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Postgres reports whether Database is a PostgreSQL URL (postgres:// or
// postgresql://) rather than a SQLite file.
func (c Config) Postgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// DatabaseName names Database for logs and output: the SQLite file, or the
// PostgreSQL URL with its password replaced by "xxxxx".
func (c Config) DatabaseName() string {
	if !c.Postgres() {
		return c.Database
	}
	u, err := url.Parse(c.Database)
	if err != nil {
		return "postgres://(invalid URL)"
	}
	return u.Redacted()
}

// Validate checks the configuration and says what to fix.
func (c Config) Validate() error {
	if c.Postgres() {
		if u, err := url.Parse(c.Database); err != nil || u.Host == "" {
			// url.Parse's error quotes the URL, password and all: say only what to fix.
			return fmt.Errorf("database: the PostgreSQL URL must look like postgres://user:password@host:5432/dbname")
		}
	} else if strings.Contains(c.Database, "://") {
		return fmt.Errorf("database must be a SQLite file path or a postgres:// URL")
	}
	if _, err := c.TrustedProxyPrefixes(); err != nil {
		return err
	}
	if err := c.Webhooks.validate(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr %q must be host:port, e.g. 127.0.0.1:8200", c.Addr)
	}
	if time.Duration(c.CacheTTL) < time.Second || time.Duration(c.CacheTTL) > 24*time.Hour {
		return fmt.Errorf("cache_ttl must be between 1s and 24h")
	}
	if time.Duration(c.PlatformKeyCheck) < time.Second {
		return fmt.Errorf("platform_key_check must be at least 1s")
	}
	for _, u := range c.PreviousMasterKeys {
		if u == c.MasterKey {
			return fmt.Errorf("previous_master_keys must not list master_key itself")
		}
	}
	if time.Duration(c.KeyMetadataTTL) < 0 || time.Duration(c.TokenCacheTTL) < 0 {
		return fmt.Errorf("key_metadata_ttl and token_cache_ttl must not be negative")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level must be debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return fmt.Errorf("log_format must be json or text")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("tls_cert and tls_key must be set together")
	}
	if err := c.CMK.validateClouds(); err != nil {
		return err
	}
	if err := c.CMK.AWS.validate(); err != nil {
		return err
	}
	if err := c.CMK.GCP.validate(); err != nil {
		return err
	}
	if time.Duration(c.CMK.ProbeInterval) < time.Second {
		return fmt.Errorf("cmk.probe_interval must be at least 1s")
	}
	if time.Duration(c.Usage.Retention) < time.Hour {
		return fmt.Errorf("usage.retention must be at least 1h (e.g. \"2160h\" for 90 days)")
	}
	if a := c.CMK.Azure; a.Timeout < 0 || a.TryTimeout < 0 || a.MaxRetries < -1 || a.MaxRetries > 10 {
		return fmt.Errorf("cmk.azure.timeout and cmk.azure.try_timeout must not be negative, and cmk.azure.max_retries must be between -1 (none) and 10")
	}
	if time.Duration(c.CMK.JobLease) < time.Second {
		return fmt.Errorf("cmk.job_lease must be at least 1s")
	}
	if c.CMK.PurgeConfirmChecks < 0 || time.Duration(c.CMK.PurgeConfirmAfter) < 0 {
		return fmt.Errorf("cmk.purge_confirm_checks and cmk.purge_confirm_after must not be negative (0: the defaults, 3 probes over 10m)")
	}
	if v := c.CMK.VaultBudget; v.Azure < 0 || v.AWS < 0 || v.GCP < 0 || v.Azure > 1e6 || v.AWS > 1e6 || v.GCP > 1e6 {
		return fmt.Errorf("cmk.vault_budget.azure, .aws and .gcp are requests per second per vault for the cluster: between 0 (the default) and 1000000")
	}
	if m := time.Duration(c.CMK.RevocationMinLead); m < 0 || m > 90*24*time.Hour {
		return fmt.Errorf("cmk.revocation_min_lead must be between 0 (the default, 5m) and 90 days")
	}
	if c.CMK.JobWorkers < 1 || c.CMK.JobWorkers > 256 {
		return fmt.Errorf("cmk.job_workers must be between 1 and 256")
	}
	if pg := c.Pool; pg.MaxConns < 0 || pg.MaxConns > 1000 || pg.ConnectTimeout < 0 {
		return fmt.Errorf("postgres.max_conns must be between 0 (default 10) and 1000, and postgres.connect_timeout must not be negative")
	}
	if p := c.PKCS11; p.PoolSize < 0 || p.PoolSize > 256 {
		return fmt.Errorf("pkcs11.pool_size must be between 0 (default 4) and 256")
	} else if p.ModulePath != "" && !strings.HasPrefix(p.ModulePath, "/") {
		return fmt.Errorf("pkcs11.module_path must be an absolute path to the PKCS#11 module (.so)")
	} else if src := p.PINSource; src != "" && !(strings.HasPrefix(src, "file:/") && len(src) > len("file:/")) && !(strings.HasPrefix(src, "env:") && len(src) > len("env:")) {
		return fmt.Errorf("pkcs11.pin_source must be file:/ABSOLUTE/PATH or env:VARIABLE: the PIN itself never goes in the configuration")
	}
	cl := c.Cluster
	if cl.HeartbeatInterval < 0 || cl.NodeTimeout < 0 || cl.GenerationCheck < 0 || cl.StaleAfter < 0 {
		return fmt.Errorf("cluster.heartbeat_interval, node_timeout, generation_check and stale_after must not be negative")
	}
	if cl.NodeTimeout != 0 && cl.NodeTimeout <= cl.HeartbeatInterval {
		return fmt.Errorf("cluster.node_timeout must be longer than cluster.heartbeat_interval")
	}
	if cl.StaleAfter != 0 && cl.StaleAfter < cl.GenerationCheck {
		return fmt.Errorf("cluster.stale_after must be at least cluster.generation_check")
	}
	return nil
}

// Offered returns the clouds offered to customers, the default first:
// Clouds, or the one Cloud; none when customer managed keys are off.
func (c CMK) Offered() []string {
	if len(c.Clouds) > 0 {
		return c.Clouds
	}
	if c.Cloud != "" {
		return []string{c.Cloud}
	}
	return nil
}

// validateClouds checks cmk.cloud and cmk.clouds.
func (c CMK) validateClouds() error {
	offered := c.Offered()
	if c.Cloud != "" && !slices.Contains(offered, c.Cloud) {
		return fmt.Errorf("cmk.cloud %q (the deployment's own cloud) must be one of cmk.clouds %v", c.Cloud, offered)
	}
	for i, name := range offered {
		key := "cmk.clouds"
		if len(c.Clouds) <= 1 {
			key = "cmk.cloud (or cmk.clouds)"
		}
		if slices.Contains(offered[:i], name) {
			return fmt.Errorf("%s names %q twice", key, name)
		}
		switch name {
		case "azure":
			if c.Azure.ClientID == "" || c.Azure.ClientSecret == "" {
				return fmt.Errorf("%s offers azure: set cmk.azure.client_id and cmk.azure.client_secret (or ORGKMS_AZURE_CLIENT_SECRET) of the platform's multi-tenant Entra ID application", key)
			}
		case "aws":
			if err := c.AWS.cmkMissing(key); err != nil {
				return err
			}
		case "gcp":
			if !c.GCP.Enabled || c.GCP.ServiceAccount == "" {
				return fmt.Errorf("%s offers gcp: set cmk.gcp.enabled to true and cmk.gcp.service_account to the e-mail of the service account orgkms calls Cloud KMS as (customers grant it access to their keys)", key)
			}
		default:
			return fmt.Errorf("%s names %q: the clouds are azure, aws and gcp; leave it empty to turn customer managed keys off", key, name)
		}
	}
	return nil
}
