package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func editText(t *testing.T, text string, change func(*Config)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	change(cfg)
	if err := SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	return string(b)
}

const noNewlineAtEnd = `# my setup, keep me
[[upstreams]]
name = "openai" # the main one
base_url = "https://api.openai.com/v1"
models = ["gpt-*"]`

// A file that does not end in a newline (common when saved by some
// editors) loses every comment when a key is added to its last upstream.
func TestEditsOfAFileWithoutANewlineAtTheEnd(t *testing.T) {
	got := editText(t, noNewlineAtEnd, func(c *Config) {
		c.Upstreams[0].Keys = []string{"default"}
		c.Upstreams[0].KeyAdded = map[string]string{"default": "2026-01-02"}
	})
	t.Logf("saved:\n%s", got)
	if !strings.Contains(got, "# my setup, keep me") || !strings.Contains(got, "# the main one") {
		t.Fatal("the user's comments were dropped")
	}
}

const crlfConfig = "# my setup, keep me\r\n[[upstreams]]\r\nname = \"openai\" # the main one\r\nbase_url = \"https://api.openai.com/v1\"\r\nmodels = [\"gpt-*\"]\r\n\r\n# second\r\n[[upstreams]]\r\nname = \"b\"\r\nbase_url = \"https://b.example/v1\"\r\n"

func TestEditsKeepCRLFLineEnds(t *testing.T) {
	got := editText(t, crlfConfig, func(c *Config) {
		c.Upstreams[0].Keys = []string{"default"}
	})
	t.Logf("saved: %q", got)
	if !strings.Contains(got, "# my setup, keep me") {
		t.Fatal("the user's comments were dropped")
	}
	if strings.Count(got, "\n") != strings.Count(got, "\r\n") {
		t.Errorf("mixed line endings written into a CRLF file")
	}
}
