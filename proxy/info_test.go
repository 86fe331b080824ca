package proxy

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestInfoAnswersWithoutATokenAndHoldsNoSecret(t *testing.T) {
	_, hash, err := NewToken()
	require.NoError(t, err)
	h := newHarness(t, &Config{Version: 1, Listen: DefaultListen,
		Upstreams: []Upstream{{Name: "openai", BaseURL: "https://api.openai.com/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY"}},
		Tokens:    []Token{{Name: "ide", SHA256: hash}}})
	res, body := h.do(t, http.MethodGet, InfoPath, "", map[string]string{"Authorization": "Bearer " + clientToken})
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	var info Info
	require.NoError(t, json.Unmarshal([]byte(body), &info))
	require.Equal(t, "Gatehouse", info.Name)
	require.True(t, info.TokensRequired)
	require.Equal(t, []InfoUpstream{{Name: "openai", Models: []string{"gpt-*"}}}, info.Upstreams)
	require.Equal(t, "http://"+strings.TrimPrefix(h.srv.URL, "http://")+"/v1", info.BaseURL)
	require.Contains(t, info.Endpoints, "/v1/chat/completions")
	assertNoSecrets(t, "/api/info", body)
	require.NotContains(t, body, hash)
	require.NotContains(t, body, clientToken)

	// The Host check still applies: a page on another name cannot read it.
	res, _ = h.do(t, http.MethodGet, InfoPath, "", map[string]string{"Host": "evil.example"})
	require.NotEqual(t, http.StatusOK, res.StatusCode)
}

func TestTestUpstreamSaysWhatWentWrong(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secretOpenAI {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"data":[{"id":"a"},{"id":"b"},{"id":"c"}]}`))
	}))
	defer up.Close()
	h := newHarness(t, &Config{Version: 1, Listen: DefaultListen, Upstreams: []Upstream{
		{Name: "right", BaseURL: up.URL + "/v1", KeyEnv: "TEST_OPENAI_KEY"},
		{Name: "wrong", BaseURL: up.URL + "/v1", KeyEnv: "TEST_ANTHROPIC_KEY"},
		{Name: "nokey", BaseURL: up.URL + "/v1", KeyEnv: "TEST_NOT_SET"},
	}})
	ctx := context.Background()
	got, err := h.fwd.TestUpstream(ctx, "right", 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, 3, got.Models)
	require.Equal(t, "direct", got.Route)

	_, err = h.fwd.TestUpstream(ctx, "wrong", 5*time.Second)
	require.ErrorContains(t, err, "wrong key")
	assertNoSecrets(t, "the test's error", err.Error())

	_, err = h.fwd.TestUpstream(ctx, "nokey", 5*time.Second)
	require.ErrorContains(t, err, "no key")

	_, err = h.fwd.TestUpstream(ctx, "missing", 5*time.Second)
	require.ErrorContains(t, err, "save it first")
}

func TestTestUpstreamTriesEachKey(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer new" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"data":[{"id":"a"}]}`))
	}))
	defer up.Close()
	cfg := &Config{Upstreams: []Upstream{{Name: "main", BaseURL: up.URL + "/v1", Keys: []string{"old", "new"}}}}
	cfg.applyDefaults()
	f := NewForwarder(keyCreds{"main": keys("old", "new")}, nil, nil)
	require.NoError(t, f.Apply(cfg, ""))
	defer f.Close()
	got, err := f.TestUpstream(context.Background(), "main", 5*time.Second)
	require.NoError(t, err, "a revoked first key hid the one just added")
	require.Equal(t, "new", got.Key)
	require.Equal(t, []string{"old"}, got.Refused)
	require.Equal(t, 1, got.Models)
}
