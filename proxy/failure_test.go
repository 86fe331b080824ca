package proxy

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

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
