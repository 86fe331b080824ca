package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const cliSecret = "sk-cli-SECRET-abcdef0123456789"

// useMemoryStore points the commands at a fresh memory keychain.
func useMemoryStore(t *testing.T) *keystore.Memory {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // serve's usage totals stay out of the user's cache
	m := keystore.NewMemory()
	old := openStore
	openStore = func() keystore.Store { return m }
	t.Cleanup(func() { openStore = old })
	return m
}

// gh runs one command in-process and returns its exit code and output.
func gh(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

const twoUpstreams = `
[[upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1"
models = ["gpt-*"]
key_env = "CLI_TEST_OPENAI"

[[upstreams]]
name = "anthropic"
base_url = "https://api.anthropic.com/v1"
models = ["claude-*"]
auth = "x-api-key"
`

func TestKeyCommands(t *testing.T) {
	mem := useMemoryStore(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, twoUpstreams)
	t.Setenv("CLI_TEST_OPENAI", "sk-env-value-000011112222")

	code, out, errOut := gh(t, cliSecret+"\n", "key", "add", "openai", "--config", cfg, "--label", "work")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "Stored key \"work\" of upstream \"openai\" in the keychain (sk-cl…89).\n", out)
	v, err := keystore.Secrets{Store: mem}.Get(keystore.KeyName("openai", "work"))
	require.NoError(t, err)
	assert.Equal(t, cliSecret, v, "the trailing newline is not part of the key")
	file, _ := os.ReadFile(cfg)
	assert.Contains(t, string(file), `keys = ['work']`)

	code, _, errOut = gh(t, "sk-second-key-99999999\n", "key", "add", "--config", cfg, "anthropic")
	require.Equal(t, 0, code, errOut)

	code, out, errOut = gh(t, "", "key", "list", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, regexp.MustCompile(`openai\s+work\s+keychain\s+sk-cl…89`), out)
	assert.Regexp(t, regexp.MustCompile(`openai\s+env:CLI_TEST_OPENAI\s+env\s+sk-en…22`), out)
	assert.Regexp(t, regexp.MustCompile(`anthropic\s+default\s+keychain\s+sk-se…99`), out)

	code, out, errOut = gh(t, "", "key", "rm", "openai", "work", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `Removed key "work"`)
	_, err = keystore.Secrets{Store: mem}.Get(keystore.KeyName("openai", "work"))
	assert.ErrorIs(t, err, keystore.ErrNotFound)
	file, _ = os.ReadFile(cfg)
	assert.NotContains(t, string(file), "work")

	for _, tc := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{cliSecret, []string{"key", "add", "nope", "--config", cfg}, 1, `no upstream named "nope"`},
		{"", []string{"key", "add", "openai", "--config", cfg}, 1, "nothing was read from stdin"},
		{cliSecret, []string{"key", "add", "openai", "--label", "a b", "--config", cfg}, 1, `key label "a b"`},
		{"", []string{"key", "rm", "openai", "ghost", "--config", cfg}, 1, `has no key labelled "ghost"`},
		{"", []string{"key", "add"}, 2, "key add takes UPSTREAM"},
		{"", []string{"key"}, 2, "key needs one of: add, enable, list, rm"},
	} {
		code, out, errOut := gh(t, tc.stdin, tc.args...)
		assert.Equal(t, tc.code, code, "%v", tc.args)
		assert.Contains(t, errOut, tc.want, "%v", tc.args)
		assert.NotContains(t, out+errOut, cliSecret)
	}
	assert.NotContains(t, string(file), cliSecret)

	mem.Unavailable = true
	code, out, errOut = gh(t, "", "key", "list", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "keychain unreachable")
	assert.Contains(t, errOut, "the keychain cannot be reached")
	assert.Contains(t, errOut, "gnome-keyring")
	code, _, errOut = gh(t, cliSecret, "key", "add", "openai", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "store the key: the keychain cannot be reached")
}

// TestKeyFromRealKeychainReachesUpstream stores a key with `gatehouse key
// add` in one process and has `gatehouse serve`, another process, present
// it to the upstream: the real Secret Service in between.
func TestKeyFromRealKeychainReachesUpstream(t *testing.T) {
	if os.Getenv("GATEHOUSE_SECRET_SERVICE") != "1" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run this against a real Secret Service (scripts/keyring-session.sh)")
		}
		t.Skip("no Secret Service: run through scripts/keyring-session.sh (make test does)")
	}
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, fmt.Sprintf("[[upstreams]]\nname = \"e2e-keychain\"\nbase_url = %q\nmodels = [\"gpt-*\"]\n", up.URL+"/v1"))

	add := exec.Command(os.Args[0], "key", "add", "e2e-keychain", "--label", "main", "--config", cfg)
	add.Env = append(os.Environ(), "GATEHOUSE_AS_MAIN=1")
	add.Stdin = strings.NewReader(cliSecret + "\n")
	out, err := add.CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() {
		_ = keystore.Secrets{Store: keystore.Keyring{}}.Delete(keystore.KeyName("e2e-keychain", "main"))
	})

	p := start(t, nil, "serve", "--config", cfg, "--listen", "127.0.0.1:0")
	base := p.waitLine(t, regexp.MustCompile(`msg="forwarder listening" url=(http://\S+)/v1`))[1]
	res, err := testClient.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "Bearer "+cliSecret, mock.Last().Header.Get("Authorization"))
	line := p.waitLine(t, regexp.MustCompile(`msg=request .*`))[0]
	assert.Contains(t, line, "key=main")
	assert.NotContains(t, p.output(), cliSecret)
}

func TestTokenCommands(t *testing.T) {
	useMemoryStore(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, twoUpstreams)

	code, out, errOut := gh(t, "", "token", "add", "cline", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	tok := strings.TrimSpace(out)
	assert.True(t, strings.HasPrefix(tok, "gate_"))
	assert.Contains(t, errOut, "shown only this once")
	file, _ := os.ReadFile(cfg)
	assert.NotContains(t, string(file), tok, "only the hash is stored")
	assert.Contains(t, string(file), proxy.HashToken(tok))

	code, _, errOut = gh(t, "", "token", "add", "cline", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `a token named "cline" exists`)

	code, out, _ = gh(t, "", "token", "list", "--config", cfg)
	require.Equal(t, 0, code)
	assert.Regexp(t, `cline\s+20\d\d-`, out)
	assert.NotContains(t, out, tok)

	code, out, errOut = gh(t, "", "token", "rm", "cline", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `Removed token "cline"`)
	code, _, errOut = gh(t, "", "token", "rm", "cline", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `no token named "cline"`)
}

func TestProxyPasswordCommands(t *testing.T) {
	mem := useMemoryStore(t)
	code, out, errOut := gh(t, "hunter2-proxy\n", "proxy-password", "set", "socks5://me@127.0.0.1:1080")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "me@127.0.0.1:1080")
	v, err := keystore.Secrets{Store: mem}.Get(keystore.ProxyName("me@127.0.0.1:1080"))
	require.NoError(t, err)
	assert.Equal(t, "hunter2-proxy", v)

	code, _, errOut = gh(t, "x", "proxy-password", "set", "socks5://127.0.0.1:1080")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "not a proxy URL with a user name")
	code, _, errOut = gh(t, "x", "proxy-password", "set", "http://me:pw@127.0.0.1:3128")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "without the password")
	assert.NotContains(t, errOut, "pw@")

	code, _, errOut = gh(t, "", "proxy-password", "rm", "socks5://me@127.0.0.1:1080")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = gh(t, "", "proxy-password", "rm", "socks5://me@127.0.0.1:1080")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no password for me@127.0.0.1:1080")
}

// TestKeyListShowsKeyStates: a running forwarder that got a 429 for one key
// and a 401 for another; `gatehouse key list` shows both states.
func TestKeyListShowsKeyStates(t *testing.T) {
	mem := useMemoryStore(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer sk-state-cool-0000000000":
			w.Header().Set("Retry-After", "300")
			w.WriteHeader(http.StatusTooManyRequests)
		case "Bearer sk-state-reject-00000000":
			w.WriteHeader(http.StatusUnauthorized)
		case "Bearer sk-state-spent-000000000":
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}`))
		default:
			w.Write([]byte(`{}`))
		}
	}))
	defer up.Close()
	listen := freeListen(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, fmt.Sprintf("listen = %q\n[[upstreams]]\nname = \"openai\"\nbase_url = %q\nmodels = [\"gpt-*\"]\nkeys = [\"cool\", \"reject\", \"spent\", \"good\"]\nkey_strategy = \"fill-first\"\nmax_attempts = 4\n", listen, up.URL+"/v1"))
	s := keystore.Secrets{Store: mem}
	require.NoError(t, s.Set(keystore.KeyName("openai", "cool"), "sk-state-cool-0000000000"))
	require.NoError(t, s.Set(keystore.KeyName("openai", "reject"), "sk-state-reject-00000000"))
	require.NoError(t, s.Set(keystore.KeyName("openai", "good"), "sk-state-good-0000000000"))
	require.NoError(t, s.Set(keystore.KeyName("openai", "spent"), "sk-state-spent-000000000"))

	code, out, _ := gh(t, "", "key", "list", "--config", cfg)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "The forwarder is not running")

	startForwarder(t, mem, cfg, listen)
	res, err := testClient.Post("http://"+listen+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "cool (429), reject (401) and spent (insufficient_quota) gave way to good")

	code, out, errOut := gh(t, "", "key", "list", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, regexp.MustCompile(`openai\s+cool\s+keychain\s+sk-st…00\s+cooling until \d\d:\d\d:\d\d \(429 Too Many Requests \(retry-after\)\)`), out)
	assert.Regexp(t, regexp.MustCompile(`openai\s+reject\s+keychain\s+sk-st…00\s+rejected \(401 Unauthorized\)`), out)
	assert.Regexp(t, regexp.MustCompile(`openai\s+spent\s+keychain\s+sk-st…00\s+exhausted \(quota used up \(insufficient_quota\); gatehouse key enable openai spent once topped up\)`), out)
	assert.Regexp(t, regexp.MustCompile(`openai\s+good\s+keychain\s+sk-st…00\s+ok`), out)
}

// TestKeyEnable: a key the upstream rejected comes back with `gatehouse key
// enable` while the forwarder runs.
func TestKeyEnable(t *testing.T) {
	mem := useMemoryStore(t)
	var rejected atomic.Bool
	rejected.Store(true)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer sk-enable-first-000000000" && rejected.Swap(false) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{}`))
	}))
	defer up.Close()
	listen := freeListen(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, fmt.Sprintf("listen = %q\n[[upstreams]]\nname = \"openai\"\nbase_url = %q\nmodels = [\"gpt-*\"]\nkeys = [\"first\", \"second\"]\nkey_strategy = \"fill-first\"\n", listen, up.URL+"/v1"))
	s := keystore.Secrets{Store: mem}
	require.NoError(t, s.Set(keystore.KeyName("openai", "first"), "sk-enable-first-000000000"))
	require.NoError(t, s.Set(keystore.KeyName("openai", "second"), "sk-enable-second-00000000"))

	code, out, _ := gh(t, "", "key", "enable", "openai", "first", "--config", cfg)
	require.Equal(t, 0, code)
	assert.Contains(t, out, "The forwarder is not running", "no forwarder, no rejected key")

	startForwarder(t, mem, cfg, listen)
	res, err := testClient.Post("http://"+listen+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "first (401) gave way to second")
	_, out, _ = gh(t, "", "key", "list", "--config", cfg)
	assert.Regexp(t, regexp.MustCompile(`openai\s+first\s+keychain\s+\S+\s+rejected \(401 Unauthorized\)`), out)

	code, _, errOut := gh(t, "", "key", "enable", "openai", "third", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `no key labelled "third"`)

	code, out, errOut = gh(t, "", "key", "enable", "openai", "first", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `Key "first" of upstream "openai" is in use again.`)
	_, out, _ = gh(t, "", "key", "list", "--config", cfg)
	assert.Regexp(t, regexp.MustCompile(`openai\s+first\s+keychain\s+\S+\s+ok`), out)
	assert.NotContains(t, out, "sk-enable-first-000000000")
}

func TestForwarderClientReachesLoopbackPastAnyProxy(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("here")) }))
	defer srv.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead.Close()
	t.Setenv("HTTP_PROXY", "http://"+dead.Addr().String()) // a user's proxy setting must not apply
	t.Setenv("NO_PROXY", "")
	for _, listen := range []string{"127.0.0.1:" + port, "0.0.0.0:" + port, ":" + port} {
		base, client := forwarderClient(listen, 5*time.Second)
		assert.Equal(t, "http://127.0.0.1:"+port, base, listen)
		res, err := client.Get(base + "/")
		require.NoError(t, err, listen)
		res.Body.Close()
		assert.Equal(t, http.StatusOK, res.StatusCode)
	}
	base, _ := forwarderClient("[::]:"+port, time.Second)
	assert.Equal(t, "http://[::1]:"+port, base)
}
