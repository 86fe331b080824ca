package keystore

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/stretchr/testify/require"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// forwarderFor serves the config document doc (in dir) with creds, and
// returns a function that posts a chat completion for a model.
func forwarderFor(t *testing.T, dir, doc string, creds proxy.Credentials, reqlog *proxy.RequestLog, log *slog.Logger) (f *proxy.Forwarder, post func(model string) (int, string)) {
	t.Helper()
	cfg, err := proxy.ParseConfig(filepath.Join(dir, "config.toml"), []byte(doc))
	require.NoError(t, err)
	f = proxy.NewForwarder(creds, reqlog, log)
	require.NoError(t, f.Apply(cfg, dir))
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(f.Close)
	return f, func(model string) (int, string) {
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"`+model+`"}`))
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
}
