package keystore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// ScryptWorkFactor is the passphrase's scrypt cost, 2^18 (about a second
// and 256 MiB); tests lower it.
var ScryptWorkFactor = 18

// minPassphrase is the shortest passphrase an export accepts.
const minPassphrase = 8

// Bundle is what an export file holds, encrypted: the config file's text
// and every secret it names, by keychain entry name.
type Bundle struct {
	Version int               `json:"version"`
	Config  string            `json:"config"`
	Secrets map[string]string `json:"secrets"`
}

// SecretNames lists the keychain entries a config refers to: each
// upstream's keys and client certificate, and the passwords of proxy URLs
// that name a user.
func SecretNames(cfg *proxy.Config) []string {
	var names []string
	addProxy := func(raw string) {
		if u, err := url.Parse(raw); err == nil && u.User != nil && u.User.Username() != "" {
			names = append(names, ProxyName(u.User.Username()+"@"+u.Host))
		}
	}
	for _, up := range cfg.Upstreams {
		for _, label := range up.Keys {
			names = append(names, KeyName(up.Name, label))
		}
		if up.ClientCert {
			names = append(names, CertName(up.Name))
		}
		addProxy(up.Via)
	}
	for _, p := range cfg.Pools {
		for _, raw := range p.Proxies {
			addProxy(raw)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Export writes the config text and every secret it names, encrypted with
// the passphrase (age, scrypt) and ASCII-armoured. It returns the entries
// it found and those the keychain did not hold.
func Export(w io.Writer, cfgText []byte, cfg *proxy.Config, s Secrets, passphrase string) (found, missing []string, err error) {
	if len(passphrase) < minPassphrase {
		return nil, nil, fmt.Errorf("choose a passphrase of at least %d characters", minPassphrase)
	}
	b := Bundle{Version: 1, Config: string(cfgText), Secrets: map[string]string{}}
	for _, name := range SecretNames(cfg) {
		v, err := s.Get(name)
		switch {
		case err == nil:
			b.Secrets[name] = v
			found = append(found, name)
		case errors.Is(err, ErrNotFound):
			missing = append(missing, name)
		default:
			return nil, nil, err
		}
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, nil, err
	}
	r.SetWorkFactor(ScryptWorkFactor)
	aw := armor.NewWriter(w)
	enc, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, nil, err
	}
	if err := json.NewEncoder(enc).Encode(b); err != nil {
		return nil, nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, nil, err
	}
	return found, missing, aw.Close()
}

// ErrBadExport means the passphrase is wrong or the file is damaged.
var ErrBadExport = errors.New("the passphrase is wrong or the file is not a Gatehouse export (or is damaged); nothing was changed")

// OpenExport decrypts an export file.
func OpenExport(r io.Reader, passphrase string) (*Bundle, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, ErrBadExport
	}
	dec, err := age.Decrypt(armor.NewReader(r), id)
	if err != nil {
		return nil, ErrBadExport
	}
	var b Bundle
	if err := json.NewDecoder(io.LimitReader(dec, 64<<20)).Decode(&b); err != nil || b.Version != 1 {
		return nil, ErrBadExport
	}
	return &b, nil
}

// Restore writes the bundle's secrets into s. If a write fails, the
// entries written so far get their old values back. It returns the names
// that replaced an existing value and those that were new, and undo, which
// puts the keychain back as it was (for a caller whose next step fails).
func (b *Bundle) Restore(s Secrets) (replaced, added []string, undo func(cause error) error, err error) {
	names := make([]string, 0, len(b.Secrets))
	for name := range b.Secrets {
		names = append(names, name)
	}
	slices.Sort(names)
	var done []restoreStep
	for _, name := range names {
		old, err := s.Get(name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, nil, nil, rollback(s, done, err)
		}
		existed := err == nil
		if err := s.Set(name, b.Secrets[name]); err != nil {
			return nil, nil, nil, rollback(s, done, err)
		}
		done = append(done, restoreStep{name, old, existed})
		if existed {
			replaced = append(replaced, name)
		} else {
			added = append(added, name)
		}
	}
	return replaced, added, func(cause error) error { return rollback(s, done, cause) }, nil
}

// restoreStep is an entry Restore wrote, with what it held before.
type restoreStep struct {
	name, old string
	existed   bool
}

func rollback(s Secrets, done []restoreStep, cause error) error {
	var failed []string
	for _, d := range done {
		var err error
		if d.existed {
			err = s.Set(d.name, d.old)
		} else {
			err = s.Delete(d.name)
		}
		if err != nil {
			failed = append(failed, d.name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("import stopped (%w), and these entries could not be put back: %s", cause, strings.Join(failed, ", "))
	}
	return fmt.Errorf("import stopped, and the keychain was put back as it was: %w", cause)
}
