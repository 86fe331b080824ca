package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sseUpstream writes the given events and then, if hang, waits for the
// request to end without closing the stream.
func sseUpstream(events []string, hang bool, got *string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if got != nil {
			b, _ := io.ReadAll(r.Body)
			*got = string(b)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, ev := range events {
			fmt.Fprint(w, ev)
			w.(http.Flusher).Flush()
		}
		if hang {
			<-r.Context().Done()
		}
	}
}

func TestStreamOutcomes(t *testing.T) {
	tests := []struct {
		name, path, body string
		events           []string
		hang             bool
		idle             string
		failure          string // "" means success
		client           string // what the client must receive, if set
		prompt, complete int64
	}{
		{name: "chat stream complete, usage from the last chunk",
			path: "/v1/chat/completions", body: `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`,
			events: []string{
				"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
				"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7}}\n\n",
				"data: [DONE]\n\n"},
			prompt: 11, complete: 7,
			client: "\"usage\""},
		{name: "chat stream cut before [DONE]",
			path: "/v1/chat/completions", body: `{"model":"m","stream":true}`,
			events:  []string{"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"},
			failure: "the stream ended without its closing event (data: [DONE])"},
		{name: "a stream carrying event: error",
			path: "/v1/messages", body: `{"model":"m","stream":true}`,
			events: []string{
				"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n",
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"},
			failure: "the stream carried an error event: Overloaded", prompt: 5},
		{name: "anthropic stream complete, usage from start and delta",
			path: "/v1/messages", body: `{"model":"m","stream":true}`,
			events: []string{
				"event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":21,\"output_tokens\":1}}}\r\n\r\n",
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n",
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"},
			prompt: 21, complete: 9},
		{name: "responses stream completed",
			path: "/v1/responses", body: `{"model":"m","stream":true}`,
			events: []string{
				"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n\n"},
			prompt: 3, complete: 4},
		{name: "responses stream failed",
			path: "/v1/responses", body: `{"model":"m","stream":true}`,
			events:  []string{"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"error\":{\"message\":\"server_error\"}}}\n\n"},
			failure: "response.failed: server_error"},
		{name: "an error object inside a data line",
			path: "/v1/chat/completions", body: `{"model":"m","stream":true}`,
			events:  []string{"data: {\"error\":{\"message\":\"quota exceeded\"}}\n\n", "data: [DONE]\n\n"},
			failure: "the stream carried an error: quota exceeded"},
		{name: "a stalled stream ends with an error event in OpenAI's format",
			path: "/v1/chat/completions", body: `{"model":"m","stream":true}`,
			events: []string{"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"}, hang: true, idle: "50ms",
			failure: "the upstream sent nothing for 50ms",
			client:  `data: {"error":{"message":"the upstream sent nothing for 50ms; Gatehouse ended the stream (idle_timeout)","type":"timeout_error","code":"stream_stalled"}}`},
		{name: "a stalled Anthropic stream ends with its own error event",
			path: "/v1/messages", body: `{"model":"m","stream":true}`,
			events: []string{"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"}, hang: true, idle: "50ms",
			failure: "the upstream sent nothing for 50ms",
			client:  "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"timeout_error\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := httptest.NewServer(sseUpstream(tc.events, tc.hang, nil))
			defer up.Close()
			h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, IdleTimeout: tc.idle}}})
			res, out := h.do(t, http.MethodPost, tc.path, tc.body, nil)
			require.Equal(t, http.StatusOK, res.StatusCode)
			if tc.client != "" {
				assert.Contains(t, out, tc.client)
			}
			rec := h.lastRecord(t, 1)
			if tc.failure == "" {
				assert.Empty(t, rec.Error, "a success")
			} else {
				assert.Contains(t, rec.Error, tc.failure, "recorded as failed, never as a success")
			}
			assert.Equal(t, tc.prompt, rec.PromptTokens)
			assert.Equal(t, tc.complete, rec.CompletionTokens)
		})
	}
}

func TestUsageOfPlainAnswers(t *testing.T) {
	for path, body := range map[string]string{
		"/v1/chat/completions": `{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34}}`,
		"/v1/messages":         `{"content":[],"usage":{"input_tokens":12,"output_tokens":34}}`,
		"/v1/responses":        `{"output":[],"usage":{"input_tokens":12,"output_tokens":34}}`,
		"/v1/completions": `{"choices":[{"text":"usage","logprobs":{"tokens":["usage"],"usage":{"prompt_tokens":1}}}],` +
			`"usage":{"prompt_tokens":12,"completion_tokens":34}}`, // the last "usage" counts
		"/u/up/chat/completions": `{"choices":[{"message":{"content":"` + strings.Repeat("long answer ", 20000) +
			`"}}],"usage":{"prompt_tokens":12,"completion_tokens":34,"details":{"cached_tokens":0}}}`,
	} {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
		}))
		h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone}}})
		res, out := h.do(t, http.MethodPost, path, `{"model":"m"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode)
		assert.Equal(t, body, out, "passed through untouched")
		rec := h.lastRecord(t, 1)
		assert.Equal(t, int64(12), rec.PromptTokens, path)
		assert.Equal(t, int64(34), rec.CompletionTokens, path)
		up.Close()
	}
}

// TestIncludeUsage: Gatehouse asks a chat stream for usage when the client
// did not, records it, and keeps the extra chunk from the client.
func TestIncludeUsage(t *testing.T) {
	events := []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n",
		"data: [DONE]\n\n"}
	off := false
	for _, tc := range []struct {
		name, body, wantSent string
		option               *bool
		clientSeesUsage      bool
	}{
		{"added when the client did not ask", `{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, nil, false},
		{"the client's own choice stays", `{"model":"m","stream":true,"stream_options":{"include_usage":false}}`, `{"model":"m","stream":true,"stream_options":{"include_usage":false}}`, nil, true},
		{"switched off for the upstream", `{"model":"m","stream":true}`, `{"model":"m","stream":true}`, &off, true},
		{"not for a plain request", `{"model":"m"}`, `{"model":"m"}`, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent string
			up := httptest.NewServer(sseUpstream(events, false, &sent))
			defer up.Close()
			h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, IncludeUsage: tc.option}}})
			res, out := h.do(t, http.MethodPost, "/v1/chat/completions", tc.body, nil)
			require.Equal(t, http.StatusOK, res.StatusCode)
			assert.JSONEq(t, tc.wantSent, sent)
			assert.Equal(t, tc.clientSeesUsage, strings.Contains(out, `"usage"`))
			assert.Contains(t, out, "data: [DONE]")
			rec := h.lastRecord(t, 1)
			assert.Equal(t, int64(2), rec.PromptTokens, "recorded either way")
			assert.Empty(t, rec.Error)
		})
	}
}

// TestStreamWithALengthLosesTheUsageChunkCleanly: a stream sent with a
// Content-Length (as a relay that buffers it may) still reaches the
// client whole when the usage chunk Gatehouse asked for is dropped: the
// length, which no longer holds, is not passed on.
func TestStreamWithALengthLosesTheUsageChunkCleanly(t *testing.T) {
	events := "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n" +
		"data: [DONE]\n\n"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(events)))
		io.WriteString(w, events)
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone}}})
	res, err := http.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(`{"model":"m","stream":true}`))
	require.NoError(t, err)
	out, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err, "the client's stream broke off")
	assert.Equal(t, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n", string(out))
	rec := h.lastRecord(t, 1)
	assert.Equal(t, int64(2), rec.PromptTokens)
	assert.Empty(t, rec.Error)
}

func TestRequestTimeoutCutsAPlainAnswer(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"partial":`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, RequestTimeout: "50ms"}}})
	req, _ := http.NewRequest(http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(`{"model":"m"}`))
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, err = io.ReadAll(res.Body)
	res.Body.Close()
	assert.Error(t, err, "the client sees the answer cut, not a clean end")
	assert.Contains(t, h.lastRecord(t, 1).Error, "request_timeout")
}
