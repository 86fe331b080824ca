package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQueue(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		arrived <- string(b)
		<-release
		w.Write([]byte(`{}`))
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "slow", BaseURL: up.URL + "/v1", Models: []string{"m*"},
		Auth: AuthNone, MaxConcurrent: 1, QueueTimeout: "30s"}}})
	queue := func() QueueStatus {
		res, out := h.do(t, http.MethodGet, "/v1/queue", "", nil)
		require.Equal(t, http.StatusOK, res.StatusCode)
		var q struct{ Data []QueueStatus }
		require.NoError(t, json.Unmarshal([]byte(out), &q))
		return q.Data[0]
	}
	waitQueued := func(n int64) {
		for deadline := time.Now().Add(30 * time.Second); queue().Queued != n; time.Sleep(5 * time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "never %d queued", n)
		}
	}
	var wg sync.WaitGroup
	statuses := make(chan int, 10)
	post := func(model string) {
		wg.Go(func() {
			res, err := http.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(`{"model":"`+model+`"}`))
			if err == nil {
				res.Body.Close()
				statuses <- res.StatusCode
			}
		})
	}
	post("m1")
	assert.Equal(t, `{"model":"m1"}`, <-arrived)
	post("m2")
	waitQueued(1)
	post("m3")
	waitQueued(2)
	assert.Equal(t, QueueStatus{Upstream: "slow", MaxConcurrent: 1, InFlight: 1, Queued: 2}, queue())

	release <- struct{}{}
	assert.Equal(t, `{"model":"m2"}`, <-arrived, "first come, first served")
	release <- struct{}{}
	assert.Equal(t, `{"model":"m3"}`, <-arrived)
	release <- struct{}{}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		assert.Equal(t, http.StatusOK, s)
	}
	assert.Equal(t, QueueStatus{Upstream: "slow", MaxConcurrent: 1}, queue())
}

func TestQueueTimeout(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer up.Close()
	defer close(release)
	h := newHarness(t, &Config{Upstreams: []Upstream{{Name: "slow", BaseURL: up.URL + "/v1", Models: []string{"m"},
		Auth: AuthNone, MaxConcurrent: 1, QueueTimeout: "50ms"}}})
	go http.Post(h.url("/v1/chat/completions"), "application/json", strings.NewReader(`{"model":"m"}`))
	for deadline := time.Now().Add(30 * time.Second); h.fwd.Queue()[0].InFlight != 1; time.Sleep(5 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline))
	}
	res, out := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	assert.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	assert.Contains(t, out, "queue_full")
	assert.Contains(t, out, "waited 50ms in its queue")
}
