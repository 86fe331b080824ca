package app

import (
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// proxies shows each pool with its members, live: state, latency, last
// check and last error; pin, disable or enable a member; test now.
type proxies struct {
	u       *ui
	content fyne.CanvasObject
	box     *fyne.Container
	direct  *widget.Check
	layout  string // the pools and members the widgets were built for
	pools   []*poolView
}

type poolView struct {
	title   *widget.Label
	auto    *widget.Button
	members []*memberView
}

type memberView struct {
	state, url, latency, checked, lastErr *widget.Label
	pin, disable                          *widget.Button
}

func newProxies(u *ui) *proxies {
	p := &proxies{u: u, box: container.NewVBox()}
	p.direct = widget.NewCheck(lang.L("Direct connection (bypass proxies)"), func(on bool) {
		if on != p.u.last.Status.Direct {
			p.u.act(func(s *proxy.Service) error { return s.SetDirect(on) })
		}
	})
	test := widget.NewButton(lang.L("Test now"), u.checkNow)
	p.content = container.NewBorder(container.NewHBox(p.direct, test), nil, nil, nil,
		container.NewVScroll(container.NewPadded(p.box)))
	return p
}

// layoutKey names the pools and members, to rebuild the widgets only when
// they change.
func layoutKey(st proxy.Status) string {
	var b strings.Builder
	for _, p := range st.Pools {
		b.WriteString(p.Name + "\x00")
		for _, m := range p.Members {
			b.WriteString(m.URL + "\x01")
		}
	}
	return b.String()
}

// apply shows s. On Fyne's thread.
func (p *proxies) apply(s Snapshot) {
	p.direct.SetChecked(s.Status.Direct)
	if key := layoutKey(s.Status); key != p.layout || p.pools == nil {
		p.layout = key
		p.build(s.Status)
	}
	for i, ps := range s.Status.Pools {
		pv := p.pools[i]
		title := lang.L("Pool {{.Name}}", map[string]any{"Name": ps.Name}) + " — " + strategyName(ps.Strategy)
		switch {
		case ps.Pinned != "" && ps.PinnedDown:
			title += " — " + lang.L("pinned to {{.Member}}, which is down: the strategy chooses", map[string]any{"Member": ps.Pinned})
		case ps.Pinned != "":
			title += " — " + lang.L("pinned to {{.Member}}", map[string]any{"Member": ps.Pinned})
		case ps.Selected != "":
			title += " — " + lang.L("using {{.Member}}", map[string]any{"Member": ps.Selected})
		default:
			title += " — " + lang.L("every member is down")
		}
		pv.title.SetText(title)
		if ps.Pinned == "" {
			pv.auto.Disable()
		} else {
			pv.auto.Enable()
		}
		for j, m := range ps.Members {
			mv := pv.members[j]
			mv.state.SetText(memberStateName(m.State))
			mv.state.Importance = memberImportance(m.State)
			mv.state.Refresh()
			mv.url.SetText(m.URL)
			mv.latency.SetText("")
			if m.State == "up" {
				mv.latency.SetText(formatLatency(m.Latency))
			}
			mv.checked.SetText("")
			if !m.LastCheck.IsZero() {
				mv.checked.SetText(lang.L("checked {{.Time}}", map[string]any{"Time": m.LastCheck.Local().Format("15:04:05")}))
			}
			mv.lastErr.SetText(m.LastError)
			if ps.Pinned == m.URL {
				mv.pin.SetText(lang.L("Pinned"))
				mv.pin.Disable()
			} else {
				mv.pin.SetText(lang.L("Pin"))
				mv.pin.Enable()
			}
			if m.State == "disabled" {
				mv.disable.SetText(lang.L("Enable"))
			} else {
				mv.disable.SetText(lang.L("Disable"))
			}
		}
	}
}

func (p *proxies) build(st proxy.Status) {
	p.box.RemoveAll()
	p.pools = nil
	if len(st.Pools) == 0 {
		l := widget.NewLabel(lang.L("No proxy pool is configured. Pools are [[pools]] tables in the config file; the README shows how."))
		l.Wrapping = fyne.TextWrapWord
		p.box.Add(l)
		return
	}
	for _, ps := range st.Pools {
		name := ps.Name
		pv := &poolView{title: heading("")}
		pv.title.Truncation = fyne.TextTruncateEllipsis // the window may be narrow
		pv.auto = widget.NewButton(lang.L("Automatic"), func() {
			p.u.act(func(s *proxy.Service) error { return s.SetPinned(name, "") })
		})
		grid := container.New(&columns{widths: memberColumns})
		for _, m := range ps.Members {
			url := m.URL
			mv := &memberView{state: widget.NewLabel(""), url: widget.NewLabel(""), latency: widget.NewLabel(""),
				checked: widget.NewLabel(""), lastErr: widget.NewLabel("")}
			mv.lastErr.Truncation = fyne.TextTruncateEllipsis
			mv.url.Truncation = fyne.TextTruncateEllipsis
			mv.pin = widget.NewButton(lang.L("Pin"), func() {
				p.u.act(func(s *proxy.Service) error { return s.SetPinned(name, url) })
			})
			mv.disable = widget.NewButton(lang.L("Disable"), func() {
				off := memberState(p.u.last.Status.Pool(name), url) != "disabled"
				p.u.act(func(s *proxy.Service) error { return s.SetDisabled(name, url, off) })
			})
			grid.Add(container.NewStack(mv.state))
			for _, o := range []fyne.CanvasObject{mv.url, mv.latency, mv.checked, mv.lastErr, mv.pin, mv.disable} {
				grid.Add(o)
			}
			pv.members = append(pv.members, mv)
		}
		p.pools = append(p.pools, pv)
		p.box.Add(container.NewBorder(nil, nil, nil, pv.auto, pv.title))
		p.box.Add(grid)
		p.box.Add(widget.NewSeparator())
	}
}

func memberStateName(s string) string {
	switch s {
	case "up":
		return "✓ " + lang.L("up")
	case "down":
		return "✗ " + lang.L("down")
	case "disabled":
		return "– " + lang.L("disabled")
	}
	return "… " + lang.L("not checked yet")
}

func memberImportance(s string) widget.Importance {
	switch s {
	case "up":
		return widget.SuccessImportance
	case "down":
		return widget.DangerImportance
	}
	return widget.MediumImportance
}

// memberColumns are the widths of a member's row: state, URL, latency,
// last check, last error, and the two buttons; the URL and the last error
// share what is left.
var memberColumns = []float32{90, 0, 60, 130, 0, 80, 90}

func rowHeight(row []fyne.CanvasObject) float32 {
	var h float32
	for _, o := range row {
		h = max(h, o.MinSize().Height)
	}
	return h
}
