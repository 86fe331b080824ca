// Package keystore keeps Gatehouse's secrets — upstream keys, HMAC secrets,
// client certificates, proxy passwords — in the operating system's keychain
// (macOS Keychain, Windows Credential Manager, the Secret Service on Linux)
// under the service "gatehouse". Values larger than one keychain entry can
// hold are split over several entries. The keychain cannot list its
// entries, so the names in use are derived from the config, which holds
// labels and never values.
package keystore

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/zalando/go-keyring"
)

// Service is the keychain service every entry is stored under.
const Service = "gatehouse"

// MaxEntry is the largest value one keychain entry may hold on every OS:
// Windows refuses passwords over 2,560 bytes, and on macOS the whole
// `security` command line, with the value in base64, must stay under 4,096
// bytes. Stores refuse anything larger, so tests on Linux catch it too.
const MaxEntry = 2048

var (
	// ErrNotFound means the keychain holds no entry of that name.
	ErrNotFound = errors.New("not in the keychain")
	// ErrTooBig means a single entry was larger than MaxEntry.
	ErrTooBig = fmt.Errorf("value larger than one keychain entry (%d bytes)", MaxEntry)
	// ErrUnavailable means the keychain could not be reached at all.
	ErrUnavailable = errors.New("the keychain cannot be reached")
)

// Store gets, sets and deletes named values. Implementations hold at most
// MaxEntry bytes per value; Secrets splits larger ones.
type Store interface {
	Get(name string) (string, error)
	Set(name, value string) error
	Delete(name string) error
}

// Keyring is the operating system's keychain, through go-keyring.
type Keyring struct{}

// Get implements Store.
func (Keyring) Get(name string) (string, error) {
	v, err := keyring.Get(Service, name)
	return v, keyringError(err)
}

// Set implements Store.
func (Keyring) Set(name, value string) error {
	if len(value) > MaxEntry {
		return ErrTooBig
	}
	return keyringError(keyring.Set(Service, name, value))
}

// Delete implements Store.
func (Keyring) Delete(name string) error {
	return keyringError(keyring.Delete(Service, name))
}

// DeleteAll deletes every entry of service "gatehouse", whatever config
// named it: what an uninstall that forgets the user's secrets runs.
func (Keyring) DeleteAll() error {
	return keyringError(keyring.DeleteAll(Service))
}

func keyringError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keyring.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return ErrTooBig
	}
	return fmt.Errorf("%w (%v); %s", ErrUnavailable, err, unavailableHint())
}

// unavailableHint says how to make the keychain reachable on this OS.
func unavailableHint() string {
	switch runtime.GOOS {
	case "darwin":
		return "unlock the login keychain (Keychain Access) and allow Gatehouse to use it"
	case "windows":
		return "check that Windows Credential Manager is available to this user"
	}
	return "install and unlock a Secret Service provider such as gnome-keyring (apt-get install gnome-keyring) in a desktop session; without one, give keys through key_env"
}

// Memory is a Store in memory, for tests. It enforces MaxEntry like the
// real keychain does.
type Memory struct {
	mu sync.Mutex
	m  map[string]string
	// Unavailable makes every call fail as an unreachable keychain does.
	Unavailable bool
}

// NewMemory returns an empty memory store.
func NewMemory() *Memory { return &Memory{m: map[string]string{}} }

// Get implements Store.
func (m *Memory) Get(name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Unavailable {
		return "", keyringError(errors.New("no keychain in this test"))
	}
	v, ok := m.m[name]
	if !ok {
		return "", ErrNotFound
	}
	return v, nil
}

// Set implements Store.
func (m *Memory) Set(name, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Unavailable {
		return keyringError(errors.New("no keychain in this test"))
	}
	if len(value) > MaxEntry {
		return ErrTooBig
	}
	m.m[name] = value
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Unavailable {
		return keyringError(errors.New("no keychain in this test"))
	}
	if _, ok := m.m[name]; !ok {
		return ErrNotFound
	}
	delete(m.m, name)
	return nil
}

// DeleteAll implements what Keyring.DeleteAll does: every entry goes.
func (m *Memory) DeleteAll() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Unavailable {
		return keyringError(errors.New("no keychain in this test"))
	}
	clear(m.m)
	return nil
}

// Len counts the entries, chunks included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.m)
}

// Values returns a copy of every entry, for tests that scan for secrets.
func (m *Memory) Values() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]string, len(m.m))
	for k, v := range m.m {
		out[k] = v
	}
	return out
}
