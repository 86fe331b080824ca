package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewToken(t *testing.T) {
	tok, hash, err := NewToken()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(tok, TokenPrefix))
	assert.Len(t, tok, len(TokenPrefix)+43, "32 bytes of entropy, base64url")
	assert.Equal(t, HashToken(tok), hash)
	assert.NotContains(t, hash, tok)
	other, _, _ := NewToken()
	assert.NotEqual(t, tok, other)
}

func TestAccessTokens(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	cline, clineHash, _ := NewToken()
	script, scriptHash, _ := NewToken()
	cfg := &Config{
		Listen:    "0.0.0.0:4747", // shared with the network: tokens are required
		Tokens:    []Token{{Name: "cline", SHA256: clineHash}, {Name: "script", SHA256: scriptHash}},
		Upstreams: []Upstream{{Name: "openai", BaseURL: up.URL + "/v1", Models: []string{"gpt-*"}, KeyEnv: "TEST_OPENAI_KEY"}},
	}
	h := newHarness(t, cfg)
	body := `{"model":"gpt-4o"}`
	tests := []struct {
		name   string
		header map[string]string
		status int
		token  string
	}{
		{"none", nil, 401, ""},
		{"wrong", map[string]string{"Authorization": "Bearer " + TokenPrefix + "wrong"}, 401, ""},
		{"bearer", map[string]string{"Authorization": "Bearer " + cline}, 200, "cline"},
		{"x-api-key", map[string]string{"X-Api-Key": script}, 200, "script"},
		{"lan host with token", map[string]string{"Authorization": "Bearer " + cline, "Host": "192.168.1.10:4747"}, 200, "cline"},
		{"lan host without token", map[string]string{"Host": "192.168.1.10:4747"}, 401, ""},
		{"rebinding name", map[string]string{"Authorization": "Bearer " + cline, "Host": "attacker.example:4747"}, 403, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, out := h.do(t, http.MethodPost, "/v1/chat/completions", body, tc.header)
			require.Equal(t, tc.status, res.StatusCode, out)
			rec := h.lastRecord(t, i+1)
			assert.Equal(t, tc.token, rec.Token)
			if tc.status == 401 {
				assert.Contains(t, out, "authentication_error")
				assert.Contains(t, out, "gatehouse token add")
			}
			if tc.status == 200 {
				assert.Equal(t, "Bearer "+secretOpenAI, mock.Last().Header.Get("Authorization"), "the upstream gets its key, not the token")
				assert.Empty(t, mock.Last().Header.Get("X-Api-Key"))
			}
		})
	}
	res, _ := h.do(t, http.MethodGet, "/health", "", nil)
	assert.Equal(t, http.StatusOK, res.StatusCode, "health needs no token")
}

func TestLANListenNeedsTokens(t *testing.T) {
	_, err := ParseConfig("c.toml", []byte("listen = \"0.0.0.0:4747\"\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "c.toml:1: listen:")
	assert.Contains(t, err.Error(), "gatehouse token add NAME")

	_, hash, _ := NewToken()
	cfg, err := ParseConfig("c.toml", []byte("listen = \"192.168.1.10:4747\"\n[[tokens]]\nname = \"lan\"\nsha256 = \""+hash+"\"\n"))
	require.NoError(t, err)
	h := newHarness(t, cfg)
	res, _ := h.do(t, http.MethodGet, "/v1/models", "", map[string]string{"Host": "192.168.1.10:4747"})
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "the configured address is a fine Host, but a token is needed")
	res, _ = h.do(t, http.MethodGet, "/v1/models", "", map[string]string{"Host": "192.168.1.11:4747"})
	assert.Equal(t, http.StatusForbidden, res.StatusCode)

	_, err = ParseConfig("c.toml", []byte("[[tokens]]\nname = \"x\"\nsha256 = \"abc\"\n"))
	assert.ErrorContains(t, err, "c.toml:3: tokens[0].sha256")
}

func TestRepeatedTokenFailuresAreSlowedDown(t *testing.T) {
	var l failureLimiter
	var got []time.Duration
	for range 9 {
		got = append(got, l.failed("10.0.0.1"))
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{0, 0, 0, 100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms}, got)
	for range 5 {
		l.failed("10.0.0.1")
	}
	assert.Equal(t, maxFailureDelay, l.failed("10.0.0.1"), "capped")
	assert.Zero(t, l.failed("10.0.0.2"), "per address")
	l.forget("10.0.0.1")
	assert.Zero(t, l.failed("10.0.0.1"), "a success forgets the failures")
}
