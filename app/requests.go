package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// maxRows is how many requests the section keeps, newest first.
const maxRows = 1000

// batchEvery is how often new requests are added to the table: at 200
// requests a second the table redraws five times a second, not 200.
const batchEvery = 200 * time.Millisecond

// requests is the live request log as a table.
type requests struct {
	u   *ui
	log *proxy.RequestLog
	sub *proxy.Subscription

	content fyne.CanvasObject
	table   *widget.Table
	filter  *widget.Entry
	failed  *widget.Check
	paused  *widget.Check
	count   *widget.Label
	details *widget.Label

	mu      sync.Mutex // pending and skipped, between the reader and Fyne's thread
	pending []proxy.Record
	skipped uint64 // records dropped from pending while the view was paused

	all     []proxy.Record // newest first, at most maxRows
	shown   []proxy.Record // all, filtered
	dropped uint64
}

// columns of the table.
var requestColumns = []struct {
	title func() string // called once translations are loaded
	width float32
	value func(*proxy.Record) string
}{
	{func() string { return lang.L("Time") }, 90, func(r *proxy.Record) string { return r.Start.Local().Format("15:04:05") }},
	{func() string { return lang.L("Client") }, 120, func(r *proxy.Record) string { return clientName(r) }},
	{func() string { return lang.L("Model") }, 160, func(r *proxy.Record) string { return r.Model }},
	{func() string { return lang.L("Upstream") }, 110, func(r *proxy.Record) string { return r.Upstream }},
	{func() string { return lang.L("Key") }, 120, func(r *proxy.Record) string { return r.Credential }},
	{func() string { return lang.L("Route") }, 170, func(r *proxy.Record) string { return r.Route }},
	{func() string { return lang.L("Status") }, 70, func(r *proxy.Record) string { return strconv.Itoa(r.Status) }},
	{func() string { return lang.L("First byte") }, 80, func(r *proxy.Record) string { return formatMillis(r.TTFB) }},
	{func() string { return lang.L("Duration") }, 90, func(r *proxy.Record) string { return formatMillis(r.Duration) }},
	{func() string { return lang.L("Tokens") }, 90, func(r *proxy.Record) string { return tokensText(r) }},
}

func newRequests(u *ui, log *proxy.RequestLog) *requests {
	rq := &requests{u: u, log: log, count: widget.NewLabel(""), details: widget.NewLabel("")}
	if log != nil {
		rq.sub = log.Subscribe(4096)
	}
	rq.table = widget.NewTableWithHeaders(
		func() (int, int) { return len(rq.shown), len(requestColumns) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(id widget.TableCellID, o fyne.CanvasObject) {
			l := o.(*widget.Label)
			if id.Row >= len(rq.shown) {
				l.SetText("")
				return
			}
			r := &rq.shown[id.Row]
			l.SetText(requestColumns[id.Col].value(r))
			l.Importance = widget.MediumImportance
			if r.Failed() {
				l.Importance = widget.DangerImportance
			}
			l.Refresh()
		})
	rq.table.ShowHeaderColumn = false
	rq.table.CreateHeader = func() fyne.CanvasObject {
		return widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	rq.table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		if id.Col >= 0 {
			o.(*widget.Label).SetText(requestColumns[id.Col].title())
		}
	}
	for i, c := range requestColumns {
		rq.table.SetColumnWidth(i, c.width)
	}
	rq.table.OnSelected = rq.onSelected

	rq.filter = widget.NewEntry()
	rq.filter.SetPlaceHolder(lang.L("Filter: model, upstream, key, status, error…"))
	rq.filter.OnChanged = func(string) { rq.refilter() }
	rq.failed = widget.NewCheck(lang.L("Failures only"), func(bool) { rq.refilter() })
	rq.paused = widget.NewCheck(lang.L("Pause view"), func(on bool) {
		if !on {
			rq.flush()
		}
	})
	clear := widget.NewButtonWithIcon(lang.L("Clear"), theme.DeleteIcon(), rq.onClear)
	export := widget.NewButtonWithIcon(lang.L("Export…"), theme.DocumentSaveIcon(), rq.onExport)
	rq.details.TextStyle = fyne.TextStyle{Monospace: true}
	rq.details.Wrapping = fyne.TextWrapBreak
	rq.details.Selectable = true // to copy from, not to edit
	rq.details.SetText(lang.L("Select a request to see its details."))
	bar := container.NewVBox(rq.filter,
		container.NewBorder(nil, nil, container.NewHBox(rq.failed, rq.paused, clear, export), nil, rq.count))
	split := container.NewVSplit(rq.table, container.NewVScroll(rq.details))
	split.SetOffset(0.72)
	rq.content = container.NewBorder(bar, nil, nil, nil, split)
	rq.updateCount()
	return rq
}

// run reads the request log until ctx is done and hands what arrived to
// Fyne's thread once per batchEvery.
func (rq *requests) run(ctx context.Context) {
	if rq.sub == nil {
		return
	}
	defer rq.sub.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-rq.sub.C:
			rq.mu.Lock()
			rq.pending = append(rq.pending, r)
			rq.mu.Unlock()
		}
		if !sleepCtx(ctx, batchEvery) {
			return
		}
		rq.receive()
		fyne.Do(func() {
			if ctx.Err() == nil {
				rq.flush()
			}
		})
	}
}

// receive moves whatever waits in the subscription to pending. Pending
// keeps at most maxRows records, the newest (while the view is paused,
// the older ones could never be shown anyway); the rest are counted.
func (rq *requests) receive() {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	for {
		select {
		case r := <-rq.sub.C:
			rq.pending = append(rq.pending, r)
			if len(rq.pending) >= 2*maxRows {
				n := len(rq.pending) - maxRows
				rq.pending = append(rq.pending[:0], rq.pending[n:]...)
				rq.skipped += uint64(n)
			}
		default:
			return
		}
	}
}

// flush adds the pending records to the table, unless the view is paused.
// On Fyne's thread.
func (rq *requests) flush() {
	if rq.paused.Checked {
		return
	}
	rq.mu.Lock()
	batch := rq.pending
	rq.pending = nil
	if len(batch) > maxRows {
		rq.skipped += uint64(len(batch) - maxRows) // older than any row kept
		batch = batch[len(batch)-maxRows:]
	}
	skipped := rq.skipped
	rq.mu.Unlock()
	if rq.sub != nil {
		rq.dropped = rq.sub.Dropped() + skipped
	}
	if len(batch) == 0 {
		rq.updateCount()
		return
	}
	merged := make([]proxy.Record, 0, min(len(batch)+len(rq.all), maxRows))
	for i := len(batch) - 1; i >= 0; i-- { // newest first
		merged = append(merged, batch[i])
	}
	rq.all = append(merged, rq.all[:min(len(rq.all), maxRows-len(merged))]...)
	// New rows move the old ones down: the highlight would stay on its row
	// number, now another request. It goes; the details keep showing the
	// request that was chosen (they name it by its number).
	rq.table.UnselectAll()
	rq.refilter()
}

// refilter applies the text filter and "failures only" and redraws.
func (rq *requests) refilter() {
	rq.table.UnselectAll() // row numbers change
	text := strings.ToLower(strings.TrimSpace(rq.filter.Text))
	rq.shown = rq.shown[:0]
	for i := range rq.all {
		r := &rq.all[i]
		if rq.failed.Checked && !r.Failed() {
			continue
		}
		if text != "" && !strings.Contains(searchText(r), text) {
			continue
		}
		rq.shown = append(rq.shown, *r)
	}
	rq.table.Refresh()
	rq.updateCount()
}

// searchText is what the filter matches against.
func searchText(r *proxy.Record) string {
	return strings.ToLower(strings.Join([]string{r.Client, r.Token, r.Method, r.Path, r.Model, r.Upstream,
		r.Credential, r.Route, strconv.Itoa(r.Status), r.Error}, " "))
}

func (rq *requests) updateCount() {
	text := lang.L("{{.Shown}} of {{.All}} requests", map[string]any{"Shown": len(rq.shown), "All": len(rq.all)})
	if rq.dropped > 0 {
		text += " · " + lang.L("{{.N}} not shown (too many at once)", map[string]any{"N": rq.dropped})
	}
	rq.count.SetText(text)
}

func (rq *requests) onSelected(id widget.TableCellID) {
	if id.Row < 0 || id.Row >= len(rq.shown) {
		return
	}
	rq.details.SetText(recordDetails(&rq.shown[id.Row]))
}

func (rq *requests) onClear() {
	rq.all, rq.shown = nil, nil
	rq.table.UnselectAll()
	rq.details.SetText(lang.L("Select a request to see its details."))
	rq.refilter()
}

func (rq *requests) onExport() {
	d := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
		if err != nil {
			rq.u.showError(err)
			return
		}
		if w == nil {
			return // cancelled
		}
		err = writeJSONLines(w, rq.shown)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			rq.u.showError(fmt.Errorf("%s: %w", lang.L("The requests were not saved"), err))
		}
	}, rq.u.window)
	d.SetFileName("gatehouse-requests.jsonl")
	d.Show()
}

// writeJSONLines writes one record per line, oldest first, as the request
// log's JSON. Records hold no secret (a key is named by its label).
func writeJSONLines(w io.Writer, recs []proxy.Record) error {
	enc := json.NewEncoder(w)
	for i := len(recs) - 1; i >= 0; i-- {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// recordDetails shows every field of a record.
func recordDetails(r *proxy.Record) string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-13s %s\n", k+":", v)
		}
	}
	line(lang.L("Request"), "#"+strconv.FormatUint(r.ID, 10)+"  "+r.Method+" "+r.Path)
	line(lang.L("Started"), r.Start.Local().Format("2006-01-02 15:04:05.000"))
	line(lang.L("Client"), clientName(r))
	line(lang.L("Model"), r.Model)
	line(lang.L("Upstream"), r.Upstream)
	line(lang.L("Key"), r.Credential)
	line(lang.L("Route"), r.Route)
	line(lang.L("Status"), strconv.Itoa(r.Status))
	line(lang.L("Attempts"), strconv.Itoa(max(r.Attempts, 1)))
	line(lang.L("First byte"), formatMillis(r.TTFB))
	line(lang.L("Duration"), formatMillis(r.Duration))
	line(lang.L("Stream"), strconv.FormatBool(r.Stream))
	line(lang.L("Bytes"), lang.L("{{.In}} in, {{.Out}} out", map[string]any{"In": r.BytesIn, "Out": r.BytesOut}))
	line(lang.L("Tokens"), tokensText(r))
	line(lang.L("Error"), r.Error)
	return strings.TrimSuffix(b.String(), "\n")
}

func clientName(r *proxy.Record) string {
	if r.Token != "" {
		return r.Token + " (" + r.Client + ")"
	}
	return r.Client
}

func tokensText(r *proxy.Record) string {
	if r.PromptTokens == 0 && r.CompletionTokens == 0 {
		return ""
	}
	return fmt.Sprintf("%d+%d", r.PromptTokens, r.CompletionTokens)
}

func formatMillis(d time.Duration) string {
	if d == 0 {
		return ""
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}
