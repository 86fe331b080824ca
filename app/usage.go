package app

import (
	"cmp"
	"fmt"
	"image/color"
	"slices"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// usage shows the tokens in and out per upstream and model for today and
// the last 7 and 30 days: a bar per row (input and output tokens side by
// side) and the figures beside it, with the tokens the response cache
// saved. The totals come from the usage book
// the forwarder keeps (usage.json in the cache folder).
type usage struct {
	u       *ui
	content fyne.CanvasObject
	period  *widget.RadioGroup
	body    *fyne.Container
	totals  []proxy.UsageTotal
	scroll  *container.Scroll

	rows []usageRow // what is shown, for tests
}

// usageRow is one upstream and model over the chosen period.
type usageRow struct {
	Upstream, Model   string
	Requests, In, Out int64
	Saved             int64 // tokens the response cache saved
}

func periodDays(p string) int {
	switch p {
	case lang.L("Last 7 days"):
		return 7
	case lang.L("Last 30 days"):
		return 30
	}
	return 1
}

func newUsage(u *ui) *usage {
	x := &usage{u: u, body: container.NewVBox()}
	x.scroll = container.NewVScroll(container.NewPadded(x.body))
	x.period = widget.NewRadioGroup([]string{lang.L("Today"), lang.L("Last 7 days"), lang.L("Last 30 days")}, func(string) { x.show() })
	x.period.Horizontal = true
	x.period.SetSelected(lang.L("Today"))
	refresh := widget.NewButtonWithIcon(lang.L("Look again"), theme.ViewRefreshIcon(), x.refresh)
	x.content = container.NewBorder(container.NewBorder(nil, nil, nil, refresh, x.period), nil, nil, nil, x.scroll)
	return x
}

// refresh reads the usage book off Fyne's thread.
func (x *usage) refresh() {
	x.u.async(func() {
		var totals []proxy.UsageTotal
		_ = x.u.backend.with(func(s *proxy.Service) error {
			if s.Usage != nil {
				totals = s.Usage.Totals()
			}
			return nil
		})
		fyne.Do(func() {
			x.totals = totals
			x.show()
		})
	})
}

// summarize adds up totals per upstream and model over the days from
// first on (YYYY-MM-DD), most tokens first.
func summarize(totals []proxy.UsageTotal, first string) []usageRow {
	byKey := map[[2]string]*usageRow{}
	var out []*usageRow
	for _, t := range totals {
		if t.Day < first {
			continue
		}
		k := [2]string{t.Upstream, t.Model}
		r := byKey[k]
		if r == nil {
			r = &usageRow{Upstream: t.Upstream, Model: t.Model}
			byKey[k] = r
			out = append(out, r)
		}
		r.Requests += t.Requests
		r.In += t.PromptTokens
		r.Out += t.CompletionTokens
		r.Saved += t.SavedTokens
	}
	rows := make([]usageRow, len(out))
	for i, r := range out {
		rows[i] = *r
	}
	slices.SortFunc(rows, func(a, b usageRow) int {
		return cmp.Or(cmp.Compare(b.In+b.Out, a.In+a.Out), cmp.Compare(a.Upstream, b.Upstream), cmp.Compare(a.Model, b.Model))
	})
	return rows
}

// show draws the chosen period. On Fyne's thread.
func (x *usage) show() {
	days := periodDays(x.period.Selected)
	first := time.Now().AddDate(0, 0, -days+1).Format(time.DateOnly)
	x.rows = summarize(x.totals, first)
	x.body.RemoveAll()
	if len(x.rows) == 0 {
		x.body.Add(widget.NewLabel(lang.L("No tokens counted in this period yet. Requests that report usage are counted here.")))
		x.scroll.Refresh()
		return
	}
	var most int64 = 1
	for _, r := range x.rows {
		most = max(most, r.In+r.Out)
	}
	legend := container.NewHBox(swatch(theme.Color(theme.ColorNamePrimary)), widget.NewLabel(lang.L("tokens in")),
		swatch(theme.Color(theme.ColorNameSuccess)), widget.NewLabel(lang.L("tokens out")))
	x.body.Add(legend)
	grid := container.New(&columns{widths: []float32{200, 0, 80, 90, 90, 110}}) // fits 800 pixels
	for _, title := range []string{lang.L("Upstream · model"), "", lang.L("Requests"), lang.L("Tokens in"), lang.L("Tokens out"), lang.L("Saved by cache")} {
		grid.Add(widget.NewLabelWithStyle(title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
	}
	for _, r := range x.rows {
		name := widget.NewLabel(r.Upstream + " · " + r.Model)
		name.Truncation = fyne.TextTruncateEllipsis
		grid.Add(name)
		grid.Add(&bar{in: float32(r.In) / float32(most), out: float32(r.Out) / float32(most)})
		grid.Add(widget.NewLabel(fmt.Sprint(r.Requests)))
		grid.Add(widget.NewLabel(fmt.Sprint(r.In)))
		grid.Add(widget.NewLabel(fmt.Sprint(r.Out)))
		grid.Add(widget.NewLabel(fmt.Sprint(r.Saved)))
	}
	x.body.Add(grid)
	// The scroll learns the new height of what it holds (without this, a
	// first visit kept showing the empty state).
	x.scroll.Refresh()
}

func swatch(c color.Color) fyne.CanvasObject {
	r := canvas.NewRectangle(c)
	r.SetMinSize(fyne.NewSize(14, 14))
	return container.NewCenter(r)
}

// bar is one row of the chart: input then output tokens, as shares of
// the widest row.
type bar struct {
	widget.BaseWidget
	in, out float32
}

func (b *bar) CreateRenderer() fyne.WidgetRenderer {
	b.ExtendBaseWidget(b)
	in := canvas.NewRectangle(theme.Color(theme.ColorNamePrimary))
	out := canvas.NewRectangle(theme.Color(theme.ColorNameSuccess))
	return &barRenderer{b: b, in: in, out: out}
}

type barRenderer struct {
	b       *bar
	in, out *canvas.Rectangle
}

func (r *barRenderer) Layout(size fyne.Size) {
	h := size.Height * 0.6
	y := (size.Height - h) / 2
	wIn, wOut := size.Width*r.b.in, size.Width*r.b.out
	r.in.Move(fyne.NewPos(0, y))
	r.in.Resize(fyne.NewSize(wIn, h))
	r.out.Move(fyne.NewPos(wIn, y))
	r.out.Resize(fyne.NewSize(wOut, h))
}

func (r *barRenderer) MinSize() fyne.Size           { return fyne.NewSize(100, theme.Size(theme.SizeNameText)*2) }
func (r *barRenderer) Refresh()                     { r.Layout(r.b.Size()) }
func (r *barRenderer) Objects() []fyne.CanvasObject { return []fyne.CanvasObject{r.in, r.out} }
func (r *barRenderer) Destroy()                     {}
