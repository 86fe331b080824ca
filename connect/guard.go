package connect

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The edits are textual (so that comments and layout stay); this file
// checks them by meaning before anything is shown or written: the edited
// file must say, read back, that the tool points at the target, and apart
// from the keys connect owns it must hold exactly what it held before. An
// edit that fails either check is refused, whatever the file's shape
// (a block scalar, a multi-line string that looks like a table header…).

// owned are the keys connect writes, per tool, as dotted paths; a path
// ending in "[name=X]" is the list element whose name is X.
var owned = map[string][]string{
	"claude-code": {"env.ANTHROPIC_BASE_URL", "env.ANTHROPIC_AUTH_TOKEN", "env.ANTHROPIC_MODEL"},
	"codex":       {"model_provider", "model", "model_providers.gatehouse"},
	"continue":    {"models[name=" + continueName + "]"},
	"zed":         {"language_models.openai.api_url", "agent.default_model"},
	"aider":       {"openai-api-base", "openai-api-key", "model"},
	"opencode":    {"provider.gatehouse", "model"},
}

// decode reads a file of the tool's format as plain values.
func (t *Tool) decode(data []byte) (any, error) {
	switch t.Format {
	case "json":
		return jsonDoc(data)
	case "toml":
		return tomlDoc(data)
	case "yaml":
		var v any
		if err := yaml.Unmarshal(data, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return nil, fmt.Errorf("unknown format %q", t.Format)
}

// verify checks an edit by meaning; see the top of this file.
func (t *Tool) verify(old, updated []byte, tg Target) error {
	cur, err := t.read(updated)
	if err != nil {
		return err
	}
	if !sameBase(cur.baseURL, tg.BaseURL) {
		return fmt.Errorf("read back, the file does not point at %s", tg.BaseURL)
	}
	if len(bytes.TrimSpace(old)) == 0 {
		return nil // a new file: there is nothing of the user's to keep
	}
	before, err := t.decode(old)
	if err != nil {
		return err
	}
	after, err := t.decode(updated)
	if err != nil {
		return err
	}
	for _, p := range owned[t.Name] {
		before, after = strip(before, p), strip(after, p)
	}
	if b, a := prune(before), prune(after); !(isEmpty(b) && isEmpty(a)) && !reflect.DeepEqual(b, a) {
		return fmt.Errorf("the edit would change more than Gatehouse's own settings")
	}
	return nil
}

var listElem = regexp.MustCompile(`^(.*)\[name=(.*)\]$`)

// strip removes the value at a dotted path from v (maps are copied).
func strip(v any, path string) any {
	if m := listElem.FindStringSubmatch(path); m != nil {
		return update(v, strings.Split(m[1], "."), func(list any) (any, bool) {
			l, ok := list.([]any)
			if !ok {
				return list, true
			}
			var out []any
			for _, e := range l {
				if em, ok := e.(map[string]any); ok && em["name"] == m[2] {
					continue
				}
				out = append(out, e)
			}
			return out, true
		})
	}
	return update(v, strings.Split(path, "."), func(any) (any, bool) { return nil, false })
}

// update replaces the value at keys with what fn returns (keep=false
// deletes it), copying the maps on the way.
func update(v any, keys []string, fn func(any) (any, bool)) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	child, present := m[keys[0]]
	if !present {
		return v
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		out[k] = x
	}
	if len(keys) == 1 {
		if nv, keep := fn(child); keep {
			out[keys[0]] = nv
		} else {
			delete(out, keys[0])
		}
		return out
	}
	out[keys[0]] = update(child, keys[1:], fn)
	return out
}

// prune drops empty maps and lists, which connect may have made (an "env"
// object, a "models" list) and which say nothing.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			e = prune(e)
			if isEmpty(e) {
				continue
			}
			out[k] = e
		}
		return out
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, prune(e))
		}
		return out
	}
	return v
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case nil:
		return true
	}
	return false
}

// secretLine finds a key that holds a secret on a line of a settings
// file, in JSON, YAML or TOML: *api_key*, *token*, *secret*, *password*.
var secretLine = regexp.MustCompile(`(?i)^([^:=]*(api[_-]?key|token|secret|password|auth)[^:=]*["']?\s*[:=]\s*)(.*?)(,?\s*(//.*|#.*)?)$`)

// secretValue finds a key-shaped value anywhere: an OpenAI, Anthropic or
// Gatehouse key.
var secretValue = regexp.MustCompile(`\b(sk-[A-Za-z0-9_-]{6,}|gate_[A-Za-z0-9_-]{6,}|AIza[A-Za-z0-9_-]{10,})`)

// hideSecrets masks, for showing a diff, every value of a secret-looking
// key and every key-shaped value, before and after the change: a tool's
// file may already hold an upstream key, and a diff is shown on screen.
func hideSecrets(data []byte) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		nl := ""
		if strings.HasSuffix(l, "\n") {
			l, nl = strings.TrimSuffix(l, "\n"), "\n"
		}
		if m := secretLine.FindStringSubmatch(l); m != nil && strings.TrimSpace(m[3]) != "" && !strings.HasPrefix(strings.TrimSpace(m[3]), "{") {
			l = m[1] + `"<hidden>"` + m[4]
		}
		lines[i] = secretValue.ReplaceAllString(l, "<hidden>") + nl
	}
	return []byte(strings.Join(lines, ""))
}
