package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForwardInjectsCredentialAndMapsPath(t *testing.T) {
	clientHeaders := map[string]string{
		"Authorization":       "Bearer " + clientToken,
		"X-Api-Key":           clientToken,
		"X-Goog-Api-Key":      clientToken,
		"Proxy-Authorization": "Basic " + clientToken,
		"X-Forwarded-For":     "10.1.2.3",
		"X-Forwarded-Host":    "evil.example",
		"Forwarded":           "for=10.1.2.3",
		"X-Real-Ip":           "10.1.2.3",
		"Connection":          "X-Hop",
		"X-Hop":               "hop-by-hop",
		"Anthropic-Version":   "2023-06-01",
		"Anthropic-Beta":      "tools-2024-04-04",
		"X-Custom":            "kept",
	}
	tests := []struct {
		name, auth, basePath, keyEnv, inPath, wantPath string
		wantHeader, wantValue                          string
	}{
		{"bearer", AuthBearer, "/v1", "TEST_OPENAI_KEY", "/v1/chat/completions?a=1&b=x%20y", "/v1/chat/completions", "Authorization", "Bearer " + secretOpenAI},
		{"anthropic x-api-key", AuthXAPIKey, "/v1", "TEST_ANTHROPIC_KEY", "/v1/messages?beta=true", "/v1/messages", "X-Api-Key", secretAnthropic},
		{"gemini openai endpoint", AuthGoogAPIKey, "/v1beta/openai", "TEST_GEMINI_KEY", "/v1/chat/completions?alt=sse&key=" + clientToken, "/v1beta/openai/chat/completions", "X-Goog-Api-Key", secretGemini},
		{"none", AuthNone, "/api/v1", "", "/v1/embeddings?a=1", "/api/v1/embeddings", "", ""},
		{"path prefix", AuthBearer, "/v1", "TEST_OPENAI_KEY", "/u/up/chat/completions?a=1", "/v1/chat/completions", "Authorization", "Bearer " + secretOpenAI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mock := &mockllm.Server{}
			up := httptest.NewServer(mock)
			defer up.Close()
			h := newHarness(t, &Config{Upstreams: []Upstream{{
				Name: "up", BaseURL: up.URL + tc.basePath, Models: []string{"m-*"}, Auth: tc.auth, KeyEnv: tc.keyEnv,
			}}})
			method, body := http.MethodPost, `{"model":"m-1","stream":false}`
			res, out := h.do(t, method, tc.inPath, body, clientHeaders)
			require.Equal(t, http.StatusOK, res.StatusCode, out)

			got := mock.Last()
			assert.Equal(t, tc.wantPath, got.Path)
			_, wantQuery, _ := strings.Cut(tc.inPath, "?")
			if tc.auth == AuthGoogAPIKey {
				assert.Equal(t, "alt=sse", got.Query, "a client's key= must not travel")
			} else {
				assert.Equal(t, wantQuery, got.Query)
			}
			assert.Equal(t, body, string(got.Body))
			if tc.wantHeader != "" {
				assert.Equal(t, tc.wantValue, got.Header.Get(tc.wantHeader))
			}
			for k, v := range got.Header {
				assert.NotContains(t, strings.Join(v, " "), clientToken, "client credential arrived in %s", k)
			}
			for _, k := range []string{"Proxy-Authorization", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded", "X-Real-Ip", "X-Hop"} {
				assert.Empty(t, got.Header.Get(k), "%s must not go upstream", k)
			}
			if tc.auth != AuthBearer {
				assert.Empty(t, got.Header.Get("Authorization"))
			}
			assert.Equal(t, "2023-06-01", got.Header.Get("Anthropic-Version"))
			assert.Equal(t, "tools-2024-04-04", got.Header.Get("Anthropic-Beta"))
			assert.Equal(t, "kept", got.Header.Get("X-Custom"))
			assert.Equal(t, strings.TrimPrefix(up.URL, "http://"), got.Host, "Host is the upstream's, not ours")

			rec := h.lastRecord(t, 1)
			assert.Equal(t, "up", rec.Upstream)
			assert.Equal(t, http.StatusOK, rec.Status)
			assert.Equal(t, "direct", rec.Route)
			if tc.keyEnv != "" {
				assert.Equal(t, "env:"+tc.keyEnv, rec.Credential)
			}
		})
	}
}

func TestRoutingByModelFirstMatchWins(t *testing.T) {
	a, b := &mockllm.Server{}, &mockllm.Server{}
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "a", BaseURL: sa.URL + "/v1", Models: []string{"gpt-4o", "o3*"}, KeyEnv: "TEST_OPENAI_KEY"},
		{Name: "b", BaseURL: sb.URL + "/v1", Models: []string{"gpt-*", "meta-llama/*"}, KeyEnv: "TEST_OPENAI_KEY"},
	}})
	for model, want := range map[string]*mockllm.Server{
		"gpt-4o": a, "o3-mini": a, "gpt-4.1": b, "meta-llama/Llama-3-70b": b,
	} {
		before := want.Hits("/chat/completions")
		res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi","model":"nested-not-this"}],"model":"`+model+`"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, out)
		assert.Equal(t, before+1, want.Hits("/chat/completions"), model)
	}
}

// TestBodyWithAByteOrderMark: a JSON body saved by an editor that starts
// files with a UTF-8 byte-order mark (PowerShell 5's Out-File, say) is
// routed by its model, and its stream seen.
func TestBodyWithAByteOrderMark(t *testing.T) {
	events := []string{"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n", "data: [DONE]\n\n"}
	var sent string
	up := httptest.NewServer(sseUpstream(events, false, &sent))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "a", BaseURL: up.URL + "/v1", Models: []string{"gpt-*"}, Auth: AuthNone},
		{Name: "b", BaseURL: up.URL + "/v1", Models: []string{"claude-*"}, Auth: AuthNone},
	}})
	res, out := h.do(t, http.MethodPost, "/v1/chat/completions", "\ufeff{\"model\":\"gpt-4o\",\"stream\":true}", nil)
	require.Equal(t, http.StatusOK, res.StatusCode, out)
	rec := h.lastRecord(t, 1)
	assert.Equal(t, "a", rec.Upstream)
	assert.True(t, rec.Stream)
	assert.Contains(t, sent, "include_usage", "asked for usage, as for any chat stream")
}

func TestForwarderErrors(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		<-r.Context().Done()
	}))
	defer hang.Close()

	cfg := &Config{MaxBodyMB: 1, Upstreams: []Upstream{
		{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY"},
		{Name: "nokey", BaseURL: up.URL + "/v1", Models: []string{"nokey-*"}, KeyEnv: "TEST_MISSING_KEY"},
		{Name: "noenv", BaseURL: up.URL + "/v1", Models: []string{"noenv-*"}},
		{Name: "down", BaseURL: closedURL + "/v1", Models: []string{"down-*"}, Auth: AuthNone},
		{Name: "slow", BaseURL: hang.URL + "/v1", Models: []string{"slow-*"}, Auth: AuthNone, FirstByteTimeout: "100ms"},
	}}
	h := newHarness(t, cfg)
	big := `{"model":"gpt-4o","pad":"` + strings.Repeat("x", 1<<20) + `"}`

	tests := []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"unknown model", "POST", "/v1/chat/completions", `{"model":"claude-3"}`, 404, "model_not_found", `no upstream serves model "claude-3"; the configured patterns are openai: gpt-*`},
		{"no key in env", "POST", "/v1/chat/completions", `{"model":"nokey-1"}`, 401, "no_upstream_key", "TEST_MISSING_KEY"},
		{"no key_env", "POST", "/v1/chat/completions", `{"model":"noenv-1"}`, 401, "no_upstream_key", "set key_env"},
		{"no model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "model_missing", `no "model" field`},
		{"model not a string", "POST", "/v1/chat/completions", `{"model":42}`, 400, "model_missing", "must be a string"},
		{"not json", "POST", "/v1/chat/completions", `hello`, 400, "model_missing", `no "model" field`},
		{"empty body", "POST", "/v1/chat/completions", ``, 400, "model_missing", `no "model" field`},
		{"too large", "POST", "/v1/chat/completions", big, 413, "request_too_large", "limit of 1 MiB"},
		{"unreachable", "POST", "/v1/chat/completions", `{"model":"down-1"}`, 502, "upstream_unreachable", `upstream "down" could not be reached`},
		{"timeout", "POST", "/v1/chat/completions", `{"model":"slow-1","stream":true}`, 504, "upstream_timeout", `upstream "slow" did not answer in time`},
		{"unknown path", "GET", "/v2/whatever", ``, 404, "unknown_path", "point your client at"},
		{"unknown upstream", "POST", "/u/nope/chat/completions", `{}`, 404, "unknown_upstream", `no upstream named "nope"; configured upstreams: openai, nokey`},
		{"dot segments", "GET", "/u/openai/%2e%2e/admin", ``, 400, "bad_path", "'..'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, out := h.do(t, tc.method, tc.path, tc.body, nil)
			require.Equal(t, tc.status, res.StatusCode, out)
			require.Equal(t, "application/json", res.Header.Get("Content-Type"))
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			require.NoError(t, json.Unmarshal([]byte(out), &e), out)
			assert.Equal(t, tc.code, e.Error.Code)
			assert.NotEmpty(t, e.Error.Type)
			assert.Contains(t, e.Error.Message, tc.message)
			assertNoSecrets(t, "error body", out)
		})
	}

	t.Run("too large without content length", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, h.url("/v1/chat/completions"), io.MultiReader(strings.NewReader(big)))
		require.NoError(t, err)
		req.ContentLength = -1
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		assert.Equal(t, http.StatusRequestEntityTooLarge, res.StatusCode)
	})
	assertNoSecrets(t, "logs", h.logs.String())
	for _, rec := range h.reqlog.Records() {
		b, _ := json.Marshal(rec)
		assertNoSecrets(t, "request log", string(b))
	}
}

func TestRequestsWithoutModelGoToTheOnlyUpstream(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "only", BaseURL: up.URL + "/v1", KeyEnv: "TEST_OPENAI_KEY"}}})
	res, _ := h.do(t, http.MethodGet, "/v1/files?purpose=batch", "", nil)
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "the mock has no /files; the point is that it was asked")
	assert.Equal(t, "/v1/files", mock.Last().Path)
	assert.Equal(t, "Bearer "+secretOpenAI, mock.Last().Header.Get("Authorization"))
}

func TestMultipartModel(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "other", BaseURL: up.URL + "/other", Models: []string{"gpt-*"}, Auth: AuthNone},
		{Name: "audio", BaseURL: up.URL + "/v1", Models: []string{"whisper-*"}, Auth: AuthNone},
	}})
	body := "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF....\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--XyZ--\r\n"
	res, _ := h.do(t, http.MethodPost, "/v1/audio/transcriptions", body, map[string]string{"Content-Type": "multipart/form-data; boundary=XyZ"})
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "the mock has no audio endpoint; it must have been asked on the audio upstream")
	assert.Equal(t, "/v1/audio/transcriptions", mock.Last().Path)
	assert.Equal(t, body, string(mock.Last().Body))
}

func TestHostAndOriginGuard(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*") // as OpenAI does
		mock.ServeHTTP(w, r)
	}))
	defer up.Close()
	h := newHarness(t, &Config{
		AllowedHosts:   []string{"gatehouse.test"},
		AllowedOrigins: []string{"vscode-webview://abc123", "http://localhost:3000"},
		Upstreams:      []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"*"}, Auth: AuthNone}},
	})
	body := `{"model":"m"}`
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(h.srv.URL, "http://"))
	tests := []struct {
		name   string
		header map[string]string
		status int
	}{
		{"127.0.0.1", map[string]string{"Host": "127.0.0.1:" + port}, 200},
		{"localhost", map[string]string{"Host": "localhost:" + port}, 200},
		{"ipv6 loopback", map[string]string{"Host": "[::1]:" + port}, 200},
		{"no port", map[string]string{"Host": "localhost"}, 200},
		{"allowed host", map[string]string{"Host": "gatehouse.test:" + port}, 200},
		{"rebinding", map[string]string{"Host": "attacker.example:" + port}, 403},
		{"rebinding to 127 name", map[string]string{"Host": "127.0.0.1.nip.io:" + port}, 403},
		{"lan address", map[string]string{"Host": "192.168.1.10:" + port}, 403},
		{"foreign origin", map[string]string{"Origin": "https://attacker.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"allowed origin", map[string]string{"Origin": "vscode-webview://abc123"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, out := h.do(t, http.MethodPost, "/v1/chat/completions", body, tc.header)
			require.Equal(t, tc.status, res.StatusCode, out)
			if tc.status == 403 {
				assert.Contains(t, out, "permission_error")
			}
			if o := tc.header["Origin"]; tc.status == 200 && o != "" {
				assert.Equal(t, []string{o}, res.Header.Values("Access-Control-Allow-Origin"), "only ours, not the upstream's *")
			} else {
				assert.Empty(t, res.Header.Get("Access-Control-Allow-Origin"), "no CORS headers by default")
			}
		})
	}

	t.Run("preflight", func(t *testing.T) {
		res, _ := h.do(t, http.MethodOptions, "/v1/chat/completions", "", map[string]string{
			"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization, content-type",
		})
		assert.Equal(t, http.StatusNoContent, res.StatusCode)
		assert.Equal(t, "http://localhost:3000", res.Header.Get("Access-Control-Allow-Origin"))
		assert.Contains(t, res.Header.Get("Access-Control-Allow-Methods"), "POST")
		assert.Equal(t, "authorization, content-type", res.Header.Get("Access-Control-Allow-Headers"))

		res, _ = h.do(t, http.MethodOptions, "/v1/chat/completions", "", map[string]string{
			"Origin": "https://attacker.example", "Access-Control-Request-Method": "POST",
		})
		assert.Equal(t, http.StatusForbidden, res.StatusCode)
		assert.Empty(t, res.Header.Get("Access-Control-Allow-Origin"))
	})

	t.Run("health needs nothing", func(t *testing.T) {
		res, out := h.do(t, http.MethodGet, "/health", "", nil)
		assert.Equal(t, http.StatusOK, res.StatusCode)
		assert.JSONEq(t, `{"status":"ok","upstreams":1}`, out)
	})
}

// TestStreamIsNotBuffered proves, without a clock, that each event reaches
// the client before the upstream writes the next: the upstream waits for
// the client's acknowledgement of event N before it writes event N+1, so a
// forwarder that held events back would never finish.
func TestStreamIsNotBuffered(t *testing.T) {
	const events = 5
	ack := make(chan int)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case got := <-ack:
				if got != i {
					panic("out of order")
				}
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"*"}, Auth: AuthNone}}})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a deadlock guard, not a measurement
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(`{"model":"m","stream":true}`))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "data: [DONE]" {
			break
		}
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		require.Equal(t, fmt.Sprintf(`data: {"n":%d}`, n), line)
		ack <- n
		n++
	}
	require.NoError(t, ctx.Err(), "events were held back")
	require.Equal(t, events, n)
	rec := h.lastRecord(t, 1)
	assert.True(t, rec.Stream)
	assert.Equal(t, http.StatusOK, rec.Status)
	assert.Empty(t, rec.Error)
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	upstreamGone := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"n\":0}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(upstreamGone)
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"*"}, Auth: AuthNone}}})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(`{"model":"m","stream":true}`))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: {\"n\":0}\n", line)
	cancel()
	res.Body.Close()

	select {
	case <-upstreamGone:
	case <-time.After(30 * time.Second): // a hang guard, not a measurement
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
	rec := h.lastRecord(t, 1)
	assert.Equal(t, StatusClientClosed, rec.Status)
	assert.Contains(t, rec.Error, "client closed")
}

func TestUpstreamStreamBreakIsRecorded(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"n\":0}\n\n")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the upstream drops the connection mid-stream
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"*"}, Auth: AuthNone}}})
	req, _ := http.NewRequest(http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(`{"model":"m","stream":true}`))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	assert.Error(t, err, "the client must see the stream break, not a clean end")
	rec := h.lastRecord(t, 1)
	assert.Contains(t, rec.Error, "broke off")
	assert.Equal(t, 1, rec.Attempts, "an answer that has started is never retried")
}

func TestModelsMergesUpstreams(t *testing.T) {
	openai := &mockllm.Server{Models: []string{"gpt-4o", "gpt-4o-mini", "dall-e-3"}}
	anth := &mockllm.Server{Models: []string{"claude-sonnet-4", "claude-opus-4"}}
	so, sa := httptest.NewServer(openai), httptest.NewServer(anth)
	defer so.Close()
	defer sa.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer failing.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "openai", BaseURL: so.URL + "/v1", Models: []string{"gpt-*", "o3"}, KeyEnv: "TEST_OPENAI_KEY"},
		{Name: "anthropic", BaseURL: sa.URL + "/v1", Models: []string{"claude-*"}, Auth: AuthXAPIKey, KeyEnv: "TEST_ANTHROPIC_KEY"},
		{Name: "broken", BaseURL: failing.URL + "/v1", Models: []string{"deepseek-chat", "deepseek-*"}, Auth: AuthNone},
		{Name: "pathonly", BaseURL: failing.URL + "/v1", Auth: AuthNone},
	}})
	ids := func() []string {
		res, out := h.do(t, http.MethodGet, "/v1/models", "", nil)
		require.Equal(t, http.StatusOK, res.StatusCode, out)
		var list struct {
			Object string
			Data   []Model
		}
		require.NoError(t, json.Unmarshal([]byte(out), &list))
		assert.Equal(t, "list", list.Object)
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.OwnedBy+"/"+m.ID)
		}
		return ids
	}
	want := []string{"openai/o3", "openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "anthropic/claude-opus-4", "broken/deepseek-chat"}
	assert.Equal(t, want, ids())
	assert.Equal(t, "Bearer "+secretOpenAI, openai.Last().Header.Get("Authorization"))
	assert.Equal(t, secretAnthropic, anth.Last().Header.Get("X-Api-Key"))
	assert.Equal(t, "2023-06-01", anth.Last().Header.Get("Anthropic-Version"))

	assert.Equal(t, want, ids())
	assert.Equal(t, 1, openai.Hits("/models"), "the list is cached")
	assert.Equal(t, 1, anth.Hits("/models"))
}

// writeCounter counts the writes made on the connections it dials.
type writeCounter struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestRequestGoesUpstreamInOneWrite: the headers and the body of a request
// leave in one write, so the upstream gets them in one packet; the reverse
// proxy's own wrapper around the body would make it two.
func TestRequestGoesUpstreamInOneWrite(t *testing.T) {
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY"}}})
	var writes atomic.Int64
	tr := h.fwd.state.Load().byName["openai"].transport.(*http.Transport)
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return writeCounter{c, &writes}, err
	}
	for i := range 3 { // a new connection, then a kept-alive one
		before := writes.Load()
		res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, int64(1), writes.Load()-before, "request %d", i)
	}
}

// TestRecorderSettlesAtTheLastByte: an answer of known length is settled
// (max_concurrent, pacing, the cache) when its last byte is written, and
// goes to the client right after, not when the reverse proxy is done with
// it; one of unknown length is settled by settled, once.
func TestRecorderSettlesAtTheLastByte(t *testing.T) {
	for _, c := range []struct {
		name   string
		length string
		atLast bool
	}{{"known length", "11", true}, {"unknown length", "", false}, {"a length that does not hold", "99", false}} {
		t.Run(c.name, func(t *testing.T) {
			rr := httptest.NewRecorder()
			w := &recorder{ResponseWriter: rr, rec: &Record{}}
			settled := 0
			w.settle = func() {
				settled++
				assert.False(t, rr.Flushed, "the client had the answer before it was settled")
			}
			if c.length != "" {
				w.Header().Set("Content-Length", c.length)
			}
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("hello "))
			assert.Equal(t, 0, settled, "settled before the last byte")
			_, _ = w.Write([]byte("world"))
			if c.atLast {
				assert.Equal(t, 1, settled, "not settled at the last byte")
				assert.True(t, rr.Flushed, "the answer waited after its last byte")
			} else {
				assert.Equal(t, 0, settled)
				assert.False(t, rr.Flushed)
			}
			w.settled()
			w.settled()
			assert.Equal(t, 1, settled, "settled once")
		})
	}
}
