package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPauseAnswers503AndResumeForwards(t *testing.T) {
	var hits atomic.Int32
	mock := &mockllm.Server{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mock.ServeHTTP(w, r)
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{
		Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m-*"}, Auth: AuthBearer, KeyEnv: "TEST_OPENAI_KEY",
	}}})
	changes, stop := h.fwd.Subscribe()
	defer stop()

	h.fwd.SetPaused(true)
	<-changes // a pause is a change subscribers hear of
	assert.True(t, h.fwd.Status().Paused)
	for _, path := range []string{"/v1/chat/completions", "/u/up/chat/completions", "/v1/models"} {
		res, body := h.do(t, http.MethodPost, path, `{"model":"m-1"}`, nil)
		assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode, path)
		assert.Contains(t, body, `"code":"gatehouse_paused"`)
		assert.Contains(t, body, "Resume forwarding")
	}
	assert.Zero(t, hits.Load(), "nothing goes upstream while paused")
	rec := h.lastRecord(t, 3)
	assert.True(t, rec.Failed())

	res, _ := h.do(t, http.MethodGet, StatusPath, "", nil)
	assert.Equal(t, http.StatusOK, res.StatusCode, "the status still answers while paused")

	h.fwd.SetPaused(false)
	<-changes
	res, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m-1"}`, nil)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	assert.Equal(t, int32(1), hits.Load())
	assert.False(t, h.fwd.Status().Paused)
}

func TestActivityCountsPerMinuteForAnHour(t *testing.T) {
	l := NewRequestLog(5) // the ring is smaller than the counts: they must not depend on it
	now := time.Date(2026, 12, 1, 12, 30, 30, 0, time.UTC)
	add := func(ago time.Duration, status int, errText string, tokens int64) {
		l.Add(Record{Start: now.Add(-ago), Status: status, Error: errText, PromptTokens: tokens, CompletionTokens: 1})
	}
	for range 10 {
		add(time.Second, 200, "", 10) // this minute
	}
	add(5*time.Minute, 502, "", 0)
	add(9*time.Minute, 200, "the stream broke", 0)
	add(30*time.Minute, 429, "", 0)
	add(61*time.Minute, 500, "", 0) // more than an hour ago
	add(2*time.Hour, 200, "", 0)

	assert.Equal(t, Activity{Requests: 12, Failures: 2, Tokens: 112}, l.Activity(10*time.Minute, now))
	assert.Equal(t, Activity{Requests: 13, Failures: 3, Tokens: 113}, l.Activity(time.Hour, now))
	assert.Equal(t, Activity{Requests: 10, Tokens: 110}, l.Activity(time.Minute, now))
	assert.Equal(t, Activity{}, l.Activity(time.Hour, now.Add(2*time.Hour)), "old minutes do not count later")
}
