package app

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tidwall/gjson"

	"github.com/gatehouse-app/gatehouse/connect"
	"github.com/gatehouse-app/gatehouse/proxy"
)

const claudeSettings = `{
  // my own settings
  "theme": "dark",
  "env": {
    "DISABLE_TELEMETRY": "1" // keep
  }
}
`

// connectHarness is the app with Claude Code's settings in a temp folder.
func connectHarness(t *testing.T, configText string) (*harness, string) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("CLAUDE_CONFIG_DIR", filepath.Join(dir, "claude"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "claude"), 0o700))
	settings := filepath.Join(dir, "claude", "settings.json")
	require.NoError(t, os.WriteFile(settings, []byte(claudeSettings), 0o600))
	h := newHarness(t, configText)
	h.waitState(t, stateRunning)
	return h, settings
}

func (h *harness) connectTool(t *testing.T, name string) {
	t.Helper()
	c := h.ui.connect
	tool, err := connect.Lookup(name)
	require.NoError(t, err)
	c.shown = nil
	c.onConnect(tool)
	require.NotNil(t, c.shown, "the change is shown before writing")
	assert.Contains(t, c.shown.Plan.Diff, "ANTHROPIC_BASE_URL")
	c.confirm(c.shown, true)
}

func TestConnectSectionWritesAndUndoes(t *testing.T) {
	h, settings := connectHarness(t, "version = 1\n")
	c := h.ui.connect
	c.refresh()
	waitFor(t, "the states", func() bool { return c.rows["claude-code"].state.Text != "" })
	assert.Equal(t, "found", c.rows["claude-code"].state.Text)
	assert.Equal(t, settings, c.rows["claude-code"].path.Text)

	h.connectTool(t, "claude-code")
	waitFor(t, "the file written", func() bool {
		b, _ := os.ReadFile(settings)
		return strings.Contains(string(b), "ANTHROPIC_BASE_URL")
	})
	b, _ := os.ReadFile(settings)
	assert.Contains(t, string(b), "// my own settings", "comments kept")
	assert.Contains(t, string(b), `"DISABLE_TELEMETRY": "1", // keep`)
	assert.Contains(t, string(b), `"http://`+h.backend.snapshot(timeNow()).Listen+`"`)
	waitFor(t, "the state shown", func() bool { return c.rows["claude-code"].state.Text == "✓ connected" })

	c.onUndo(c.toolByName(t, "claude-code"))
	waitFor(t, "the original back", func() bool {
		b, _ := os.ReadFile(settings)
		return string(b) == claudeSettings
	})
}

func TestConnectSectionWithTokensMakesOneThatWorks(t *testing.T) {
	_, hash, err := proxy.NewToken()
	require.NoError(t, err)
	h, settings := connectHarness(t, fmt.Sprintf("version = 1\n[[tokens]]\nname = \"me\"\nsha256 = %q\n", hash))
	h.connectTool(t, "claude-code")
	var token string
	waitFor(t, "the token written", func() bool {
		b, _ := os.ReadFile(settings)
		token = gjson.GetBytes(stripComments(b), "env.ANTHROPIC_AUTH_TOKEN").String()
		return strings.HasPrefix(token, "gate_")
	})
	listen := h.backend.snapshot(timeNow()).Listen
	waitFor(t, "the forwarder to take the new token", func() bool {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	cfg, err := proxy.LoadConfig(h.path)
	require.NoError(t, err)
	require.Len(t, cfg.Tokens, 2)
	assert.Equal(t, "claude-code", cfg.Tokens[1].Name)
	assert.NotContains(t, mustRead(t, h.path), token, "the config keeps only the token's hash")

	h.ui.connect.onUndo(h.ui.connect.toolByName(t, "claude-code"))
	waitFor(t, "the token revoked", func() bool {
		cfg, err := proxy.LoadConfig(h.path)
		return err == nil && len(cfg.Tokens) == 1
	})
}

func mustRead(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// stripComments drops // comments, enough for the settings above.
func stripComments(b []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "//"); i >= 0 && !strings.Contains(l[:i], "http:") {
			l = l[:i]
		}
		out = append(out, l)
	}
	return []byte(strings.Join(out, "\n"))
}

func (c *connectSection) toolByName(t *testing.T, name string) *connect.Tool {
	tool, err := connect.Lookup(name)
	require.NoError(t, err)
	return tool
}
