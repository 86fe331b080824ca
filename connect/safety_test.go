package connect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// These tests are the ways a settings file could be damaged or a secret
// shown; each failed before the guards they test.

func safeHome(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	for _, v := range []string{"XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "CONTINUE_GLOBAL_DIR", "OPENCODE_CONFIG"} {
		t.Setenv(v, "")
	}
	return dir
}

func writeClaude(t *testing.T, home, text string) string {
	dir := filepath.Join(home, ".claude")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	f := filepath.Join(dir, "settings.json")
	require.NoError(t, os.WriteFile(f, []byte(text), 0o600))
	return f
}

func TestDiffHidesKeysAlreadyInTheFile(t *testing.T) {
	home := safeHome(t)
	const aiderKey = "sk-proj-REALUPSTREAMKEY0123456789"
	require.NoError(t, os.WriteFile(filepath.Join(home, ".aider.conf.yml"), []byte("dark-mode: true\nopenai-api-key: "+aiderKey+"\n"), 0o600))
	p, err := aider.Plan(filepath.Join(home, "state"), Target{BaseURL: "http://127.0.0.1:4747", Token: "gate_abcdefghijklmnopqrstuvwxyz", TokenName: "aider"})
	require.NoError(t, err)
	assert.NotContains(t, p.Diff, aiderKey)
	assert.NotContains(t, p.Diff, "gate_abcdefghijklmnopqrstuvwxyz")
	assert.Contains(t, p.Diff, "openai-api-base")

	writeClaude(t, home, "{\n  \"env\": {\n    \"ANTHROPIC_API_KEY\": \"sk-ant-REALKEY0123456789\"\n  }\n}\n")
	p, err = claudeCode.Plan(filepath.Join(home, "state"), here)
	require.NoError(t, err)
	assert.NotContains(t, p.Diff, "sk-ant-REALKEY0123456789", "a changed or context line shows no key")
	assert.Contains(t, p.Diff, "ANTHROPIC_BASE_URL")
}

func TestAFileChangedAfterThePlanIsNotOverwritten(t *testing.T) {
	home := safeHome(t)
	f := writeClaude(t, home, "{\n  \"theme\": \"dark\"\n}\n")
	p, err := claudeCode.Plan(filepath.Join(home, "state"), here)
	require.NoError(t, err)
	later := "{\n  \"theme\": \"dark\",\n  \"permissions\": {\"allow\": [\"Bash(ls)\"]}\n}\n"
	require.NoError(t, os.WriteFile(f, []byte(later), 0o600)) // saved while the diff was on screen
	require.ErrorIs(t, p.Apply(), ErrChanged)
	b, _ := os.ReadFile(f)
	assert.Equal(t, later, string(b))
}

func TestUndoKeepsChangesMadeAfterConnect(t *testing.T) {
	home := safeHome(t)
	state := filepath.Join(home, "state")
	p, err := claudeCode.Plan(state, here) // connect creates the file
	require.NoError(t, err)
	require.NoError(t, p.Apply())
	f := filepath.Join(home, ".claude", "settings.json")
	b, _ := os.ReadFile(f)
	later := strings.Replace(string(b), "{", "{\n  \"permissions\": {\"allow\": [\"Bash(npm test)\"]},", 1)
	require.NoError(t, os.WriteFile(f, []byte(later), 0o600))
	_, err = claudeCode.Undo(state)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "changed after connect wrote it")
	b, _ = os.ReadFile(f)
	assert.Equal(t, later, string(b), "the file is left as the user made it")

	// Put back as connect wrote it, Undo goes ahead.
	require.NoError(t, os.WriteFile(f, []byte(strings.Replace(later, "\n  \"permissions\": {\"allow\": [\"Bash(npm test)\"]},", "", 1)), 0o600))
	u, err := claudeCode.Undo(state)
	require.NoError(t, err)
	assert.True(t, u.Removed)
}

func TestASecondPathIsRefusedUntilUndo(t *testing.T) {
	home := safeHome(t)
	state := filepath.Join(home, "state")
	p, err := claudeCode.Plan(state, here)
	require.NoError(t, err)
	require.NoError(t, p.Apply())
	other := filepath.Join(home, "work-claude")
	require.NoError(t, os.MkdirAll(other, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(other, "settings.json"), []byte("{\n  // work profile\n  \"model\": \"opus\"\n}\n"), 0o600))
	t.Setenv("CLAUDE_CONFIG_DIR", other)
	_, err = claudeCode.Plan(state, here)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "undo that first")
}

func TestAFailedWriteLeavesNoRecord(t *testing.T) {
	home := safeHome(t)
	state := filepath.Join(home, "state")
	cdir := filepath.Join(home, ".claude")
	p, err := claudeCode.Plan(state, here) // no file yet
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cdir, nil, 0o600)) // a file where the folder should be: the write fails
	require.Error(t, p.Apply())
	_, err = os.Stat(recordPath(state, "claude-code"))
	assert.True(t, errors.Is(err, os.ErrNotExist), "no record of a connect that wrote nothing")

	require.NoError(t, os.Remove(cdir))
	mine := "{\n  \"theme\": \"light\"\n}\n"
	f := writeClaude(t, home, mine)
	p, err = claudeCode.Plan(state, here)
	require.NoError(t, err)
	require.NoError(t, p.Apply())
	_, err = claudeCode.Undo(state)
	require.NoError(t, err)
	b, err := os.ReadFile(f)
	require.NoError(t, err)
	assert.Equal(t, mine, string(b), "undo gives back the user's own file")
}

// Shapes the line edits could misread: an edit either keeps every value
// of the user's, or is refused; it is never written damaged.
func TestEditsThatWouldDamageAFileAreRefused(t *testing.T) {
	home := safeHome(t)
	state := filepath.Join(home, "state")

	cont := "models:\n  - name: Mine\n    provider: anthropic\n    model: claude\n    chatOptions:\n      baseSystemMessage: |\n        Be brief.\n        Answer in English.\n"
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".continue"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, ".continue", "config.yaml"), []byte(cont), 0o600))
	if p, err := continueDev.Plan(state, here); err == nil {
		var doc struct {
			Models []map[string]any `yaml:"models"`
		}
		require.NoError(t, yaml.Unmarshal(p.new, &doc))
		co, _ := doc.Models[0]["chatOptions"].(map[string]any)
		assert.Equal(t, "Be brief.\nAnswer in English.\n", co["baseSystemMessage"])
	} else {
		assert.Contains(t, err.Error(), "by hand")
	}

	toml := "model = \"o3\"\ndeveloper_instructions = \"\"\"\nFollow these:\n[1] be brief\n\"\"\"\n\n[tui]\nnotifications = true\n"
	require.NoError(t, os.MkdirAll(filepath.Join(home, ".codex"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(home, ".codex", "config.toml"), []byte(toml), 0o600))
	if p, err := codex.Plan(state, here); err == nil {
		doc, err := tomlDoc(p.new)
		require.NoError(t, err)
		assert.Equal(t, "Follow these:\n[1] be brief\n", doc["developer_instructions"])
		assert.Equal(t, "gatehouse", doc["model_provider"])
	} else {
		assert.Contains(t, err.Error(), "by hand")
	}
}
