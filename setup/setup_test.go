package setup

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

const testKey = "sk-setup-test-5ecret-9d1c44"

const startConfig = `# my setup
[[upstreams]]
name = "openai" # the main one
base_url = "https://api.openai.com/v1"
`

// failingStore refuses every write.
type failingStore struct{ *keystore.Memory }

func (failingStore) Set(string, string) error { return errors.New("the keychain is locked") }

func newSetup(t *testing.T) (*Setup, *keystore.Memory) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(startConfig), 0o600))
	mem := keystore.NewMemory()
	day := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	return &Setup{ConfigPath: path, Store: mem, Now: func() time.Time { return day }}, mem
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestAddKeyWritesTheKeychainThenTheConfig(t *testing.T) {
	s, mem := newSetup(t)
	masked, err := s.AddKey("openai", "work", testKey)
	require.NoError(t, err)
	require.NotContains(t, masked, testKey)
	v, err := keystore.Secrets{Store: mem}.Get(keystore.KeyName("openai", "work"))
	require.NoError(t, err)
	require.Equal(t, testKey, v)
	text := read(t, s.ConfigPath)
	require.NotContains(t, text, testKey)
	require.Contains(t, text, "# the main one")
	require.Contains(t, text, "key_added = {work = '2026-12-01'}")
	cfg, err := s.Load()
	require.NoError(t, err)
	days, ok := KeyAge(cfg.Upstream("openai"), "work", s.Now().AddDate(0, 0, 97))
	require.True(t, ok)
	require.Equal(t, 97, days)

	// Removing it drops the label, its date and the keychain entry.
	require.NoError(t, s.RemoveKey("openai", "work"))
	require.Equal(t, 0, mem.Len())
	require.NotContains(t, read(t, s.ConfigPath), "work")
	require.ErrorContains(t, s.RemoveKey("openai", "work"), "no key labelled")
}

func TestAFailedStepLeavesNothingHalfSaved(t *testing.T) {
	// The keychain refuses: the config is as it was.
	s, mem := newSetup(t)
	s.Store = failingStore{mem}
	_, err := s.AddKey("openai", "work", testKey)
	require.ErrorContains(t, err, "locked")
	require.Equal(t, startConfig, read(t, s.ConfigPath))

	// The config refuses: the keychain gets back what it held.
	s, mem = newSetup(t)
	require.NoError(t, keystore.Secrets{Store: mem}.Set(keystore.KeyName("openai", "work"), "the-old-value"))
	s.EditConfig = func(func(*proxy.Config) error) error { return errors.New("disk full") }
	_, err = s.AddKey("openai", "work", testKey)
	require.ErrorContains(t, err, "disk full")
	v, _ := keystore.Secrets{Store: mem}.Get(keystore.KeyName("openai", "work"))
	require.Equal(t, "the-old-value", v)
	_, err = s.AddKey("openai", "new", testKey)
	require.Error(t, err)
	require.Equal(t, 1, mem.Len(), "a new key stayed in the keychain after the config refused it")

	// An upstream that is not there, an empty key, a bad label.
	s, mem = newSetup(t)
	_, err = s.AddKey("nope", "work", testKey)
	require.ErrorContains(t, err, `no upstream named "nope"`)
	_, err = s.AddKey("openai", "work", "")
	require.ErrorContains(t, err, "empty")
	_, err = s.AddKey("openai", "a b", testKey)
	require.ErrorContains(t, err, "label")
	require.Equal(t, 0, mem.Len())
	require.Equal(t, startConfig, read(t, s.ConfigPath))
}

func TestCertificates(t *testing.T) {
	s, mem := newSetup(t)
	ca := testpki.NewCA("Test CA")
	now := s.Now()
	good := ca.Client("me", now.Add(-time.Hour), now.AddDate(0, 0, 20))
	cc, err := keystore.ParseClientCertPEM(good.CertPEM, good.KeyPEM)
	require.NoError(t, err)
	info, warning, err := s.ImportCert("openai", cc)
	require.NoError(t, err)
	require.Contains(t, info.Subject, "me")
	require.Contains(t, warning, "expires in 20 days")
	require.Contains(t, read(t, s.ConfigPath), "client_cert = true")
	stored, err := s.Cert("openai")
	require.NoError(t, err)
	require.Equal(t, info, stored.Info())

	// A .p12 replaces it.
	other := ca.Client("other", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	p12, err := pkcs12.Modern.Encode(other.Key, other.Cert, []*x509.Certificate{ca.Cert}, "pw")
	require.NoError(t, err)
	cc, err = keystore.ParseClientCertP12(p12, "pw")
	require.NoError(t, err)
	info, warning, err = s.ImportCert("openai", cc)
	require.NoError(t, err)
	require.Empty(t, warning)
	require.Contains(t, info.Subject, "other")

	// An expired one is refused and changes nothing.
	old := ca.Client("old", now.AddDate(-1, 0, 0), now.AddDate(0, 0, -1))
	cc, err = keystore.ParseClientCertPEM(old.CertPEM, old.KeyPEM)
	require.NoError(t, err)
	_, _, err = s.ImportCert("openai", cc)
	require.ErrorContains(t, err, "expired")
	stored, err = s.Cert("openai")
	require.NoError(t, err)
	require.Contains(t, stored.Info().Subject, "other")

	require.NoError(t, s.RemoveCert("openai"))
	require.NotContains(t, read(t, s.ConfigPath), "client_cert")
	require.Equal(t, 0, mem.Len())
	require.ErrorContains(t, s.RemoveCert("openai"), "no client certificate")
}

func TestTokensKeepOnlyTheirHash(t *testing.T) {
	s, _ := newSetup(t)
	tok, first, err := s.AddToken("ide")
	require.NoError(t, err)
	require.True(t, first)
	text := read(t, s.ConfigPath)
	require.NotContains(t, text, tok)
	require.Contains(t, text, proxy.HashToken(tok))
	_, _, err = s.AddToken("ide")
	require.ErrorContains(t, err, "exists")
	_, first, err = s.AddToken("cli")
	require.NoError(t, err)
	require.False(t, first)
	require.NoError(t, s.RemoveToken("ide"))
	require.ErrorContains(t, s.RemoveToken("ide"), "no token named")
	require.NotContains(t, read(t, s.ConfigPath), "'ide'")
}

func TestProxyPasswords(t *testing.T) {
	s, mem := newSetup(t)
	name, err := s.SetProxyPassword("socks5://me@127.0.0.1:1080", "pw-5ecret")
	require.NoError(t, err)
	require.Equal(t, "me@127.0.0.1:1080", name)
	_, err = s.SetProxyPassword("socks5://me:pw@127.0.0.1:1080", "x")
	require.ErrorContains(t, err, "without the password")
	_, err = s.SetProxyPassword("socks5://127.0.0.1:1080", "x")
	require.ErrorContains(t, err, "user name")
	_, err = s.RemoveProxyPassword("socks5://me@127.0.0.1:1080")
	require.NoError(t, err)
	require.Equal(t, 0, mem.Len())
	_, err = s.RemoveProxyPassword("socks5://me@127.0.0.1:1080")
	require.ErrorContains(t, err, "no password")
}

func TestExportImportAndAWrongPassphrase(t *testing.T) {
	keystore.ScryptWorkFactor = 10
	s, _ := newSetup(t)
	_, err := s.AddKey("openai", "work", testKey)
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "setup.age")
	found, missing, err := s.Export(out, "a good passphrase")
	require.NoError(t, err)
	require.Equal(t, []string{keystore.KeyName("openai", "work")}, found)
	require.Empty(t, missing)
	require.NotContains(t, read(t, out), testKey)

	// Another machine: a wrong passphrase changes nothing.
	dst, mem := newSetup(t)
	require.NoError(t, os.Remove(dst.ConfigPath))
	_, err = dst.Import(out, "wrong")
	require.ErrorIs(t, err, keystore.ErrBadExport)
	require.Equal(t, 0, mem.Len())
	require.NoFileExists(t, dst.ConfigPath)

	got, err := dst.Import(out, "a good passphrase")
	require.NoError(t, err)
	require.False(t, got.ConfigExisted)
	require.Equal(t, []string{keystore.KeyName("openai", "work")}, got.Added)
	require.Equal(t, read(t, s.ConfigPath), read(t, dst.ConfigPath), "the config moves with its comments")

	// When the config cannot be written, the keychain is put back.
	dst2, mem2 := newSetup(t)
	require.NoError(t, os.Remove(dst2.ConfigPath))
	require.NoError(t, os.Mkdir(dst2.ConfigPath, 0o700)) // a folder where the file goes
	_, err = dst2.Import(out, "a good passphrase")
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "put back"), err.Error())
	require.Equal(t, 0, mem2.Len())
}
