package keystore

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProxyPasswordFromKeychain: a proxy URL in the config names only the
// user; the password comes from the keychain, a wrong one is a clear error,
// and it appears in no log, record or error.
func TestProxyPasswordFromKeychain(t *testing.T) {
	const password = "proxy-PASSWORD-s3cr3t-42"
	plain := httptest.NewServer(&mockllm.Server{})
	defer plain.Close()
	tlsUp := httptest.NewTLSServer(&mockllm.Server{})
	defer tlsUp.Close()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "up.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw}), 0o600))

	httpProxy := testproxy.HTTP("me", password)
	defer httpProxy.Stop()
	socks := testproxy.SOCKS5("me", password)
	defer socks.Stop()
	viaHTTP := "http://me@" + httpProxy.Addr
	viaSOCKS := "socks5://me@" + socks.Addr

	doc := fmt.Sprintf(`
[[upstreams]]
name = "plain-http"
base_url = "%s/v1"
models = ["a"]
auth = "none"
via = %q

[[upstreams]]
name = "tls-connect"
base_url = "%s/v1"
models = ["b"]
auth = "none"
via = %q
ca_file = "up.pem"

[[upstreams]]
name = "socks"
base_url = "%s/v1"
models = ["c"]
auth = "none"
via = %q
`, plain.URL, viaHTTP, tlsUp.URL, viaHTTP, plain.URL, viaSOCKS)
	store := NewMemory()
	creds := NewCredentials(store)
	logs := &lockedBuffer{}
	reqlog := proxy.NewRequestLog(0)
	f, post := forwarderFor(t, dir, doc, creds, reqlog, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	models := []string{"a", "b", "c"}
	var bodies []string

	for _, m := range models {
		status, body := post(m)
		assert.Equal(t, http.StatusBadGateway, status, m)
		assert.Contains(t, body, "gatehouse proxy-password set", m)
		bodies = append(bodies, body)
	}

	secrets := Secrets{Store: store}
	require.NoError(t, secrets.Set(ProxyName("me@"+httpProxy.Addr), "wrong-password"))
	require.NoError(t, secrets.Set(ProxyName("me@"+socks.Addr), "wrong-password"))
	creds.Reset()
	for _, m := range models {
		status, body := post(m)
		assert.Equal(t, http.StatusBadGateway, status, m)
		assert.Contains(t, body, "refused the user name or password", m)
		bodies = append(bodies, body)
	}

	require.NoError(t, secrets.Set(ProxyName("me@"+httpProxy.Addr), password))
	require.NoError(t, secrets.Set(ProxyName("me@"+socks.Addr), password))
	creds.Reset()
	f.Close() // connections made with the wrong password must not be reused
	before := httpProxy.Carried()
	for _, m := range models {
		status, body := post(m)
		assert.Equal(t, http.StatusOK, status, "%s: %s", m, body)
	}
	assert.Equal(t, before+2, httpProxy.Carried(), "the plain and the CONNECT upstream went through the HTTP proxy")
	assert.Equal(t, int64(1), socks.Carried())

	var all strings.Builder
	all.WriteString(logs.String())
	all.WriteString(strings.Join(bodies, "\n"))
	for _, rec := range reqlog.Records() {
		b, _ := json.Marshal(rec)
		all.Write(b)
		if rec.Route != "direct" {
			assert.Contains(t, rec.Route, "://me@127.0.0.1:")
		}
	}
	assert.NotContains(t, all.String(), password)
	assert.NotContains(t, all.String(), "wrong-password")
}
