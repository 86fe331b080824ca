package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// limitCase is one answer in testdata/limits, written from the provider's
// documented format, with what Gatehouse should read from it.
type limitCase struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	Class   string            `json:"class"`
	Until   string            `json:"until"` // from now; "" when no reset is stated
}

var nowPlus = regexp.MustCompile(`\{\{now\+(\d+)s\}\}`)

// loadLimitCases reads every case; {{now+Ns}} becomes an RFC 3339 time N
// seconds after now.
func loadLimitCases(t *testing.T, now time.Time) map[string]limitCase {
	t.Helper()
	files, err := filepath.Glob("testdata/limits/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string]limitCase{}
	for _, f := range files {
		var c limitCase
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &c), f)
		for k, v := range c.Headers {
			c.Headers[k] = nowPlus.ReplaceAllStringFunc(v, func(m string) string {
				n, _ := strconv.Atoi(nowPlus.FindStringSubmatch(m)[1])
				return now.Add(time.Duration(n) * time.Second).UTC().Format(time.RFC3339)
			})
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = c
	}
	return out
}

func (c limitCase) write(w http.ResponseWriter) {
	for k, v := range c.Headers {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(c.Status)
	_, _ = w.Write(c.Body)
}

func TestLimitsAsProvidersStateThem(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	for name, c := range loadLimitCases(t, now) {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			c.write(rec)
			res := rec.Result()
			lim := readLimit(res, now)
			assert.Equal(t, c.Class, lim.class)
			if c.Until == "" {
				assert.True(t, lim.until.IsZero(), "a reset where none is stated: %v", lim.until)
			} else {
				want, err := time.ParseDuration(c.Until)
				require.NoError(t, err)
				assert.Equal(t, want, lim.until.Sub(now))
			}
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			assert.Equal(t, string(c.Body), string(body), "the client gets the body whole")
		})
	}
}

// TestKeyStatesFollowStatedLimits sends each recorded answer from a real
// upstream to the first of two keys, then checks the key's state, the
// request log, and that the next request goes to the other key until the
// stated reset.
func TestKeyStatesFollowStatedLimits(t *testing.T) {
	now := time.Now()
	cases := loadLimitCases(t, now)
	for _, name := range []string{"openai-remaining-zero", "openai-429-tokens", "openai-insufficient-quota",
		"anthropic-remaining-zero", "anthropic-429", "gemini-429-retry", "gemini-429-per-day", "deepseek-402", "relay-429-balance"} {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			answered := false
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
				mu.Lock()
				seen = append(seen, key)
				first := key == "a" && !answered
				answered = answered || first
				mu.Unlock()
				if first {
					c.write(w)
					return
				}
				fmt.Fprint(w, `{"id":"ok","choices":[]}`)
			}))
			defer up.Close()
			cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Models: []string{"m"}, Keys: []string{"a", "b"}}}}
			cfg.applyDefaults()
			h := keyedHarness(t, cfg, keyCreds{"main": keys("a", "b")})

			res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
			require.Equal(t, http.StatusOK, res.StatusCode, out)
			rec := h.lastRecord(t, 1)
			assert.Equal(t, c.Class, rec.Limit, "the request log names the class")

			var st KeyStatus
			for _, k := range h.fwd.KeyStatus() {
				if k.Label == "a" {
					st = k
				}
			}
			wantState := KeyCooling
			if c.Class == LimitQuota {
				wantState = KeyExhausted
			}
			assert.Equal(t, wantState, st.State, st.Reason)
			if c.Until == "" {
				assert.True(t, st.Until.IsZero(), "until the user enables it again")
			} else {
				d, _ := time.ParseDuration(c.Until)
				assert.WithinDuration(t, now.Add(d), st.Until, 2*time.Second)
			}

			// Until the reset, the next requests go to the other key only.
			for range 3 {
				res, _ = h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
				require.Equal(t, http.StatusOK, res.StatusCode)
			}
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, "a", seen[0])
			for _, k := range seen[len(seen)-3:] {
				assert.Equal(t, "b", k, "key a was used before its reset: %v", seen)
			}

			// Enabling it puts it back into use.
			h.fwd.EnableKey("main", "a")
			assert.Equal(t, KeyOK, h.fwd.KeyStatus()[0].State)
		})
	}
}

func TestAnOverloadedUpstreamBacksOffForItsFallback(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	answer := func(name string, status int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, name+":"+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			mu.Unlock()
			w.WriteHeader(status)
			_, _ = io.Copy(w, bytes.NewReader([]byte(`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)))
		})
	}
	main := httptest.NewServer(answer("main", 529))
	defer main.Close()
	backup := httptest.NewServer(answer("backup", 200))
	defer backup.Close()
	cfg := &Config{Upstreams: []Upstream{
		{Name: "main", BaseURL: main.URL + "/v1", Models: []string{"m"}, Keys: []string{"a", "b"}, Fallback: []string{"backup"}},
		{Name: "backup", BaseURL: backup.URL + "/v1"},
	}}
	cfg.applyDefaults()
	h := keyedHarness(t, cfg, keyCreds{"main": keys("a", "b"), "backup": keys("fb")})

	res, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	res, _ = h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode)
	mu.Lock()
	assert.Equal(t, []string{"main:a", "backup:fb", "backup:fb"}, seen,
		"the overloaded upstream's other key was tried, or it was not backed off")
	mu.Unlock()
	for _, k := range h.fwd.KeyStatus() {
		assert.Equal(t, KeyOK, k.State, "key %s of %s was marked for the upstream's load", k.Label, k.Upstream)
	}
}

// lateEnd is a body whose end comes after the peek has judged it (when
// release is closed), and whose Close would not break the read that
// brings it.
type lateEnd struct {
	reads   int
	release chan struct{}
}

func (l *lateEnd) Read(p []byte) (int, error) {
	if l.reads++; l.reads == 1 {
		return copy(p, "abc"), nil
	}
	<-l.release
	return copy(p, "def"), io.EOF
}

func (l *lateEnd) Close() error { return nil }

// TestPeekJudgesOnWhatCameAndLeavesTheRest: the peek judges a body that
// sends nothing for errorBodyWait on what came, and the reader still gets
// the whole body and its end; a second peek returns the same head.
func TestPeekJudgesOnWhatCameAndLeavesTheRest(t *testing.T) {
	body := &lateEnd{release: make(chan struct{})}
	res := &http.Response{StatusCode: http.StatusServiceUnavailable, Header: http.Header{}, Body: body}
	assert.Equal(t, "abc", string(peekBody(res)))
	assert.Equal(t, "abc", string(peekBody(res)))
	close(body.release)
	got, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	assert.Equal(t, "abcdef", string(got))
}

// TestPeekEndsWhenTheBodyIsClosed: a body judged while it stalls and then
// closed unread (an answer dropped for a retry, a client gone) ends the
// peek's goroutine, over HTTP/1 and HTTP/2, and a read after the close
// returns.
func TestPeekEndsWhenTheBodyIsClosed(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1", true: "HTTP/2"}[h2], func(t *testing.T) {
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, "abc")
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			up.EnableHTTP2 = h2
			up.StartTLS()
			defer up.Close()
			res, err := up.Client().Get(up.URL)
			require.NoError(t, err)
			require.Equal(t, h2, res.ProtoMajor == 2)
			assert.Equal(t, "abc", string(peekBody(res)))
			p := res.Body.(*peekedBody).rest.(*lateReader).p
			select {
			case <-p.done:
				t.Fatal("the peek ended while the body was open")
			default:
			}
			require.NoError(t, res.Body.Close())
			select {
			case <-p.done:
			case <-time.After(10 * time.Second): // only so that a leak fails instead of hanging
				t.Fatal("the peek's goroutine outlived the body's close")
			}
			_, err = io.ReadAll(res.Body)
			assert.Error(t, err, "a closed body read as whole")
		})
	}
}
