package proxy

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const commentedConfig = `# Gatehouse, my setup. Keep this header.
listen = "127.0.0.1:4747" # the default port

# OpenAI for the IDE.
[[upstreams]]
name = "openai"            # shown in the request log
base_url = "https://api.openai.com/v1"
models = [
  "gpt-*", # chat
  "o*",
]
keys = ["work"]

# DeepSeek, cheap.
[[upstreams]]
name = "deepseek"
# its only key
base_url = "https://api.deepseek.com/v1"
keys = ["default"]

# The office proxies.
[[pools]]
name = "office"
proxies = ["http://127.0.0.1:3128", "socks5://127.0.0.1:1080"]
interval = "30s" # check often

# end of file
`

// comments lists the comment lines of a config text, trimmed.
func comments(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, "#"); i >= 0 && !strings.Contains(l[:i], `"`) {
			out = append(out, strings.TrimSpace(l[i:]))
		} else if i >= 0 {
			out = append(out, strings.TrimSpace(l[strings.LastIndex(l, "#"):]))
		}
	}
	return out
}

func TestEditsKeepTheUsersComments(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(commentedConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	edit := func(change func(*Config)) string {
		t.Helper()
		cfg, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		change(cfg)
		if err := SaveConfig(path, cfg); err != nil {
			t.Fatal(err)
		}
		got, err := LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, cfg) {
			t.Fatalf("the saved file decodes to\n%+v\nwant\n%+v", got, cfg)
		}
		b, _ := os.ReadFile(path)
		return string(b)
	}

	// A key added to the first upstream.
	text := edit(func(c *Config) { c.Upstreams[0].Keys = append(c.Upstreams[0].Keys, "personal") })
	if !slices.Equal(comments(text), comments(commentedConfig)) {
		t.Fatalf("comments changed after adding a key:\n%s", text)
	}
	if !strings.Contains(text, `keys = ['work', 'personal']`) || strings.Contains(text, "auth") || strings.Contains(text, "strategy") {
		t.Fatalf("adding a key changed more than its line:\n%s", text)
	}

	// A proxy pinned, as the tray does it.
	text = edit(func(c *Config) { c.Pools[0].Pinned = "socks5://127.0.0.1:1080" })
	if !slices.Equal(comments(text), comments(commentedConfig)) {
		t.Fatalf("comments changed after pinning:\n%s", text)
	}
	if !strings.Contains(text, "interval = \"30s\" # check often\npinned = 'socks5://127.0.0.1:1080'\n") {
		t.Fatalf("the pin is not after the pool's last key:\n%s", text)
	}

	// The second upstream removed: its own comments (above its header and
	// inside) go with it, every other comment stays, in order.
	text = edit(func(c *Config) { c.Upstreams = c.Upstreams[:1] })
	want := slices.DeleteFunc(comments(commentedConfig), func(s string) bool { return s == "# its only key" || s == "# DeepSeek, cheap." })
	if !slices.Equal(comments(text), want) {
		t.Fatalf("comments after removing an upstream:\n%q\nwant\n%q\n%s", comments(text), want, text)
	}
	if strings.Contains(text, "deepseek") {
		t.Fatalf("the removed upstream is still there:\n%s", text)
	}

	// A new upstream goes after the last one; a token gets its own table.
	text = edit(func(c *Config) {
		c.Upstreams = append(c.Upstreams, Upstream{Name: "glm", BaseURL: "https://open.bigmodel.cn/api/paas/v4", Models: []string{"glm-*"}, Auth: AuthBearer, Via: ViaDirect, KeyStrategy: KeyRoundRobin})
		c.Tokens = append(c.Tokens, Token{Name: "ide", SHA256: strings.Repeat("ab", 32)})
	})
	if i, j := strings.Index(text, "name = 'glm'"), strings.Index(text, "# The office proxies."); i < 0 || i > j {
		t.Fatalf("the new upstream is not after the last upstream:\n%s", text)
	}
	if !slices.Equal(comments(text), want) {
		t.Fatalf("comments changed after adding an upstream:\n%s", text)
	}

	// A renamed upstream keeps its place and its comments.
	text = edit(func(c *Config) { c.Upstreams[0].Name = "openai-work" })
	if !strings.Contains(text, "name = 'openai-work'            # shown in the request log") {
		t.Fatalf("the rename did not replace the value in place:\n%s", text)
	}
}

func TestAFileInAnotherFormIsRewrittenWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	text := "# dotted\nupstreams = [{ name = \"a\", base_url = \"https://a.example/v1\" }]\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstreams[0].Keys = []string{"default"}
	if err := SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil || !reflect.DeepEqual(got, cfg) {
		t.Fatalf("a file in another form was not saved right: %v\n%+v", err, got)
	}
}

func TestKeyAddedIsAnInlineTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[[upstreams]]\nname = \"a\"\nbase_url = \"https://a.example/v1\"\nkeys = [\"x\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Upstreams[0].KeyAdded = map[string]string{"x": "2026-12-01"}
	if err := SaveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "key_added = {x = '2026-12-01'}") {
		t.Fatalf("key_added is not one line:\n%s", b)
	}
	cfg.Upstreams[0].KeyAdded["y"] = "2026-12-01"
	if err := SaveConfig(path, cfg); err == nil || !strings.Contains(err.Error(), "key_added") {
		t.Fatalf("a date for a label not in keys was saved: %v", err)
	}
}
