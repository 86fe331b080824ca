package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Distinctive secrets: tests scan every output for them.
const (
	secretOpenAI    = "sk-test-OPENAI-5ecret-7f3a9c"
	secretAnthropic = "sk-ant-test-ANTHROPIC-5ecret-b21e"
	secretGemini    = "AIza-test-GEMINI-5ecret-11d0"
	clientToken     = "client-side-token-should-not-travel"
)

var testEnv = map[string]string{
	"TEST_OPENAI_KEY":    secretOpenAI,
	"TEST_ANTHROPIC_KEY": secretAnthropic,
	"TEST_GEMINI_KEY":    secretGemini,
}

func envCreds(env map[string]string) Credentials {
	return EnvCredentials{LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}}
}

// syncBuffer is a log sink that tests can read while servers write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a forwarder on a real loopback listener.
type harness struct {
	fwd    *Forwarder
	srv    *httptest.Server
	reqlog *RequestLog
	logs   *syncBuffer
}

func newHarness(t *testing.T, cfg *Config) *harness {
	t.Helper()
	h := &harness{reqlog: NewRequestLog(100), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.fwd = NewForwarder(envCreds(testEnv), h.reqlog, log)
	cfg.applyDefaults()
	require.NoError(t, h.fwd.Apply(cfg, t.TempDir()))
	h.srv = httptest.NewServer(h.fwd)
	t.Cleanup(h.srv.Close)
	t.Cleanup(h.fwd.Close)
	return h
}

// keyedHarness serves cfg (defaults applied) with creds' keys and no log.
func keyedHarness(t *testing.T, cfg *Config, creds Credentials) *harness {
	t.Helper()
	h := &harness{reqlog: NewRequestLog(0), logs: &syncBuffer{}}
	h.fwd = NewForwarder(creds, h.reqlog, nil)
	require.NoError(t, h.fwd.Apply(cfg, ""))
	h.srv = httptest.NewServer(h.fwd)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *harness) url(path string) string { return h.srv.URL + path }

// do sends a request and returns the response with its body read.
func (h *harness) do(t *testing.T, method, path, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url(path), rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

// lastRecord waits for the request log to hold n records and returns the
// last. Records are written when the handler returns, which can be just
// after the client has read the whole answer.
func (h *harness) lastRecord(t *testing.T, n int) Record {
	t.Helper()
	sub := h.reqlog.Subscribe(n)
	defer sub.Close()
	for len(h.reqlog.Records()) < n {
		<-sub.C
	}
	recs := h.reqlog.Records()
	return recs[len(recs)-1]
}

// assertNoSecrets fails if any of the test secrets appears in s.
func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{secretOpenAI, secretAnthropic, secretGemini} {
		require.NotContains(t, s, secret, "%s leaks a secret", what)
	}
}
