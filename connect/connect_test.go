package connect

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var here = Target{BaseURL: "http://127.0.0.1:4747", Token: Placeholder}

// TestEdits: what each tool's edit makes of files that already hold some
// of its settings, or are laid out unusually.
func TestEdits(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tool   *Tool
		target Target
		in     string
		want   string
		err    string
	}{
		{
			name: "json: a key that exists is replaced, its comment stays", tool: claudeCode, target: here,
			in:   "{\n\t\"env\": {\n\t\t\"ANTHROPIC_BASE_URL\": \"https://api.anthropic.com\", // was direct\n\t\t\"ANTHROPIC_AUTH_TOKEN\": \"gatehouse\"\n\t}\n}\n",
			want: "{\n\t\"env\": {\n\t\t\"ANTHROPIC_BASE_URL\": \"http://127.0.0.1:4747\", // was direct\n\t\t\"ANTHROPIC_AUTH_TOKEN\": \"gatehouse\"\n\t}\n}\n",
		},
		{
			name: "json: a one-line object stays on one line", tool: claudeCode, target: here,
			in:   "{\"env\": {\"A\": \"1\"}}",
			want: "{\"env\": {\"A\": \"1\", \"ANTHROPIC_BASE_URL\": \"http://127.0.0.1:4747\", \"ANTHROPIC_AUTH_TOKEN\": \"gatehouse\"}}",
		},
		{
			name: "json: trailing commas stay trailing", tool: zed, target: here,
			in:   "{\n  \"vim_mode\": true,\n}\n",
			want: "{\n  \"vim_mode\": true,\n  \"language_models\": {\n    \"openai\": {\n      \"api_url\": \"http://127.0.0.1:4747/v1\"\n    }\n  },\n}\n",
		},
		{
			name: "json: an empty object", tool: zed, target: here,
			in:   "{}\n",
			want: "{\n  \"language_models\": {\n    \"openai\": {\n      \"api_url\": \"http://127.0.0.1:4747/v1\"\n    }\n  }\n}\n",
		},
		{
			name: "json: env that is not an object", tool: claudeCode, target: here,
			in: "{\"env\": []}", err: `"env" is a JSON value starting with '['`,
		},
		{
			name: "toml: replaced values keep their comments; a new root key goes after the last", tool: codex,
			target: Target{BaseURL: here.BaseURL, Token: "gate_0123456789abcdef", Model: "gpt-5"},
			in:     "model = \"o3\" # mine\nmodel_provider = 'openai'   # was\n\n[model_providers.gatehouse]\nname = \"Gatehouse\"\nbase_url = \"http://127.0.0.1:9999/v1\" # old port\nwire_api = \"responses\"\n\n[tui]\nnotifications = true\n",
			want:   "model = \"gpt-5\" # mine\nmodel_provider = \"gatehouse\"   # was\n\n[model_providers.gatehouse]\nname = \"Gatehouse\"\nbase_url = \"http://127.0.0.1:4747/v1\" # old port\nwire_api = \"responses\"\nexperimental_bearer_token = \"gate_0123456789abcdef\"\n\n[tui]\nnotifications = true\n",
		},
		{
			name: "toml: no root keys: model_provider goes above the first table and its comment", tool: codex, target: here,
			in:   "# tables only\n\n# my projects\n[projects.\"/src\"]\ntrust_level = \"trusted\"\n",
			want: "# tables only\n\nmodel_provider = \"gatehouse\"\n\n# my projects\n[projects.\"/src\"]\ntrust_level = \"trusted\"\n\n[model_providers.gatehouse]\nname = \"Gatehouse\"\nbase_url = \"http://127.0.0.1:4747/v1\"\nwire_api = \"responses\"\n",
		},
		{
			name: "toml: a provider written inline is not guessed at", tool: codex, target: here,
			in: "model_providers = { gatehouse = { base_url = \"x\" } }\n", err: "make it a [model_providers.gatehouse] table",
		},
		{
			name: "yaml: a key that exists is rewritten on its line, its comment kept", tool: aider, target: here,
			in:   "# aider\nopenai-api-base: https://api.openai.com/v1  # direct\ndark-mode: true\n",
			want: "# aider\nopenai-api-base: http://127.0.0.1:4747/v1 # direct\ndark-mode: true\nopenai-api-key: gatehouse\n",
		},
		{
			name: "yaml: a value over several lines is left to the user", tool: aider, target: here,
			in: "openai-api-key: >\n  abc\n", err: "line 1: openai-api-key is not a one-line value",
		},
		{
			name: "continue: the Gatehouse entry is rewritten in place, its model kept", tool: continueDev, target: here,
			in:   "models:\n- name: Gatehouse\n  provider: openai\n  model: gpt-4.1\n  apiBase: http://127.0.0.1:9999/v1\n  apiKey: gatehouse\n- name: Other\n  provider: ollama\n  model: llama3\n",
			want: "models:\n- name: Gatehouse\n  provider: openai\n  model: gpt-4.1\n  apiBase: http://127.0.0.1:4747/v1\n  apiKey: gatehouse\n- name: Other\n  provider: ollama\n  model: llama3\n",
		},
		{
			name: "continue: an empty inline list becomes a block", tool: continueDev, target: here,
			in:   "name: A\nmodels: []\nrules: []\n",
			want: "name: A\nmodels:\n  - name: Gatehouse\n    provider: openai\n    model: gpt-4o\n    apiBase: http://127.0.0.1:4747/v1\n    apiKey: gatehouse\nrules: []\n",
		},
		{
			name: "continue: a full inline list is left to the user", tool: continueDev, target: here,
			in: "models: [{name: x}]\n", err: "line 1: models is not a block list",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tool.edit([]byte(tc.in), tc.target)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
			require.NoError(t, tc.tool.fileErr(got))
			again, err := tc.tool.edit(got, tc.target)
			require.NoError(t, err)
			assert.Equal(t, string(got), string(again), "a second edit changes nothing")
		})
	}
}

// TestUndoGoesBackToTheFirstOriginal: connecting again with another model
// keeps the first backup, so undo returns the file as it was before any
// connect, with its permissions.
func TestUndoGoesBackToTheFirstOriginal(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CODEX_HOME", "")
	state := t.TempDir()
	path, _ := codex.Path()
	const orig = "# mine\nmodel = \"o3\"\n"
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(orig), 0o644))

	for _, model := range []string{"gpt-5", "gpt-4.1"} {
		p, err := codex.Plan(state, Target{BaseURL: here.BaseURL, Token: Placeholder, Model: model})
		require.NoError(t, err)
		require.True(t, p.Changed)
		assert.Contains(t, p.Diff, "+model = \""+model+"\"")
		require.NoError(t, p.Apply())
	}
	assert.Equal(t, ConnectedHere, codex.Status(here.BaseURL).State)
	assert.Equal(t, ConnectedElsewhere, codex.Status("http://127.0.0.1:1").State)

	u, err := codex.Undo(state)
	require.NoError(t, err)
	assert.Equal(t, Undone{Path: path}, u)
	got, _ := os.ReadFile(path)
	assert.Equal(t, orig, string(got))
	fi, _ := os.Stat(path)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	assert.Equal(t, Found, codex.Status(here.BaseURL).State)
	_, err = codex.Undo(state)
	assert.ErrorIs(t, err, ErrNotConnected)
}

// TestSymlinkStaysALink: a settings file kept by a dotfiles manager is a
// link; the link's target is written, the link stays.
func TestSymlinkStaysALink(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("CLAUDE_CONFIG_DIR", "")
	target := filepath.Join(home, "dotfiles", "claude.json")
	require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o700))
	require.NoError(t, os.WriteFile(target, []byte("{}\n"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".claude"), 0o700))
	link := filepath.Join(home, ".claude", "settings.json")
	require.NoError(t, os.Symlink(target, link))

	p, err := claudeCode.Plan(t.TempDir(), here)
	require.NoError(t, err)
	require.NoError(t, p.Apply())
	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode()&os.ModeSymlink)
	data, _ := os.ReadFile(target)
	assert.Contains(t, string(data), "ANTHROPIC_BASE_URL")
}

func TestDiff(t *testing.T) {
	// Changes within twice the context of each other share a hunk.
	assert.Equal(t, "--- f\n+++ f (connected)\n@@ -1,10 +1,11 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n i\n j\n+k\n",
		Diff("f", []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"), []byte("a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n")))
	// Farther apart, two hunks.
	assert.Equal(t, `--- f
+++ f (connected)
@@ -1,7 +1,7 @@
 a
 b
 c
-d
+D
 e
 f
 g
@@ -12,3 +12,4 @@
 l
 m
 n
+o
`, Diff("f", []byte("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\n"), []byte("a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\nl\nm\nn\no\n")))
	assert.Equal(t, "--- f\n+++ f (connected)\n@@ -0,0 +1,1 @@\n+x\n", Diff("f", nil, []byte("x\n")))
}

func TestMaskHidesTheToken(t *testing.T) {
	tok := "gate_abcdefghijklmnopqrstuvwxyz0123456789"
	assert.Equal(t, `key: "gate_abcd…"`, string(mask([]byte(`key: "`+tok+`"`), tok)))
	assert.Equal(t, "key: gatehouse", string(mask([]byte("key: gatehouse"), Placeholder)))
}

// TestNoGUIOrServerImports: the desktop window and the command both use
// this package, so it stays free of Fyne and of the forwarder's HTTP code.
func TestNoGUIOrServerImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range parsed.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			assert.False(t, strings.HasPrefix(p, "fyne.io/") || strings.HasPrefix(p, "net/http") ||
				strings.HasPrefix(p, "github.com/gatehouse-app/gatehouse/"), "%s imports %s", f, p)
		}
	}
}

func TestCRLFFileStaysCRLF(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("CODEX_HOME", "")
	path, _ := codex.Path()
	orig := "# mine\r\nmodel = \"o3\"\r\n"
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(orig), 0o600))
	p, err := codex.Plan(t.TempDir(), here)
	require.NoError(t, err)
	require.NoError(t, p.Apply())
	got, _ := os.ReadFile(path)
	assert.Equal(t, strings.Count(string(got), "\n"), strings.Count(string(got), "\r\n"), "%q", got)
	assert.True(t, strings.HasPrefix(string(got), orig))
}
