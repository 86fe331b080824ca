package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/pelletier/go-toml/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tailscale/hujson"
	"go.yaml.in/yaml/v3"
)

// connectHome makes a temp HOME with none of the tools' override
// variables set and an empty PATH, and a config beside it; it returns the
// home and the config's path.
func connectHome(t *testing.T, config string) (string, string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "CONTINUE_GLOBAL_DIR", "OPENCODE_CONFIG", "APPDATA"} {
		t.Setenv(v, "")
	}
	t.Setenv("PATH", t.TempDir())
	cfg := filepath.Join(home, ".config", "gatehouse", "config.toml")
	writeFile(t, cfg, config)
	return home, cfg
}

const connectUpstreams = `listen = "127.0.0.1:4747"
` + twoUpstreams

// A realistic file for each tool: comments, settings of its own, and the
// settings connect must write, checked through the file's own syntax.
type connectCase struct {
	tool, file string
	format     string // json, toml, yaml
	original   string
	// ours removes what connect wrote from the parsed file, so that what
	// is left must equal the original.
	ours func(doc map[string]any)
	// check asserts on the parsed, connected file.
	check func(t *testing.T, doc map[string]any, base string)
	// broken does not parse; brokenLine is the line its error names.
	broken     string
	brokenLine int
}

func dig(doc map[string]any, path ...string) any {
	var v any = doc
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func deleteAt(doc map[string]any, path ...string) {
	m := doc
	for _, p := range path[:len(path)-1] {
		m, _ = m[p].(map[string]any)
	}
	delete(m, path[len(path)-1])
}

var connectCases = []connectCase{
	{
		tool: "claude-code", file: ".claude/settings.json", format: "json",
		original: `{
  // Claude Code settings
  "$schema": "https://json.schemastore.org/claude-code-settings.json",
  "model": "opus",
  "permissions": {
    "allow": ["Bash(npm run lint)", "Read(~/.zshrc)"],
    "deny": ["Read(./.env)"] // never
  },
  "env": {
    "DISABLE_TELEMETRY": "1" // privacy
  },
  "includeCoAuthoredBy": false,
}
`,
		ours: func(doc map[string]any) {
			deleteAt(doc, "env", "ANTHROPIC_BASE_URL")
			deleteAt(doc, "env", "ANTHROPIC_AUTH_TOKEN")
		},
		check: func(t *testing.T, doc map[string]any, base string) {
			assert.Equal(t, base, dig(doc, "env", "ANTHROPIC_BASE_URL"), "no /v1 for Claude Code")
			assert.Equal(t, "gatehouse", dig(doc, "env", "ANTHROPIC_AUTH_TOKEN"))
			assert.Nil(t, dig(doc, "env", "ANTHROPIC_MODEL"), "no --model, no model")
		},
		broken: "{\n  \"model\": \"opus\",\n  \"env\" {}\n}\n", brokenLine: 3,
	},
	{
		tool: "codex", file: ".codex/config.toml", format: "toml",
		original: `# ~/.codex/config.toml
model = "o3"  # the smart one
approval_policy = "on-request"
sandbox_mode = "workspace-write"

[shell_environment_policy]
inherit = "core" # keep PATH

# trusted checkouts
[projects."/home/me/src/gatehouse"]
trust_level = "trusted"

[model_providers.ollama]
name = "Ollama"
base_url = "http://localhost:11434/v1"
`,
		ours: func(doc map[string]any) {
			delete(doc, "model_provider")
			deleteAt(doc, "model_providers", "gatehouse")
		},
		check: func(t *testing.T, doc map[string]any, base string) {
			assert.Equal(t, "gatehouse", doc["model_provider"])
			assert.Equal(t, base+"/v1", dig(doc, "model_providers", "gatehouse", "base_url"))
			assert.Equal(t, "responses", dig(doc, "model_providers", "gatehouse", "wire_api"))
			assert.Nil(t, dig(doc, "model_providers", "gatehouse", "experimental_bearer_token"), "no tokens on, no token")
		},
		broken: "model = \"o3\"\napproval_policy = \n[x]\n", brokenLine: 2,
	},
	{
		tool: "continue", file: ".continue/config.yaml", format: "yaml",
		original: `# Continue config
name: My Assistant
version: 1.0.0
schema: v1

models:
  # the local one
  - name: Llama local
    provider: ollama
    model: llama3.1:8b
    roles:
      - chat
      - autocomplete

  - name: Claude
    provider: anthropic
    model: claude-sonnet-4-5
    apiKey: "${{ secrets.ANTHROPIC_API_KEY }}"

context:
  - provider: code
  - provider: docs  # docs index
`,
		ours: func(doc map[string]any) {
			models := doc["models"].([]any)
			doc["models"] = models[:len(models)-1]
		},
		check: func(t *testing.T, doc map[string]any, base string) {
			models := doc["models"].([]any)
			assert.Equal(t, map[string]any{"name": "Gatehouse", "provider": "openai", "model": "gpt-4o", "apiBase": base + "/v1", "apiKey": "gatehouse"}, models[len(models)-1])
		},
		broken: "name: x\nmodels:\n\t- name: a\n", brokenLine: 3,
	},
	{
		tool: "zed", file: ".config/zed/settings.json", format: "json",
		original: `// Zed settings
//
// For information on how to configure Zed, see the Zed
// documentation: https://zed.dev/docs/configuring-zed
{
  "theme": {
    "mode": "system",
    "light": "One Light",
    "dark": "One Dark"
  },
  "ui_font_size": 16,
  "buffer_font_size": 15, // a bit smaller
  "language_models": {
    "ollama": {
      "api_url": "http://localhost:11434"
    }
  },
  "vim_mode": true
}
`,
		ours: func(doc map[string]any) { deleteAt(doc, "language_models", "openai") },
		check: func(t *testing.T, doc map[string]any, base string) {
			assert.Equal(t, base+"/v1", dig(doc, "language_models", "openai", "api_url"))
		},
		broken: "{\n  \"vim_mode\": true\n  \"theme\": \"x\"\n}\n", brokenLine: 3,
	},
	{
		tool: "aider", file: ".aider.conf.yml", format: "yaml",
		original: `##########################################################
# Sample .aider.conf.yml
##########################################################

## Use dark mode
dark-mode: true

## Auto commits
auto-commits: false  # I commit myself

#openai-api-key: xxx
#model: gpt-4o
`,
		ours: func(doc map[string]any) {
			delete(doc, "openai-api-base")
			delete(doc, "openai-api-key")
		},
		check: func(t *testing.T, doc map[string]any, base string) {
			assert.Equal(t, base+"/v1", doc["openai-api-base"])
			assert.Equal(t, "gatehouse", doc["openai-api-key"])
		},
		broken: "dark-mode: true\nmodel: gpt-4o\n  auto-commits: false\n", brokenLine: 3,
	},
	{
		tool: "opencode", file: ".config/opencode/opencode.json", format: "json",
		original: `{
  "$schema": "https://opencode.ai/config.json",
  // my theme
  "theme": "tokyonight",
  "autoupdate": false,
  "provider": {
    "ollama": {
      "npm": "@ai-sdk/openai-compatible",
      "options": { "baseURL": "http://localhost:11434/v1" },
      "models": { "llama3.1": {} }
    }
  }
}
`,
		ours: func(doc map[string]any) { deleteAt(doc, "provider", "gatehouse") },
		check: func(t *testing.T, doc map[string]any, base string) {
			assert.Equal(t, base+"/v1", dig(doc, "provider", "gatehouse", "options", "baseURL"))
			assert.Equal(t, "gatehouse", dig(doc, "provider", "gatehouse", "options", "apiKey"))
			assert.Equal(t, "@ai-sdk/openai-compatible", dig(doc, "provider", "gatehouse", "npm"))
			assert.NotNil(t, dig(doc, "provider", "gatehouse", "models", "gpt-4o"))
			assert.Nil(t, doc["model"], "no --model: the tool's own default stays")
		},
		broken: "{\n  \"theme\": \"x\",\n  /* open\n", brokenLine: 3,
	},
}

func parseAs(t *testing.T, format string, data []byte) map[string]any {
	t.Helper()
	doc := map[string]any{}
	switch format {
	case "json":
		std, err := hujson.Standardize(bytes.Clone(data))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(std, &doc))
	case "toml":
		require.NoError(t, toml.Unmarshal(data, &doc))
	case "yaml":
		require.NoError(t, yaml.Unmarshal(data, &doc))
	}
	return doc
}

// assertKept: every line of the original is in the new file, in order
// (commas aside, which JSON needs between members), so every comment,
// setting and the key order stayed.
func assertKept(t *testing.T, original, got string) {
	t.Helper()
	norm := func(s string) []string { return strings.Split(strings.ReplaceAll(s, ",", ""), "\n") }
	want, have := norm(original), norm(got)
	j := 0
	for _, l := range want {
		for j < len(have) && have[j] != l {
			j++
		}
		if !assert.Less(t, j, len(have), "line %q of the original is gone or moved:\n%s", l, got) {
			return
		}
		j++
	}
}

func TestConnectEachTool(t *testing.T) {
	for _, tc := range connectCases {
		t.Run(tc.tool, func(t *testing.T) {
			useMemoryStore(t)
			home, cfg := connectHome(t, connectUpstreams)
			const base = "http://127.0.0.1:4747"
			path := filepath.Join(home, tc.file)
			writeFile(t, path, tc.original)
			require.NoError(t, os.Chmod(path, 0o640))

			code, out, errOut := gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "--- "+path)
			assert.Contains(t, out, "Connected ")
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			doc := parseAs(t, tc.format, got)
			tc.check(t, doc, base)
			tc.ours(doc)
			assert.Equal(t, parseAs(t, tc.format, []byte(tc.original)), doc, "every other setting is unchanged")
			assertKept(t, tc.original, string(got))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o640), fi.Mode().Perm(), "the file's permissions stay")

			code, out, errOut = gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "nothing to change")
			again, _ := os.ReadFile(path)
			assert.Equal(t, string(got), string(again), "connecting twice changes nothing")

			code, out, _ = gh(t, "", "connect", "--list", "--config", cfg)
			require.Equal(t, 0, code)
			assert.Regexp(t, regexp.MustCompile(`(?m)^`+tc.tool+`\s+connected here\s+`+regexp.QuoteMeta(path)), out)

			code, out, errOut = gh(t, "", "connect", "--undo", tc.tool, "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "Put back "+path)
			back, _ := os.ReadFile(path)
			assert.Equal(t, tc.original, string(back), "undo gives back the original bytes")
			fi, _ = os.Stat(path)
			assert.Equal(t, fs.FileMode(0o640), fi.Mode().Perm())

			code, _, errOut = gh(t, "", "connect", "--undo", tc.tool, "--config", cfg)
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, "nothing to undo")
		})
	}
}

func TestConnectCreatesMissingFile(t *testing.T) {
	for _, tc := range connectCases {
		t.Run(tc.tool, func(t *testing.T) {
			useMemoryStore(t)
			home, cfg := connectHome(t, connectUpstreams)
			path := filepath.Join(home, tc.file)
			code, _, errOut := gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			require.Equal(t, 0, code, errOut)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			tc.check(t, parseAs(t, tc.format, got), "http://127.0.0.1:4747")
			fi, _ := os.Stat(path)
			assert.Equal(t, fs.FileMode(0o600), fi.Mode().Perm(), "a new file is private: it may hold a token")

			code, out, _ := gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			require.Equal(t, 0, code)
			assert.Contains(t, out, "nothing to change")

			code, out, errOut = gh(t, "", "connect", "--undo", tc.tool, "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "Removed "+path)
			assert.NoFileExists(t, path)
			if tc.tool != "aider" {
				assert.NoDirExists(t, filepath.Dir(path), "the folder connect made goes too")
			}
		})
	}
}

func TestConnectLeavesBrokenFileAlone(t *testing.T) {
	for _, tc := range connectCases {
		t.Run(tc.tool, func(t *testing.T) {
			useMemoryStore(t)
			home, cfg := connectHome(t, connectUpstreams)
			path := filepath.Join(home, tc.file)
			writeFile(t, path, tc.broken)
			code, out, errOut := gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			assert.Equal(t, 1, code)
			assert.Contains(t, errOut, path+" is not changed")
			assert.Regexp(t, fmt.Sprintf(`line %d\b`, tc.brokenLine), errOut)
			assert.Empty(t, out)
			got, _ := os.ReadFile(path)
			assert.Equal(t, tc.broken, string(got))
			assert.NoDirExists(t, filepath.Join(filepath.Dir(cfg), "connect"), "nothing recorded either")
		})
	}
}

func TestConnectAsksFirst(t *testing.T) {
	useMemoryStore(t)
	home, cfg := connectHome(t, connectUpstreams)
	path := filepath.Join(home, ".claude", "settings.json")
	writeFile(t, path, "{\n  \"model\": \"opus\"\n}\n")

	code, out, errOut := gh(t, "n\n", "connect", "claude-code", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `+  "env": {`)
	assert.Contains(t, errOut, "Write "+path+"? [y/N]")
	assert.Contains(t, out, "Nothing written.")
	got, _ := os.ReadFile(path)
	assert.Equal(t, "{\n  \"model\": \"opus\"\n}\n", string(got))

	code, _, _ = gh(t, "", "connect", "claude-code", "--config", cfg) // no answer at all: no
	require.Equal(t, 0, code)
	got, _ = os.ReadFile(path)
	assert.NotContains(t, string(got), "ANTHROPIC")

	code, out, errOut = gh(t, "y\n", "connect", "claude-code", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "Connected Claude Code")
	got, _ = os.ReadFile(path)
	assert.Contains(t, string(got), `"ANTHROPIC_BASE_URL": "http://127.0.0.1:4747"`)
}

func TestConnectModel(t *testing.T) {
	useMemoryStore(t)
	home, cfg := connectHome(t, connectUpstreams)

	code, _, errOut := gh(t, "", "connect", "claude-code", "--model", "llama-3-70b", "--yes", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `no upstream serves model "llama-3-70b" (the upstreams' models: gpt-*, claude-*)`)
	assert.NoFileExists(t, filepath.Join(home, ".claude", "settings.json"))

	for _, tc := range []struct {
		tool, file, want string
	}{
		{"claude-code", ".claude/settings.json", `"ANTHROPIC_MODEL": "claude-opus-4-1"`},
		{"codex", ".codex/config.toml", `model = "claude-opus-4-1"`},
		{"continue", ".continue/config.yaml", `model: claude-opus-4-1`},
		{"zed", ".config/zed/settings.json", `"model": "claude-opus-4-1"`},
		{"aider", ".aider.conf.yml", `model: openai/claude-opus-4-1`},
		{"opencode", ".config/opencode/opencode.json", `"model": "gatehouse/claude-opus-4-1"`},
	} {
		code, _, errOut := gh(t, "", "connect", tc.tool, "--model", "claude-opus-4-1", "--yes", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		got, _ := os.ReadFile(filepath.Join(home, tc.file))
		assert.Contains(t, string(got), tc.want, tc.tool)
	}
	code, out, _ := gh(t, "", "connect", "cline", "--model", "gpt-4.1", "--config", cfg)
	require.Equal(t, 0, code)
	assert.Regexp(t, `Model ID:\s+gpt-4.1`, out)

	// Codex's default model with only an Anthropic upstream: a warning.
	_, cfg2 := connectHome(t, "[[upstreams]]\nname = \"anthropic\"\nbase_url = \"https://api.anthropic.com/v1\"\nmodels = [\"claude-*\"]\nauth = \"x-api-key\"\n")
	code, _, errOut = gh(t, "", "connect", "codex", "--yes", "--config", cfg2)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "Warning: Codex CLI uses gpt-5-codex unless told otherwise, and no upstream serves it (the upstreams' models: claude-*)")
	code, _, errOut = gh(t, "", "connect", "claude-code", "--yes", "--config", cfg2)
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, errOut, "Warning")
}

func TestConnectList(t *testing.T) {
	useMemoryStore(t)
	home, cfg := connectHome(t, connectUpstreams)
	writeFile(t, filepath.Join(home, ".codex", "config.toml"), "model = \"o3\"\n")
	writeFile(t, filepath.Join(home, ".config", "opencode", "opencode.json"),
		`{"provider": {"gatehouse": {"options": {"baseURL": "http://127.0.0.1:9999/v1"}}}}`)
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".vscode", "extensions", "saoudrizwan.claude-dev-3.20.0"), 0o700))
	bin := filepath.Join(t.TempDir(), "aider")
	writeFile(t, bin, "#!/bin/sh\n")
	require.NoError(t, os.Chmod(bin, 0o700))
	t.Setenv("PATH", filepath.Dir(bin))
	code, _, errOut := gh(t, "", "connect", "claude-code", "--yes", "--config", cfg)
	require.Equal(t, 0, code, errOut)

	code, out, errOut := gh(t, "", "connect", "--list", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	for _, re := range []string{
		`claude-code\s+connected here\s+` + regexp.QuoteMeta(filepath.Join(home, ".claude", "settings.json")),
		`codex\s+found\s+`,
		`continue\s+not found\s+`,
		`zed\s+not found\s+`,
		`aider\s+found\s+`, // its binary on PATH
		`opencode\s+connected elsewhere \(http://127.0.0.1:9999/v1\)`,
		`cline\s+found\s+inside the IDE`,
		`roo-code\s+not found\s+inside the IDE`,
		`jetbrains\s+not found`,
	} {
		assert.Regexp(t, regexp.MustCompile(`(?m)^`+re), out)
	}

	code, _, errOut = gh(t, "", "connect", "vim", "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `no tool named "vim"; choose one of: claude-code, codex, continue, zed, aider, opencode, cline, roo-code, jetbrains`)
	code, _, errOut = gh(t, "", "connect", "--config", cfg)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "connect takes TOOL, or --list")
}

// TestConnectOverrideVariables: each tool's own variable moves its file.
func TestConnectOverrideVariables(t *testing.T) {
	useMemoryStore(t)
	_, cfg := connectHome(t, connectUpstreams)
	elsewhere := t.TempDir()
	t.Setenv("CLAUDE_CONFIG_DIR", filepath.Join(elsewhere, "claude"))
	t.Setenv("CODEX_HOME", filepath.Join(elsewhere, "codex"))
	t.Setenv("CONTINUE_GLOBAL_DIR", filepath.Join(elsewhere, "continue"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(elsewhere, "xdg"))
	t.Setenv("OPENCODE_CONFIG", filepath.Join(elsewhere, "oc.json"))
	for tool, file := range map[string]string{
		"claude-code": "claude/settings.json", "codex": "codex/config.toml", "continue": "continue/config.yaml",
		"zed": "xdg/zed/settings.json", "opencode": "oc.json",
	} {
		code, _, errOut := gh(t, "", "connect", tool, "--yes", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		assert.FileExists(t, filepath.Join(elsewhere, file), tool)
	}
}

// startForwarder runs serve in-process on a free loopback port, as the
// desktop app and `gatehouse serve` do, and waits until it answers.
func startForwarder(t *testing.T, store keystore.Store, cfg, listen string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &cli{ctx: ctx, log: slog.New(slog.DiscardHandler), stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, store: store}
	served := make(chan error, 1)
	go func() { served <- c.serve([]string{"--config", cfg}) }()
	t.Cleanup(func() { cancel(); <-served })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err := testClient.Get("http://" + listen + "/health")
		if err == nil {
			res.Body.Close()
			return
		}
		require.False(t, time.Now().After(deadline), "the forwarder did not start")
	}
}

func freeListen(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

var tokenRe = regexp.MustCompile(proxy.TokenPrefix + `[A-Za-z0-9_-]{20,}`)

func ask(t *testing.T, listen, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+listen+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode
}

// eventually asks until the answer is want (the forwarder applies a
// changed config within moments) or ten seconds have passed.
func eventually(t *testing.T, listen, token string, want int) int {
	t.Helper()
	var status int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if status = ask(t, listen, token); status == want {
			break
		}
	}
	return status
}

// TestConnectWithTokens: with local tokens on, each tool's file gets a
// token of its own that the running forwarder accepts; connecting again
// keeps it; --undo revokes it.
func TestConnectWithTokens(t *testing.T) {
	mem := useMemoryStore(t)
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	listen := freeListen(t)
	home, cfg := connectHome(t, fmt.Sprintf("listen = %q\n[[upstreams]]\nname = \"mock\"\nbase_url = %q\nmodels = [\"gpt-*\", \"claude-*\"]\n", listen, up.URL+"/v1"))
	code, _, errOut := gh(t, cliSecret+"\n", "key", "add", "mock", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = gh(t, "", "token", "add", "admin", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	startForwarder(t, mem, cfg, listen)
	require.Equal(t, http.StatusUnauthorized, ask(t, listen, ""), "tokens are on")

	for _, tc := range connectCases {
		t.Run(tc.tool, func(t *testing.T) {
			path := filepath.Join(home, tc.file)
			writeFile(t, path, tc.original)
			code, out, errOut := gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, errOut, fmt.Sprintf("Made the access token %q", tc.tool))
			got, _ := os.ReadFile(path)
			tok := tokenRe.FindString(string(got))
			if tc.tool == "zed" {
				// Zed keeps keys in the system keychain: the token is shown once.
				assert.Empty(t, tok)
				tok = tokenRe.FindString(out)
			} else {
				assert.NotContains(t, out, tok, "the diff masks the token")
			}
			require.NotEmpty(t, tok)
			conf, _ := os.ReadFile(cfg)
			assert.Contains(t, string(conf), proxy.HashToken(tok))
			assert.Equal(t, http.StatusOK, eventually(t, listen, tok, http.StatusOK), "the written token works")

			code, out, errOut = gh(t, "", "connect", tc.tool, "--yes", "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, "nothing to change")
			assert.NotContains(t, errOut, "Made the access token")
			again, _ := os.ReadFile(path)
			assert.Equal(t, string(got), string(again))

			code, out, errOut = gh(t, "", "connect", "--undo", tc.tool, "--config", cfg)
			require.Equal(t, 0, code, errOut)
			assert.Contains(t, out, fmt.Sprintf("Revoked the token %q", tc.tool))
			back, _ := os.ReadFile(path)
			assert.Equal(t, tc.original, string(back))
			conf, _ = os.ReadFile(cfg)
			assert.NotContains(t, string(conf), proxy.HashToken(tok))
			assert.Equal(t, http.StatusUnauthorized, eventually(t, listen, tok, http.StatusUnauthorized), "the running forwarder no longer takes the revoked token")
		})
	}

	t.Run("a token gone from the file is replaced, not added", func(t *testing.T) {
		path := filepath.Join(home, ".aider.conf.yml")
		before, err := os.ReadFile(path) // left by the aider case above
		require.NoError(t, err)
		code, _, errOut := gh(t, "", "connect", "aider", "--yes", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		got, _ := os.ReadFile(path)
		first := tokenRe.FindString(string(got))
		writeFile(t, path, "dark-mode: true\n") // the user rewrote the file
		code, _, errOut = gh(t, "", "connect", "aider", "--yes", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, `Made the access token "aider"`)
		got, _ = os.ReadFile(path)
		second := tokenRe.FindString(string(got))
		require.NotEmpty(t, second)
		assert.NotEqual(t, first, second)
		conf, _ := os.ReadFile(cfg)
		assert.Equal(t, 1, strings.Count(string(conf), "name = 'aider'"))
		assert.Equal(t, http.StatusOK, eventually(t, listen, second, http.StatusOK))
		assert.Equal(t, http.StatusUnauthorized, eventually(t, listen, first, http.StatusUnauthorized))
		code, _, errOut = gh(t, "", "connect", "--undo", "aider", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		back, _ := os.ReadFile(path)
		assert.Equal(t, string(before), string(back), "undo goes back to the file before the first connect")
	})

	t.Run("cline", func(t *testing.T) {
		code, out, errOut := gh(t, "", "connect", "cline", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		tok := tokenRe.FindString(out)
		require.NotEmpty(t, tok, "the API Key field shows the new token")
		assert.Equal(t, http.StatusOK, eventually(t, listen, tok, http.StatusOK))
		code, out, _ = gh(t, "", "connect", "cline", "--config", cfg)
		require.Equal(t, 0, code)
		assert.Contains(t, out, `the token "cline", shown when it was made`)
		assert.Empty(t, tokenRe.FindString(out))
		code, out, errOut = gh(t, "", "connect", "--undo", "cline", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, `Revoked the token "cline"`)
	})
}

// TestConnectWritesNoUpstreamKey: with the upstreams' keys in the keychain
// and tokens on, connecting every tool writes none of those keys anywhere
// under HOME, nor prints one.
func TestConnectWritesNoUpstreamKey(t *testing.T) {
	useMemoryStore(t)
	home, cfg := connectHome(t, connectUpstreams)
	t.Setenv("CLI_TEST_OPENAI", "")
	for up, key := range map[string]string{"openai": cliSecret, "anthropic": "sk-ant-SECRET-9876543210"} {
		code, _, errOut := gh(t, key+"\n", "key", "add", up, "--config", cfg)
		require.Equal(t, 0, code, errOut)
	}
	code, _, errOut := gh(t, "", "token", "add", "admin", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	var printed strings.Builder
	for _, tc := range connectCases {
		writeFile(t, filepath.Join(home, tc.file), tc.original)
	}
	for _, tool := range []string{"claude-code", "codex", "continue", "zed", "aider", "opencode", "cline", "roo-code", "jetbrains"} {
		code, out, errOut := gh(t, "", "connect", tool, "--yes", "--model", "gpt-4o", "--config", cfg)
		require.Equal(t, 0, code, errOut)
		printed.WriteString(out + errOut)
	}
	files := 0
	require.NoError(t, filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.Type().IsRegular() {
			files++
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			for _, key := range []string{cliSecret, "sk-ant-SECRET-9876543210"} {
				assert.NotContains(t, string(data), key, p)
			}
		}
		return nil
	}))
	assert.GreaterOrEqual(t, files, 6+1)
	assert.NotContains(t, printed.String(), cliSecret)
	assert.NotContains(t, printed.String(), "sk-ant-SECRET")
}

// Zed keeps its key in the system keychain, so its file does not change
// when its token does: a revoked token is still replaced, saved and shown.
func TestConnectZedAfterItsTokenWasRevoked(t *testing.T) {
	useMemoryStore(t)
	_, cfg := connectHome(t, connectUpstreams)
	code, _, errOut := gh(t, "", "token", "add", "admin", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = gh(t, "", "connect", "zed", "--yes", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, `Made the access token "zed"`)
	code, _, errOut = gh(t, "", "token", "rm", "zed", "--config", cfg)
	require.Equal(t, 0, code, errOut)

	code, out, errOut := gh(t, "", "connect", "zed", "--yes", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, `Made the access token "zed"`)
	assert.Contains(t, out, "this token (shown only this once): gate_")
}
