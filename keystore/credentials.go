package keystore

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// cacheTTL bounds how long a key read from the keychain is reused before it
// is read again; a config reload clears the cache at once.
const cacheTTL = time.Minute

// Credentials gives the forwarder an upstream's key: the first of its
// labelled keys that the keychain holds, else the key_env variable. Values
// are cached briefly, because a keychain read can take milliseconds.
type Credentials struct {
	Secrets Secrets
	Env     proxy.EnvCredentials

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	value   string
	err     error
	expires time.Time
}

// NewCredentials reads keys from store, then from the environment.
func NewCredentials(store Store) *Credentials {
	return &Credentials{Secrets: Secrets{Store: store}}
}

// Reset forgets cached values; the forwarder calls it when a config applies.
func (c *Credentials) Reset() {
	c.mu.Lock()
	c.cache = nil
	c.mu.Unlock()
}

// Get reads a secret through the cache.
func (c *Credentials) Get(name string) (string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.cache[name]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.value, e.err
	}
	v, err := c.Secrets.Get(name)
	c.mu.Lock()
	if c.cache == nil {
		c.cache = map[string]cached{}
	}
	c.cache[name] = cached{value: v, err: err, expires: now.Add(cacheTTL)}
	c.mu.Unlock()
	return v, err
}

// Credential implements proxy.Credentials: the first key Credentials
// finds.
func (c *Credentials) Credential(up *proxy.Upstream) (proxy.Credential, error) {
	creds, err := c.Credentials(up)
	if err != nil {
		return proxy.Credential{}, err
	}
	return creds[0], nil
}

// Credentials implements proxy.KeyLister: every key of the upstream the
// keychain holds, in config order, then the key_env key. With none, the
// error says how to add one.
func (c *Credentials) Credentials(up *proxy.Upstream) ([]proxy.Credential, error) {
	var out []proxy.Credential
	var unreachable error
	for _, label := range up.Keys {
		v, err := c.Get(KeyName(up.Name, label))
		if err == nil {
			out = append(out, proxy.Credential{Label: label, Secret: v})
		} else if errors.Is(err, ErrUnavailable) {
			unreachable = err
			break
		}
	}
	cred, envErr := c.Env.Credential(up)
	if envErr == nil {
		out = append(out, cred)
	}
	switch {
	case len(out) > 0:
		return out, nil
	case unreachable != nil:
		return nil, fmt.Errorf("%w for upstream %q: %v; or export %s", proxy.ErrNoCredential, up.Name, unreachable, envName(up))
	case len(up.Keys) > 0:
		return nil, fmt.Errorf("%w for upstream %q: the keychain holds none of its keys (%s); add one with `gatehouse key add %s --label %s`",
			proxy.ErrNoCredential, up.Name, strings.Join(up.Keys, ", "), up.Name, up.Keys[0])
	}
	return nil, envErr
}

func envName(up *proxy.Upstream) string {
	if up.KeyEnv != "" {
		return up.KeyEnv
	}
	return "a variable named by key_env"
}

// Mask shows enough of a secret to recognise it: "sk-ab…x9".
func Mask(secret string) string {
	if len(secret) < 12 {
		return "…" // too short to show any of it safely
	}
	return secret[:5] + "…" + secret[len(secret)-2:]
}

// ProxyPassword gives the forwarder the password of a proxy whose URL in
// the config names a user; userHost is "user@host:port".
func (c *Credentials) ProxyPassword(userHost string) (string, error) {
	pw, err := c.Get(ProxyName(userHost))
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("no password for %s in the keychain; store it with `gatehouse proxy-password set URL`", userHost)
	}
	return pw, err
}
