package connect

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The default models below are what each tool picks when its config names
// none, as far as Gatehouse knows; they only decide whether to warn that
// no upstream serves the default. Tools that need a model in the entry
// Gatehouse writes (Continue, opencode, the IDE forms) get this one
// unless --model names another.
const (
	claudeDefault = "claude-sonnet-4-5"
	codexDefault  = "gpt-5-codex"
	openaiDefault = "gpt-4o"
)

// Tools are the tools Gatehouse connects, in the order --list shows them.
func Tools() []*Tool {
	return []*Tool{claudeCode, codex, continueDev, zed, aider, opencode, cline, rooCode, jetbrains}
}

// Claude Code: settings.json's env object, read by Claude Code at start.
var claudeCode = &Tool{
	Name: "claude-code", Title: "Claude Code", DefaultModel: claudeDefault, Format: "json",
	path: func() (string, error) { return filepath.Join(claudeDir(), "settings.json"), nil },
	dirs: func() []string { return []string{claudeDir()} }, binary: "claude",
	fileErr: jsonCheck,
	edit: func(old []byte, t Target) ([]byte, error) {
		edits := []jsonEdit{
			{path: []string{"env", "ANTHROPIC_BASE_URL"}, val: strings.TrimRight(t.BaseURL, "/")},
			{path: []string{"env", "ANTHROPIC_AUTH_TOKEN"}, val: t.Token},
		}
		if t.Model != "" {
			edits = append(edits, jsonEdit{path: []string{"env", "ANTHROPIC_MODEL"}, val: t.Model})
		}
		return jsonApply(old, edits)
	},
	read: func(data []byte) (current, error) {
		doc, err := jsonDoc(data)
		return current{jsonString(doc, "env", "ANTHROPIC_BASE_URL"), jsonString(doc, "env", "ANTHROPIC_AUTH_TOKEN")}, err
	},
}

// claudeDir is $CLAUDE_CONFIG_DIR or ~/.claude.
func claudeDir() string {
	if d := os.Getenv("CLAUDE_CONFIG_DIR"); d != "" {
		return d
	}
	return filepath.Join(home(), ".claude")
}

// Codex CLI: a [model_providers.gatehouse] table and model_provider.
var codex = &Tool{
	Name: "codex", Title: "Codex CLI", DefaultModel: codexDefault, Format: "toml",
	path: func() (string, error) { return filepath.Join(codexDir(), "config.toml"), nil },
	dirs: func() []string { return []string{codexDir()} }, binary: "codex",
	fileErr: tomlCheck,
	edit:    editCodex,
	read: func(data []byte) (current, error) {
		doc, err := tomlDoc(data)
		if err != nil {
			return current{}, err
		}
		if doc["model_provider"] != "gatehouse" {
			return current{}, nil
		}
		p, _ := doc["model_providers"].(map[string]any)
		g, _ := p["gatehouse"].(map[string]any)
		url, _ := g["base_url"].(string)
		tok, _ := g["experimental_bearer_token"].(string)
		return current{url, tok}, nil
	},
}

// codexDir is $CODEX_HOME or ~/.codex.
func codexDir() string {
	if d := os.Getenv("CODEX_HOME"); d != "" {
		return d
	}
	return filepath.Join(home(), ".codex")
}

var codexTable = regexp.MustCompile(`^\s*\[\s*(model_providers\.gatehouse|model_providers\."gatehouse")\s*\]`)

func editCodex(old []byte, t Target) ([]byte, error) {
	doc, err := tomlDoc(old)
	if err != nil {
		return nil, err
	}
	ls := ensureNewline(lines(old))
	start, end, _ := tomlTable(ls, nil)
	ls, _ = tomlSet(ls, start, end, "model_provider", "gatehouse")
	if t.Model != "" {
		start, end, _ = tomlTable(ls, nil)
		ls, _ = tomlSet(ls, start, end, "model", t.Model)
	}
	keys := [][2]string{{"name", "Gatehouse"}, {"base_url", t.v1()}, {"wire_api", "responses"}}
	if t.Token != Placeholder {
		// Codex sends it as the bearer token; with no tokens on,
		// the forwarder needs none and nothing is written.
		keys = append(keys, [2]string{"experimental_bearer_token", t.Token})
	}
	if start, end, ok := tomlTable(ls, codexTable); ok {
		for _, kv := range keys {
			ls, end = tomlSet(ls, start, end, kv[0], kv[1])
		}
	} else {
		if p, _ := doc["model_providers"].(map[string]any); p["gatehouse"] != nil {
			return nil, fmt.Errorf("model_providers.gatehouse is written in a form connect does not edit; make it a [model_providers.gatehouse] table")
		}
		if n := len(ls); n > 0 && strings.TrimSpace(ls[n-1]) != "" {
			ls = append(ls, "\n")
		}
		ls = append(ls, "[model_providers.gatehouse]\n")
		for _, kv := range keys {
			ls = append(ls, kv[0]+" = "+tomlString(kv[1])+"\n")
		}
	}
	return []byte(strings.Join(ls, "")), nil
}

// Continue: a model entry named "Gatehouse" in config.yaml's models list.
var continueDev = &Tool{
	Name: "continue", Title: "Continue", DefaultModel: openaiDefault, Format: "yaml",
	path:    func() (string, error) { return filepath.Join(continueDir(), "config.yaml"), nil },
	dirs:    func() []string { return []string{continueDir()} },
	fileErr: yamlCheck,
	edit:    editContinue,
	read: func(data []byte) (current, error) {
		top, err := yamlTop(data)
		if err != nil {
			return current{}, err
		}
		item := continueEntry(top)
		if item == nil {
			return current{}, nil
		}
		_, base := yamlGet(item, "apiBase")
		_, key := yamlGet(item, "apiKey")
		var c current
		if base != nil {
			c.baseURL = base.Value
		}
		if key != nil {
			c.token = key.Value
		}
		return c, nil
	},
}

const continueName = "Gatehouse"

// continueDir is $CONTINUE_GLOBAL_DIR or ~/.continue.
func continueDir() string {
	if d := os.Getenv("CONTINUE_GLOBAL_DIR"); d != "" {
		return d
	}
	return filepath.Join(home(), ".continue")
}

// continueEntry is the models entry named Gatehouse, or nil.
func continueEntry(top *yaml.Node) *yaml.Node {
	_, models := yamlGet(top, "models")
	if models == nil || models.Kind != yaml.SequenceNode {
		return nil
	}
	for _, item := range models.Content {
		if _, n := yamlGet(item, "name"); n != nil && n.Value == continueName {
			return item
		}
	}
	return nil
}

func editContinue(old []byte, t Target) ([]byte, error) {
	top, err := yamlTop(old)
	if err != nil {
		return nil, err
	}
	model := t.Model
	if entry := continueEntry(top); model == "" && entry != nil {
		if _, m := yamlGet(entry, "model"); m != nil {
			model = m.Value // keep the model chosen before
		}
	}
	if model == "" {
		model = openaiDefault
	}
	entry := func(indent string) string {
		var b strings.Builder
		for i, kv := range [][2]string{{"name", continueName}, {"provider", "openai"}, {"model", model}, {"apiBase", t.v1()}, {"apiKey", t.Token}} {
			lead := indent + "  "
			if i == 0 {
				lead = indent + "- "
			}
			b.WriteString(lead + kv[0] + ": " + yamlScalar(kv[1]) + "\n")
		}
		return b.String()
	}
	ls := ensureNewline(lines(old))
	if top == nil {
		if len(ls) == 0 {
			ls = append(ls, "name: Local Assistant\n", "version: 1.0.0\n", "schema: v1\n")
		}
		return []byte(strings.Join(append(ls, "models:\n", entry("  ")), "")), nil
	}
	k, models := yamlGet(top, "models")
	switch {
	case k == nil:
		ls = append(ls, "models:\n", entry("  "))
	case models.Kind == yaml.ScalarNode && models.Tag == "!!null",
		models.Kind == yaml.SequenceNode && len(models.Content) == 0 && models.Line == k.Line:
		ls[k.Line-1] = strings.Repeat(" ", k.Column-1) + "models:\n"
		ls = append(ls[:k.Line], append([]string{entry(strings.Repeat(" ", k.Column-1) + "  ")}, ls[k.Line:]...)...)
	case models.Kind != yaml.SequenceNode || models.Style&yaml.FlowStyle != 0:
		return nil, fmt.Errorf("line %d: models is not a block list (\"- name: …\" lines); change it by hand", k.Line)
	default:
		last := models.Content[len(models.Content)-1]
		dash := strings.Index(ls[last.Line-1], "-")
		if dash < 0 {
			return nil, fmt.Errorf("line %d: models entries are not written one per \"- \" line; change it by hand", last.Line)
		}
		indent := strings.Repeat(" ", dash)
		if item := continueEntry(top); item != nil {
			from, to := item.Line-1, lastLine(item)
			text := entry(indent)
			if strings.Join(ls[from:to], "") == text {
				return old, nil
			}
			ls = append(ls[:from], append([]string{text}, ls[to:]...)...)
		} else {
			at := lastLine(last)
			ls = append(ls[:at], append([]string{entry(indent)}, ls[at:]...)...)
		}
	}
	return []byte(strings.Join(ls, "")), nil
}

// Zed: language_models.openai.api_url in settings.json. Zed keeps API
// keys in the system keychain, not in this file: the token is typed into
// Zed's agent settings.
var zed = &Tool{
	Name: "zed", Title: "Zed", DefaultModel: openaiDefault, Format: "json",
	path: func() (string, error) { return filepath.Join(zedDir(), "settings.json"), nil },
	dirs: func() []string { return []string{zedDir()} }, binary: "zed",
	fileErr: jsonCheck,
	edit: func(old []byte, t Target) ([]byte, error) {
		edits := []jsonEdit{{path: []string{"language_models", "openai", "api_url"}, val: t.v1()}}
		if t.Model != "" {
			edits = append(edits, jsonEdit{path: []string{"agent", "default_model"}, val: map[string]string{"provider": "openai", "model": t.Model}})
		}
		return jsonApply(old, edits)
	},
	read: func(data []byte) (current, error) {
		doc, err := jsonDoc(data)
		return current{baseURL: jsonString(doc, "language_models", "openai", "api_url")}, err
	},
}

func zedDir() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(os.Getenv("APPDATA"), "Zed")
	}
	return filepath.Join(xdgConfig(), "zed")
}

// TokenInFile reports whether the tool's file carries the token; for the
// others (Zed, the IDE forms) it is typed in by hand.
func (t *Tool) TokenInFile() bool { return t.path != nil && t != zed }

// Aider: openai-api-base and openai-api-key in ~/.aider.conf.yml.
var aider = &Tool{
	Name: "aider", Title: "Aider", DefaultModel: openaiDefault, Format: "yaml",
	path:    func() (string, error) { return filepath.Join(home(), ".aider.conf.yml"), nil },
	binary:  "aider",
	fileErr: yamlCheck,
	edit: func(old []byte, t Target) ([]byte, error) {
		kv := [][2]string{{"openai-api-base", t.v1()}, {"openai-api-key", t.Token}}
		if t.Model != "" {
			kv = append(kv, [2]string{"model", "openai/" + t.Model}) // litellm's prefix for an OpenAI-style base
		}
		return yamlSetTop(old, kv)
	},
	read: func(data []byte) (current, error) {
		top, err := yamlTop(data)
		var c current
		if _, v := yamlGet(top, "openai-api-base"); v != nil {
			c.baseURL = v.Value
		}
		if _, v := yamlGet(top, "openai-api-key"); v != nil {
			c.token = v.Value
		}
		return c, err
	},
}

// opencode: a provider "gatehouse" (OpenAI-compatible) in opencode.json.
var opencode = &Tool{
	Name: "opencode", Title: "opencode", DefaultModel: openaiDefault, Format: "json",
	path: func() (string, error) {
		if p := os.Getenv("OPENCODE_CONFIG"); p != "" {
			return p, nil
		}
		dir := filepath.Join(xdgConfig(), "opencode")
		if _, err := os.Stat(filepath.Join(dir, "opencode.json")); err != nil {
			if _, err := os.Stat(filepath.Join(dir, "opencode.jsonc")); err == nil {
				return filepath.Join(dir, "opencode.jsonc"), nil
			}
		}
		return filepath.Join(dir, "opencode.json"), nil
	},
	dirs: func() []string { return []string{filepath.Join(xdgConfig(), "opencode")} }, binary: "opencode",
	fileErr: jsonCheck,
	edit: func(old []byte, t Target) ([]byte, error) {
		model := t.Model
		if model == "" {
			model = openaiDefault
		}
		var edits []jsonEdit
		if len(strings.TrimSpace(string(old))) == 0 {
			edits = append(edits, jsonEdit{path: []string{"$schema"}, val: "https://opencode.ai/config.json"})
		}
		p := func(keys ...string) []string { return append([]string{"provider", "gatehouse"}, keys...) }
		edits = append(edits,
			jsonEdit{path: p("npm"), val: "@ai-sdk/openai-compatible"},
			jsonEdit{path: p("name"), val: "Gatehouse"},
			jsonEdit{path: p("options", "baseURL"), val: t.v1()},
			jsonEdit{path: p("options", "apiKey"), val: t.Token},
			jsonEdit{path: p("models", model), val: map[string]string{"name": model}, onlyIfMissing: true},
		)
		if t.Model != "" {
			edits = append(edits, jsonEdit{path: []string{"model"}, val: "gatehouse/" + t.Model})
		}
		return jsonApply(old, edits)
	},
	read: func(data []byte) (current, error) {
		doc, err := jsonDoc(data)
		return current{jsonString(doc, "provider", "gatehouse", "options", "baseURL"), jsonString(doc, "provider", "gatehouse", "options", "apiKey")}, err
	},
}

// The IDE forms: settings kept inside the IDE, filled by hand.

func openAICompatibleFields(t Target) []Field {
	model := t.Model
	if model == "" {
		model = openaiDefault
	}
	return []Field{
		{Label: "API Provider", Value: "OpenAI Compatible"},
		{Label: "Base URL", Value: t.v1()},
		{Label: "API Key", Value: t.Token, Secret: true},
		{Label: "Model ID", Value: model},
	}
}

func vscodeExtensions(id string) func() []string {
	return func() []string {
		var out []string
		for _, d := range []string{".vscode", ".vscode-server", ".cursor", ".windsurf", ".vscode-oss"} {
			out = append(out, filepath.Join(home(), d, "extensions", id+"-*"))
		}
		return out
	}
}

var cline = &Tool{
	Name: "cline", Title: "Cline", DefaultModel: openaiDefault,
	dirs:   vscodeExtensions("saoudrizwan.claude-dev"),
	fields: openAICompatibleFields,
}

var rooCode = &Tool{
	Name: "roo-code", Title: "Roo Code", DefaultModel: openaiDefault,
	dirs:   vscodeExtensions("rooveterinaryinc.roo-cline"),
	fields: openAICompatibleFields,
}

var jetbrains = &Tool{
	Name: "jetbrains", Title: "JetBrains AI Assistant", DefaultModel: openaiDefault,
	dirs: func() []string {
		dirs := []string{
			filepath.Join(xdgConfig(), "JetBrains"),
			filepath.Join(home(), "Library", "Application Support", "JetBrains"),
		}
		if d := os.Getenv("APPDATA"); d != "" {
			dirs = append(dirs, filepath.Join(d, "JetBrains"))
		}
		return dirs
	},
	fields: func(t Target) []Field {
		return []Field{
			{Label: "Where", Value: "Settings | Tools | AI Assistant | Models, Third-party AI providers"},
			{Label: "Provider", Value: "OpenAI-compatible"},
			{Label: "URL", Value: t.v1()},
			{Label: "API key", Value: t.Token, Secret: true},
		}
	},
}
