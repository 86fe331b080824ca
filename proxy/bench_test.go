package proxy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
)

const benchBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}]}`

// benchPost sends non-streamed chat completions to base with a pooled
// client, the way an IDE plugin does.
func benchPost(b *testing.B, base string) {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer local")
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
}

// The three benchmarks below compare one chat completion sent straight to
// the upstream, through a bare httputil.ReverseProxy that only swaps the
// key (the floor), and through the forwarder with routing and request log.
func BenchmarkChatDirect(b *testing.B) {
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	benchPost(b, up.URL)
}

func BenchmarkChatBareReverseProxy(b *testing.B) {
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	target, _ := url.Parse(up.URL)
	rp := &httputil.ReverseProxy{
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", "Bearer "+secretOpenAI)
		},
	}
	srv := httptest.NewServer(rp)
	defer srv.Close()
	benchPost(b, srv.URL)
}

func BenchmarkChatForwarder(b *testing.B) {
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	f := NewForwarder(envCreds(testEnv), NewRequestLog(0), nil)
	cfg := &Config{Upstreams: []Upstream{
		{Name: "anthropic", BaseURL: up.URL + "/v1", Models: []string{"claude-*"}, Auth: AuthXAPIKey, KeyEnv: "TEST_ANTHROPIC_KEY"},
		{Name: "gemini", BaseURL: up.URL + "/v1beta/openai", Models: []string{"gemini-*"}, Auth: AuthGoogAPIKey, KeyEnv: "TEST_GEMINI_KEY"},
		{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"gpt-*", "o3*"}, KeyEnv: "TEST_OPENAI_KEY"},
	}}
	cfg.applyDefaults()
	if err := f.Apply(cfg, ""); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	defer f.Close()
	benchPost(b, srv.URL)
}

func BenchmarkExtractModel1MB(b *testing.B) {
	body := []byte(`{"messages":[{"role":"user","content":"` + strings.Repeat("x", 1<<20) + `"}],"model":"gpt-4o"}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if m, err := extractModel("application/json", body, scanJSON("application/json", body)); err != nil || m != "gpt-4o" {
			b.Fatal(m, err)
		}
	}
}

func BenchmarkRoute50Upstreams(b *testing.B) {
	cfg := &Config{}
	for i := range 50 {
		cfg.Upstreams = append(cfg.Upstreams, Upstream{
			Name: fmt.Sprintf("up%d", i), BaseURL: "http://127.0.0.1:1/v1",
			Models: []string{fmt.Sprintf("family%d-*", i), fmt.Sprintf("model-%d", i)}, Auth: AuthNone,
		})
	}
	cfg.applyDefaults()
	f := NewForwarder(envCreds(nil), nil, nil)
	if err := f.Apply(cfg, ""); err != nil {
		b.Fatal(err)
	}
	rt := f.state.Load()
	b.ReportAllocs()
	for b.Loop() {
		if rt.route("family49-large") == nil {
			b.Fatal("no route")
		}
	}
}

func BenchmarkRequestLogAdd10Subscribers(b *testing.B) {
	l := NewRequestLog(0)
	for range 10 {
		s := l.Subscribe(64)
		defer s.Close()
		go func() {
			for range s.C {
			}
		}()
	}
	rec := Record{Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o", Status: 200}
	b.ReportAllocs()
	for b.Loop() {
		l.Add(rec)
	}
}

// cannedRT answers every request at once with a chat completion, so that
// the handler benchmarks below measure only the forwarding code.
type cannedRT struct{}

const cannedAnswer = `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`

func (cannedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		// The rate-limit headers OpenAI puts on every answer, read each time.
		Header: http.Header{"Content-Type": {"application/json"},
			"X-Ratelimit-Limit-Requests": {"10000"}, "X-Ratelimit-Remaining-Requests": {"9999"}, "X-Ratelimit-Reset-Requests": {"6ms"},
			"X-Ratelimit-Limit-Tokens": {"30000000"}, "X-Ratelimit-Remaining-Tokens": {"29999990"}, "X-Ratelimit-Reset-Tokens": {"0s"}},
		ContentLength: int64(len(cannedAnswer)),
		Body:          io.NopCloser(strings.NewReader(cannedAnswer)),
		Request:       req,
	}, nil
}

// benchHandler serves chat completions to h in-process, without a network.
func benchHandler(b *testing.B, h http.Handler) {
	benchHandlerBodies(b, h, func() string { return benchBody })
}

func benchHandlerBodies(b *testing.B, h http.Handler, body func() string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4747/v1/chat/completions", strings.NewReader(body()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer local")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}

// The two benchmarks below compare the CPU the forwarder's own work costs
// (routing, keys, request log, usage) with a bare ReverseProxy's, both
// answered by cannedRT.
func BenchmarkHandlerBareReverseProxy(b *testing.B) {
	target, _ := url.Parse("http://127.0.0.1:1")
	benchHandler(b, &httputil.ReverseProxy{
		Transport: cannedRT{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set("Authorization", "Bearer "+secretOpenAI)
		},
	})
}

func BenchmarkHandlerForwarder(b *testing.B) {
	benchHandler(b, benchForwarder(b, Upstream{}))
}

// BenchmarkHandlerForwarderCacheAndPacing: the same with the response
// cache on and every request a miss (each body unique, each answer
// stored), and pacing on with room to spare.
func BenchmarkHandlerForwarderCacheAndPacing(b *testing.B) {
	f := benchForwarder(b, Upstream{Cache: "10m", RequestsPerMinute: 6_000_000, TokensPerMinute: 6_000_000_000})
	lc := &lazyCache{path: filepath.Join(b.TempDir(), "responses.db")}
	f.cache.Store(lc)
	b.Cleanup(func() { _ = lc.close() })
	n := 0
	benchHandlerBodies(b, f, func() string {
		n++
		return fmt.Sprintf(`{"user":"bench-%d",`, n) + benchBody[1:]
	})
}

// benchForwarder routes to three upstreams answered by cannedRT; with
// sets the openai upstream's cache and pacing.
func benchForwarder(b *testing.B, with Upstream) *Forwarder {
	f := NewForwarder(envCreds(testEnv), NewRequestLog(0), nil)
	cfg := &Config{Upstreams: []Upstream{
		{Name: "anthropic", BaseURL: "http://127.0.0.1:1/v1", Models: []string{"claude-*"}, Auth: AuthXAPIKey, KeyEnv: "TEST_ANTHROPIC_KEY"},
		{Name: "gemini", BaseURL: "http://127.0.0.1:1/v1beta/openai", Models: []string{"gemini-*"}, Auth: AuthGoogAPIKey, KeyEnv: "TEST_GEMINI_KEY"},
		{Name: "openai", BaseURL: "http://127.0.0.1:1/v1", Models: []string{"gpt-*", "o3*"}, KeyEnv: "TEST_OPENAI_KEY",
			Cache: with.Cache, RequestsPerMinute: with.RequestsPerMinute, TokensPerMinute: with.TokensPerMinute},
	}}
	cfg.applyDefaults()
	if err := f.Apply(cfg, ""); err != nil {
		b.Fatal(err)
	}
	for _, u := range f.state.Load().upstreams {
		u.transport = cannedRT{}
	}
	return f
}

// BenchmarkCacheKey: what a request pays to be looked up in the cache,
// for a short chat and a 100 KB one.
func BenchmarkCacheKey(b *testing.B) {
	short := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi 12345"}],"temperature":0}`)
	long := []byte(`{"model":"gpt-4o","stream":true,"messages":[` +
		strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum dolor sit amet ", 40)+`"},`, 90) +
		`{"role":"user","content":"x"}]}`)
	h := http.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		name string
		body []byte
	}{{"short", short}, {"100KB", long}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for range b.N {
				cacheKey("POST", "chat/completions?", "openai", h, c.body)
			}
		})
	}
}

// BenchmarkCacheWriter: what storing an answer costs the cache's writer
// (in the background of the requests, on a core they share), with 50,000
// answers stored and a second's batch at 3,000 misses a second.
func BenchmarkCacheWriter(b *testing.B) {
	c, err := OpenResponseCache(filepath.Join(b.TempDir(), "responses.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	body := []byte(strings.Repeat("x", 266))
	now := time.Now()
	put := func(i int) {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		if err := c.put(sum, &cacheEntry{ContentType: "application/json", Body: body, Stored: now}, now, 256<<20); err != nil {
			b.Fatal(err)
		}
	}
	const batch = 3000
	for i := range 50_000 {
		if put(-1 - i); i%batch == batch-1 {
			c.flush()
		}
	}
	c.flush()
	b.ResetTimer()
	for i := range b.N {
		if put(i); i%batch == batch-1 {
			c.flush()
		}
	}
	c.flush()
}
