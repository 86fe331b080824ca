package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/keystore"
)

func TestForgetSecretsNeedsYesAndKeepsTheConfig(t *testing.T) {
	m := useMemoryStore(t)
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, twoUpstreams)
	for _, up := range []string{"openai", "anthropic"} {
		code, _, errOut := gh(t, cliSecret, "key", "add", up, "--label", "main", "--config", cfg)
		require.Equal(t, 0, code, errOut)
	}
	code, _, errOut := gh(t, "hunter2", "proxy-password", "set", "http://alice@127.0.0.1:3128", "--config", cfg)
	require.Equal(t, 0, code, errOut)
	entries := m.Len()
	require.GreaterOrEqual(t, entries, 3)
	before, err := os.ReadFile(cfg)
	require.NoError(t, err)

	code, out, errOut := gh(t, "", "forget-secrets")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "run it with --yes")
	assert.Equal(t, entries, m.Len(), "nothing deleted without --yes")

	code, _, errOut = gh(t, "", "forget-secrets", "--yes", "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "takes no arguments")
	assert.Equal(t, entries, m.Len())

	code, out, errOut = gh(t, "", "forget-secrets", "--yes")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, `Deleted every secret Gatehouse kept in the keychain (service "gatehouse")`)
	assert.Zero(t, m.Len())
	after, err := os.ReadFile(cfg)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "the config is left as it was")

	m.Unavailable = true
	code, _, errOut = gh(t, "", "forget-secrets", "--yes")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "the keychain cannot be reached")
}

// TestForgetSecretsInARealSecretService runs the commands against a
// gnome-keyring of its own (scripts/keyring-session.sh again, nested), as
// deleting every entry of the service in the keyring the other tests share
// would pull keys from under them.
func TestForgetSecretsInARealSecretService(t *testing.T) {
	// Inside make test's own keyring session, whose tools this one uses.
	if os.Getenv("GATEHOUSE_SECRET_SERVICE") != "1" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run this against a real Secret Service (scripts/keyring-session.sh)")
		}
		t.Skip("no Secret Service: run through scripts/keyring-session.sh (make test does)")
	}
	cfg := filepath.Join(t.TempDir(), "config.toml")
	writeFile(t, cfg, fmt.Sprintf("listen = %q\n\n[[upstreams]]\nname = \"e2e-forget\"\nbase_url = \"http://127.0.0.1:9/v1\"\n", freeListen(t)))
	cmd := exec.Command("scripts/keyring-session.sh", "sh", "-ec", `
		printf %s "$SECRET" | "$GH" key add e2e-forget --label main --config "$CFG"
		printf %s "$SECRET" | "$GH" key add e2e-forget --label spare --config "$CFG"
		echo "--- before"
		"$GH" key list --config "$CFG"
		"$GH" forget-secrets --yes
		echo "--- after"
		"$GH" key list --config "$CFG"`)
	cmd.Env = append(os.Environ(), "GATEHOUSE_AS_MAIN=1", "GH="+os.Args[0], "CFG="+cfg, "SECRET="+cliSecret,
		"XDG_CACHE_HOME="+t.TempDir())
	outBytes, err := cmd.CombinedOutput()
	out := string(outBytes)
	require.NoError(t, err, out)
	_, listed, ok := strings.Cut(out, "--- before")
	require.True(t, ok, out)
	before, after, ok := strings.Cut(listed, "--- after")
	require.True(t, ok, out)
	assert.Contains(t, before, "Deleted every secret Gatehouse kept in the keychain")
	masked := keystore.Mask(cliSecret)
	assert.Equal(t, 2, strings.Count(before, masked), "both keys were in the keychain:\n%s", before)
	assert.NotContains(t, after, masked)
	assert.Equal(t, 2, strings.Count(after, "missing: add it with gatehouse key add e2e-forget"), "both keys are gone:\n%s", after)
	assert.NotContains(t, out, cliSecret)
}
