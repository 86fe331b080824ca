package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
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
