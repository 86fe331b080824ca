package setup

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// Setup changes one config file and one keychain, for a command or the
// window. Its rules: a secret is written to the keychain before the config
// names it; when a later step fails, the keychain gets back what it held;
// nothing half-saved remains. Every change to the config goes through
// Edit, which keeps the user's comments (proxy.SaveConfig).
type Setup struct {
	ConfigPath string
	Store      keystore.Store
	// EditConfig, if set, makes config changes: the desktop app passes its
	// running service's Edit, which serialises edits and applies them at
	// once. When nil, the file is read, changed and saved.
	EditConfig func(change func(*proxy.Config) error) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (s *Setup) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Setup) secrets() keystore.Secrets { return keystore.Secrets{Store: s.Store} }

// Edit applies change to the config and saves it; nothing is saved when
// change fails or its result is invalid.
func (s *Setup) Edit(change func(*proxy.Config) error) error {
	if s.EditConfig != nil {
		return s.EditConfig(change)
	}
	cfg, err := proxy.LoadConfig(s.ConfigPath)
	if err != nil {
		return err
	}
	if err := change(cfg); err != nil {
		return err
	}
	return proxy.SaveConfig(s.ConfigPath, cfg)
}

// Load reads the config as it is in the file.
func (s *Setup) Load() (*proxy.Config, error) { return proxy.LoadConfig(s.ConfigPath) }

// upstream finds the upstream named name in cfg.
func (s *Setup) upstream(cfg *proxy.Config, name string) (*proxy.Upstream, error) {
	if up := cfg.Upstream(name); up != nil {
		return up, nil
	}
	return nil, fmt.Errorf("no upstream named %q in %s; add an [[upstreams]] entry with that name first", name, s.ConfigPath)
}

// editUpstream changes the upstream named name in the config.
func (s *Setup) editUpstream(name string, change func(*proxy.Upstream)) error {
	return s.Edit(func(c *proxy.Config) error {
		up, err := s.upstream(c, name)
		if err != nil {
			return err
		}
		change(up)
		return nil
	})
}

// withSecret writes value under name, then runs step; when step fails the
// keychain gets back what name held before.
func (s *Setup) withSecret(name, value string, step func() error) error {
	sec := s.secrets()
	old, err := sec.Get(name)
	existed := err == nil
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	if err := sec.Set(name, value); err != nil {
		return err
	}
	if err := step(); err != nil {
		var undo error
		if existed {
			undo = sec.Set(name, old)
		} else {
			undo = sec.Delete(name)
		}
		if undo != nil {
			return fmt.Errorf("%w (and the keychain entry %s could not be put back: %v)", err, name, undo)
		}
		return err
	}
	return nil
}

// AddKey stores an upstream's key under label in the keychain, then names
// the label in the config with the day it was added. It returns the key
// masked, for the caller to show.
func (s *Setup) AddKey(upstream, label, secret string) (string, error) {
	if err := proxy.ValidateLabel(label); err != nil {
		return "", err
	}
	if secret == "" {
		return "", errors.New("the key is empty; paste the key the provider gave you")
	}
	cfg, err := s.Load()
	if err != nil {
		return "", err
	}
	if _, err := s.upstream(cfg, upstream); err != nil {
		return "", err
	}
	day := s.now().Format(time.DateOnly)
	err = s.withSecret(keystore.KeyName(upstream, label), secret, func() error {
		return s.editUpstream(upstream, func(up *proxy.Upstream) { nameKey(up, label, day) })
	})
	if err != nil {
		return "", fmt.Errorf("store the key: %w", err)
	}
	return keystore.Mask(secret), nil
}

// RemoveKey takes a key's label out of the config, then deletes the key
// from the keychain: the config never names a key that is gone.
func (s *Setup) RemoveKey(upstream, label string) error {
	cfg, err := s.Load()
	if err != nil {
		return err
	}
	up, err := s.upstream(cfg, upstream)
	if err != nil {
		return err
	}
	named := slices.Contains(up.Keys, label)
	if named {
		err := s.editUpstream(upstream, func(up *proxy.Upstream) {
			if i := slices.Index(up.Keys, label); i >= 0 {
				up.Keys = slices.Delete(up.Keys, i, i+1)
			}
			delete(up.KeyAdded, label)
		})
		if err != nil {
			return err
		}
	}
	return s.forget(keystore.KeyName(up.Name, label), named,
		fmt.Sprintf("upstream %q has no key labelled %q; see gatehouse key list", up.Name, label), "key")
}

// forget deletes a secret the config no longer names. A secret that is not
// there is an error (missing) only when the config did not name it either.
func (s *Setup) forget(name string, wasNamed bool, missing, what string) error {
	err := s.secrets().Delete(name)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keystore.ErrNotFound) && wasNamed:
		return nil
	case errors.Is(err, keystore.ErrNotFound):
		return errors.New(missing)
	case wasNamed:
		return fmt.Errorf("the config no longer names the %s, but deleting it from the keychain failed (delete %s there by hand, or try again): %w", what, name, err)
	}
	return fmt.Errorf("delete the %s: %w", what, err)
}

// nameKey names a stored key's label in up, with the day it was added.
func nameKey(up *proxy.Upstream, label, day string) {
	if !slices.Contains(up.Keys, label) {
		up.Keys = append(up.Keys, label)
	}
	if up.KeyAdded == nil {
		up.KeyAdded = map[string]string{}
	}
	up.KeyAdded[label] = day
}

// KeyAge is how long ago a key was added, from the config; ok is false
// when the config does not say.
func KeyAge(up *proxy.Upstream, label string, now time.Time) (days int, ok bool) {
	t, err := time.ParseInLocation(time.DateOnly, up.KeyAdded[label], time.Local)
	if err != nil {
		return 0, false
	}
	return int(now.Sub(t).Hours() / 24), true
}

// RotateAfterDays is the age from which a key gets a rotation hint.
const RotateAfterDays = 90

// ImportCert checks a client certificate, stores it in the keychain and
// switches client_cert on for the upstream. warning is not empty when the
// certificate expires within 30 days.
func (s *Setup) ImportCert(upstream string, cc *keystore.ClientCert) (info keystore.CertInfo, warning string, err error) {
	cfg, err := s.Load()
	if err != nil {
		return info, "", err
	}
	if _, err := s.upstream(cfg, upstream); err != nil {
		return info, "", err
	}
	if warning, err = cc.Check(s.now()); err != nil {
		return info, "", err
	}
	err = s.withSecret(keystore.CertName(upstream), cc.PEM, func() error {
		if cfg.Upstream(upstream).ClientCert {
			return nil
		}
		return s.editUpstream(upstream, func(up *proxy.Upstream) { up.ClientCert = true })
	})
	if err != nil {
		return info, "", fmt.Errorf("store the certificate: %w", err)
	}
	return cc.Info(), warning, nil
}

// Cert is the stored client certificate of an upstream.
func (s *Setup) Cert(upstream string) (*keystore.ClientCert, error) {
	return keystore.StoredClientCert(s.secrets(), upstream)
}

// RemoveCert switches client_cert off, then deletes the upstream's client
// certificate from the keychain.
func (s *Setup) RemoveCert(upstream string) error {
	cfg, err := s.Load()
	if err != nil {
		return err
	}
	up, err := s.upstream(cfg, upstream)
	if err != nil {
		return err
	}
	if up.ClientCert {
		if err := s.editUpstream(upstream, func(up *proxy.Upstream) { up.ClientCert = false }); err != nil {
			return err
		}
	}
	return s.forget(keystore.CertName(up.Name), up.ClientCert, fmt.Sprintf("upstream %q has no client certificate", up.Name), "certificate")
}

// AddToken makes a local access token and keeps only its hash. It returns
// the token, to be shown once, and whether it is the first (from then on
// every client needs one).
func (s *Setup) AddToken(name string) (token string, first bool, err error) {
	if err := proxy.ValidateLabel(name); err != nil {
		return "", false, fmt.Errorf("token name: %w", err)
	}
	tok, hash, err := proxy.NewToken()
	if err != nil {
		return "", false, err
	}
	err = s.Edit(func(c *proxy.Config) error {
		if slices.ContainsFunc(c.Tokens, func(t proxy.Token) bool { return t.Name == name }) {
			return fmt.Errorf("a token named %q exists; remove it first with `gatehouse token rm %s`, or choose another name", name, name)
		}
		c.Tokens = append(c.Tokens, proxy.Token{Name: name, SHA256: hash, Created: s.now().UTC().Format(time.RFC3339)})
		first = len(c.Tokens) == 1
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return tok, first, nil
}

// RemoveToken removes a local access token.
func (s *Setup) RemoveToken(name string) error {
	removed := false
	err := s.Edit(func(c *proxy.Config) error {
		i := slices.IndexFunc(c.Tokens, func(t proxy.Token) bool { return t.Name == name })
		if i < 0 {
			return fmt.Errorf("no token named %q; see gatehouse token list", name)
		}
		c.Tokens = slices.Delete(c.Tokens, i, i+1)
		removed = true
		return nil
	})
	if err != nil && removed {
		return fmt.Errorf("%w; the last token cannot go while listen shares the forwarder with the network", err)
	}
	return err
}

// ProxyUserHost reads "scheme://user@host:port" and returns
// "user@host:port", the name its password is stored under.
func ProxyUserHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.User.Username() == "" || u.Host == "" {
		return "", fmt.Errorf("%q is not a proxy URL with a user name; write it as in the config, such as socks5://me@127.0.0.1:1080", raw)
	}
	if _, has := u.User.Password(); has {
		return "", errors.New("give the URL without the password; the password is kept in the keychain")
	}
	return u.User.Username() + "@" + u.Host, nil
}

// SetProxyPassword stores the password of a proxy URL with a user name.
func (s *Setup) SetProxyPassword(rawURL, password string) (userHost string, err error) {
	if userHost, err = ProxyUserHost(rawURL); err != nil {
		return "", err
	}
	if password == "" {
		return "", errors.New("the password is empty")
	}
	if err := s.secrets().Set(keystore.ProxyName(userHost), password); err != nil {
		return "", fmt.Errorf("store the password: %w", err)
	}
	return userHost, nil
}

// RemoveProxyPassword deletes the password of a proxy URL.
func (s *Setup) RemoveProxyPassword(rawURL string) (userHost string, err error) {
	if userHost, err = ProxyUserHost(rawURL); err != nil {
		return "", err
	}
	if err := s.secrets().Delete(keystore.ProxyName(userHost)); err != nil {
		if errors.Is(err, keystore.ErrNotFound) {
			return "", fmt.Errorf("no password for %s is stored", userHost)
		}
		return "", fmt.Errorf("delete the password: %w", err)
	}
	return userHost, nil
}
