package proxy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUsageBook(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache", "gatehouse", "usage.json")
	b, err := OpenUsageBook(path)
	require.NoError(t, err)
	now := time.Now()
	b.Add(&Record{Start: now, Upstream: "openai", Model: "gpt-4o", PromptTokens: 10, CompletionTokens: 5})
	b.Add(&Record{Start: now, Upstream: "openai", Model: "gpt-4o", PromptTokens: 1, CompletionTokens: 2})
	b.Add(&Record{Start: now.AddDate(0, 0, -1), Upstream: "anthropic", Model: "claude", PromptTokens: 7})
	b.Add(&Record{Start: now.AddDate(0, 0, -45), Upstream: "openai", Model: "old"})
	b.Add(&Record{Start: now, Path: "/v2/x"}) // no upstream: not counted
	require.NoError(t, b.Save(now))

	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again, err := OpenUsageBook(path)
	require.NoError(t, err)
	today, yesterday := now.Format(time.DateOnly), now.AddDate(0, 0, -1).Format(time.DateOnly)
	assert.Equal(t, []UsageTotal{
		{Day: today, Upstream: "openai", Model: "gpt-4o", Requests: 2, PromptTokens: 11, CompletionTokens: 7},
		{Day: yesterday, Upstream: "anthropic", Model: "claude", Requests: 1, PromptTokens: 7},
	}, again.Totals(), "kept across a restart; days past 30 compacted away")

	require.NoError(t, os.WriteFile(path, []byte("{not json"), 0o600))
	damaged, err := OpenUsageBook(path)
	assert.ErrorContains(t, err, "moved aside")
	assert.Empty(t, damaged.Totals())
	_, err = os.Stat(path + ".bad")
	assert.NoError(t, err, "the damaged file is kept for a look")
}
