// Package mockllm is a small LLM API server for tests and benchmarks: it
// answers OpenAI chat completions (plain and streamed), embeddings and
// responses, Anthropic messages (plain and streamed) and model lists, in the
// shapes the official SDKs parse. Paths match by suffix, so it works behind
// any base path ("/v1", "/v1beta/openai", …). It records the last request.
package mockllm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is an http.Handler. The zero value answers with three stream
// events and no gap.
type Server struct {
	// Words is the answer, one word per stream event; default "Hello",
	// " from", " mock".
	Words []string
	// Gap is the pause between stream events.
	Gap time.Duration
	// Models is what /models lists; default "mock-1".
	Models []string
	// NoRecord skips keeping the last request (for benchmarks).
	NoRecord bool
	// RateLimits puts OpenAI's x-ratelimit-* headers, with room left, on
	// every answer, as OpenAI does: the forwarder reads them each time.
	RateLimits bool

	mu   sync.Mutex
	last Request
	hits map[string]int
}

// Request is what the server received.
type Request struct {
	Method string
	Host   string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Last returns the last request received.
func (s *Server) Last() Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Hits counts requests whose path ends with suffix.
func (s *Server) Hits(suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[suffix]
}

func (s *Server) words() []string {
	if len(s.Words) == 0 {
		return []string{"Hello", " from", " mock"}
	}
	return s.Words
}

// streamWords is the words of a streamed answer: X-Mock-Events asks for
// that many.
func (s *Server) streamWords(r *http.Request) []string {
	if n, err := strconv.Atoi(r.Header.Get("X-Mock-Events")); err == nil && n > 0 {
		return slices.Repeat([]string{" tok"}, n)
	}
	return s.words()
}

type request struct {
	Model  string `json:"model"`
	Stream bool   `json:"stream"`
	Input  any    `json:"input"`
}

var routes = []string{"/chat/completions", "/completions", "/embeddings", "/responses", "/messages", "/models"}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	route := ""
	for _, suffix := range routes {
		if strings.HasSuffix(r.URL.Path, suffix) {
			route = suffix
			break
		}
	}
	if !s.NoRecord {
		s.mu.Lock()
		s.last = Request{Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		if s.hits == nil {
			s.hits = map[string]int{}
		}
		s.hits[route]++
		s.mu.Unlock()
	}

	if s.RateLimits {
		h := w.Header()
		h.Set("X-Ratelimit-Limit-Requests", "10000")
		h.Set("X-Ratelimit-Remaining-Requests", "9999")
		h.Set("X-Ratelimit-Reset-Requests", "6ms")
		h.Set("X-Ratelimit-Limit-Tokens", "30000000")
		h.Set("X-Ratelimit-Remaining-Tokens", "29999990")
		h.Set("X-Ratelimit-Reset-Tokens", "0s")
	}
	if code, err := strconv.Atoi(r.Header.Get("X-Mock-Status")); err == nil && code >= 400 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":{"message":"mock was asked for %d","type":"server_error"}}`, code)
		return
	}
	var req request
	if len(body) > 0 && route != "" {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
			return
		}
	}
	switch route {
	case "/chat/completions":
		if req.Stream {
			s.chatStream(w, r, req.Model)
			return
		}
		writeJSON(w, chatCompletion(req.Model, strings.Join(s.words(), "")))
	case "/embeddings":
		writeJSON(w, map[string]any{
			"object": "list",
			"model":  req.Model,
			"data":   []any{map[string]any{"object": "embedding", "index": 0, "embedding": []float64{0.25, -0.5, 1}}},
			"usage":  map[string]any{"prompt_tokens": 2, "total_tokens": 2},
		})
	case "/responses":
		writeJSON(w, response(req.Model, strings.Join(s.words(), "")))
	case "/messages":
		if req.Stream {
			s.messagesStream(w, r, req.Model)
			return
		}
		writeJSON(w, message(req.Model, strings.Join(s.words(), "")))
	case "/models":
		models := s.Models
		if models == nil {
			models = []string{"mock-1"}
		}
		data := make([]any, len(models))
		for i, m := range models {
			data[i] = map[string]any{"id": m, "object": "model", "created": 0, "owned_by": "mock"}
		}
		writeJSON(w, map[string]any{"object": "list", "data": data})
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"message":"mock has no %s","type":"invalid_request_error"}}`, r.URL.Path)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func chatCompletion(model, text string) map[string]any {
	return map[string]any{
		"id": "chatcmpl-mock", "object": "chat.completion", "created": 1700000000, "model": model,
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": text},
		}},
		"usage": map[string]any{"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
	}
}

// sse writes one server-sent event and flushes it.
func sse(w http.ResponseWriter, event string, v any) {
	data, _ := json.Marshal(v)
	if event != "" {
		fmt.Fprintf(w, "event: %s\n", event)
	}
	fmt.Fprintf(w, "data: %s\n\n", data)
	w.(http.Flusher).Flush()
}

// pause waits between stream events: Gap, or X-Mock-Gap (a duration).
func (s *Server) pause(r *http.Request) bool {
	gap := s.Gap
	if d, err := time.ParseDuration(r.Header.Get("X-Mock-Gap")); err == nil {
		gap = d
	}
	if gap <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(gap)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func startStream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) chatStream(w http.ResponseWriter, r *http.Request, model string) {
	startStream(w)
	for i, word := range s.streamWords(r) {
		if i > 0 && !s.pause(r) {
			return
		}
		delta := map[string]any{"content": word}
		if i == 0 {
			delta["role"] = "assistant"
		}
		sse(w, "", map[string]any{
			"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": nil}},
		})
	}
	sse(w, "", map[string]any{
		"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
		"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}},
	})
	fmt.Fprint(w, "data: [DONE]\n\n")
	w.(http.Flusher).Flush()
}

func response(model, text string) map[string]any {
	return map[string]any{
		"id": "resp_mock", "object": "response", "created_at": 1700000000, "status": "completed", "model": model,
		"output": []any{map[string]any{
			"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}},
		}},
		"usage": map[string]any{"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
	}
}

func message(model, text string) map[string]any {
	return map[string]any{
		"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
		"content":     []any{map[string]any{"type": "text", "text": text}},
		"stop_reason": "end_turn", "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": 5, "output_tokens": 3},
	}
}

func (s *Server) messagesStream(w http.ResponseWriter, r *http.Request, model string) {
	startStream(w)
	start := message(model, "")
	start["content"] = []any{}
	sse(w, "message_start", map[string]any{"type": "message_start", "message": start})
	sse(w, "content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}})
	for i, word := range s.words() {
		if i > 0 && !s.pause(r) {
			return
		}
		sse(w, "content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": word}})
	}
	sse(w, "content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	sse(w, "message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": 3}})
	sse(w, "message_stop", map[string]any{"type": "message_stop"})
}
