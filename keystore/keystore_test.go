package keystore

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bigValue is an 8 KB certificate-chain-sized value.
func bigValue(t testing.TB) string {
	b := make([]byte, 6000)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(b) + "\n-----END CERTIFICATE-----\n"
}

// exerciseStore runs the same checks against any Store.
func exerciseStore(t *testing.T, store Store, prefix string) {
	s := Secrets{Store: store}
	name := prefix + "key/openai/main"
	t.Cleanup(func() { _ = s.Delete(name) })

	_, err := s.Get(name)
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, s.Set(name, "sk-first"))
	v, err := s.Get(name)
	require.NoError(t, err)
	assert.Equal(t, "sk-first", v)

	require.NoError(t, s.Set(name, "sk-second"), "overwrite")
	v, err = s.Get(name)
	require.NoError(t, err)
	assert.Equal(t, "sk-second", v)

	big := bigValue(t)
	require.Greater(t, len(big), 8000)
	require.NoError(t, s.Set(name, big), "chunked")
	v, err = s.Get(name)
	require.NoError(t, err)
	assert.Equal(t, big, v)
	for i := 1; i <= 5; i++ {
		part, err := store.Get(chunkName(name, i))
		require.NoError(t, err)
		assert.LessOrEqual(t, len(part), MaxEntry)
	}

	require.NoError(t, s.Set(name, "short again"), "a shorter value replaces the chunks")
	v, err = s.Get(name)
	require.NoError(t, err)
	assert.Equal(t, "short again", v)
	_, err = store.Get(chunkName(name, 1))
	assert.ErrorIs(t, err, ErrNotFound, "old chunks are removed")

	require.NoError(t, s.Set(name, big))
	require.NoError(t, s.Delete(name))
	_, err = s.Get(name)
	assert.ErrorIs(t, err, ErrNotFound)
	_, err = store.Get(chunkName(name, 2))
	assert.ErrorIs(t, err, ErrNotFound, "delete removes the chunks")
	assert.ErrorIs(t, s.Delete(name), ErrNotFound)

	assert.ErrorIs(t, store.Set(prefix+"raw", strings.Repeat("x", MaxEntry+1)), ErrTooBig, "a store refuses what one entry cannot hold on every OS")
}

func TestMemoryStore(t *testing.T) {
	m := NewMemory()
	exerciseStore(t, m, "")
	assert.Zero(t, m.Len())
}

func TestChunksOfDifferentWritesAreDetected(t *testing.T) {
	m := NewMemory()
	s := Secrets{Store: m}
	require.NoError(t, s.Set("a", bigValue(t)))
	other := Secrets{Store: NewMemory()}
	require.NoError(t, other.Set("a", bigValue(t)))
	part, _ := other.Store.Get("a#2")
	require.NoError(t, m.Set("a#2", part))
	_, err := s.Get("a")
	assert.ErrorContains(t, err, "damaged")

	require.NoError(t, m.Delete("a#3"))
	_, err = s.Get("a")
	assert.ErrorContains(t, err, "incomplete")
}

func TestValueLookingLikeAHeaderRoundTrips(t *testing.T) {
	s := Secrets{Store: NewMemory()}
	v := chunkHeader + "1:" + strings.Repeat("0", 64)
	require.NoError(t, s.Set("x", v))
	got, err := s.Get("x")
	require.NoError(t, err)
	assert.Equal(t, v, got)
}

func TestUnavailableKeychainSaysHowToFixIt(t *testing.T) {
	m := NewMemory()
	m.Unavailable = true
	_, err := Secrets{Store: m}.Get("x")
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "gnome-keyring")
}

func TestCredentials(t *testing.T) {
	m := NewMemory()
	c := NewCredentials(m)
	c.Env.LookupEnv = func(k string) (string, bool) {
		return map[string]string{"ENV_KEY": "sk-from-env-1234"}[k], k == "ENV_KEY"
	}
	up := &proxy.Upstream{Name: "openai", Keys: []string{"main", "backup"}, KeyEnv: "ENV_KEY"}

	cred, err := c.Credential(up)
	require.NoError(t, err)
	assert.Equal(t, proxy.Credential{Label: "env:ENV_KEY", Secret: "sk-from-env-1234"}, cred, "env when the keychain has none")

	s := Secrets{Store: m}
	require.NoError(t, s.Set(KeyName("openai", "backup"), "sk-backup-key-5678"))
	cred, err = c.Credential(up)
	require.NoError(t, err)
	assert.Equal(t, "env:ENV_KEY", cred.Label, "cached for a while")
	c.Reset()
	cred, err = c.Credential(up)
	require.NoError(t, err)
	assert.Equal(t, proxy.Credential{Label: "backup", Secret: "sk-backup-key-5678"}, cred, "the keychain comes first")

	require.NoError(t, s.Set(KeyName("openai", "main"), "sk-main-key-0000"))
	c.Reset()
	cred, _ = c.Credential(up)
	assert.Equal(t, "main", cred.Label, "labels in config order")

	t.Run("missing everywhere", func(t *testing.T) {
		_, err := c.Credential(&proxy.Upstream{Name: "x", Keys: []string{"k"}})
		require.ErrorIs(t, err, proxy.ErrNoCredential)
		assert.Contains(t, err.Error(), "gatehouse key add x --label k")
	})
	t.Run("keychain unreachable, env works", func(t *testing.T) {
		m.Unavailable = true
		defer func() { m.Unavailable = false }()
		c.Reset()
		cred, err := c.Credential(up)
		require.NoError(t, err)
		assert.Equal(t, "env:ENV_KEY", cred.Label)
		_, err = c.Credential(&proxy.Upstream{Name: "y", Keys: []string{"k"}, KeyEnv: "NOPE"})
		require.ErrorIs(t, err, proxy.ErrNoCredential)
		assert.Contains(t, err.Error(), "the keychain cannot be reached")
		assert.Contains(t, err.Error(), "export NOPE")
	})
}

func TestMask(t *testing.T) {
	assert.Equal(t, "sk-ab…x9", Mask("sk-abcdefghijklmnopx9"))
	assert.Equal(t, "…", Mask("short"))
}

// The tests below use a real Secret Service (gnome-keyring on a private
// D-Bus session, see scripts/keyring-session.sh). They skip where none is
// running, except in CI, where they must run.
func requireSecretService(t *testing.T) {
	t.Helper()
	if os.Getenv("GATEHOUSE_SECRET_SERVICE") == "1" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI must run the keychain tests against a real Secret Service: run them through scripts/keyring-session.sh")
	}
	t.Skip("no Secret Service: run through scripts/keyring-session.sh (make test does)")
}

func TestSecretServiceKeyring(t *testing.T) {
	requireSecretService(t)
	exerciseStore(t, Keyring{}, "test/"+t.Name()+"/")
}

// TestSecretServiceAcrossProcesses writes a value in this process and reads
// it in another, as `gatehouse key add` and a running forwarder do.
func TestSecretServiceAcrossProcesses(t *testing.T) {
	requireSecretService(t)
	if name := os.Getenv("KEYSTORE_READ_CHILD"); name != "" {
		v, err := Secrets{Store: Keyring{}}.Get(name)
		if err != nil {
			os.Stdout.WriteString("error: " + err.Error())
			return
		}
		os.Stdout.WriteString(v)
		return
	}
	s := Secrets{Store: Keyring{}}
	name := "test/cross-process/" + t.Name()
	big := bigValue(t)
	require.NoError(t, s.Set(name, big))
	t.Cleanup(func() { _ = s.Delete(name) })

	cmd := exec.Command(os.Args[0], "-test.run", "^TestSecretServiceAcrossProcesses$")
	cmd.Env = append(os.Environ(), "KEYSTORE_READ_CHILD="+name)
	out, err := cmd.Output()
	require.NoError(t, err)
	got := strings.TrimSuffix(string(out), "PASS\n")
	assert.Equal(t, big, got)
}
