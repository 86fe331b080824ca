package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pacedHarness is a forwarder for one upstream with one key and the
// given pacing, in front of an upstream that notes when each request
// arrived and can hold its answers until release is closed.
type pacedHarness struct {
	*harness
	mu       sync.Mutex
	arrivals []time.Time
	release  chan struct{}
}

func newPacedHarness(t *testing.T, up Upstream) *pacedHarness {
	p := &pacedHarness{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.arrivals = append(p.arrivals, time.Now())
		p.mu.Unlock()
		<-p.release
		fmt.Fprint(w, `{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}`)
	}))
	t.Cleanup(srv.Close)
	up.Name, up.BaseURL, up.Models, up.Keys = "main", srv.URL+"/v1", []string{"m"}, []string{"a"}
	cfg := &Config{Upstreams: []Upstream{up}}
	cfg.applyDefaults()
	p.harness = &harness{reqlog: NewRequestLog(0), logs: &syncBuffer{}}
	p.fwd = NewForwarder(keyCreds{"main": keys("a")}, p.reqlog, nil)
	require.NoError(t, p.fwd.Apply(cfg, ""))
	p.srv = httptest.NewServer(p.fwd)
	t.Cleanup(p.srv.Close)
	return p
}

// TestPacingStartsRequestsNoFasterThanTheRate: with requests_per_minute =
// 120 (two a second, two at once), 12 concurrent requests all succeed, and
// the upstream sees request i no sooner than (i-1)/2 seconds after the
// first. A slow machine only widens the gaps, so this lower bound cannot
// fail for the machine's sake.
func TestPacingStartsRequestsNoFasterThanTheRate(t *testing.T) {
	p := newPacedHarness(t, Upstream{RequestsPerMinute: 120})
	close(p.release)
	var wg sync.WaitGroup
	codes := make([]int, 12)
	for i := range codes {
		wg.Go(func() {
			res, _ := p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	for _, c := range codes {
		assert.Equal(t, http.StatusOK, c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Len(t, p.arrivals, 12)
	first := p.arrivals[0]
	for i, at := range p.arrivals {
		earliest := time.Duration(max(i-1, 0)) * 500 * time.Millisecond
		assert.GreaterOrEqual(t, at.Sub(first)+10*time.Millisecond, earliest,
			"request %d reached the upstream %s after the first, faster than 120 a minute", i+1, at.Sub(first))
	}
}

// TestPacingGivesUpAtQueueTimeout: with one request a minute and a short
// queue_timeout, the second request gets 429 in OpenAI's shape, naming the
// limit, at once (it would wait longer than it may), and /v1/queue shows
// a request that waits.
func TestPacingGivesUpAtQueueTimeout(t *testing.T) {
	p := newPacedHarness(t, Upstream{RequestsPerMinute: 1, QueueTimeout: "200ms"})
	close(p.release)
	res, _ := p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, body := p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e))
	assert.Equal(t, "rate_limit_exceeded", e.Error.Code)
	assert.Contains(t, e.Error.Message, "requests_per_minute")
	assert.Contains(t, e.Error.Message, "frees up at")
	p.mu.Lock()
	assert.Len(t, p.arrivals, 1, "the paced request went out")
	p.mu.Unlock()
}

func TestPacingCountsTokens(t *testing.T) {
	p := newPacedHarness(t, Upstream{TokensPerMinute: 600, QueueTimeout: "200ms"})
	close(p.release)
	res, _ := p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":500}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, body := p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":500}`, nil)
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Contains(t, body, "tokens_per_minute")
	res, _ = p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":10}`, nil)
	assert.Equal(t, http.StatusOK, res.StatusCode, "a small request still fits")
}

func TestQueueShowsPacedRequests(t *testing.T) {
	p := newPacedHarness(t, Upstream{RequestsPerMinute: 1, QueueTimeout: "2m"})
	close(p.release)
	res, _ := p.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, p.url("/v1/chat/completions"), strings.NewReader(`{"model":"m"}`))
		req.Header.Set("Content-Type", "application/json")
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			done <- res.StatusCode
		}
	}()
	var q []QueueStatus
	deadline := time.Now().Add(10 * time.Second) // only stops a broken test from hanging
	for {
		q = p.fwd.Queue()
		if q[0].Paced == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	require.EqualValues(t, 1, q[0].Paced)
	require.NotNil(t, q[0].Wait)
	assert.Equal(t, "requests_per_minute", q[0].Wait.Limit)
	assert.True(t, q[0].Wait.Until.After(time.Now().Add(30*time.Second)), "the first frees up in about a minute")
	p.srv.CloseClientConnections()
}

func TestEstimateTokens(t *testing.T) {
	for body, want := range map[string]int{
		`{"model":"m","max_tokens":1000}`:                               1000,
		`{"max_output_tokens":50}`:                                      50,
		`{"model":"abc"}`:                                               0,
		`{"max_completion_tokens":70,"max_tokens":20}`:                  20, // max_tokens first, wherever it is
		`{"generationConfig":{"maxOutputTokens":300},"contents":[]}`:    300,
		`{"generationConfig":{"temperature":0},"max_output_tokens":40}`: 40,
		`{"messages":[{"max_tokens":9}],"max_tokens":5}`:                5, // a field of the top level only
	} {
		assert.Equal(t, want+len(body)/4, estimateTokens([]byte(body), scanJSON("application/json", []byte(body))), body)
	}
}

func TestEstimateCountsAnImageAsAnImage(t *testing.T) {
	img := strings.Repeat("iVBORw0KGgo", 14000) // ~150 KB of base64
	for _, body := range []string{
		`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` + img + `"}}]}]}`,
		`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"` + img + `"}}]}]}`,
	} {
		got := estimateTokens([]byte(body), scanJSON("application/json", []byte(body)))
		assert.Less(t, got, 100+mediaTokens+200, "an image counted by its bytes")
		assert.GreaterOrEqual(t, got, 100+mediaTokens)
	}
}

// TestPacingKeepsTheRoundRobin: with pacing on, the keys are still used in
// turn (listing them turns the round-robin, so it happens once a request).
func TestPacingKeepsTheRoundRobin(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		mu.Unlock()
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	}))
	defer srv.Close()
	cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: srv.URL + "/v1", Models: []string{"m"}, Keys: []string{"a", "b"}, RequestsPerMinute: 6000}}}
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{"main": keys("a", "b")})
	for range 4 {
		res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"a", "b", "a", "b"}, seen)
}

// countingUpstream answers each request with answer(n, key), n counting
// from 1, and keeps the keys it saw in order, and when.
type countingUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
	at   []time.Time
}

func newCountingUpstream(t *testing.T, answer func(n int, key string, w http.ResponseWriter)) *countingUpstream {
	u := &countingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		u.mu.Lock()
		u.seen, u.at = append(u.seen, key), append(u.at, time.Now())
		n := len(u.seen)
		u.mu.Unlock()
		answer(n, key, w)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *countingUpstream) keys() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen)
}

// firstFails is a forwarder for u, with one key "a", in front of an
// upstream whose first answer is a 500 (with Retry-After when retryAfter
// is set) and every later one a 200.
func firstFails(t *testing.T, u Upstream, retryAfter string) (*countingUpstream, *harness) {
	up := newCountingUpstream(t, func(n int, _ string, w http.ResponseWriter) {
		if n == 1 {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	})
	u.Name, u.BaseURL, u.Models, u.Keys = "main", up.URL+"/v1", []string{"m"}, []string{"a"}
	cfg := &Config{Upstreams: []Upstream{u}}
	cfg.applyDefaults()
	return up, keyedHarness(t, cfg, keyCreds{"main": keys("a")})
}

// TestPacingHoldsBackARetry: with one request a minute on the only key, a
// 500 is not retried within queue_timeout (the retry would exceed the
// pace): the client gets the 500, and the upstream saw one request.
func TestPacingHoldsBackARetry(t *testing.T) {
	up, h := firstFails(t, Upstream{RequestsPerMinute: 1, QueueTimeout: "200ms", RetryBackoffCap: "1ms"}, "")
	res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
	assert.Equal(t, []string{"a"}, up.keys())
	assert.Equal(t, 1, h.lastRecord(t, 1).Attempts)
}

// TestPacingRetryWaitsForRoom: with one request a second on the only key
// and queue_timeout long enough, the retry of a 500 waits for the key's
// room and then goes: the upstream sees it no sooner than a second after
// the first (a lower bound, which a slow machine only widens).
func TestPacingRetryWaitsForRoom(t *testing.T) {
	up, h := firstFails(t, Upstream{RequestsPerMinute: 60, QueueTimeout: "30s", RetryBackoffCap: "1ms"}, "")
	res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, []string{"a", "a"}, up.keys())
	up.mu.Lock()
	defer up.mu.Unlock()
	assert.GreaterOrEqual(t, up.at[1].Sub(up.at[0])+10*time.Millisecond, time.Second, "the retry did not wait for the key's room")
}

// TestPacingPacesTheRetryOnAnotherKey: after key a's 429, the retry goes
// to key b, which has room, and takes it: the next request, with a
// cooling and b used, is held back (429 from pacing), where an unpaced
// retry would have left b's room for it.
func TestPacingPacesTheRetryOnAnotherKey(t *testing.T) {
	up := newCountingUpstream(t, func(_ int, key string, w http.ResponseWriter) {
		if key == "a" {
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded"}}`)
			return
		}
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	})
	cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"m"}, Keys: []string{"a", "b"},
		RequestsPerMinute: 1, QueueTimeout: "200ms", RetryBackoffCap: "1ms"}}}
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{"main": keys("a", "b")})
	res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Contains(t, body, "requests_per_minute")
	assert.Equal(t, []string{"a", "b"}, up.keys())
}

// TestPacingHoldsBackAFallback: a fallback's own pacing holds for the
// attempts that reach it from another upstream. Its one request a minute
// is used by a direct call first; then the primary's 500s are retried on
// the primary alone, and the client gets its last 500.
func TestPacingHoldsBackAFallback(t *testing.T) {
	primary, backup, h := failingPrimaryPacedBackup(t, "", Upstream{QueueTimeout: "200ms", RetryBackoffCap: "1ms"})
	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
	assert.Contains(t, body, "boom")
	assert.Equal(t, []string{"b"}, backup.keys(), "the fallback was asked only once, directly")
	assert.Equal(t, []string{"p", "p", "p"}, primary.keys())
}

// TestPacingRetryKeepsWithinRequestTimeout: a retry whose key's room, or
// whose backoff alone, would come after request_timeout is passed over,
// and the client gets the 500 rather than a 504 made up by an attempt
// that began with no time left.
func TestPacingRetryKeepsWithinRequestTimeout(t *testing.T) {
	for _, tc := range []struct {
		name       string
		up         Upstream
		retryAfter string
	}{
		{"the key's room", Upstream{RequestsPerMinute: 30, QueueTimeout: "30s", RetryBackoffCap: "1ms"}, ""},
		{"the backoff, unpaced", Upstream{RetryBackoffCap: "5s"}, "3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.up
			u.RequestTimeout = "1s"
			up, h := firstFails(t, u, tc.retryAfter)
			res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			assert.Equal(t, http.StatusInternalServerError, res.StatusCode)
			assert.Equal(t, []string{"a"}, up.keys())
			assert.Equal(t, 1, h.lastRecord(t, 1).Attempts)
		})
	}
}

// TestPacingRetryTakesNoRoomAhead: a request that waits for tokens while
// another's retry sits out its backoff still waits its full time; the
// retry takes its room only when it would go (the buckets count time
// forward only), and then there is none. The gap is a lower bound, which a
// slow machine only widens.
func TestPacingRetryTakesNoRoomAhead(t *testing.T) {
	first := make(chan struct{})
	up := newCountingUpstream(t, func(n int, _ string, w http.ResponseWriter) {
		if n == 1 {
			close(first)
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	})
	cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"m"}, Keys: []string{"a"},
		TokensPerMinute: 6000, QueueTimeout: "30s"}}} // 100 tokens a second
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{"main": keys("a")})
	var wg sync.WaitGroup
	var big int
	wg.Go(func() {
		res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":5990}`, nil)
		big = res.StatusCode
	})
	<-first
	res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":190}`, nil)
	assert.Equal(t, http.StatusOK, res.StatusCode)
	wg.Wait()
	assert.Equal(t, http.StatusInternalServerError, big, "the big request's retry found no room")
	require.Len(t, up.keys(), 2)
	up.mu.Lock()
	defer up.mu.Unlock()
	assert.GreaterOrEqual(t, up.at[1].Sub(up.at[0])+10*time.Millisecond, 1500*time.Millisecond,
		"the small request went before its tokens were back")
}

// TestPacingOverloadedWhileWaiting: an upstream that says it is overloaded
// while a request waits for its pace is not tried first by that request:
// its fallback is.
func TestPacingOverloadedWhileWaiting(t *testing.T) {
	var h *harness
	waiting := func() int64 { return h.fwd.state.Load().byName["main"].pacer.waiting.Load() }
	primary := newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		// Until the second request waits in line (at most 10 s: on code
		// that does not get there, the test fails rather than hangs).
		for until := time.Now().Add(10 * time.Second); waiting() == 0 && time.Now().Before(until); {
			time.Sleep(time.Millisecond)
		}
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	})
	backup := newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	})
	cfg := &Config{Upstreams: []Upstream{
		{Name: "main", BaseURL: primary.URL + "/v1", Models: []string{"m"}, Keys: []string{"p"}, Fallback: []string{"backup"},
			RequestsPerMinute: 60, QueueTimeout: "30s"},
		{Name: "backup", BaseURL: backup.URL + "/v1", Keys: []string{"b"}},
	}}
	cfg.applyDefaults()
	h = keyedHarness(t, cfg, keyCreds{"main": keys("p"), "backup": keys("b")})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			assert.Equal(t, http.StatusOK, res.StatusCode, body)
		})
	}
	wg.Wait()
	assert.Equal(t, []string{"p"}, primary.keys(), "the second request tried the upstream known to be overloaded")
	assert.Equal(t, []string{"b", "b"}, backup.keys())
}

// TestPacingLeavesAnOverloadedUpstreamUncharged: while the routed upstream
// backs off as overloaded, its fallback goes first and the request is not
// counted against the routed upstream's keys, which it does not reach.
func TestPacingLeavesAnOverloadedUpstreamUncharged(t *testing.T) {
	primary := newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(529)
		fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
	})
	backup := newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	})
	cfg := &Config{Upstreams: []Upstream{
		{Name: "main", BaseURL: primary.URL + "/v1", Models: []string{"m"}, Keys: []string{"p"}, Fallback: []string{"backup"},
			RequestsPerMinute: 1, QueueTimeout: "200ms"},
		{Name: "backup", BaseURL: backup.URL + "/v1", Keys: []string{"b"}},
	}}
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{"main": keys("p"), "backup": keys("b")})
	for i := range 3 {
		res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, "request %d: %s", i+1, body)
	}
	assert.Equal(t, []string{"p"}, primary.keys(), "the overloaded upstream was asked once")
	assert.Equal(t, []string{"b", "b", "b"}, backup.keys())
}

// TestPaceRetryGivesBackWhatItDoesNotUse: a retry passed over (its room
// comes after its deadline) takes nothing, and one whose client leaves
// while it waits gives its room back in full. The buckets are read at a
// time a minute on, so the refill meanwhile does not blur them.
func TestPaceRetryGivesBackWhatItDoesNotUse(t *testing.T) {
	pc := (&pacers{}).get(&Upstream{Name: "x", RequestsPerMinute: 60, TokensPerMinute: 600}) // one request a second
	t0 := time.Now()
	p, w, why := pc.retry("k", 100, t0)
	require.NotNil(t, p)
	require.Zero(t, w, "the buckets start full")
	require.Nil(t, why)
	k := pc.key("k")
	later := t0.Add(time.Minute)
	reqs, toks := k.req.TokensAt(later), k.tok.TokensAt(later)

	p, _, why = pc.retry("k", 100, t0.Add(500*time.Millisecond))
	assert.Nil(t, p, "its room comes in a second, after its deadline")
	require.NotNil(t, why)
	assert.Equal(t, "requests_per_minute", why.Limit)
	assert.InDelta(t, reqs, k.req.TokensAt(later), 1e-9, "a pass-over took requests")
	assert.InDelta(t, toks, k.tok.TokensAt(later), 1e-9, "a pass-over took tokens")

	p, w, why = pc.retry("k", 100, later)
	require.NotNil(t, p)
	assert.InDelta(t, time.Second, w, float64(100*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the client left
	require.Error(t, pc.hold(ctx, p, w, why))
	assert.InDelta(t, reqs, k.req.TokensAt(later), 1e-6, "the room was not given back")
	assert.InDelta(t, toks, k.tok.TokensAt(later), 1e-6, "the tokens were not given back")
	assert.Zero(t, pc.waiting.Load())
	assert.Nil(t, pc.why.Load())
}

// TestPacingCorrectsAnUpstreamWithoutKeys: an upstream with auth = "none"
// is paced as one key, and an answer's usage beyond the estimate is taken
// from it too.
func TestPacingCorrectsAnUpstreamWithoutKeys(t *testing.T) {
	up := newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		fmt.Fprint(w, `{"id":"x","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":800}}`)
	})
	cfg := &Config{Upstreams: []Upstream{{Name: "local", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone,
		TokensPerMinute: 1000, QueueTimeout: "200ms"}}}
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{})
	res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":10}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m","max_tokens":500}`, nil)
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode, "the first answer's 900 tokens were not counted")
	assert.Contains(t, body, "tokens_per_minute")
	assert.Len(t, up.keys(), 1)
}

// TestRetryAfterAPassOverKeepsWithinRequestTimeout: once the backoff is
// waited and a paced fallback passed over (no room), the next candidate
// is checked against its request_timeout too: the client gets the 500,
// not a 504 from an attempt begun with no time left.
func TestRetryAfterAPassOverKeepsWithinRequestTimeout(t *testing.T) {
	primary, _, h := failingPrimaryPacedBackup(t, "2", Upstream{RequestTimeout: "1s", QueueTimeout: "200ms"})
	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusInternalServerError, res.StatusCode, body)
	assert.Equal(t, []string{"p"}, primary.keys())
	assert.Equal(t, 1, h.lastRecord(t, 2).Attempts)
}

// failingPrimaryPacedBackup is upstream "main" (key p; the times of main
// as given), whose every answer is a 500 (with Retry-After when
// retryAfter is set), with fallback "backup" (key b) at one request a
// minute, that minute's request already used by a direct call.
func failingPrimaryPacedBackup(t *testing.T, retryAfter string, main Upstream) (primary, backup *countingUpstream, h *harness) {
	t.Helper()
	primary = newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":{"message":"boom"}}`)
	})
	backup = newCountingUpstream(t, func(_ int, _ string, w http.ResponseWriter) {
		fmt.Fprint(w, `{"id":"x","choices":[]}`)
	})
	main.Name, main.BaseURL, main.Models, main.Keys, main.Fallback = "main", primary.URL+"/v1", []string{"m"}, []string{"p"}, []string{"backup"}
	cfg := &Config{Upstreams: []Upstream{main, {Name: "backup", BaseURL: backup.URL + "/v1", Keys: []string{"b"}, RequestsPerMinute: 1}}}
	cfg.applyDefaults()
	h = keyedHarness(t, cfg, keyCreds{"main": keys("p"), "backup": keys("b")})
	res, _ := h.do(t, http.MethodPost, "/u/backup/chat/completions", `{"model":"x"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	return primary, backup, h
}
