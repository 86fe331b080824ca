package app

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/systray"

	"github.com/gatehouse-app/gatehouse/assets"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/proxy/pool"
)

// maxTrayMembers is how many members of a pool the tray lists; the window
// shows them all.
const maxTrayMembers = 20

// trayActions are what the tray menu's items do.
type trayActions struct {
	open, copyURL, quit func()
	pause               func(on bool)
	pin                 func(pool, member string) // member "" unpins
	direct              func(on bool)
	checkNow            func()
}

// trayMenu builds the tray menu for s. It is a pure function of the
// snapshot: tests call it directly.
func trayMenu(s Snapshot, a trayActions) *fyne.Menu {
	disabled := func(label string) *fyne.MenuItem {
		it := fyne.NewMenuItem(label, nil)
		it.Disabled = true
		return it
	}
	items := []*fyne.MenuItem{disabled(statusLine(s))}
	if n := s.Recent.Failures; n > 0 {
		items = append(items, disabled(lang.L("Failures in the last 10 minutes: {{.N}}", map[string]any{"N": n})))
	}
	items = append(items, fyne.NewMenuItemSeparator(),
		fyne.NewMenuItem(lang.L("Open Gatehouse"), a.open),
		fyne.NewMenuItem(lang.L("Copy base URL"), a.copyURL))
	switch s.State {
	case stateRunning:
		items = append(items, fyne.NewMenuItem(lang.L("Pause forwarding"), func() { a.pause(true) }))
	case statePaused:
		items = append(items, fyne.NewMenuItem(lang.L("Resume forwarding"), func() { a.pause(false) }))
	}
	if len(s.Status.Pools) > 0 {
		items = append(items, fyne.NewMenuItemSeparator())
	}
	for _, p := range s.Status.Pools {
		sub := fyne.NewMenu("")
		auto := fyne.NewMenuItem(lang.L("Automatic ({{.Strategy}})", map[string]any{"Strategy": strategyName(p.Strategy)}),
			func() { a.pin(p.Name, "") })
		auto.Checked = p.Pinned == ""
		sub.Items = append(sub.Items, auto, fyne.NewMenuItemSeparator())
		for i, m := range p.Members {
			if i == maxTrayMembers {
				sub.Items = append(sub.Items, fyne.NewMenuItem(lang.L("More in the window…"), a.open))
				break
			}
			it := fyne.NewMenuItem(memberLine(m), func() { a.pin(p.Name, m.URL) })
			it.Checked = p.Pinned == m.URL
			sub.Items = append(sub.Items, it)
		}
		sub.Items = append(sub.Items, fyne.NewMenuItemSeparator(),
			fyne.NewMenuItem(lang.L("Test now"), a.checkNow))
		it := fyne.NewMenuItem(lang.L("Pool {{.Name}}", map[string]any{"Name": p.Name}), nil)
		it.ChildMenu = sub
		items = append(items, it)
	}
	direct := fyne.NewMenuItem(lang.L("Direct connection (bypass proxies)"), func() { a.direct(!s.Status.Direct) })
	direct.Checked = s.Status.Direct
	if len(s.Status.Pools) == 0 {
		items = append(items, fyne.NewMenuItemSeparator())
	}
	quit := fyne.NewMenuItem(lang.L("Quit"), a.quit)
	quit.IsQuit = true
	items = append(items, direct, fyne.NewMenuItemSeparator(), quit)
	return fyne.NewMenu("Gatehouse", items...)
}

// statusLine is the first line of the tray menu.
func statusLine(s Snapshot) string {
	switch s.State {
	case stateRunning:
		return lang.L("Forwarding on {{.Addr}}", map[string]any{"Addr": s.Listen})
	case statePaused:
		return lang.L("Paused")
	case stateStarting:
		return lang.L("Starting…")
	}
	// The config file's folder is left out: the window shows the whole path.
	reason := strings.ReplaceAll(s.Reason, filepath.Dir(s.ConfigPath)+string(filepath.Separator), "")
	return lang.L("Stopped: {{.Reason}}", map[string]any{"Reason": shorten(reason, 90)})
}

// memberLine is a pool member as the tray shows it: its state, URL and
// latency or last error.
func memberLine(m pool.MemberStatus) string {
	switch m.State {
	case "up":
		return fmt.Sprintf("✓ %s — %s", m.URL, formatLatency(m.Latency))
	case "down":
		return fmt.Sprintf("✗ %s — %s", m.URL, shorten(firstNonEmpty(m.LastError, lang.L("down")), 60))
	case "disabled":
		return fmt.Sprintf("– %s — %s", m.URL, lang.L("disabled"))
	}
	return fmt.Sprintf("… %s — %s", m.URL, lang.L("not checked yet"))
}

func strategyName(s string) string {
	switch s {
	case pool.Fallback:
		return lang.L("fallback")
	case pool.RoundRobin:
		return lang.L("round-robin")
	}
	return lang.L("fastest")
}

func formatLatency(d time.Duration) string {
	if d < time.Millisecond {
		return "<1 ms"
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Tray icon states.
const (
	iconOK       = "ok"
	iconDegraded = "degraded"
	iconPaused   = "paused"
)

// trayState is which icon s shows: paused (or stopped), degraded (a pool
// member or a key down, or failures in the last 10 minutes), or ok.
func trayState(s Snapshot) string {
	if s.State != stateRunning {
		return iconPaused
	}
	if s.Recent.Failures > 0 {
		return iconDegraded
	}
	for _, p := range s.Status.Pools {
		for _, m := range p.Members {
			if m.State == "down" {
				return iconDegraded
			}
		}
	}
	for _, k := range s.Keys {
		if k.State != proxy.KeyOK {
			return iconDegraded
		}
	}
	return iconOK
}

var trayIcons = map[string]fyne.Resource{
	iconOK:       fyne.NewStaticResource("tray-ok.png", assets.TrayOK),
	iconDegraded: fyne.NewStaticResource("tray-degraded.png", assets.TrayDegraded),
	iconPaused:   fyne.NewStaticResource("tray-paused.png", assets.TrayPaused),
}

// tray keeps the system tray's menu and icon in step with the snapshots.
type tray struct {
	u        *ui
	desk     desktop.App // nil where there is no tray (tests, mobile)
	menuKey  string
	shape    string    // the key of the menu last set, without its figures
	setAt    time.Time // when it was set
	wake     time.Time // a redraw is asked for then: figures held back
	now      func() time.Time
	iconName string
	menu     *fyne.Menu // the menu last set, for tests
	gone     bool       // the tray connection closed (quitting): set nothing more
}

func newTray(u *ui) *tray {
	t := &tray{u: u, now: time.Now}
	t.desk, _ = u.app.(desktop.App)
	if t.desk != nil {
		t.desk.SetSystemTrayWindow(u.window)
		// A click on the icon opens the window through showWindow, which
		// does nothing once the app is stopping: Fyne's own handler,
		// set just above, would show the window on a terminated GLFW
		// during the open requests' grace (a panic).
		systray.SetOnTapped(func() { fyne.Do(u.showWindow) })
	}
	return t
}

// actions are the menu's. The tray stays until the process ends, open
// requests' grace included; none acts once the app is stopping (ui.over:
// showWindow, copy, act and quit check it).
func (t *tray) actions() trayActions {
	u := t.u
	return trayActions{
		open:    u.showWindow,
		copyURL: func() { u.copy(u.last.BaseURL()) },
		quit:    func() { u.quit() },
		pause:   u.setPaused,
		pin: func(p, m string) {
			u.act(func(s *proxy.Service) error { return s.SetPinned(p, m) })
		},
		direct: func(on bool) {
			u.act(func(s *proxy.Service) error { return s.SetDirect(on) })
		},
		checkNow: u.checkNow,
	}
}

// apply rebuilds the menu when what it shows changed, and sets the icon.
// On Fyne's thread.
func (t *tray) apply(s Snapshot) {
	if t.gone {
		return
	}
	// fyne.io/systray panics when the menu or icon is set after its D-Bus
	// connection closed, which Fyne's own handling of a signal can do
	// before the app stops drawing: the tray is then gone, not the app.
	defer func() {
		if p := recover(); p != nil {
			t.gone = true
			t.u.backend.opts.Log.Warn("the tray is gone", "err", p)
		}
	}()
	m := trayMenu(s, t.actions())
	key, shape, now := menuKey(m), menuKey(trayMenu(withoutFigures(s), trayActions{})), t.now()
	due := t.setAt.Add(trayCalm)
	switch {
	case key == t.menuKey:
	case shape != t.shape || !now.Before(due):
		t.menuKey, t.shape, t.setAt, t.menu = key, shape, now, m
		if t.desk != nil {
			t.desk.SetSystemTrayMenu(m)
		}
	case t.wake.Before(due): // only figures changed: shown once the calm is over
		t.wake = due
		time.AfterFunc(due.Sub(now), t.u.backend.notify)
	}
	if name := trayState(s); name != t.iconName {
		t.iconName = name
		if t.desk != nil {
			t.desk.SetSystemTrayIcon(trayIcon(name))
		}
	}
}

// trayIcon is the icon of a state; on macOS the monochrome template,
// which the menu bar tints (the menu's first line tells the state).
func trayIcon(name string) fyne.Resource {
	if runtime.GOOS == "darwin" {
		return theme.NewThemedResource(fyne.NewStaticResource("tray-template.png", assets.TrayTemplate))
	}
	return trayIcons[name]
}

// menuKey sums up what a menu shows, to skip rebuilding an equal one.
func menuKey(m *fyne.Menu) string {
	var b strings.Builder
	var walk func(items []*fyne.MenuItem, depth int)
	walk = func(items []*fyne.MenuItem, depth int) {
		for _, it := range items {
			fmt.Fprintf(&b, "%d|%s|%t|%t|%t\n", depth, it.Label, it.Checked, it.Disabled, it.IsSeparator)
			if it.ChildMenu != nil {
				walk(it.ChildMenu.Items, depth+1)
			}
		}
	}
	walk(m.Items, 0)
	return b.String()
}

// trayCalm is how long a menu that changed only in its figures (the count
// of failures, a member's latency) waits before it is set again. Fyne sets
// a tray menu whole, with new ids for every item, and a click on an id
// just replaced is lost; in an outage the failure count changes with
// every request, and the menu must stay clickable then above all. A
// change in anything else (state, an item added or gone, a check, an
// address, a member going down) is set at once; held-back figures are
// set when the calm is over (apply asks the backend for a redraw then).
const trayCalm = 4 * time.Second

// withoutFigures is s with the figures that change by themselves at one
// value: the count of failures (whether there are any still shows) and
// the members' latencies.
func withoutFigures(s Snapshot) Snapshot {
	s.Recent.Failures = min(s.Recent.Failures, 1)
	s.Status.Pools = slices.Clone(s.Status.Pools)
	for i := range s.Status.Pools {
		members := slices.Clone(s.Status.Pools[i].Members)
		for j := range members {
			members[j].Latency = 0
		}
		s.Status.Pools[i].Members = members
	}
	return s
}

// checkNow runs every pool's checks off Fyne's thread.
func (u *ui) checkNow() {
	u.act(func(s *proxy.Service) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Forwarder.CheckNow(ctx)
		return nil
	})
}
