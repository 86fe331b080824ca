package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExportImport moves a setup to an empty keychain and config: every
// request then behaves as before. A wrong passphrase or a damaged file
// changes nothing.
func TestExportImport(t *testing.T) {
	keystore.ScryptWorkFactor = 10
	const (
		apiKey    = "sk-export-SECRET-0123456789abc"
		proxyPass = "proxy-export-PASSWORD-99"
		pass      = "correct horse battery"
	)
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	socks := testproxy.SOCKS5("me", proxyPass)
	defer socks.Stop()

	src := useMemoryStore(t)
	dir := t.TempDir()
	cfgA := filepath.Join(dir, "a", "config.toml")
	writeFile(t, cfgA, fmt.Sprintf("# my setup\n[[upstreams]]\nname = \"openai\"\nbase_url = %q\nmodels = [\"gpt-*\"]\nkeys = [\"main\", \"gone\"]\nvia = \"socks5://me@%s\"\n", up.URL+"/v1", socks.Addr))
	s := keystore.Secrets{Store: src}
	require.NoError(t, s.Set(keystore.KeyName("openai", "main"), apiKey))
	require.NoError(t, s.Set(keystore.ProxyName("me@"+socks.Addr), proxyPass))

	authSeen := func(store keystore.Store, cfgPath string) string {
		t.Helper()
		cfg, err := proxy.LoadConfig(cfgPath)
		require.NoError(t, err)
		f := proxy.NewForwarder(keystore.NewCredentials(store), nil, nil)
		require.NoError(t, f.Apply(cfg, filepath.Dir(cfgPath)))
		defer f.Close()
		srv := httptest.NewServer(f)
		defer srv.Close()
		res, err := testClient.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		return mock.Last().Header.Get("Authorization")
	}
	require.Equal(t, "Bearer "+apiKey, authSeen(src, cfgA))

	out := filepath.Join(dir, "setup.age")
	code, stdout, stderr := gh(t, pass+"\n", "export", "--out", out, "--config", cfgA)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "2 secrets")
	assert.Contains(t, stderr, "key/openai/gone", "a label the keychain lacks is reported")
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), "-----BEGIN AGE ENCRYPTED FILE-----"))
	for _, secret := range []string{apiKey, proxyPass, "my setup", "openai"} {
		assert.NotContains(t, string(data), secret)
	}
	assert.NotContains(t, stdout+stderr, apiKey)

	dst := useMemoryStore(t)
	cfgB := filepath.Join(dir, "b", "config.toml")
	damaged := filepath.Join(dir, "damaged.age")
	writeFile(t, damaged, strings.Replace(string(data), "\n", "\nAAAA", 3))
	for _, tc := range []struct{ stdin, file string }{{"wrong passphrase\n", out}, {pass + "\n", damaged}} {
		code, _, stderr := gh(t, tc.stdin, "import", tc.file, "--config", cfgB)
		assert.Equal(t, 1, code)
		assert.Contains(t, stderr, "nothing was changed")
		assert.Zero(t, dst.Len(), "the keychain is untouched")
		_, err := os.Stat(cfgB)
		assert.True(t, os.IsNotExist(err), "no config was written")
	}

	code, stdout, stderr = gh(t, pass+"\n", "import", out, "--config", cfgB)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "Wrote the config")
	assert.Contains(t, stdout, "2 added, 0 replaced")
	text, _ := os.ReadFile(cfgB)
	assert.True(t, strings.HasPrefix(string(text), "# my setup"), "the config comes back as written")
	before := socks.Carried()
	assert.Equal(t, "Bearer "+apiKey, authSeen(dst, cfgB), "the same request behaves the same")
	assert.Equal(t, before+1, socks.Carried(), "through the same proxy, with its password")

	code, stdout, _ = gh(t, pass+"\n", "import", out, "--config", cfgB)
	require.Equal(t, 0, code)
	assert.Contains(t, stdout, "Replaced the config")
	assert.Contains(t, stdout, "replaced key/openai/main")
}
