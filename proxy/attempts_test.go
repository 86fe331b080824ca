package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyCreds holds several keys per upstream, as the keystore does.
type keyCreds map[string][]Credential

func (k keyCreds) Credential(up *Upstream) (Credential, error) {
	if c := k[up.Name]; len(c) > 0 {
		return c[0], nil
	}
	return Credential{}, fmt.Errorf("%w for upstream %q", ErrNoCredential, up.Name)
}

func (k keyCreds) Credentials(up *Upstream) ([]Credential, error) {
	if c := k[up.Name]; len(c) > 0 {
		return c, nil
	}
	return nil, fmt.Errorf("%w for upstream %q", ErrNoCredential, up.Name)
}

// scripted is an upstream that answers each key from a script: the next
// answer in its list, or 200 when the list is used up. It logs
// "key:status" for every request.
type scripted struct {
	mu     sync.Mutex
	script map[string][]answer
	log    []string
}

type answer struct {
	status     int
	retryAfter string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	a := answer{status: 200}
	if list := s.script[key]; len(list) > 0 {
		a, s.script[key] = list[0], list[1:]
	}
	s.log = append(s.log, fmt.Sprintf("%s:%d", key, a.status))
	s.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	fmt.Fprintf(w, `{"status":%d,"key":%q}`, a.status, key)
}

func (s *scripted) calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func keys(labels ...string) []Credential {
	out := make([]Credential, len(labels))
	for i, l := range labels {
		out[i] = Credential{Label: l, Secret: l}
	}
	return out
}

type retryCase struct {
	name     string
	script   map[string][]answer
	fallback map[string][]answer // a second upstream, if set
	strategy string
	status   int      // what the client gets
	calls    []string // what the upstreams saw, in order
	states   map[string]string
	then     string // what a second request's answer says, if set
}

func TestRetriesAndKeyStates(t *testing.T) {
	tests := []retryCase{
		{name: "429 with Retry-After cools the key, the next key answers",
			script: map[string][]answer{"a": {{429, "120"}}},
			status: 200, calls: []string{"a:429", "b:200"}, states: map[string]string{"a": KeyCooling, "b": KeyOK}},
		{name: "429 without Retry-After cools too",
			script: map[string][]answer{"a": {{429, ""}}},
			status: 200, calls: []string{"a:429", "b:200"}, states: map[string]string{"a": KeyCooling}},
		{name: "529 overloaded: the upstream's other keys are spared, its keys stay ok",
			script: map[string][]answer{"a": {{529, ""}}},
			status: 529, calls: []string{"a:529"}, states: map[string]string{"a": KeyOK, "b": KeyOK}},
		{name: "529 overloaded goes to the fallback",
			script: map[string][]answer{"a": {{529, ""}}}, fallback: map[string][]answer{},
			status: 200, calls: []string{"a:529", "fb:200"}, states: map[string]string{"a": KeyOK}},
		{name: "401 rejects the key, the next one answers",
			script: map[string][]answer{"a": {{401, ""}}},
			status: 200, calls: []string{"a:401", "b:200"}, states: map[string]string{"a": KeyRejected, "b": KeyOK}},
		{name: "503 then 200 on the next key, and the first stays usable",
			script: map[string][]answer{"a": {{503, ""}}},
			status: 200, calls: []string{"a:503", "b:200"}, states: map[string]string{"a": KeyOK, "b": KeyOK}},
		{name: "400 is never retried",
			script: map[string][]answer{"a": {{400, ""}}},
			status: 400, calls: []string{"a:400"}},
		{name: "404, 413 and 422 are the client's",
			script: map[string][]answer{"a": {{422, ""}}},
			status: 422, calls: []string{"a:422"}},
		{name: "500 on every key, then the fallback upstream",
			script:   map[string][]answer{"a": {{500, ""}}, "b": {{500, ""}}},
			fallback: map[string][]answer{},
			status:   200, calls: []string{"a:500", "b:500", "fb:200"}},
		{name: "at most three attempts; the last answer goes back faithfully",
			script: map[string][]answer{"a": {{502, ""}, {502, ""}}, "b": {{502, ""}}},
			status: 502, calls: []string{"a:502", "b:502", "a:502"}},
		{name: "every key cooling: 429 from the forwarder, the upstream is spared",
			script: map[string][]answer{"a": {{429, "300"}}, "b": {{429, "300"}}},
			status: 429, calls: []string{"a:429", "b:429"}, states: map[string]string{"a": KeyCooling, "b": KeyCooling},
			then: "no_usable_key"},
		{name: "fill-first keeps to the first usable key",
			script: map[string][]answer{}, strategy: KeyFillFirst,
			status: 200, calls: []string{"a:200"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			main := &scripted{script: tc.script}
			sm := httptest.NewServer(main)
			defer sm.Close()
			up := Upstream{Name: "main", BaseURL: sm.URL + "/v1", Models: []string{"m"}, KeyStrategy: tc.strategy}
			cfg := &Config{}
			creds := keyCreds{"main": keys("a", "b")}
			var fb *scripted
			if tc.fallback != nil {
				fb = &scripted{script: tc.fallback}
				sf := httptest.NewServer(fb)
				defer sf.Close()
				up.Fallback = []string{"backup"}
				cfg.Upstreams = append(cfg.Upstreams, Upstream{Name: "backup", BaseURL: sf.URL + "/v1"})
				creds["backup"] = keys("fb")
			}
			cfg.Upstreams = append([]Upstream{up}, cfg.Upstreams...)
			cfg.Upstreams[0].RetryBackoffCap = "1ms" // keep the test fast; backoff itself is tested below
			cfg.applyDefaults()
			h := keyedHarness(t, cfg, creds)

			res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			assert.Equal(t, tc.status, res.StatusCode, out)
			if tc.then != "" {
				res, out = h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
				assert.Equal(t, tc.status, res.StatusCode)
				assert.Contains(t, out, tc.then)
				assert.Contains(t, out, "cooling until", "the upstream is spared; the answer says why")
			}
			calls := main.calls()
			if fb != nil {
				calls = append(calls, fb.calls()...)
			}
			assert.Equal(t, tc.calls, calls)
			states := map[string]string{}
			for _, k := range h.fwd.keys.status([]*Upstream{{Name: "main", Keys: []string{"a", "b"}}}, time.Now()) {
				states[k.Label] = k.State
			}
			for label, want := range tc.states {
				assert.Equal(t, want, states[label], "key %s", label)
			}
		})
	}
}

func TestCoolingFollowsRetryAfter(t *testing.T) {
	var ks keyStates
	up := &Upstream{Name: "u", Auth: AuthBearer}
	now := time.Now()
	res := &http.Response{StatusCode: 429, Status: "429 Too Many Requests", Header: http.Header{"Retry-After": {"30"}}}
	ks.observe(up, Credential{Label: "a", Secret: "a"}, res, now)
	st := ks.status([]*Upstream{{Name: "u", Keys: []string{"a"}}}, now)[0]
	assert.Equal(t, KeyCooling, st.State)
	assert.Equal(t, now.Add(30*time.Second), st.Until)

	_, err := ks.usable(up, keys("a"), now.Add(29*time.Second))
	assert.ErrorContains(t, err, "a cooling until")
	got, err := ks.usable(up, keys("a"), now.Add(31*time.Second))
	require.NoError(t, err, "half-open: one request may try it")
	assert.Len(t, got, 1)
	ks.trying(up, got[0], now.Add(31*time.Second))
	_, err = ks.usable(up, keys("a"), now.Add(32*time.Second))
	assert.Error(t, err, "only one probe at a time")
	ks.observe(up, Credential{Label: "a", Secret: "a"}, &http.Response{StatusCode: 200}, now.Add(33*time.Second))
	assert.Equal(t, KeyOK, ks.status([]*Upstream{{Name: "u", Keys: []string{"a"}}}, now)[0].State)

	date := now.Add(90 * time.Second).UTC().Format(http.TimeFormat)
	assert.InDelta(t, 90, retryAfter(&http.Response{Header: http.Header{"Retry-After": {date}}}, 0, now).Seconds(), 1)
	assert.Equal(t, DefaultCooling, retryAfter(&http.Response{Header: http.Header{}}, DefaultCooling, now))
}

func TestRejectedKeyComesBackWhenReplaced(t *testing.T) {
	var ks keyStates
	up := &Upstream{Name: "u", Auth: AuthBearer}
	now := time.Now()
	ks.observe(up, Credential{Label: "a", Secret: "old"}, &http.Response{StatusCode: 401, Status: "401 Unauthorized"}, now)
	_, err := ks.usable(up, []Credential{{Label: "a", Secret: "old"}}, now.Add(time.Hour))
	assert.ErrorContains(t, err, "a rejected (401 Unauthorized)")
	got, err := ks.usable(up, []Credential{{Label: "a", Secret: "new"}}, now)
	require.NoError(t, err, "a replaced key is tried again")
	assert.Len(t, got, 1)
	ks.observe(up, Credential{Label: "a", Secret: "new"}, &http.Response{StatusCode: 401, Status: "401 Unauthorized"}, now)
	_, err = ks.usable(up, []Credential{{Label: "a", Secret: "new"}}, now)
	assert.ErrorContains(t, err, "a rejected (401 Unauthorized)")
	ks.enable("u", "a")
	_, err = ks.usable(up, []Credential{{Label: "a", Secret: "new"}}, now)
	assert.NoError(t, err, "enabled again by the user")
}

func TestBackoff(t *testing.T) {
	res := func(status int, ra string) *http.Response {
		return &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {ra}}}
	}
	assert.Equal(t, time.Duration(0), backoff(res(429, "5"), 1, 10*time.Second), "the next key does not wait")
	assert.Equal(t, 250*time.Millisecond, backoff(res(503, ""), 1, 10*time.Second))
	assert.Equal(t, 500*time.Millisecond, backoff(res(503, ""), 2, 10*time.Second))
	assert.Equal(t, 7*time.Second, backoff(res(503, "7"), 1, 10*time.Second), "Retry-After is honoured")
	assert.Equal(t, 10*time.Second, backoff(res(503, "3600"), 1, 10*time.Second), "and capped")
}

// TestConcurrentRequestsWithACoolingKey: 200 requests over 3 keys while one
// key answers 429: none fails, and the key comes back after its cooling.
func TestConcurrentRequestsWithACoolingKey(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	limitB := true
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		hits[key]++
		limited := key == "b" && limitB
		mu.Unlock()
		if limited {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Write([]byte(`{"ok":true}`))
	}))
	defer up.Close()
	cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"m"}, Keys: []string{"a", "b", "c"}}}}
	cfg.applyDefaults()
	f := NewForwarder(keyCreds{"main": keys("a", "b", "c")}, nil, nil)
	require.NoError(t, f.Apply(cfg, ""))
	srv := httptest.NewServer(f)
	defer srv.Close()

	var wg sync.WaitGroup
	failures := make(chan string, 200)
	sem := make(chan struct{}, 16)
	for range 200 {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
			if err != nil {
				failures <- err.Error()
				return
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				failures <- res.Status
			}
		})
	}
	wg.Wait()
	close(failures)
	var failed []string
	for f := range failures {
		failed = append(failed, f)
	}
	assert.Empty(t, failed, "no request failed that had a usable key")
	assert.Equal(t, KeyCooling, keyState_(f, "b"))
	mu.Lock()
	assert.Less(t, hits["b"], 20, "a cooling key is left alone")
	limitB = false
	mu.Unlock()

	time.Sleep(1100 * time.Millisecond) // the Retry-After of 1 s runs out
	for range 6 {
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	assert.Equal(t, KeyOK, keyState_(f, "b"), "the key came back")
}

func keyState_(f *Forwarder, label string) string {
	for _, k := range f.KeyStatus() {
		if k.Label == label {
			return k.State
		}
	}
	return ""
}

// TestFallbackNeverSeesAnotherUpstreamsKey: after the primary (bearer)
// fails, the fallback (x-api-key) gets its own key and not the primary's.
// TestClientsQueryKeyReachesNoFallback: the key a Gemini client put in the
// query string is dropped before any attempt, so a fallback of another
// kind does not get it either.
func TestClientsQueryKeyReachesNoFallback(t *testing.T) {
	var queries []string
	var mu sync.Mutex
	record := func(status int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			mu.Lock()
			queries = append(queries, r.URL.RawQuery)
			mu.Unlock()
			w.WriteHeader(status)
			io.WriteString(w, `{}`)
		})
	}
	primary := httptest.NewServer(record(http.StatusInternalServerError))
	defer primary.Close()
	backup := httptest.NewServer(record(http.StatusOK))
	defer backup.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "gem", BaseURL: primary.URL + "/v1beta", Models: []string{"gemini-*"}, Auth: AuthGoogAPIKey, KeyEnv: "TEST_GEMINI_KEY", MaxAttempts: 2, RetryBackoffCap: "1ms", Fallback: []string{"oai"}},
		{Name: "oai", BaseURL: backup.URL + "/v1", Auth: AuthBearer, KeyEnv: "TEST_OPENAI_KEY"},
	}})
	res, out := h.do(t, http.MethodPost, "/v1/models/gemini-x:generateContent?alt=json&key=CLIENT-KEY", `{"model":"gemini-x"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, out)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"alt=json", "alt=json"}, queries, "the primary, then the fallback")
}

func TestFallbackNeverSeesAnotherUpstreamsKey(t *testing.T) {
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer primary.Close()
	var seen http.Header
	fallback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Write([]byte(`{}`))
	}))
	defer fallback.Close()
	cfg := &Config{Upstreams: []Upstream{
		{Name: "primary", BaseURL: primary.URL + "/v1", Models: []string{"m"}, Fallback: []string{"backup"}, RetryBackoffCap: "1ms"},
		{Name: "backup", BaseURL: fallback.URL + "/v1", Auth: AuthXAPIKey},
	}}
	cfg.applyDefaults()
	f := NewForwarder(keyCreds{"primary": keys("primary-key"), "backup": keys("backup-key")}, nil, nil)
	require.NoError(t, f.Apply(cfg, ""))
	srv := httptest.NewServer(f)
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "backup-key", seen.Get("X-Api-Key"))
	assert.Empty(t, seen.Get("Authorization"), "the primary's key stays with the primary")
}

// TestRetryReusesTheFailedAnswersConnection: a retryable answer is read
// (its error body, bounded) before the next attempt, so that the retry
// goes on the same connection instead of a new one (a new TLS handshake
// to a real provider); a larger error body, kept as the last answer,
// still reaches the client whole.
func TestRetryReusesTheFailedAnswersConnection(t *testing.T) {
	for _, c := range []struct {
		name      string
		status    int
		failures  int // answers of status before a 200
		errorBody string
		conns     int
	}{
		{"a 500 then a 200", 500, 1, `{"error":{"message":"try again"}}`, 1},
		{"every attempt fails, with a body larger than what is read", 500, 3, strings.Repeat("e", 2*maxErrorPeek+1000), 3},
		{"every attempt fails, with a small body", 500, 3, `{"error":{"message":"down"}}`, 1},
		{"a 503 whose start was peeked, larger than the peek", 503, 1, strings.Repeat("e", maxErrorPeek+1000), 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			conns, n := 0, 0
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				n++
				fail := n <= c.failures
				mu.Unlock()
				if fail {
					w.WriteHeader(c.status)
					fmt.Fprint(w, c.errorBody)
					return
				}
				fmt.Fprint(w, `{"id":"x","choices":[]}`)
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					mu.Lock()
					conns++
					mu.Unlock()
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: srv.URL + "/v1", Models: []string{"m"}, Keys: []string{"a"}, MaxAttempts: 3, RetryBackoffCap: "1ms"}}}
			cfg.applyDefaults()
			h := keyedHarness(t, cfg, keyCreds{"main": keys("a")})
			res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			if c.failures < 3 {
				assert.Equal(t, http.StatusOK, res.StatusCode)
			} else {
				assert.Equal(t, c.status, res.StatusCode)
				assert.True(t, body == c.errorBody, "the last answer's body reached the client changed: %d bytes of %d", len(body), len(c.errorBody))
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, min(c.failures+1, 3), n, "attempts")
			assert.Equal(t, c.conns, conns, "connections the upstream saw")
		})
	}
}

// TestRetryAfterAnAnswerWhoseBodyStalls: an error answer whose body stops
// halfway (a front end's error page) is still retried on the fallback: a
// 502's rest is read only briefly, before the next attempt; the start of
// a 503's or 429's, read to judge it, only for errorBodyWait; neither
// within the wait for the answer's headers (request_timeout).
func TestRetryAfterAnAnswerWhoseBodyStalls(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			assertFallbackAnswers(t, "5s", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(status)
				io.WriteString(w, "<html><body>Unavailable")
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			})
		})
	}
}

// TestTricklingErrorBodyIsJudgedAfterItsTotal: an error body that never
// stalls for errorBodyWait but never ends either (a byte every 200 ms) is
// judged after errorBodyTotal and the fallback answers; before, the peek
// read it until request_timeout, and the request ended in a 504 there.
func TestTricklingErrorBodyIsJudgedAfterItsTotal(t *testing.T) {
	assertFallbackAnswers(t, "20s", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		for {
			io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	})
}

// assertFallbackAnswers sends a request to an upstream that answers with
// primary (within requestTimeout) and has a fallback that answers 200:
// the client gets the fallback's answer, after one attempt at each.
func assertFallbackAnswers(t *testing.T, requestTimeout string, primary http.HandlerFunc) {
	t.Helper()
	up := httptest.NewServer(primary)
	defer up.Close()
	backup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"x","choices":[]}`)
	}))
	defer backup.Close()
	cfg := &Config{Upstreams: []Upstream{
		{Name: "primary", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, Fallback: []string{"backup"}, RequestTimeout: requestTimeout, RetryBackoffCap: "1ms"},
		{Name: "backup", BaseURL: backup.URL + "/v1", Models: []string{"other"}, Auth: AuthNone},
	}}
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{})
	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusOK, res.StatusCode, body)
	rec := h.lastRecord(t, 1)
	assert.Equal(t, "backup", rec.Upstream)
	assert.Equal(t, 2, rec.Attempts)
}

// TestSlowErrorBodyOfTheLastAnswerComesWhole: an error body judged before
// it ended (it came a byte every 200 ms, past errorBodyTotal) is not cut:
// when it is the answer the client gets, the client gets all of it, with
// or without a Content-Length, as the request log says.
func TestSlowErrorBodyOfTheLastAnswerComesWhole(t *testing.T) {
	for _, c := range []struct {
		status int
		length bool
		keyed  bool
	}{{http.StatusForbidden, true, true}, {http.StatusTooManyRequests, false, false}} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			t.Parallel()
			body := `{"error":"` + strings.Repeat("y", 18) + `"}`
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if c.length {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				}
				w.WriteHeader(c.status)
				for i := range len(body) {
					io.WriteString(w, body[i:i+1])
					w.(http.Flusher).Flush()
					time.Sleep(200 * time.Millisecond)
				}
			}))
			defer up.Close()
			cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, MaxAttempts: 1}}}
			creds := keyCreds{}
			if c.keyed {
				cfg.Upstreams[0].Auth = ""
				creds = keyCreds{"main": keys("a")}
			}
			cfg.applyDefaults()
			h := keyedHarness(t, cfg, creds)
			res, got := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			assert.Equal(t, c.status, res.StatusCode)
			assert.Equal(t, body, got)
			rec := h.lastRecord(t, 1)
			assert.Equal(t, c.status, rec.Status)
			assert.Empty(t, rec.Error)
		})
	}
}

// TestSlowErrorBodyIsReadWhole: an error body that comes slowly but
// steadily, for longer than errorBodyWait in all, is read whole: a quota
// marker near its end is seen, and the client gets it all.
func TestSlowErrorBodyIsReadWhole(t *testing.T) {
	for _, c := range []struct {
		status int
		length bool
		marker string
	}{{http.StatusTooManyRequests, true, "insufficient_quota"}, {http.StatusBadRequest, false, "invalid_request_error"}} {
		t.Run(fmt.Sprint(c.status), func(t *testing.T) {
			body := `{"error":{"message":"` + strings.Repeat("x", 1400) + `","code":"` + c.marker + `"}}`
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if c.length {
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
				}
				w.WriteHeader(c.status)
				for i := 0; i < len(body); i += 100 {
					io.WriteString(w, body[i:min(i+100, len(body))])
					w.(http.Flusher).Flush()
					time.Sleep(100 * time.Millisecond)
				}
			}))
			defer up.Close()
			cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"m"}}}}
			cfg.applyDefaults()
			h := keyedHarness(t, cfg, keyCreds{"main": keys("a")})
			res, got := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			assert.Equal(t, c.status, res.StatusCode)
			assert.True(t, got == body, "%d of %d body bytes reached the client", len(got), len(body))
			if c.status == http.StatusTooManyRequests {
				states := h.fwd.keys.status([]*Upstream{{Name: "main", Keys: []string{"a"}}}, time.Now())
				require.Len(t, states, 1)
				assert.Equal(t, KeyExhausted, states[0].State, "a quota answer judged as a rate limit")
			}
		})
	}
}
