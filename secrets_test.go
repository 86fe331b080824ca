package main

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuilder collects output written from several goroutines.
type syncBuilder struct {
	ch chan string
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) { s.ch <- string(p); return len(p), nil }

// TestSecretsNeverLeak sets up every kind of secret with distinctive
// values, runs commands and requests that succeed and fail, and scans all
// that Gatehouse wrote: its output, its request log lines, every file under
// the config and cache folders, and the export file.
func TestSecretsNeverLeak(t *testing.T) {
	keystore.ScryptWorkFactor = 10
	useMemoryStore(t)
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("GATEHOUSE_CONFIG", "")

	ca := testpki.NewCA("Leak CA")
	client := ca.Client("leak", time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour))
	keyBlock, _ := pem.Decode(client.KeyPEM)
	secrets := map[string]string{
		"api key":        "sk-LEAKCHECK-apikey-0a1b2c3d4e5f",
		"hmac secret":    "LEAKCHECK-hmac-secret-77aa88bb",
		"proxy password": "LEAKCHECK-proxy-pass-3141",
		"env key":        "sk-LEAKCHECK-envkey-2718281828",
		"client key":     base64.StdEncoding.EncodeToString(keyBlock.Bytes)[10:60],
	}
	t.Setenv("LEAK_ENV_KEY", secrets["env key"])

	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	socks := testproxy.SOCKS5("me", secrets["proxy password"])
	defer socks.Stop()

	cfgPath := filepath.Join(home, "config", "gatehouse", "config.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`
[[upstreams]]
name = "openai"
base_url = "%[1]s/v1"
models = ["gpt-*"]
via = "socks5://me@%[2]s"

[[upstreams]]
name = "signed"
base_url = "%[1]s/v1"
models = ["signed-*"]
auth = "hmac-sha256"

[[upstreams]]
name = "envkey"
base_url = "%[1]s/v1"
models = ["env-*"]
key_env = "LEAK_ENV_KEY"

[[upstreams]]
name = "down"
base_url = "http://127.0.0.1:1/v1"
models = ["down-*"]
key_env = "LEAK_ENV_KEY"
`, up.URL, socks.Addr))

	var shown strings.Builder // everything commands print, but the one-time token
	cmd := func(stdin string, args ...string) string {
		code, out, errOut := gh(t, stdin, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		shown.WriteString(errOut)
		return out
	}
	shown.WriteString(cmd(secrets["api key"], "key", "add", "openai", "--label", "main"))
	shown.WriteString(cmd(secrets["hmac secret"], "key", "add", "signed"))
	shown.WriteString(cmd(secrets["proxy password"], "proxy-password", "set", "socks5://me@"+socks.Addr))
	certFile, keyFile := filepath.Join(home, "c.pem"), filepath.Join(home, "k.pem")
	writeFile(t, certFile, string(client.CertPEM))
	writeFile(t, keyFile, string(client.KeyPEM))
	shown.WriteString(cmd("", "cert", "import", "envkey", "--cert", certFile, "--key", keyFile))
	require.NoError(t, os.Remove(keyFile))
	token := strings.TrimSpace(cmd("", "token", "add", "ide"))
	secrets["access token"] = token
	shown.WriteString(cmd("", "key", "list"))
	shown.WriteString(cmd("", "cert", "list"))
	shown.WriteString(cmd("", "token", "list"))
	exportFile := filepath.Join(home, "cache", "setup.age")
	require.NoError(t, os.MkdirAll(filepath.Dir(exportFile), 0o700))
	shown.WriteString(cmd("a good passphrase", "export", "--out", exportFile))

	// The forwarder, in-process, logging to a buffer as `serve` does.
	logs := &syncBuilder{ch: make(chan string, 10000)}
	ctx, cancel := context.WithCancel(context.Background())
	c := &cli{ctx: ctx, log: slog.New(slog.NewTextHandler(logs, nil)), stdin: strings.NewReader(""), stdout: io.Discard, stderr: logs, store: openStore()}
	served := make(chan error, 1)
	go func() { served <- c.serve([]string{"--listen", "127.0.0.1:0"}) }()
	var base string
	for base == "" {
		line := <-logs.ch
		logs.b.WriteString(line)
		if m := regexp.MustCompile(`url=(http://\S+)/v1`).FindStringSubmatch(line); m != nil {
			base = m[1]
		}
	}
	post := func(model, tok string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(`{"model":"`+model+`"}`))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		shown.Write(body)
		return res.StatusCode
	}
	assert.Equal(t, 200, post("gpt-4o", token))
	assert.Equal(t, 200, post("signed-1", token))
	assert.Equal(t, 200, post("env-1", token))
	assert.Equal(t, 502, post("down-1", token))
	assert.Equal(t, 404, post("nope", token))
	assert.Equal(t, 401, post("gpt-4o", ""))
	assert.Equal(t, 401, post("gpt-4o", "gate_wrong"))
	cancel()
	require.NoError(t, <-served)
	close(logs.ch)
	for l := range logs.ch {
		logs.b.WriteString(l)
	}
	assert.Equal(t, 7, strings.Count(logs.b.String(), "msg=request"), "one line per request")

	scan := map[string]string{"command output": shown.String(), "serve's stderr": logs.b.String()}
	require.NoError(t, filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && path != certFile {
			data, _ := os.ReadFile(path)
			scan[path] = string(data)
		}
		return err
	}))
	require.Contains(t, scan, cfgPath)
	require.Contains(t, scan, exportFile)
	require.Contains(t, scan, filepath.Join(home, "cache", "gatehouse", "usage.json"))
	for where, text := range scan {
		for what, secret := range secrets {
			assert.NotContains(t, text, secret, "the %s appears in %s", what, where)
		}
	}
}
