package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// pushed adds records through the real request log and lets the section
// take them, as its reader does every batchEvery.
func pushed(rq *requests, l *proxy.RequestLog, recs ...proxy.Record) {
	for _, r := range recs {
		l.Add(r)
	}
	rq.receive()
	rq.flush()
}

func shownModels(rq *requests) []string {
	var out []string
	for _, r := range rq.shown {
		out = append(out, r.Model)
	}
	return out
}

func TestRequestsNewestFirstWithFilters(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	rq := h.ui.requests
	w := test.NewTempWindow(t, rq.content)
	w.Resize(fyne.NewSize(1280, 800))
	start := time.Now()
	pushed(rq, h.reqlog,
		proxy.Record{ID: 1, Start: start, Model: "gpt-4o", Upstream: "openai", Credential: "main", Status: 200, PromptTokens: 10, CompletionTokens: 5, Route: "direct"},
		proxy.Record{ID: 2, Start: start, Model: "claude-sonnet-4", Upstream: "anthropic", Credential: "work", Status: 429, Error: "rate limited"},
		proxy.Record{ID: 3, Start: start, Model: "deepseek-chat", Upstream: "deepseek", Credential: "k1", Status: 200, Error: "the stream broke off"},
	)
	assert.Equal(t, []string{"deepseek-chat", "claude-sonnet-4", "gpt-4o"}, shownModels(rq), "newest first")
	rendered := strings.Join(labels(rq.table), "|")
	assert.Contains(t, rendered, "deepseek-chat")
	assert.Contains(t, rendered, "10+5")
	assert.Contains(t, rendered, "First byte", "the header row")

	test.Tap(rq.failed)
	assert.Equal(t, []string{"deepseek-chat", "claude-sonnet-4"}, shownModels(rq), "failures only: an error status or a broken stream")
	test.Type(rq.filter, "anthropic")
	assert.Equal(t, []string{"claude-sonnet-4"}, shownModels(rq))
	test.Tap(rq.failed)
	rq.filter.SetText("main")
	assert.Equal(t, []string{"gpt-4o"}, shownModels(rq), "the filter matches the key label too")
	rq.filter.SetText("")

	rq.table.Select(widget.TableCellID{Row: 1, Col: 0})
	assert.Contains(t, rq.details.Text, "claude-sonnet-4")
	assert.Contains(t, rq.details.Text, "rate limited")
	assert.Contains(t, rq.details.Text, "429")

	test.Tap(rq.paused)
	pushed(rq, h.reqlog, proxy.Record{ID: 4, Start: start, Model: "held", Status: 200})
	assert.Len(t, rq.all, 3, "a paused view holds new rows back")
	test.Tap(rq.paused)
	assert.Equal(t, "held", rq.shown[0].Model, "and shows them on resume")

	var buf bytes.Buffer
	require.NoError(t, writeJSONLines(&buf, rq.shown))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 4)
	var first proxy.Record
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	assert.Equal(t, "gpt-4o", first.Model, "exported oldest first, as a log reads")

	// New rows move the chosen one down: the highlight goes, the details
	// stay with the request chosen, and a click on the top row shows it.
	rq.table.Select(widget.TableCellID{Row: 0, Col: 0})
	assert.Contains(t, rq.details.Text, "#4")
	pushed(rq, h.reqlog, proxy.Record{ID: 5, Start: start, Model: "newer", Status: 200})
	assert.Contains(t, rq.details.Text, "#4")
	rq.table.Select(widget.TableCellID{Row: 0, Col: 0})
	assert.Contains(t, rq.details.Text, "#5", "the row now on top is the one shown")

	rq.onClear()
	assert.Empty(t, rq.shown)
	assert.Equal(t, "Select a request to see its details.", rq.details.Text)
}

func TestPausedViewHoldsAtMostMaxRows(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	rq := h.ui.requests
	test.Tap(rq.paused)
	for i := range 20_000 {
		h.reqlog.Add(proxy.Record{ID: uint64(i + 1), Start: time.Now(), Status: 200})
		if i%1000 == 999 {
			rq.receive() // as the reader does every batchEvery
		}
	}
	rq.receive()
	rq.mu.Lock()
	pending := len(rq.pending)
	rq.mu.Unlock()
	assert.LessOrEqual(t, pending, 2*maxRows, "a paused view does not keep every request in memory")
	test.Tap(rq.paused)
	require.Len(t, rq.all, maxRows)
	assert.Equal(t, uint64(20_000), rq.all[0].ID, "the newest are kept")
	assert.Equal(t, "1000 of 1000 requests · 19000 not shown (too many at once)", rq.count.Text)
}

func TestRequestsKeepAtMostMaxRows(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	rq := h.ui.requests
	for batch := range 3 {
		var recs []proxy.Record
		for i := range 700 {
			n := batch*700 + i + 1
			recs = append(recs, proxy.Record{ID: uint64(n), Model: fmt.Sprint("m-", n), Status: 200, Start: time.Now()})
		}
		pushed(rq, h.reqlog, recs...)
	}
	require.Len(t, rq.all, maxRows)
	assert.Equal(t, "m-2100", rq.all[0].Model, "the newest is first")
	assert.Equal(t, "m-1101", rq.all[maxRows-1].Model, "the oldest kept is the 1,000th newest")
	assert.Equal(t, "1000 of 1000 requests", rq.count.Text)
	assert.Zero(t, rq.sub.Dropped(), "a 4,096 buffer holds a 700 burst")
}
