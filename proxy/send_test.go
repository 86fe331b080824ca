package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
)

// The forwarder hands a forwarded answer to the client before the request
// log and the usage book (recorder.send). These tests hold what must not
// change with that.

// rawHeaders sends one HTTP/1.1 request on a new connection and returns
// the answer's header block, as it came over the wire.
func rawHeaders(t *testing.T, addr, method, path, body string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	req := method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nConnection: close\r\n"
	if body != "" {
		req += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	_, err = c.Write([]byte(req + "\r\n" + body))
	require.NoError(t, err)
	br := bufio.NewReader(c)
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		if line == "\r\n" {
			return sb.String()
		}
		sb.WriteString(line)
	}
}

// TestOwnAnswersKeepContentLength: Gatehouse's own answers (errors, its
// pages) go out whole with a Content-Length, not chunked.
func TestOwnAnswersKeepContentLength(t *testing.T) {
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY"}}})
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v2/whatever", ""},
		{"POST", "/v1/chat/completions", `{"model":"nope-1"}`},
		{"GET", InfoPath, ""},
		{"GET", StatusPath, ""},
	} {
		hdr := rawHeaders(t, addr, c.method, c.path, c.body)
		assert.Contains(t, hdr, "Content-Length:", "%s %s:\n%s", c.method, c.path, hdr)
		assert.NotContains(t, hdr, "Transfer-Encoding: chunked", "%s %s", c.method, c.path)
	}
}

// TestARepeatRightAfterIsACacheHit: the answer is stored before the client
// has it, so the same request at once on another connection is a hit and
// the upstream is not asked (and billed) twice.
func TestARepeatRightAfterIsACacheHit(t *testing.T) {
	mock := &mockllm.Server{}
	h := cacheHarness(t, mock, filepath.Join(t.TempDir(), "responses.db"), 0)
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	for i := range 20 {
		body := `{"model":"gpt-4o","messages":[{"role":"user","content":"q` + strconv.Itoa(i) + `"}]}`
		for range 3 {
			res, err := cl.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(body))
			require.NoError(t, err)
			res.Body.Close()
		}
	}
	assert.Equal(t, 20, mock.Hits("/chat/completions"), "each question went upstream once")
}

// TestTheNextRequestFindsItsPlaceFree: with max_concurrent = 1, a client
// that sends its next request as soon as it has an answer never finds the
// finished one still holding the place.
func TestTheNextRequestFindsItsPlaceFree(t *testing.T) {
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY", MaxConcurrent: 1}}})
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	busy := 0
	for range 200 {
		res, err := cl.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		require.NoError(t, err)
		res.Body.Close()
		q, err := cl.Get(h.url("/v1/queue"))
		require.NoError(t, err)
		b, _ := io.ReadAll(q.Body)
		q.Body.Close()
		if strings.Contains(string(b), `"in_flight":1`) {
			busy++
		}
	}
	assert.Zero(t, busy, "answers after which /v1/queue still showed the finished request in flight")
}
