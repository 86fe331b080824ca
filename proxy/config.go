package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DefaultListen is where the forwarder listens when the config says nothing.
const DefaultListen = "127.0.0.1:4747"

// DefaultMaxBodyMB bounds a request body when max_body_mb is not set.
const DefaultMaxBodyMB = 32

// ConfigEnv names the environment variable that overrides the config path.
const ConfigEnv = "GATEHOUSE_CONFIG"

// Config is the file config.toml, schema version 1. It never holds a secret:
// keys are named by label, the values live in the keychain or the
// environment. Field names are the contract of DESIGN.md.
type Config struct {
	Version int    `toml:"version"`
	Listen  string `toml:"listen"`
	// AllowedHosts are extra Host names the listener accepts besides
	// loopback names and addresses (for instance a name in /etc/hosts that
	// points at 127.0.0.1).
	AllowedHosts []string `toml:"allowed_hosts,omitempty"`
	// AllowedOrigins are browser origins ("scheme://host[:port]") that may
	// call the forwarder, for an IDE webview or a local web UI. Requests with
	// any other Origin header are refused; the listed ones get CORS answers.
	AllowedOrigins []string `toml:"allowed_origins,omitempty"`
	// Direct is the global switch that bypasses every proxy and pool.
	Direct bool `toml:"direct,omitempty"`
	// MaxBodyMB bounds a request body, in MiB; 0 means DefaultMaxBodyMB.
	MaxBodyMB int `toml:"max_body_mb,omitempty"`
	// CacheMaxMB bounds the response cache, in MiB; 0 means
	// DefaultCacheMaxMB.
	CacheMaxMB int        `toml:"cache_max_mb,omitempty"`
	Upstreams  []Upstream `toml:"upstreams"`
	Pools      []Pool     `toml:"pools,omitempty"`
	// Tokens are local access tokens, kept only as SHA-256 hashes. With
	// none, loopback clients need no token; with any, every client does.
	Tokens []Token `toml:"tokens,omitempty"`
}

// Token is a local access token's name and hash; the token itself is shown
// once, when it is made, and stored nowhere.
type Token struct {
	Name    string `toml:"name"`
	SHA256  string `toml:"sha256"`
	Created string `toml:"created,omitempty"`
}

// Upstream is one API the forwarder can reach.
type Upstream struct {
	Name    string   `toml:"name"`
	BaseURL string   `toml:"base_url"`
	Models  []string `toml:"models,omitempty"`
	Auth    string   `toml:"auth,omitempty"`
	Keys    []string `toml:"keys,omitempty"`
	// KeyAdded holds the day each key was stored ("2026-12-01"), by label,
	// for the rotation hint; never the key.
	KeyAdded   map[string]string `toml:"key_added,inline,omitempty"`
	KeyEnv     string            `toml:"key_env,omitempty"`
	Via        string            `toml:"via,omitempty"`
	ClientCert bool              `toml:"client_cert,omitempty"`
	CAFile     string            `toml:"ca_file,omitempty"`
	// FirstByteTimeout bounds the wait for the upstream's response headers
	// (a Go duration such as "120s"); empty means DefaultFirstByteTimeout.
	FirstByteTimeout string `toml:"first_byte_timeout,omitempty"`
	// With auth = "hmac-sha256": the headers that carry the timestamp and
	// the signature; empty means X-Timestamp and X-Signature.
	HMACTimestampHeader string `toml:"hmac_timestamp_header,omitempty"`
	HMACSignatureHeader string `toml:"hmac_signature_header,omitempty"`
	// KeyStrategy: "round-robin" (default) uses the keys in turn,
	// "fill-first" the first usable one.
	KeyStrategy string `toml:"key_strategy,omitempty"`
	// Fallback names upstreams to try, in order, when this one answers
	// 5xx on every key or cannot be reached.
	Fallback []string `toml:"fallback,omitempty"`
	// MaxAttempts bounds the attempts of one request over keys and
	// fallback upstreams; 0 means DefaultMaxAttempts.
	MaxAttempts int `toml:"max_attempts,omitempty"`
	// RetryBackoffCap bounds the wait before a retry, Retry-After
	// included; empty means DefaultRetryBackoffCap.
	RetryBackoffCap string `toml:"retry_backoff_cap,omitempty"`
	// IdleTimeout ends a stream that sends nothing for this long, with an
	// error event; empty means DefaultIdleTimeout.
	IdleTimeout string `toml:"idle_timeout,omitempty"`
	// RequestTimeout bounds a whole answer that is not a stream; empty
	// means DefaultRequestTimeout.
	RequestTimeout string `toml:"request_timeout,omitempty"`
	// IncludeUsage asks OpenAI-style chat streams for their token usage
	// (stream_options.include_usage) when the client did not; the extra
	// chunk is not passed on. Unset means true.
	IncludeUsage *bool `toml:"include_usage,omitempty"`
	// MaxConcurrent bounds the requests in flight to this upstream; the
	// others wait in a queue. 0 means no limit.
	MaxConcurrent int `toml:"max_concurrent,omitempty"`
	// QueueTimeout is how long a request may wait in that queue (and for
	// local pacing) before it gets 503 (429 for pacing); empty means
	// DefaultQueueTimeout.
	QueueTimeout string `toml:"queue_timeout,omitempty"`
	// RequestsPerMinute and TokensPerMinute pace each key of the upstream
	// locally (pacing.go); 0 means no pacing.
	RequestsPerMinute int `toml:"requests_per_minute,omitempty"`
	TokensPerMinute   int `toml:"tokens_per_minute,omitempty"`
	// Cache keeps this upstream's answers for a while (a duration such as
	// "10m"; cache.go); empty means no cache.
	Cache string `toml:"cache,omitempty"`
}

// Pool is a group of outbound proxies with health checks.
type Pool struct {
	Name      string   `toml:"name"`
	Strategy  string   `toml:"strategy,omitempty"`
	Proxies   []string `toml:"proxies"`
	CheckURL  string   `toml:"check_url,omitempty"`
	Interval  string   `toml:"interval,omitempty"`
	Timeout   string   `toml:"timeout,omitempty"`
	Tolerance string   `toml:"tolerance,omitempty"`
	// Lazy skips the checks of an interval in which nobody used the pool.
	Lazy bool `toml:"lazy,omitempty"`
	// FallbackDirect sends requests direct when every member is down,
	// instead of answering 503.
	FallbackDirect bool `toml:"fallback_direct,omitempty"`
	// MaxFails failures of a member itself (reaching or authenticating to
	// the proxy) within FailDuration mark it down until a check succeeds;
	// 0 means defaultMaxFails. Failures past the proxy (the upstream's
	// certificate, an upstream the proxy cannot reach) never count.
	MaxFails     int    `toml:"max_fails,omitempty"`
	FailDuration string `toml:"fail_duration,omitempty"`
	// Pinned is the member used while it is up, whatever the strategy.
	Pinned string `toml:"pinned,omitempty"`
	// Disabled members are never used or checked.
	Disabled []string `toml:"disabled,omitempty"`
}

// Pool returns the pool with that name, or nil.
func (c *Config) Pool(name string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// Clone returns a deep copy, to change without touching the original.
func (c *Config) Clone() *Config {
	out := *c
	out.AllowedHosts = slices.Clone(c.AllowedHosts)
	out.AllowedOrigins = slices.Clone(c.AllowedOrigins)
	out.Tokens = slices.Clone(c.Tokens)
	out.Upstreams = slices.Clone(c.Upstreams)
	for i := range out.Upstreams {
		out.Upstreams[i].Models = slices.Clone(out.Upstreams[i].Models)
		out.Upstreams[i].Keys = slices.Clone(out.Upstreams[i].Keys)
		out.Upstreams[i].Fallback = slices.Clone(out.Upstreams[i].Fallback)
	}
	out.Pools = slices.Clone(c.Pools)
	for i := range out.Pools {
		out.Pools[i].Proxies = slices.Clone(out.Pools[i].Proxies)
		out.Pools[i].Disabled = slices.Clone(out.Pools[i].Disabled)
	}
	return &out
}

// Auth schemes an upstream may use.
const (
	AuthBearer     = "bearer"
	AuthXAPIKey    = "x-api-key"
	AuthGoogAPIKey = "x-goog-api-key"
	AuthHMAC       = "hmac-sha256"
	AuthNone       = "none"
)

// Routes an upstream may take.
const (
	ViaDirect = "direct"
	ViaSystem = "system"
	viaPool   = "pool:"
)

// Pool defaults, used when a [[pools]] entry leaves a field out.
const (
	defaultStrategy  = "fastest"
	defaultCheckURL  = "https://www.gstatic.com/generate_204"
	defaultInterval  = "5m"
	defaultTimeout   = "5s"
	defaultTolerance = "50ms"
	defaultMaxFails  = 3
	defaultFailDur   = "30s"
)

// DefaultConfigPath is config.toml in the user's config folder, unless
// GATEHOUSE_CONFIG names another file.
func DefaultConfigPath() (string, error) {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config folder: %w; pass --config FILE or set %s", err, ConfigEnv)
	}
	return filepath.Join(dir, "gatehouse", "config.toml"), nil
}

// DefaultConfig is what a missing file means.
func DefaultConfig() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// DefaultPool is a pool with every default filled in, for a form.
func DefaultPool() Pool {
	c := Config{Pools: []Pool{{}}}
	c.applyDefaults()
	return c.Pools[0]
}

func (c *Config) applyDefaults() {
	if c.Version == 0 {
		c.Version = 1
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if u.Auth == "" {
			u.Auth = AuthBearer
		}
		if u.Via == "" {
			u.Via = ViaDirect
		}
		setDefault(&u.KeyStrategy, KeyRoundRobin)
		if u.Auth == AuthHMAC {
			setDefault(&u.HMACTimestampHeader, "X-Timestamp")
			setDefault(&u.HMACSignatureHeader, "X-Signature")
		}
		u.BaseURL = strings.TrimRight(u.BaseURL, "/")
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		setDefault(&p.Strategy, defaultStrategy)
		setDefault(&p.CheckURL, defaultCheckURL)
		setDefault(&p.Interval, defaultInterval)
		setDefault(&p.Timeout, defaultTimeout)
		setDefault(&p.Tolerance, defaultTolerance)
		setDefault(&p.FailDuration, defaultFailDur)
		if p.MaxFails == 0 {
			p.MaxFails = defaultMaxFails
		}
	}
}

func setDefault(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

// MaxBodyBytes is the request body limit in bytes.
func (c *Config) MaxBodyBytes() int64 {
	if c.MaxBodyMB <= 0 {
		return DefaultMaxBodyMB << 20
	}
	return int64(c.MaxBodyMB) << 20
}

// cacheMaxBytes bounds the response cache in bytes.
func (c *Config) cacheMaxBytes() int64 {
	if c.CacheMaxMB <= 0 {
		return DefaultCacheMaxMB << 20
	}
	return int64(c.CacheMaxMB) << 20
}

// Upstream returns the upstream with that name, or nil.
func (c *Config) Upstream(name string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].Name == name {
			return &c.Upstreams[i]
		}
	}
	return nil
}

// LoadConfig reads and validates the file at path. A missing file means
// DefaultConfig. Every error names the file, and where it can the line and
// the field, and says what to write instead.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(path, data)
}

// ParseConfig decodes and validates a config document; path is used in
// error messages and to resolve relative ca_file paths.
func ParseConfig(path string, data []byte) (*Config, error) {
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(path, err)
	}
	c.applyDefaults()
	if err := c.validate(filepath.Dir(path)); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, fe.located(path, data)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func decodeError(path string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		first := &strict.Errors[0]
		line, _ := first.Position()
		return fmt.Errorf("%s:%d: unknown field %q; check its spelling against the README's config reference",
			path, line, strings.Join(first.Key(), "."))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := strings.Join(de.Key(), ".")
		if key != "" {
			return fmt.Errorf("%s:%d: %s: %s", path, line, key, strings.TrimPrefix(de.Error(), "toml: "))
		}
		return fmt.Errorf("%s:%d: %s", path, line, strings.TrimPrefix(de.Error(), "toml: "))
	}
	return fmt.Errorf("%s: %w", path, err)
}

// SaveConfig validates c and writes it to path atomically: a temporary file
// in the same folder, synced, then renamed over the old one, so a failure at
// any point leaves the old file as it was. The file's comments, order and
// blank lines are kept (see configedit.go). The folder is created 0700, the
// file is 0600.
func SaveConfig(path string, c *Config) error {
	if err := c.Check(path); err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read config: %w", err)
	}
	data, err := encodeConfig(path, old, c)
	if err != nil {
		return err
	}
	return writeAtomic(path, data)
}

// Check fills in c's defaults and validates it as the config at path;
// an error names the field (see FieldError).
func (c *Config) Check(path string) error {
	c.applyDefaults()
	if err := c.validate(filepath.Dir(path)); err != nil {
		return fmt.Errorf("not saved, the config is invalid: %w", err)
	}
	return nil
}

// SaveConfigText writes a config document as it is (comments and all),
// atomically, after checking that it is valid.
func SaveConfigText(path string, data []byte) error {
	if _, err := ParseConfig(path, data); err != nil {
		return fmt.Errorf("not saved: %w", err)
	}
	return writeAtomic(path, data)
}

// writeAtomic replaces path with data: a temporary file in the same
// folder, synced, then renamed, so a failure leaves the old file.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-*.toml")
	if err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if err := writeSynced(tmp, data); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save config: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // makes the rename durable where the OS supports it
		d.Close()
	}
	return nil
}

func writeSynced(f *os.File, data []byte) error {
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
