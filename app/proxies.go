package app

import (
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
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
	form    *form // the form last opened, for tests
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
	add := widget.NewButtonWithIcon(lang.L("Add pool…"), theme.ContentAddIcon(), func() { p.edit(nil) })
	p.content = container.NewBorder(container.NewHBox(add, p.direct, test), nil, nil, nil,
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
		l := widget.NewLabel(lang.L("No proxy pool yet. A pool is a group of outbound proxies (HTTP, HTTPS, SOCKS5) that Gatehouse checks and chooses from; an upstream's route can name one. Add one with Add pool…"))
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
		edit := widget.NewButtonWithIcon(lang.L("Edit…"), theme.DocumentCreateIcon(), func() {
			if cfg := p.u.last.pool(name); cfg != nil {
				p.edit(cfg)
			}
		})
		remove := widget.NewButtonWithIcon(lang.L("Remove…"), theme.DeleteIcon(), func() { p.remove(name) })
		p.box.Add(container.NewBorder(nil, nil, nil, container.NewHBox(pv.auto, edit, remove), pv.title))
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

// pool is the config of the pool named name, or nil.
func (s *Snapshot) pool(name string) *proxy.Pool {
	for i := range s.Pools {
		if s.Pools[i].Name == name {
			return &s.Pools[i]
		}
	}
	return nil
}

// edit opens the form for a new pool (cur nil) or for cur.
func (p *proxies) edit(cur *proxy.Pool) {
	name, members, password := widget.NewEntry(), widget.NewMultiLineEntry(), widget.NewPasswordEntry()
	strategy := widget.NewSelect([]string{"fastest", "fallback", "round-robin"}, nil)
	checkURL, interval, timeout, tolerance := widget.NewEntry(), widget.NewEntry(), widget.NewEntry(), widget.NewEntry()
	members.SetPlaceHolder("http://127.0.0.1:3128\nsocks5://me@127.0.0.1:1080")
	members.SetMinRowsVisible(4)
	password.SetPlaceHolder(lang.L("for members whose URL names a user; kept in the keychain"))
	title, old := lang.L("Add a proxy pool"), ""
	if cur != nil {
		title, old = lang.L("Change pool {{.Name}}", map[string]any{"Name": cur.Name}), cur.Name
		name.SetText(cur.Name)
		name.Disable()
		members.SetText(strings.Join(cur.Proxies, "\n"))
		strategy.SetSelected(cur.Strategy)
		checkURL.SetText(cur.CheckURL)
		interval.SetText(cur.Interval)
		timeout.SetText(cur.Timeout)
		tolerance.SetText(cur.Tolerance)
	} else {
		d := proxy.DefaultPool()
		strategy.SetSelected(d.Strategy)
		checkURL.SetText(d.CheckURL)
		interval.SetText(d.Interval)
		timeout.SetText(d.Timeout)
		tolerance.SetText(d.Tolerance)
	}
	f := newForm(p.u, title, lang.L("Save"), func() func() error {
		var urls []string
		for _, l := range strings.Split(members.Text, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				urls = append(urls, l)
			}
		}
		pool := proxy.Pool{Name: strings.TrimSpace(name.Text), Proxies: urls, Strategy: strategy.Selected,
			CheckURL: strings.TrimSpace(checkURL.Text), Interval: strings.TrimSpace(interval.Text),
			Timeout: strings.TrimSpace(timeout.Text), Tolerance: strings.TrimSpace(tolerance.Text)}
		pw := password.Text
		return func() error { return p.u.setup.SavePool(old, pool, pw) }
	})
	f.add(lang.L("Name"), name, "name")
	f.add(lang.L("Members, one per line"), members, "proxies")
	f.add(lang.L("Password"), password, "")
	f.add(lang.L("Strategy"), strategy, "strategy")
	f.add(lang.L("Check URL"), checkURL, "check_url")
	f.add(lang.L("Check every"), interval, "interval")
	f.add(lang.L("Check timeout"), timeout, "timeout")
	f.add(lang.L("Tolerance"), tolerance, "tolerance")
	f.Saved = func() { p.u.apply(p.u.backend.snapshot(time.Now())) }
	p.form = f
	f.show()
}

func (p *proxies) remove(name string) {
	dialog.ShowConfirm(lang.L("Remove pool"), lang.L("Remove pool {{.Name}}?", map[string]any{"Name": name}), func(ok bool) {
		if ok {
			p.u.run(func() error { return p.u.setup.RemovePool(name) }, func(err error) {
				if err != nil {
					p.u.showError(err)
				}
				p.u.apply(p.u.backend.snapshot(time.Now()))
			})
		}
	}, p.u.window)
}
