package proxy

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2/unstable"
)

var (
	nameRE       = regexp.MustCompile(`^[a-z0-9-]+$`)
	labelRE      = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	envVarRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256HexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	headerNameRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
)

// fieldError is a validation error about one field, named by its path in
// the document ("upstreams[1].base_url"), so that it can be given a line.
type fieldError struct {
	field string
	msg   string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

// FieldError finds a validation error about one field in err: the field's
// key without its table ("base_url", "listen", "models") and the message
// without the path, for a form to show next to that field.
func FieldError(err error) (key, msg string, ok bool) {
	var fe *fieldError
	if !errors.As(err, &fe) {
		return "", "", false
	}
	key = fe.field[strings.LastIndex(fe.field, ".")+1:]
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	return key, fe.msg, true
}

// NewFieldError is a mistake about one config field found outside the
// config's own checks (a port that is taken), for FieldError to place.
func NewFieldError(field, msg string) error { return &fieldError{field: field, msg: msg} }

func fieldErr(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// located prefixes the error with file and line. A field that is missing
// from the file points at the nearest enclosing table that is there.
func (e *fieldError) located(file string, data []byte) error {
	lines := keyLines(data)
	for f := e.field; f != ""; f = parentField(f) {
		if line, ok := lines[f]; ok {
			return fmt.Errorf("%s:%d: %w", file, line, e)
		}
	}
	return fmt.Errorf("%s: %w", file, e)
}

func parentField(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// keyLines maps every key path of a TOML document ("upstreams[1].base_url",
// "pools[0]") to the line it is written on.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	arrayCounts := map[string]int{}
	prefix := ""
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		key, keyRange := joinKey(e)
		switch e.Kind {
		case unstable.Table:
			prefix = key
		case unstable.ArrayTable:
			prefix = fmt.Sprintf("%s[%d]", key, arrayCounts[key])
			arrayCounts[key]++
		case unstable.KeyValue:
			if prefix != "" {
				key = prefix + "." + key
			}
			lines[key] = p.Shape(keyRange).Start.Line
			continue
		default:
			continue
		}
		lines[prefix] = p.Shape(keyRange).Start.Line
	}
	return lines
}

func joinKey(e *unstable.Node) (string, unstable.Range) {
	var parts []string
	var first unstable.Range
	it := e.Key()
	for it.Next() {
		if len(parts) == 0 {
			first = it.Node().Raw
		}
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, "."), first
}

// ValidateLabel checks a key label: letters, digits, '.', '_' or '-'.
func ValidateLabel(l string) error {
	if !labelRE.MatchString(l) {
		return fmt.Errorf("key label %q must use letters, digits, '.', '_' or '-'", l)
	}
	return nil
}

// validate checks every field; dir resolves relative ca_file paths.
func (c *Config) validate(dir string) error {
	if c.Version != 1 {
		return fieldErr("version", "version %d is not known to this Gatehouse, which reads version 1; update Gatehouse or write version = 1", c.Version)
	}
	if err := validateListen(c.Listen, len(c.Tokens)); err != nil {
		return err
	}
	tokens := map[string]bool{}
	for i, tok := range c.Tokens {
		field := fmt.Sprintf("tokens[%d]", i)
		if !labelRE.MatchString(tok.Name) || tokens[tok.Name] {
			return fieldErr(field+".name", "token name %q must be unique and use letters, digits, '.', '_' or '-'", tok.Name)
		}
		tokens[tok.Name] = true
		if !sha256HexRE.MatchString(tok.SHA256) {
			return fieldErr(field+".sha256", "must be the 64 hex digits `gatehouse token add` writes; remove the entry and add the token again")
		}
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") {
			return fieldErr(fmt.Sprintf("allowed_hosts[%d]", i), "%q is not a host name; write a bare name such as \"gatehouse.local\"", h)
		}
	}
	for i, o := range c.AllowedOrigins {
		if err := validateOrigin(o); err != nil {
			return fieldErr(fmt.Sprintf("allowed_origins[%d]", i), "%v", err)
		}
	}
	if c.CacheMaxMB < 0 {
		return fieldErr("cache_max_mb", "must be a positive number of MiB (default %d)", DefaultCacheMaxMB)
	}
	if c.MaxBodyMB < 0 {
		return fieldErr("max_body_mb", "must be a positive number of MiB (default %d)", DefaultMaxBodyMB)
	}
	pools := map[string]bool{}
	for i := range c.Pools {
		if err := c.Pools[i].validate(fmt.Sprintf("pools[%d]", i), pools); err != nil {
			return err
		}
	}
	names := map[string]bool{}
	for i := range c.Upstreams {
		if err := c.Upstreams[i].validate(fmt.Sprintf("upstreams[%d]", i), names, pools, dir); err != nil {
			return err
		}
	}
	for i, u := range c.Upstreams {
		for j, fb := range u.Fallback {
			if !names[fb] || fb == u.Name {
				return fieldErr(fmt.Sprintf("upstreams[%d].fallback[%d]", i, j), "%q is not another upstream's name", fb)
			}
		}
	}
	return nil
}

// validateListen accepts host:port; an address other than loopback shares
// the forwarder with the network, which needs access tokens.
func validateListen(listen string, tokens int) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return fieldErr("listen", "%q is not host:port; write for instance %q", listen, DefaultListen)
	}
	if !isLoopbackHost(host) && tokens == 0 {
		return fieldErr("listen", "%q is not a loopback address, and sharing the forwarder with the network needs access tokens; add one with `gatehouse token add NAME`, or listen on 127.0.0.1", listen)
	}
	return nil
}

func validateOrigin(o string) error {
	u, err := url.Parse(o)
	if o == "*" || err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q is not an origin; write scheme://host[:port] with no path, such as \"http://localhost:3000\" (a wildcard is not allowed)", o)
	}
	return nil
}

func (u *Upstream) validate(field string, names, pools map[string]bool, dir string) error {
	if !nameRE.MatchString(u.Name) {
		return fieldErr(field+".name", "%q must be lower-case letters, digits and dashes, such as \"openai\"", u.Name)
	}
	if names[u.Name] {
		return fieldErr(field+".name", "upstream %q is defined twice; give each upstream its own name", u.Name)
	}
	names[u.Name] = true
	if err := validateBaseURL(u.BaseURL); err != nil {
		return fieldErr(field+".base_url", "%v", err)
	}
	for i, m := range u.Models {
		if _, err := compileGlob(m); err != nil {
			return fieldErr(fmt.Sprintf("%s.models[%d]", field, i), "%v", err)
		}
	}
	switch u.Auth {
	case AuthBearer, AuthXAPIKey, AuthGoogAPIKey, AuthHMAC, AuthNone:
	default:
		return fieldErr(field+".auth", "unknown auth scheme %q; use bearer, x-api-key, x-goog-api-key, hmac-sha256 or none", u.Auth)
	}
	for name, h := range map[string]string{"hmac_timestamp_header": u.HMACTimestampHeader, "hmac_signature_header": u.HMACSignatureHeader} {
		if h != "" && !headerNameRE.MatchString(h) {
			return fieldErr(field+"."+name, "%q is not a header name; use letters, digits and dashes, such as \"X-Signature\"", h)
		}
	}
	labels := map[string]bool{}
	for i, l := range u.Keys {
		if !labelRE.MatchString(l) || labels[l] {
			return fieldErr(fmt.Sprintf("%s.keys[%d]", field, i), "key label %q must be unique and use letters, digits, '.', '_' or '-'", l)
		}
		labels[l] = true
	}
	for l, day := range u.KeyAdded {
		if _, err := time.Parse(time.DateOnly, day); err != nil || !labels[l] {
			return fieldErr(field+".key_added", "key_added.%s = %q: write the day a key in keys was added, such as \"2026-12-01\"", l, day)
		}
	}
	if u.KeyEnv != "" && !envVarRE.MatchString(u.KeyEnv) {
		return fieldErr(field+".key_env", "%q is not an environment variable name; write for instance \"OPENAI_API_KEY\"", u.KeyEnv)
	}
	if err := validateVia(u.Via, pools); err != nil {
		return fieldErr(field+".via", "%v", err)
	}
	if u.CAFile != "" {
		if _, err := loadCAFile(resolvePath(dir, u.CAFile)); err != nil {
			return fieldErr(field+".ca_file", "%v", err)
		}
	}
	// A timeout of zero would cut every request (or stream) at once, so it
	// is refused rather than read as "off"; retry_backoff_cap = "0s" means
	// retrying without a wait.
	for _, d := range []struct {
		name, value string
		zeroOK      bool
	}{
		{"first_byte_timeout", u.FirstByteTimeout, false},
		{"idle_timeout", u.IdleTimeout, false},
		{"request_timeout", u.RequestTimeout, false},
		{"queue_timeout", u.QueueTimeout, false},
		{"retry_backoff_cap", u.RetryBackoffCap, true},
	} {
		v, err := parseDuration(d.value, time.Second)
		if err == nil && v == 0 && !d.zeroOK {
			err = fmt.Errorf("must be more than zero (%q would cut every request at once); leave it out for the default, or write a long duration such as \"1h\"", d.value)
		}
		if err != nil {
			return fieldErr(field+"."+d.name, "%v", err)
		}
	}
	if u.KeyStrategy != KeyRoundRobin && u.KeyStrategy != KeyFillFirst {
		return fieldErr(field+".key_strategy", "unknown key strategy %q; use round-robin or fill-first", u.KeyStrategy)
	}
	if u.Cache != "" {
		if d, err := time.ParseDuration(u.Cache); err != nil || d <= 0 {
			return fieldErr(field+".cache", "%q is not a duration; write how long answers are kept, such as \"10m\", or leave it out for no cache", u.Cache)
		}
	}
	if u.RequestsPerMinute < 0 {
		return fieldErr(field+".requests_per_minute", "must be 0 (no pacing) or more")
	}
	if u.TokensPerMinute < 0 {
		return fieldErr(field+".tokens_per_minute", "must be 0 (no pacing) or more")
	}
	if u.MaxConcurrent < 0 {
		return fieldErr(field+".max_concurrent", "must be 0 (no limit) or more")
	}
	if u.MaxAttempts < 0 {
		return fieldErr(field+".max_attempts", "must be 1 or more (default %d)", DefaultMaxAttempts)
	}
	return nil
}

func validateBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL; write it like \"https://api.openai.com/v1\"", s)
	}
	if u.User != nil {
		return fmt.Errorf("a base URL must not carry a user or password; store the key with the upstream's keys or key_env")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q has a query or fragment; a base URL is scheme, host and path only", u.Redacted())
	}
	return nil
}

// validateVia accepts direct, system, pool:NAME of a known pool, or a proxy
// URL that carries at most a user name.
func validateVia(via string, pools map[string]bool) error {
	switch {
	case via == ViaDirect || via == ViaSystem:
		return nil
	case strings.HasPrefix(via, viaPool):
		name := strings.TrimPrefix(via, viaPool)
		if !pools[name] {
			return fmt.Errorf("no pool named %q; add a [[pools]] entry with that name or use direct", name)
		}
		return nil
	}
	_, err := parseProxyURL(via)
	return err
}

func parseProxyURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is neither direct, system, pool:NAME nor a proxy URL such as \"socks5://127.0.0.1:1080\"", s)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("%q is neither direct, system, pool:NAME nor a proxy URL (http, https, socks5 or socks5h)", u.Redacted())
	}
	if _, has := u.User.Password(); has {
		return nil, fmt.Errorf("%q holds a password, and the config never holds secrets; remove the password from the URL", u.Redacted())
	}
	if u.Hostname() == "" || u.Port() == "" {
		return nil, fmt.Errorf("%q needs a host and a port, such as \"socks5://127.0.0.1:1080\"", u.Redacted())
	}
	return u, nil
}

func (p *Pool) validate(field string, pools map[string]bool) error {
	if !nameRE.MatchString(p.Name) {
		return fieldErr(field+".name", "%q must be lower-case letters, digits and dashes, such as \"work\"", p.Name)
	}
	if pools[p.Name] {
		return fieldErr(field+".name", "pool %q is defined twice; give each pool its own name", p.Name)
	}
	pools[p.Name] = true
	switch p.Strategy {
	case "fastest", "fallback", "round-robin":
	default:
		return fieldErr(field+".strategy", "unknown strategy %q; use fastest, fallback or round-robin", p.Strategy)
	}
	if len(p.Proxies) == 0 {
		return fieldErr(field+".proxies", "a pool needs at least one proxy URL")
	}
	for i, s := range p.Proxies {
		if _, err := parseProxyURL(s); err != nil {
			return fieldErr(fmt.Sprintf("%s.proxies[%d]", field, i), "%v", err)
		}
	}
	if err := validateBaseURL(p.CheckURL); err != nil {
		return fieldErr(field+".check_url", "%v", err)
	}
	if p.MaxFails < 0 {
		return fieldErr(field+".max_fails", "must be 1 or more (default %d)", defaultMaxFails)
	}
	for _, d := range []struct{ name, value string }{{"interval", p.Interval}, {"timeout", p.Timeout}, {"tolerance", p.Tolerance}, {"fail_duration", p.FailDuration}} {
		v, err := parseDuration(d.value, 0)
		if err == nil && v == 0 && d.name != "tolerance" {
			err = fmt.Errorf("%s must be more than zero", d.name)
		}
		if err != nil {
			return fieldErr(field+"."+d.name, "%v", err)
		}
	}
	if p.Pinned != "" && !slices.Contains(p.Proxies, p.Pinned) {
		return fieldErr(field+".pinned", "%q is not one of the pool's proxies", redact(p.Pinned))
	}
	for i, d := range p.Disabled {
		if !slices.Contains(p.Proxies, d) {
			return fieldErr(fmt.Sprintf("%s.disabled[%d]", field, i), "%q is not one of the pool's proxies", redact(d))
		}
	}
	return nil
}

// parseDuration reads a Go duration ("5m", "300ms"); empty means def.
func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration; write for instance \"5s\", \"300ms\" or \"5m\"", s)
	}
	return d, nil
}

// redact hides a password in a URL-like string for an error message.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// loadCAFile reads extra PEM roots.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate; give a file with one or more \"BEGIN CERTIFICATE\" blocks", path)
	}
	return pool, nil
}
