package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gatedStream is an upstream whose SSE answer writes one event, then waits
// for release before it finishes.
type gatedStream struct {
	started chan struct{}
	release chan struct{}
}

func newGatedStream() *gatedStream {
	return &gatedStream{started: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gatedStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, "data: first\n\n")
	w.(http.Flusher).Flush()
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-r.Context().Done():
		return
	}
	fmt.Fprint(w, "data: last\n\ndata: [DONE]\n\n")
}

// openStream starts a streamed request and returns a reader positioned
// after its first event.
func openStream(t *testing.T, url string) (*bufio.Reader, func()) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"model":"m","stream":true}`))
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: first\n", line)
	return br, func() { res.Body.Close() }
}

func readRest(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	_, err := br.WriteTo(&b)
	require.NoError(t, err, "the stream must end cleanly")
	return b.String()
}

func TestApplyLeavesRequestsInFlightOnTheirConfig(t *testing.T) {
	old := newGatedStream()
	sOld := httptest.NewServer(old)
	defer sOld.Close()
	next := &mockllm.Server{}
	sNext := httptest.NewServer(next)
	defer sNext.Close()

	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "a", BaseURL: sOld.URL + "/v1", Models: []string{"m"}, Auth: AuthNone}}})
	br, done := openStream(t, h.url("/v1/chat/completions"))
	defer done()

	cfg := &Config{Upstreams: []Upstream{{Name: "b", BaseURL: sNext.URL + "/v1", Models: []string{"m"}, Auth: AuthNone}}}
	cfg.applyDefaults()
	require.NoError(t, h.fwd.Apply(cfg, ""))

	res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, out)
	assert.Equal(t, 1, next.Hits("/chat/completions"), "a new request uses the new config")

	close(old.release)
	assert.Equal(t, "\ndata: last\n\ndata: [DONE]\n\n", readRest(t, br), "the old request finished on the old upstream")
}

func TestApplyRefusesAnInvalidConfig(t *testing.T) {
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "a", BaseURL: "http://127.0.0.1:1/v1", Models: []string{"m"}}}})
	bad := &Config{Upstreams: []Upstream{{Name: "a", BaseURL: "nope"}}}
	bad.applyDefaults()
	require.Error(t, h.fwd.Apply(bad, ""))
	assert.Equal(t, "http://127.0.0.1:1/v1", h.fwd.Config().Upstreams[0].BaseURL)
}

// startService runs a Service on a free loopback port and returns its base
// URL; the returned stop cancels it and waits for Run to return.
func startService(t *testing.T, path string, logs *syncBuffer, reload chan struct{}, grace time.Duration) (*Service, string, func() error) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, nil))
	svc, err := NewService(path, "127.0.0.1:0", envCreds(testEnv), NewRequestLog(0), log)
	require.NoError(t, err)
	svc.ShutdownGrace = grace
	ready := make(chan net.Addr, 1)
	svc.Ready = func(a net.Addr) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx, reload) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("service did not start: %v", err)
	}
	stop := func() error {
		cancel()
		return <-errc
	}
	t.Cleanup(func() { cancel() })
	return svc, "http://" + addr.String(), stop
}

// eventually polls cond; the bound only stops a broken test from hanging.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServiceReloadsWhenTheFileChanges(t *testing.T) {
	a, b := &mockllm.Server{}, &mockllm.Server{}
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	path := filepath.Join(t.TempDir(), "gatehouse", "config.toml")
	write := func(base string) {
		cfg := &Config{Upstreams: []Upstream{{Name: "up", BaseURL: base + "/v1", Models: []string{"m"}, Auth: AuthNone}}}
		cfg.applyDefaults()
		require.NoError(t, SaveConfig(path, cfg))
	}
	write(sa.URL)
	logs := &syncBuffer{}
	reload := make(chan struct{})
	svc, base, stop := startService(t, path, logs, reload, time.Second)

	post := func() {
		res, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	post()
	assert.Equal(t, 1, a.Hits("/chat/completions"))

	write(sb.URL)
	eventually(t, "the changed file to apply", func() bool { return svc.Forwarder.Config().Upstreams[0].BaseURL == sb.URL+"/v1" })
	post()
	assert.Equal(t, 1, b.Hits("/chat/completions"))

	require.NoError(t, os.WriteFile(path, []byte("[[upstreams]]\nname = \"up\"\nbase_url = \"not a url\"\n"), 0o600))
	eventually(t, "the bad file to be refused", func() bool { return strings.Contains(logs.String(), "config not applied") })
	assert.Contains(t, logs.String(), "config.toml:3: upstreams[0].base_url")
	post()
	assert.Equal(t, 2, b.Hits("/chat/completions"), "the last good config stays")

	write(sa.URL)
	reload <- struct{}{} // as SIGHUP does
	eventually(t, "the reload to apply", func() bool { return svc.Forwarder.Config().Upstreams[0].BaseURL == sa.URL+"/v1" })
	require.NoError(t, stop())
}

func TestServiceStopLetsOpenStreamsFinish(t *testing.T) {
	g := newGatedStream()
	up := httptest.NewServer(g)
	defer up.Close()
	path := writeConfig(t, fmt.Sprintf("[[upstreams]]\nname = \"up\"\nbase_url = %q\nmodels = [\"m\"]\nauth = \"none\"\n", up.URL+"/v1"))
	_, base, stop := startService(t, path, &syncBuffer{}, nil, time.Minute)

	br, done := openStream(t, base+"/v1/chat/completions")
	defer done()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// New connections are refused once the listener is closed.
	eventually(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(g.release)
	assert.Equal(t, "\ndata: last\n\ndata: [DONE]\n\n", readRest(t, br), "the open stream finished")
	require.NoError(t, <-stopped)
}

func TestServiceStopIsBounded(t *testing.T) {
	g := newGatedStream() // never released
	up := httptest.NewServer(g)
	defer up.Close()
	path := writeConfig(t, fmt.Sprintf("[[upstreams]]\nname = \"up\"\nbase_url = %q\nmodels = [\"m\"]\nauth = \"none\"\n", up.URL+"/v1"))
	logs := &syncBuffer{}
	_, base, stop := startService(t, path, logs, nil, 50*time.Millisecond)
	_, done := openStream(t, base+"/v1/chat/completions")
	defer done()
	require.NoError(t, stop(), "Run returns once the grace is over")
	assert.Contains(t, logs.String(), "did not finish in time")
}

func TestServiceStartErrors(t *testing.T) {
	path := writeConfig(t, "listen = \"127.0.0.1:4747\"\n[[upstreams]]\nname = \"x\"\n")
	_, err := NewService(path, "", envCreds(nil), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":2: upstreams[0].base_url")

	_, err = NewService(writeConfig(t, ""), "0.0.0.0:80", envCreds(nil), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--listen")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	svc, err := NewService(writeConfig(t, ""), ln.Addr().String(), envCreds(nil), nil, nil)
	require.NoError(t, err)
	err = svc.Run(context.Background(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the address is in use")
}

// TestServiceNoticesAConfigWrittenLater: started with no config (and no
// folder), the forwarder applies a config.toml the user writes afterwards.
func TestServiceNoticesAConfigWrittenLater(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	path := filepath.Join(t.TempDir(), "fresh", "gatehouse", "config.toml")
	svc, base, stop := startService(t, path, &syncBuffer{}, nil, time.Second)
	res, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode)
	assert.Contains(t, string(body), "no upstreams are configured yet")

	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("[[upstreams]]\nname = \"up\"\nbase_url = %q\nmodels = [\"m\"]\nauth = \"none\"\n", up.URL+"/v1")), 0o600))
	eventually(t, "the new file to apply", func() bool { return len(svc.Forwarder.Config().Upstreams) == 1 })
	require.NoError(t, stop())
}
