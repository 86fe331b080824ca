package proxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHMACSignedUpstream: the upstream recomputes every signature from the
// body it received and the timestamp header, with the shared secret.
func TestHMACSignedUpstream(t *testing.T) {
	mock := &mockllm.Server{}
	verified := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		tsHeader, sigHeader := "X-Timestamp", "X-Signature"
		if r.URL.Path == "/custom/chat/completions" {
			tsHeader, sigHeader = "X-Relay-Time", "X-Relay-Sig"
		}
		ts := r.Header.Get(tsHeader)
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || ms < 1_600_000_000_000 {
			http.Error(w, "bad timestamp "+ts, http.StatusUnauthorized)
			return
		}
		m := hmac.New(sha256.New, []byte(secretOpenAI))
		m.Write(body)
		m.Write([]byte(ts))
		if !hmac.Equal([]byte(hex.EncodeToString(m.Sum(nil))), []byte(r.Header.Get(sigHeader))) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "unexpected Authorization", http.StatusBadRequest)
			return
		}
		verified++
		r.Body = io.NopCloser(bytes.NewReader(body))
		mock.ServeHTTP(w, r)
	}))
	defer up.Close()
	h := newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "relay", BaseURL: up.URL + "/v1", Models: []string{"relay-*"}, Auth: AuthHMAC, KeyEnv: "TEST_OPENAI_KEY"},
		{Name: "custom", BaseURL: up.URL + "/custom", Models: []string{"custom-*"}, Auth: AuthHMAC, KeyEnv: "TEST_OPENAI_KEY",
			HMACTimestampHeader: "X-Relay-Time", HMACSignatureHeader: "X-Relay-Sig"},
	}})
	for _, body := range []string{
		`{"model":"relay-1","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"relay-1","stream":true}`,
		`{"model":"custom-1"}`,
	} {
		res, out := h.do(t, http.MethodPost, "/v1/chat/completions", body, map[string]string{"Authorization": "Bearer " + clientToken})
		require.Equal(t, http.StatusOK, res.StatusCode, out)
	}
	assert.Equal(t, 3, verified)
	assert.Contains(t, string(mock.Last().Body), "custom-1")
	assertNoSecrets(t, "logs", h.logs.String())
}
