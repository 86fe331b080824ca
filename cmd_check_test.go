package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckCommand(t *testing.T) {
	useMemoryStore(t)
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer check.Close()
	a, b, c := testproxy.SOCKS5("", ""), testproxy.HTTP("", ""), testproxy.SOCKS5("", "")
	defer a.Stop()
	defer b.Stop()
	defer c.Stop()
	cfg := filepath.Join(t.TempDir(), "config.toml")
	write := func(members string) {
		writeFile(t, cfg, fmt.Sprintf(`
[[pools]]
name = "work"
strategy = "fallback"
proxies = [%s]
check_url = %[2]q

[[pools]]
name = "home"
proxies = [%[3]q]
check_url = %[2]q

[[upstreams]]
name = "via-work"
base_url = "%[4]s/v1"
via = "pool:work"

[[upstreams]]
name = "via-home"
base_url = "%[4]s/v1"
via = "pool:home"

[[upstreams]]
name = "plain"
base_url = "%[4]s/v1"
`, members, check.URL, c.URL, up.URL))
	}
	write(fmt.Sprintf("%q, %q", a.URL, b.URL))

	code, out, errOut := gh(t, "", "check", "--config", cfg)
	require.Equal(t, 0, code, errOut+out)
	assert.Regexp(t, regexp.MustCompile(`work\s+fallback\s+`+regexp.QuoteMeta(a.URL)+`\s+up \(selected\)\s+\d+ms`), out)
	assert.Regexp(t, regexp.MustCompile(`home\s+fastest\s+`+regexp.QuoteMeta(c.URL)+`\s+up \(selected\)`), out)
	assert.Regexp(t, regexp.MustCompile(`via-work\s+pool work via `+regexp.QuoteMeta(a.URL)+`\s+yes \(HTTP 404\)`), out)
	assert.Regexp(t, regexp.MustCompile(`plain\s+direct\s+yes`), out)

	a.Stop()
	code, out, errOut = gh(t, "", "check", "--config", cfg)
	assert.Equal(t, 1, code, "a member is down")
	assert.Contains(t, errOut, "something is down")
	assert.Regexp(t, regexp.MustCompile(`work\s+fallback\s+`+regexp.QuoteMeta(a.URL)+`\s+down\s+.*connection refused`), out)
	assert.Regexp(t, regexp.MustCompile(`via-work\s+pool work via `+regexp.QuoteMeta(b.URL)+`\s+yes`), out)

	write(fmt.Sprintf("%q", a.URL))
	code, out, _ = gh(t, "", "check", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Regexp(t, regexp.MustCompile(`via-work\s+pool work\s+no: every proxy of pool "work" is down`), out)
}
