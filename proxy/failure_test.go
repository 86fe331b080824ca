package proxy

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPathGuardDecodesSegments: dot segments written with any mix of
// literal and percent-encoded dots, and encoded slashes, never reach the
// upstream (a normalising front end would resolve them outside the base
// URL's prefix, with the real key attached).
func TestPathGuardDecodesSegments(t *testing.T) {
	var hits atomic.Int64
	var last atomic.Pointer[string]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		p := r.URL.Path
		last.Store(&p)
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"*"}, KeyEnv: "TEST_OPENAI_KEY"}}})
	for _, path := range []string{
		"/v1/.%2e/.%2e/x",
		"/v1/%2e./admin",
		"/v1/%2E%2e/admin",
		"/v1/%2e/x",
		"/v1/..%2fadmin",
		"/v1/..%2Fadmin",
		"/v1/models%2f..%2f..%2fadmin",
		"/v1/a%5c..%5cadmin",
		"/u/openai/.%2e/admin",
		"/u/openai/%2e./admin",
		"/u/openai/x%2Fy",
	} {
		t.Run(path, func(t *testing.T) {
			res, out := h.do(t, http.MethodGet, path, "", nil)
			require.Equal(t, http.StatusBadRequest, res.StatusCode, out)
			assert.Contains(t, out, "bad_path")
		})
	}
	assert.Zero(t, hits.Load(), "the upstream saw none of them")

	res, out := h.do(t, http.MethodGet, "/v1/files/file%20a.txt", "", nil)
	require.Equal(t, http.StatusOK, res.StatusCode, out, "other escapes pass")
	assert.Equal(t, "/v1/files/file a.txt", *last.Load(), "other escapes pass")
}

// TestConcurrentModelLists: many clients ask for /v1/models at once, while
// the upstreams' lists are fetched (one answers, one fails); -race finds
// any unguarded field of the cache.
func TestConcurrentModelLists(t *testing.T) {
	good := httptest.NewServer(&mockllm.Server{Models: []string{"gpt-4o"}})
	defer good.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer bad.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "good", BaseURL: good.URL + "/v1", Models: []string{"gpt-*"}, Auth: AuthNone},
		{Name: "bad", BaseURL: bad.URL + "/v1", Models: []string{"bad-*", "bad-1"}, Auth: AuthNone},
	}})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 4 {
				res, err := http.Get(h.url("/v1/models"))
				if !assert.NoError(t, err) {
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				assert.Equal(t, http.StatusOK, res.StatusCode)
				assert.Contains(t, string(body), `"gpt-4o"`)
				assert.Contains(t, string(body), `"bad-1"`)
			}
		})
	}
	wg.Wait()
}

// TestEditNeverOverwritesTheUsersFile: a tray toggle edits the file as it
// is on disk. When the user's last edit has a mistake (and was refused),
// the toggle is refused too and the file stays as the user wrote it; a
// --listen override is never written into the file.
func TestEditNeverOverwritesTheUsersFile(t *testing.T) {
	const good = "listen = \"127.0.0.1:4747\"\n\n[[pools]]\nname = \"work\"\nproxies = [\"socks5://127.0.0.1:1080\"]\n"
	path := writeConfig(t, good)
	svc, err := NewService(path, "127.0.0.1:0", envCreds(nil), nil, nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", svc.Forwarder.Config().Listen)

	require.NoError(t, svc.SetDirect(true))
	saved, err := LoadConfig(path)
	require.NoError(t, err)
	assert.True(t, saved.Direct)
	assert.Equal(t, "127.0.0.1:4747", saved.Listen, "the --listen override is not saved")
	assert.True(t, svc.Forwarder.Config().Direct)
	assert.Equal(t, "127.0.0.1:0", svc.Forwarder.Config().Listen, "and still applies")

	// The user adds an upstream by hand, with a mistake; the reload refuses it.
	mistake := "listen = \"127.0.0.1:4747\"\ndirect = true\n\n[[upstreams]]\nname = \"mine\"\nbase_url = \"htps://typo.example/v1\"\n"
	require.NoError(t, os.WriteFile(path, []byte(mistake), 0o600))
	require.Error(t, svc.Reload())

	err = svc.SetDirect(false)
	require.Error(t, err, "the tray toggle is refused")
	assert.Contains(t, err.Error(), "has a mistake")
	assert.Contains(t, err.Error(), "upstreams[0].base_url")
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, mistake, string(got), "the user's file is untouched")
	assert.True(t, svc.Forwarder.Config().Direct, "the config in use is unchanged")

	// Once fixed, a toggle keeps the user's new upstream.
	fixed := strings.Replace(mistake, "htps://", "https://", 1)
	require.NoError(t, os.WriteFile(path, []byte(fixed), 0o600))
	require.NoError(t, svc.SetDirect(false))
	saved, err = LoadConfig(path)
	require.NoError(t, err)
	assert.False(t, saved.Direct)
	require.Len(t, saved.Upstreams, 1, "the edit starts from the file, not from the config in use")
	assert.Equal(t, "mine", saved.Upstreams[0].Name)
	assert.Len(t, svc.Forwarder.Config().Upstreams, 1)
}

// TestForbiddenIsNotAVerdictOnTheKey: only a 401, or an error body that
// says the key is invalid, rejects a key. A 403 (a model the account may
// not use, a region refused) goes to the client as it is, no other key is
// tried, and every key stays usable.
func TestForbiddenIsNotAVerdictOnTheKey(t *testing.T) {
	type reply struct {
		status int
		body   string
	}
	const denied = `{"error":{"message":"you may not use model forbidden-1","type":"permission_error"}}`
	tests := []struct {
		name   string
		first  reply // key a's answer to the first request
		status int
		calls  []string
		states map[string]string
	}{
		{"403 goes back as it is", reply{403, denied},
			403, []string{"a:403"}, map[string]string{"a": KeyOK, "b": KeyOK}},
		{"403 with invalid_api_key rejects", reply{403, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`},
			200, []string{"a:403", "b:200"}, map[string]string{"a": KeyRejected, "b": KeyOK}},
		{"400 with API_KEY_INVALID rejects", reply{400, `{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}`},
			200, []string{"a:400", "b:200"}, map[string]string{"a": KeyRejected, "b": KeyOK}},
		{"400 for anything else goes back", reply{400, `{"error":{"message":"bad messages","type":"invalid_request_error"}}`},
			400, []string{"a:400"}, map[string]string{"a": KeyOK, "b": KeyOK}},
		{"401 rejects", reply{401, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`},
			200, []string{"a:401", "b:200"}, map[string]string{"a": KeyRejected, "b": KeyOK}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []string
			first := true
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				mu.Lock()
				rep := reply{200, `{"ok":true}`}
				if first && key == "a" {
					rep, first = tc.first, false
				}
				calls = append(calls, fmt.Sprintf("%s:%d", key, rep.status))
				mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(rep.status)
				io.WriteString(w, rep.body)
			}))
			defer up.Close()
			cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"*"}, Keys: []string{"a", "b"}, KeyStrategy: KeyFillFirst}}}
			cfg.applyDefaults()
			f := NewForwarder(keyCreds{"main": keys("a", "b")}, nil, nil)
			require.NoError(t, f.Apply(cfg, ""))
			srv := httptest.NewServer(f)
			defer srv.Close()

			post := func(model string) (int, string) {
				res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"`+model+`"}`))
				require.NoError(t, err)
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return res.StatusCode, string(b)
			}
			status, body := post("forbidden-1")
			assert.Equal(t, tc.status, status, body)
			if tc.status != 200 {
				assert.Equal(t, tc.first.body, body, "the upstream's answer, faithfully")
			}
			mu.Lock()
			assert.Equal(t, tc.calls, calls)
			mu.Unlock()
			for label, want := range tc.states {
				assert.Equal(t, want, keyState_(f, label), "key %s", label)
			}

			status, body = post("allowed-1")
			assert.Equal(t, 200, status, "the next request has a usable key: %s", body)
		})
	}
}

// TestKeyEnableEndpoint: a rejected key comes back with a POST from this
// machine (what `gatehouse key enable` sends); a web page cannot send it.
func TestKeyEnableEndpoint(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	rejectA := true
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, key)
		if key == "a" && rejectA {
			rejectA = false
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{}`)
	}))
	defer up.Close()
	cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"*"}, Keys: []string{"a", "b"}, KeyStrategy: KeyFillFirst}}}
	cfg.applyDefaults()
	f := NewForwarder(keyCreds{"main": keys("a", "b")}, nil, nil)
	require.NoError(t, f.Apply(cfg, ""))
	srv := httptest.NewServer(f)
	defer srv.Close()
	chat := func() {
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	chat()
	require.Equal(t, KeyRejected, keyState_(f, "a"))

	enable := func(method, ctype, origin, body string) (int, string) {
		req, err := http.NewRequest(method, srv.URL+KeyEnablePath, strings.NewReader(body))
		require.NoError(t, err)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	const ref = `{"upstream":"main","label":"a"}`
	for _, tc := range []struct {
		name                        string
		method, ctype, origin, body string
		status                      int
	}{
		{"from a web page", "POST", "application/json", "https://evil.example", ref, http.StatusForbidden},
		{"a form post", "POST", "application/x-www-form-urlencoded", "", ref, http.StatusUnsupportedMediaType},
		{"a GET", "GET", "", "", "", http.StatusMethodNotAllowed},
		{"an unknown key", "POST", "application/json", "", `{"upstream":"main","label":"zz"}`, http.StatusNotFound},
	} {
		status, out := enable(tc.method, tc.ctype, tc.origin, tc.body)
		assert.Equal(t, tc.status, status, "%s: %s", tc.name, out)
		assert.Equal(t, KeyRejected, keyState_(f, "a"), tc.name)
	}
	status, out := enable("POST", "application/json", "", ref)
	require.Equal(t, http.StatusOK, status, out)
	assert.JSONEq(t, `{"upstream":"main","label":"a","state":"ok"}`, out)
	assert.Equal(t, KeyOK, keyState_(f, "a"))
	chat()
	mu.Lock()
	assert.Equal(t, []string{"a", "b", "a"}, seen, "the enabled key is used again")
	mu.Unlock()
}

// TestSentRequestIsNeverSentAgain: once the primary has received the whole
// request, a first-byte timeout ends it with 504; neither the primary's
// other key nor the fallback gets it (the prompt would run, and be billed,
// twice).
func TestSentRequestIsNeverSentAgain(t *testing.T) {
	var primaryHits, fallbackHits atomic.Int64
	received := make(chan string, 4)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		primaryHits.Add(1)
		body, _ := io.ReadAll(r.Body)
		received <- string(body)
		<-r.Context().Done() // never answers
	}))
	defer primary.Close()
	fallback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fallbackHits.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer fallback.Close()
	cfg := &Config{Upstreams: []Upstream{
		{Name: "primary", BaseURL: primary.URL + "/v1", Models: []string{"m"}, Keys: []string{"a", "b"}, FirstByteTimeout: "100ms", Fallback: []string{"backup"}, RetryBackoffCap: "1ms"},
		{Name: "backup", BaseURL: fallback.URL + "/v1"},
	}}
	cfg.applyDefaults()
	f := NewForwarder(keyCreds{"primary": keys("a", "b"), "backup": keys("fb")}, nil, nil)
	require.NoError(t, f.Apply(cfg, ""))
	srv := httptest.NewServer(f)
	defer srv.Close()

	const body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"once"}]}`
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusGatewayTimeout, res.StatusCode, string(out))
	assert.Contains(t, string(out), "first_byte_timeout")
	assert.Equal(t, body, <-received, "the primary received the whole request")
	assert.Equal(t, int64(1), primaryHits.Load(), "not sent again with the other key")
	assert.Zero(t, fallbackHits.Load(), "not sent to the fallback")
}

// TestAnUnreachablePrimaryGivesWayToItsFallback: nothing of the request
// went out (the primary refused the connection), so the fallback gets it.
// With one upstream, whether it went out is not watched (it would change
// nothing); with a fallback it is, and this is the case it allows.
func TestAnUnreachablePrimaryGivesWayToItsFallback(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	fallback := httptest.NewServer(&mockllm.Server{})
	defer fallback.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "primary", BaseURL: closed.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, Fallback: []string{"backup"}},
		{Name: "backup", BaseURL: fallback.URL + "/v1", Auth: AuthNone},
	}})
	res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, out)
	rec := h.lastRecord(t, 1)
	assert.Equal(t, "backup", rec.Upstream)
	assert.Equal(t, 2, rec.Attempts)
}

// TestAStalledErrorBodyIsCutOff: an error answer (503) whose body stalls
// is read for what it says of limits and keys within the answer's wait, so
// request_timeout ends it with 504 while the upstream still holds it.
func TestAStalledErrorBodyIsCutOff(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"message":"busy`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, RequestTimeout: "300ms", RetryBackoffCap: "1ms"},
	}})
	client := &http.Client{Timeout: 30 * time.Second} // only so that the old behaviour fails instead of hanging
	res, err := client.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(`{"model":"m"}`))
	require.NoError(t, err, "the answer never came while the upstream held its error body")
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, http.StatusGatewayTimeout, res.StatusCode, string(out))
	assert.Contains(t, string(out), "no answer began within 300ms (request_timeout)")
}

// TestFirstByteTimeoutIsForStreams: a plain answer sends its headers only
// when it is complete, so first_byte_timeout does not cut it; it is bounded
// by request_timeout.
func TestFirstByteTimeoutIsForStreams(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection only after the body
		if strings.Contains(r.URL.Path, "slow") {
			<-release
		}
		if strings.Contains(r.URL.Path, "hang") {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, `{"usage":{"prompt_tokens":1,"completion_tokens":2}}`)
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, FirstByteTimeout: "50ms", RequestTimeout: "1s"},
	}})
	go func() {
		time.Sleep(200 * time.Millisecond) // four times first_byte_timeout
		close(release)
	}()
	res, out := h.do(t, http.MethodPost, "/v1/slow/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusOK, res.StatusCode, out)

	res, out = h.do(t, http.MethodPost, "/v1/hang/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusGatewayTimeout, res.StatusCode, out)
	assert.Contains(t, out, "request_timeout")
}

// gzipUpstream answers in gzip when asked to, as real APIs do: a plain
// chat completion with usage, or a stream whose event N+1 is written only
// after the client has read event N (ack).
func gzipUpstream(t *testing.T, events int, ack chan int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var out io.Writer = w
		flush := func() { w.(http.Flusher).Flush() }
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			defer zw.Close()
			out = zw
			flush = func() { zw.Flush(); w.(http.Flusher).Flush() }
		}
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(out, `{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(out, "data: {\"n\":%d,\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n", i)
			flush()
			select {
			case got := <-ack:
				if got != i {
					panic("out of order")
				}
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(out, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")
		flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCompressedAnswers: whatever the client accepts, the forwarder reads
// the answer as text: the usage of a plain answer is counted, and a stream
// is passed on event by event and recorded as complete.
func TestCompressedAnswers(t *testing.T) {
	const events = 4
	ack := make(chan int)
	up := gzipUpstream(t, events, ack)
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"*"}, Auth: AuthNone}}})

	res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, map[string]string{"Accept-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, res.Header.Get("Content-Encoding"))
	assert.Contains(t, out, `"prompt_tokens":11`)
	rec := h.lastRecord(t, 1)
	assert.Equal(t, int64(11), rec.PromptTokens, "usage of a gzip answer is counted")
	assert.Equal(t, int64(7), rec.CompletionTokens)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a deadlock guard, not a measurement
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url("/v1/chat/completions"), strings.NewReader(`{"model":"m","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Empty(t, res.Header.Get("Content-Encoding"))
	sc := bufio.NewScanner(res.Body)
	n := 0
	for n < events && sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		require.True(t, strings.HasPrefix(line, fmt.Sprintf(`data: {"n":%d,`, n)), line)
		ack <- n // the upstream writes the next event only now
		n++
	}
	require.Equal(t, events, n, "events arrived one by one")
	rest, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Contains(t, string(rest), "data: [DONE]")
	assert.NotContains(t, string(rest), `"usage"`, "the usage chunk Gatehouse asked for is not passed on")
	rec = h.lastRecord(t, 2)
	assert.Empty(t, rec.Error, "a complete stream")
	assert.Equal(t, int64(5), rec.PromptTokens)
	assert.Equal(t, int64(3), rec.CompletionTokens)
}

// TestBrokenUpstreamLeavesThePoolUp: a pool shared by a healthy upstream,
// one with an untrusted certificate, one the proxy cannot reach and one
// whose name the proxy cannot resolve. Requests to the broken ones get 502
// again and again; the members stay up and the healthy upstream keeps
// being served through the first of them.
func TestBrokenUpstreamLeavesThePoolUp(t *testing.T) {
	healthy := httptest.NewServer(&mockllm.Server{})
	defer healthy.Close()
	untrusted := httptest.NewTLSServer(&mockllm.Server{})
	defer untrusted.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	gone := "https://" + closed.Listener.Addr().String()
	closed.Close()
	check := generate204()
	defer check.Close()

	for _, order := range []string{"http proxy first", "socks5h first"} {
		t.Run(order, func(t *testing.T) {
			hp, sp := testproxy.HTTP("", ""), testproxy.SOCKS5("", "")
			defer hp.Stop()
			defer sp.Stop()
			// The HTTP proxy cannot reach nowhere.test either.
			hp.Resolve = func(addr string) string {
				return strings.Replace(addr, "nowhere.test:443", strings.TrimPrefix(gone, "https://"), 1)
			}
			members := []string{hp.URL, "socks5h://" + sp.Addr}
			if order == "socks5h first" {
				members[0], members[1] = members[1], members[0]
			}
			cfg := &Config{
				Pools: []Pool{{Name: "shared", Strategy: "fallback", Proxies: members, CheckURL: check.URL, Interval: "1h", Timeout: "5s", MaxFails: 1}},
				Upstreams: []Upstream{
					{Name: "healthy", BaseURL: healthy.URL + "/v1", Models: []string{"ok-*"}, Auth: AuthNone, Via: "pool:shared"},
					{Name: "untrusted", BaseURL: untrusted.URL + "/v1", Models: []string{"tls-*"}, Auth: AuthNone, Via: "pool:shared"},
					{Name: "gone", BaseURL: gone + "/v1", Models: []string{"gone-*"}, Auth: AuthNone, Via: "pool:shared"},
					{Name: "noname", BaseURL: "https://nowhere.test/v1", Models: []string{"name-*"}, Auth: AuthNone, Via: "pool:shared"},
				},
			}
			h := newHarness(t, cfg)
			h.fwd.CheckNow(context.Background())
			states := func() []string {
				var out []string
				for _, m := range h.fwd.Status().Pools[0].Members {
					out = append(out, m.State)
				}
				return out
			}
			require.Equal(t, []string{"up", "up"}, states())

			for _, tc := range []struct{ model, cause string }{
				{"tls-1", "certificate"},
				{"gone-1", ""},
				{"name-1", ""},
			} {
				for range 3 { // max_fails is 1: a single count would mark a member down
					res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"`+tc.model+`"}`, nil)
					require.Equal(t, http.StatusBadGateway, res.StatusCode, "%s: %s", tc.model, out)
					assert.Contains(t, out, tc.cause)
				}
				assert.Equal(t, []string{"up", "up"}, states(), "after %s", tc.model)
			}
			res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"ok-1"}`, nil)
			require.Equal(t, http.StatusOK, res.StatusCode, out)
			assert.Equal(t, "pool shared via "+members[0], h.lastRecord(t, 10).Route, "still the first member")
		})
	}
}

// TestPassiveFailuresAreCounted: a member that cannot be reached is marked
// down only after max_fails failures within fail_duration; meanwhile each
// request goes through the next member, and none is lost.
func TestPassiveFailuresAreCounted(t *testing.T) {
	s := newPoolSetup(t, "fallback", []*testproxy.Proxy{testproxy.SOCKS5("", ""), testproxy.HTTP("", "")}, func(c *Config) {
		c.Pools[0].MaxFails = 3
		c.Pools[0].FailDuration = "1h"
	})
	s.h.fwd.CheckNow(context.Background())
	s.stop(0)
	for i := range 3 {
		assert.Equal(t, "up", s.status()[s.proxies[0].URL], "after %d failures", i)
		assert.Equal(t, []string{s.via(1)}, s.send(t, 1), "the request went through the next member")
	}
	assert.Equal(t, "down", s.status()[s.proxies[0].URL], "after max_fails")
	assert.Contains(t, s.h.fwd.Status().Pools[0].Members[0].LastError, "connection refused")
}

// heldChecks is a check URL that holds every check until released, and
// tells when each arrives, by path.
type heldChecks struct {
	srv      *httptest.Server
	arrived  chan string
	release  chan struct{}
	mu       sync.Mutex
	arrivals map[string]int
}

func newHeldChecks(t *testing.T) *heldChecks {
	hc := &heldChecks{arrived: make(chan string, 64), release: make(chan struct{}), arrivals: map[string]int{}}
	hc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hc.mu.Lock()
		hc.arrivals[r.URL.Path]++
		hc.mu.Unlock()
		hc.arrived <- r.URL.Path
		select {
		case <-hc.release:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hc.srv.Close)
	return hc
}

func (hc *heldChecks) count(path string) int {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	return hc.arrivals[path]
}

// TestCancelledCheckLeavesMembersAsTheyWere: a check called off halfway
// (a reload, a stop) says nothing of the member.
func TestCancelledCheckLeavesMembersAsTheyWere(t *testing.T) {
	hc := newHeldChecks(t)
	s := newPoolSetup(t, "fallback", []*testproxy.Proxy{testproxy.SOCKS5("", "")}, func(c *Config) { c.Pools[0].CheckURL = hc.srv.URL + "/a" })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.h.fwd.CheckNow(ctx); close(done) }()
	<-hc.arrived // the check is under way
	cancel()
	<-done
	m := s.h.fwd.Status().Pools[0].Members[0]
	assert.Equal(t, "unchecked", m.State)
	assert.Empty(t, m.LastError)
	assert.Zero(t, m.LastCheck)
	assert.Equal(t, []string{s.via(0)}, s.send(t, 1), "still in use")
}

// TestReloadKeepsChecksOfUnchangedPools: a reload restarts the checks of
// the pools it changed only. The first pool's check, under way during the
// reload, is not called off (and so not made again).
func TestReloadKeepsChecksOfUnchangedPools(t *testing.T) {
	hc := newHeldChecks(t)
	a, b := testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")
	s := newPoolSetup(t, "fallback", []*testproxy.Proxy{a}, func(c *Config) { c.Pools[0].CheckURL = hc.srv.URL + "/a" })
	defer b.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.h.fwd.RunChecks(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	require.Equal(t, "/a", <-hc.arrived, "the first check runs at start")

	cfg := s.h.fwd.Config().Clone()
	cfg.Pools = append(cfg.Pools, Pool{Name: "other", Strategy: "fallback", Proxies: []string{b.URL}, CheckURL: hc.srv.URL + "/b", Interval: "1h", Timeout: "5s", Tolerance: "10ms"})
	cfg.AllowedHosts = []string{"gatehouse.localhost"}
	cfg.applyDefaults()
	require.NoError(t, s.h.fwd.Apply(cfg, ""))
	for p := <-hc.arrived; p != "/b"; p = <-hc.arrived {
	} // the reload was handled: the new pool's check started
	close(hc.release)
	eventually(t, "both pools' members up", func() bool {
		st := s.h.fwd.Status()
		return st.Pools[0].Members[0].State == "up" && st.Pools[1].Members[0].State == "up"
	})
	assert.Equal(t, 1, hc.count("/a"), "the unchanged pool's check was neither called off nor made again")
}

// TestWatchKeepsGoingAfterAnError: the watcher's errors are read (an
// unread one stops its events), and after one — an overflow — the file is
// read again and later changes still apply.
func TestWatchKeepsGoingAfterAnError(t *testing.T) {
	watchers := make(chan *fsnotify.Watcher, 1)
	old := newWatcher
	newWatcher = func() (*fsnotify.Watcher, error) {
		w, err := fsnotify.NewWatcher()
		if err == nil {
			watchers <- w
		}
		return w, err
	}
	t.Cleanup(func() { newWatcher = old })
	a, b := &mockllm.Server{}, &mockllm.Server{}
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	path := filepath.Join(t.TempDir(), "config.toml")
	write := func(base string) {
		cfg := &Config{Upstreams: []Upstream{{Name: "up", BaseURL: base + "/v1", Models: []string{"m"}, Auth: AuthNone}}}
		cfg.applyDefaults()
		require.NoError(t, SaveConfig(path, cfg))
	}
	write(sa.URL)
	logs := &syncBuffer{}
	svc, _, stop := startService(t, path, logs, nil, time.Second)
	w := <-watchers

	select {
	case w.Errors <- fsnotify.ErrEventOverflow:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("the service never read the watcher's error")
	}
	write(sb.URL)
	eventually(t, "a change after the error to apply", func() bool { return svc.Forwarder.Config().Upstreams[0].BaseURL == sb.URL+"/v1" })
	assert.Contains(t, logs.String(), "queue or buffer overflow")
	require.NoError(t, stop())
}

// TestReplacedCAFileApplies: the upstream moves to a certificate from
// another CA and the user replaces the ca_file; the next reload uses the
// new roots (transports were cached by the file's path).
func TestReplacedCAFileApplies(t *testing.T) {
	ca1, ca2 := testpki.NewCA("First CA"), testpki.NewCA("Second CA")
	pair := func(ca *testpki.CA) *tls.Certificate {
		s := ca.Server()
		c, err := tls.X509KeyPair(s.CertPEM, s.KeyPEM)
		require.NoError(t, err)
		return &c
	}
	var cert atomic.Pointer[tls.Certificate]
	cert.Store(pair(ca1))
	up := httptest.NewUnstartedServer(&mockllm.Server{})
	up.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{Certificates: []tls.Certificate{*cert.Load()}}, nil
	}}
	up.StartTLS()
	defer up.Close()

	dir := t.TempDir()
	caPath := filepath.Join(dir, "upstream-ca.pem")
	require.NoError(t, os.WriteFile(caPath, ca1.PEM, 0o600))
	path := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("[[upstreams]]\nname = \"up\"\nbase_url = %q\nmodels = [\"m\"]\nauth = \"none\"\nca_file = \"upstream-ca.pem\"\n", up.URL+"/v1")), 0o600))
	svc, err := NewService(path, "127.0.0.1:0", envCreds(nil), nil, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(svc.Forwarder)
	defer srv.Close()
	defer svc.Forwarder.Close()
	post := func() (int, string) {
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	status, out := post()
	require.Equal(t, http.StatusOK, status, out)

	cert.Store(pair(ca2))
	up.CloseClientConnections() // the next request makes a new handshake
	require.NoError(t, os.WriteFile(caPath, ca2.PEM, 0o600))
	require.NoError(t, svc.Reload()) // as SIGHUP, or any save of the config, does
	status, out = post()
	assert.Equal(t, http.StatusOK, status, out)
}

// TestSettleNeedsTheToken: ?settle=1 (drop idle upstream connections,
// collect garbage) is for the soak tool, which starts the forwarder with a
// token; any other caller, a web page's image tag included, only reads
// the status.
func TestSettleNeedsTheToken(t *testing.T) {
	var dials atomic.Int64
	up := httptest.NewUnstartedServer(&mockllm.Server{})
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone}}})
	h.fwd.AllowSettle("soak-token-1")
	n := 0
	chat := func() {
		res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, out)
		n++
		h.lastRecord(t, n) // the upstream connection is idle again
	}
	status := func(header map[string]string) {
		res, out := h.do(t, http.MethodGet, StatusPath+"?settle=1", "", header)
		require.Equal(t, http.StatusOK, res.StatusCode, out)
		n++
		h.lastRecord(t, n)
	}
	chat()
	status(nil)
	status(map[string]string{"X-Gatehouse-Settle": "wrong"})
	chat()
	assert.Equal(t, int64(1), dials.Load(), "the idle connection was kept")
	status(map[string]string{"X-Gatehouse-Settle": "soak-token-1"})
	chat()
	assert.Equal(t, int64(2), dials.Load(), "settled: the idle connection was dropped")
}
