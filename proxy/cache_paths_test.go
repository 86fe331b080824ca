package proxy

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
)

// Only generating calls are cached: were every method and path, a
// client polling a job's state (GET /batches/ID, a background response,
// a file's status) sees the first answer for ten minutes, and a create
// (POST /batches with the same body) returns the first job's id without
// creating a second one.
func TestCacheLeavesJobsAndCreatesAlone(t *testing.T) {
	var polls, creates atomic.Int32
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/batches/batch_1":
			if polls.Add(1) == 1 {
				fmt.Fprint(w, `{"id":"batch_1","status":"in_progress"}`)
			} else {
				fmt.Fprint(w, `{"id":"batch_1","status":"completed"}`)
			}
		case r.Method == http.MethodPost && r.URL.Path == "/v1/batches":
			fmt.Fprintf(w, `{"id":"batch_%d","status":"validating"}`, creates.Add(1))
		default:
			http.NotFound(w, r)
		}
	})
	h := cacheHarness(t, up, filepath.Join(t.TempDir(), "responses.db"), 0)
	_, first := h.do(t, http.MethodGet, "/u/openai/batches/batch_1", "", nil)
	res, second := h.do(t, http.MethodGet, "/u/openai/batches/batch_1", "", nil)
	t.Logf("poll 1: %s  poll 2: %s (%s)", first, second, res.Header.Get(CacheHeader))
	body := `{"input_file_id":"file-1","endpoint":"/v1/chat/completions","completion_window":"24h"}`
	_, c1 := h.do(t, http.MethodPost, "/u/openai/batches", body, nil)
	_, c2 := h.do(t, http.MethodPost, "/u/openai/batches", body, nil)
	t.Logf("create 1: %s  create 2: %s; upstream saw %d creates", c1, c2, creates.Load())
	if polls.Load() < 2 {
		t.Errorf("the second poll never reached the upstream: the client sees a stale job state")
	}
	if creates.Load() < 2 {
		t.Errorf("the second create never reached the upstream")
	}
}

func TestCacheKeysOnTheHeadersThatChangeARequest(t *testing.T) {
	mock := &mockllm.Server{}
	h := cacheHarness(t, mock, filepath.Join(t.TempDir(), "responses.db"), 0)
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	res, _ := h.ask(t, body, map[string]string{"OpenAI-Beta": "assistants=v2"})
	assert.Equal(t, "miss", res.Header.Get(CacheHeader))
	res, _ = h.ask(t, body, map[string]string{"OpenAI-Beta": "assistants=v1"})
	assert.Equal(t, "miss", res.Header.Get(CacheHeader), "another beta header shared an answer")
	res, _ = h.ask(t, body, map[string]string{"OpenAI-Beta": "assistants=v2"})
	assert.Equal(t, "hit", res.Header.Get(CacheHeader))
}
