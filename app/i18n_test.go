package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTranslationsMatchTheCode fails when a string the app shows has no
// entry in a language, or an entry is no longer used.
func TestTranslationsMatchTheCode(t *testing.T) {
	call := regexp.MustCompile(`lang\.L\(("(?:[^"\\]|\\.)*")`)
	anyCall := regexp.MustCompile(`lang\.(L|N|X|XN|Localize[A-Za-z]*)\(`)
	used := map[string]bool{}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.Equal(t, len(anyCall.FindAllIndex(src, -1)), len(call.FindAllIndex(src, -1)),
			"%s: every lang call must be lang.L with a string literal, so this test can see its key", f)
		for _, m := range call.FindAllSubmatch(src, -1) {
			key, err := strconv.Unquote(string(m[1]))
			require.NoError(t, err)
			used[key] = true
		}
	}
	require.NotEmpty(t, used)
	for _, name := range []string{"en.json", "zh_Hans.json"} {
		t.Run(name, func(t *testing.T) {
			data, err := translations.ReadFile("translations/" + name)
			require.NoError(t, err)
			var entries map[string]string
			require.NoError(t, json.Unmarshal(data, &entries))
			var missing, unused []string
			for k := range used {
				if strings.TrimSpace(entries[k]) == "" {
					missing = append(missing, k)
				}
			}
			for k := range entries {
				if !used[k] {
					unused = append(unused, k)
				}
			}
			sort.Strings(missing)
			sort.Strings(unused)
			assert.Empty(t, missing, "used in app/ but not translated")
			assert.Empty(t, unused, "translated but no longer used")
		})
	}
}
