//go:build !headless

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
)

// The desktop app's tests run the real binary under a real X server
// (Xvfb) and a private D-Bus session bus, both started here. CI installs
// Xvfb (scripts/deps.sh test); elsewhere a machine without it skips them.

// need skips the test when a tool is missing, except in CI, where it fails.
func need(t *testing.T, tools ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the desktop app")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing; scripts/deps.sh test installs it", tool)
			}
			t.Skipf("%s is missing (scripts/deps.sh test installs it)", tool)
		}
	}
}

// daemon starts a program that writes one line (its display number or bus
// address) to fd 3 once it is ready, and returns that line.
func daemon(t *testing.T, name string, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd := exec.Command(name, args...)
	cmd.ExtraFiles = []*os.File{w}
	require.NoError(t, cmd.Start())
	w.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(r).ReadString('\n')
	r.Close()
	require.NoError(t, err, "%s did not start", name)
	return strings.TrimSpace(line)
}

// desktopEnv starts Xvfb and a session bus and returns the environment of
// an app that uses them, with its own runtime, config and cache folders.
func desktopEnv(t *testing.T, cfgPath string) (env []string, bus string) {
	t.Helper()
	display := daemon(t, "Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	bus = daemon(t, "dbus-daemon", "--session", "--nofork", "--print-address=3")
	runtimeDir := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.Mkdir(runtimeDir, 0o700))
	return []string{
		"DISPLAY=:" + display,
		raceLog(t),
		"WAYLAND_DISPLAY=",
		"DBUS_SESSION_BUS_ADDRESS=" + bus,
		"XDG_RUNTIME_DIR=" + runtimeDir,
		"XDG_CONFIG_HOME=" + t.TempDir(),
		"GATEHOUSE_CONFIG=" + cfgPath,
		"E2E_OPENAI_KEY=" + e2eSecret,
	}, bus
}

// raceLog lets the app, when the race detector is on, report races into a
// file instead of ending with exit 66, and fails the test for every race
// with a frame in Gatehouse's own code. fyne.io/systray v1.12 has a race of
// its own (GetLayout reads menuVersion under one lock while the refresh it
// starts writes it under another) that a tray host reading the menu, as
// this test does, can trigger; it is left out.
func raceLog(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		files, _ := filepath.Glob(filepath.Join(dir, "race.*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			for _, report := range strings.Split(string(data), "==================") {
				if strings.Contains(report, "gatehouse-app/gatehouse") {
					t.Errorf("a data race in Gatehouse's code:\n%s", report)
				} else if strings.Contains(report, "DATA RACE") {
					t.Logf("a data race in a library, left out: %s", firstLines(report, 4))
				}
			}
		}
	})
	return "GORACE=halt_on_error=0 exitcode=0 log_path=" + filepath.Join(dir, "race")
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}

// desktopConfig writes a config with one upstream (a mock LLM) routed
// through pool "work" (a real proxy that is up and a dead one), and pool
// "spare".
func desktopConfig(t *testing.T) (path, listen string, mock *mockllm.Server, live *testproxy.Proxy, dead string) {
	t.Helper()
	mock = &mockllm.Server{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/generate_204" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	live = testproxy.HTTP("", "")
	t.Cleanup(live.Stop)
	dead = "http://" + freeListen(t)
	listen = freeListen(t)
	path = filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`version = 1
listen = %q

[[upstreams]]
name = "openai"
base_url = "%s/v1"
models = ["gpt-*"]
key_env = "E2E_OPENAI_KEY"
via = "pool:work"

[[pools]]
name = "work"
strategy = "fallback"
proxies = [%q, %q]
check_url = "%s/generate_204"
interval = "1h"

[[pools]]
name = "spare"
proxies = [%q]
check_url = "%s/generate_204"
interval = "1h"
`, listen, up.URL, dead, live.URL, up.URL, live.URL, up.URL)), 0o600))
	return path, listen, mock, live, dead
}

func (p *process) chat(t *testing.T, listen string) (int, string) {
	t.Helper()
	res, err := testClient.Post("http://"+listen+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatalf("%v; the program:\n%s", err, p.dump())
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

func TestDesktopWindowSingleInstanceAndQuit(t *testing.T) {
	need(t, "Xvfb", "dbus-daemon")
	cfgPath, listen, mock, _, _ := desktopConfig(t)
	env, _ := desktopEnv(t, cfgPath)
	p := start(t, env)
	p.waitLine(t, regexp.MustCompile(`msg="forwarder listening"`))
	x := openX(t, strings.TrimPrefix(env[0], "DISPLAY="))
	var win xproto.Window
	waitUntil(t, "a window titled Gatehouse", func() bool {
		win = x.find("Gatehouse")
		return win != 0 && x.viewable(win)
	})

	status, body := p.chat(t, listen)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "Bearer "+e2eSecret, mock.Last().Header.Get("Authorization"))

	// Closing the window (as a window manager's close button does) hides
	// it; the app keeps forwarding.
	x.close(t, win)
	waitUntil(t, "the window hidden", func() bool { return !x.viewable(win) })
	status, _ = p.chat(t, listen)
	assert.Equal(t, http.StatusOK, status, "still forwarding with the window closed")

	// A second start brings the window back and exits 0.
	second := start(t, env)
	require.NoError(t, second.end(t, "the second start"), second.output())
	assert.Contains(t, second.output(), "already running")
	waitUntil(t, "the window shown again", func() bool { return x.viewable(win) })
	status, _ = p.chat(t, listen)
	assert.Equal(t, http.StatusOK, status, "the first instance still forwards")
	select {
	case err := <-p.done:
		t.Fatalf("the first instance ended: %v\n%s", err, p.output())
	default:
	}

	// SIGINT or SIGTERM is Quit: the forwarder stops gracefully, exit 0.
	stop(t, p)
}

// xconn is a plain X11 client for looking at the app's window.
type xconn struct {
	c    *xgb.Conn
	root xproto.Window
}

// xgb says it found no .Xauthority (Xvfb needs none). Set once: a
// connection's reader reads the logger until it ends.
func init() { xgb.Logger = log.New(io.Discard, "", 0) }

func openX(t *testing.T, display string) *xconn {
	t.Helper()
	c, err := xgb.NewConnDisplay(display)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return &xconn{c: c, root: xproto.Setup(c).DefaultScreen(c).Root}
}

// find returns the top-level window with that title, or 0.
func (x *xconn) find(title string) xproto.Window {
	tree, err := xproto.QueryTree(x.c, x.root).Reply()
	if err != nil {
		return 0
	}
	for _, w := range tree.Children {
		p, err := xproto.GetProperty(x.c, false, w, xproto.AtomWmName, xproto.GetPropertyTypeAny, 0, 256).Reply()
		if err == nil && string(p.Value) == title {
			return w
		}
	}
	return 0
}

func (x *xconn) viewable(w xproto.Window) bool {
	a, err := xproto.GetWindowAttributes(x.c, w).Reply()
	return err == nil && a.MapState == xproto.MapStateViewable
}

func (x *xconn) atom(t *testing.T, name string) xproto.Atom {
	r, err := xproto.InternAtom(x.c, false, uint16(len(name)), name).Reply()
	require.NoError(t, err)
	return r.Atom
}

// close asks the window to close with WM_DELETE_WINDOW.
func (x *xconn) close(t *testing.T, w xproto.Window) {
	ev := xproto.ClientMessageEvent{Format: 32, Window: w, Type: x.atom(t, "WM_PROTOCOLS"),
		Data: xproto.ClientMessageDataUnionData32New([]uint32{uint32(x.atom(t, "WM_DELETE_WINDOW")), 0, 0, 0, 0})}
	require.NoError(t, xproto.SendEventChecked(x.c, false, w, xproto.EventMaskNoEvent, string(ev.Bytes())).Check())
}

// waitUntil polls cond; the bound only stops a broken test from hanging.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "gave up waiting for %s", what)
		time.Sleep(50 * time.Millisecond)
	}
}

// trayHost plays the desktop's tray: it owns org.kde.StatusNotifierWatcher
// on the bus, takes the app's registration, reads its menu over
// com.canonical.dbusmenu and clicks items, as a panel does.
type trayHost struct {
	conn  *dbus.Conn
	items chan string
	menu  dbus.BusObject
}

func (h *trayHost) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	select {
	case h.items <- string(sender):
	default:
	}
	return nil
}

func newTrayHost(t *testing.T, bus string) *trayHost {
	t.Helper()
	conn, err := dbus.Connect(bus)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	h := &trayHost{conn: conn, items: make(chan string, 1)}
	require.NoError(t, conn.Export(h, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"))
	reply, err := conn.RequestName("org.kde.StatusNotifierWatcher", dbus.NameFlagDoNotQueue)
	require.NoError(t, err)
	require.Equal(t, dbus.RequestNameReplyPrimaryOwner, reply)
	return h
}

// trayItem is one dbusmenu item.
type trayItem struct {
	id               int32
	label            string
	checked, enabled bool
	separator        bool
	children         []trayItem
}

func parseItem(v []any) trayItem {
	it := trayItem{id: v[0].(int32), enabled: true}
	props := v[1].(map[string]dbus.Variant)
	if l, ok := props["label"]; ok {
		it.label = l.Value().(string)
	}
	if s, ok := props["toggle-state"]; ok {
		it.checked = s.Value().(int32) == 1
	}
	if e, ok := props["enabled"]; ok {
		it.enabled = e.Value().(bool)
	}
	if ty, ok := props["type"]; ok {
		it.separator = ty.Value().(string) == "separator"
	}
	for _, c := range v[2].([]dbus.Variant) {
		it.children = append(it.children, parseItem(c.Value().([]any)))
	}
	return it
}

// call calls a com.canonical.dbusmenu method of the app's menu, bounded:
// an app that stops answering fails the test rather than stalling it.
// registered waits for p's tray item, points the host at its menu and
// returns the item's bus name.
func (h *trayHost) registered(t *testing.T, p *process) string {
	t.Helper()
	select {
	case sender := <-h.items:
		h.menu = h.conn.Object(sender, "/StatusNotifierItem/menu")
		return sender
	case err := <-p.done:
		t.Fatalf("the app ended: %v\n%s", err, p.output())
	case <-time.After(2 * time.Minute):
		t.Fatalf("the app never registered its tray item:\n%s", p.output())
	}
	return ""
}

// activate clicks the tray icon itself (its item, not its menu).
func (h *trayHost) activate(t *testing.T, sender string) {
	t.Helper()
	require.NoError(t, h.conn.Object(sender, "/StatusNotifierItem").Call("org.kde.StatusNotifierItem.Activate", 0, int32(0), int32(0)).Err)
}

func (h *trayHost) call(method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return h.menu.CallWithContext(ctx, "com.canonical.dbusmenu."+method, 0, args...)
}

// read returns the whole menu. As a panel does, it tells every item it is
// about to be shown and reads again: right after the menu was set, the
// first read may lack submenus or the last items.
func (h *trayHost) read(t *testing.T) trayItem {
	t.Helper()
	m, err := h.tryRead()
	require.NoError(t, err)
	return m
}

func (h *trayHost) tryRead() (trayItem, error) {
	get := func() (trayItem, error) {
		var rev uint32
		var layout struct {
			ID       int32
			Props    map[string]dbus.Variant
			Children []dbus.Variant
		}
		if err := h.call("GetLayout", int32(0), int32(-1), []string{}).Store(&rev, &layout); err != nil {
			return trayItem{}, err
		}
		return parseItem([]any{layout.ID, layout.Props, layout.Children}), nil
	}
	var visit func(trayItem)
	visit = func(it trayItem) {
		h.call("AboutToShow", it.id)
		for _, c := range it.children {
			visit(c)
		}
	}
	m, err := get()
	if err != nil {
		return m, err
	}
	visit(m)
	return get()
}

// find returns the item whose label starts with prefix, anywhere in m.
func (m trayItem) find(prefix string) (trayItem, bool) {
	for _, c := range m.children {
		if c.label != "" && strings.HasPrefix(c.label, prefix) {
			return c, true
		}
		if f, ok := c.find(prefix); ok {
			return f, true
		}
	}
	return trayItem{}, false
}

func (m trayItem) labels() []string {
	var out []string
	for _, c := range m.children {
		if c.separator {
			out = append(out, "---")
			continue
		}
		out = append(out, c.label)
	}
	return out
}

// waitMenu reads the menu until ok accepts it.
func (h *trayHost) waitMenu(t *testing.T, what string, ok func(trayItem) bool) trayItem {
	t.Helper()
	var m trayItem
	waitUntil(t, what, func() bool { m = h.read(t); return ok(m) })
	return m
}

// click clicks the item whose label starts with prefix until done sees
// its effect. A click can be lost, as it can on a desktop: the app sets a
// new menu, with new ids, whenever what the menu shows changes, and
// fyne.io/systray drops a click on an id that is gone (or on an item
// whose listener has not started yet). Clicking again is safe: an item's
// action follows the menu it came from (Pause pauses, an unchecked Direct
// turns direct on), and done is asked after each read, so an item read
// once the effect was there is never clicked.
func (h *trayHost) click(t *testing.T, prefix string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	clicks := 0
	for {
		m, err := h.tryRead()
		if done() {
			return
		}
		require.True(t, time.Now().Before(deadline), "gave up clicking %s", prefix)
		it, found := m.find(prefix)
		if err != nil || !found {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		// One click lost is a rebuild at the wrong moment; three in a row
		// would be a menu that keeps changing under the user's pointer.
		clicks++
		require.LessOrEqual(t, clicks, 3, "%q clicked 3 times without its effect", prefix)
		if clicks > 1 {
			t.Logf("clicking %q again (click %d): the last one was lost or is slow", prefix, clicks)
		}
		h.call("Event", it.id, "clicked", dbus.MakeVariant(""), uint32(0))
		for wait := time.Now().Add(5 * time.Second); time.Now().Before(wait) && !done(); {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// offers is a done for click: the menu has an item starting with prefix.
func (h *trayHost) offers(prefix string) func() bool {
	return func() bool {
		m, err := h.tryRead()
		_, ok := m.find(prefix)
		return err == nil && ok
	}
}

// forwarderStatus reads GET /gatehouse/status.
func forwarderStatus(t *testing.T, listen string) string {
	res, err := testClient.Get("http://" + listen + "/gatehouse/status")
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func TestTrayOverDBus(t *testing.T) {
	need(t, "Xvfb", "dbus-daemon")
	cfgPath, listen, _, live, dead := desktopConfig(t)
	env, bus := desktopEnv(t, cfgPath)
	host := newTrayHost(t, bus)
	p := start(t, env)
	host.registered(t, p)

	want := []string{"Forwarding on " + listen, "---", "Open Gatehouse", "Copy base URL", "Pause forwarding", "---",
		"Pool work", "Pool spare", "Direct connection (bypass proxies)", "---", "Quit"} // exactly one Quit, ours
	// Read until the whole menu is there: a read during a rebuild sees part.
	// Both members of work checked, in work's own submenu: spare holds the
	// live proxy too, and may show it checked first.
	m := host.waitMenu(t, "work's members checked, the whole menu", func(m trayItem) bool {
		work, _ := m.find("Pool work")
		_, liveUp := work.find("✓ " + live.URL)
		_, deadDown := work.find("✗ " + dead)
		return liveUp && deadDown && slices.Equal(m.labels(), want) && len(work.children) == 6
	})
	work, _ := m.find("Pool work")
	assert.Equal(t, "Automatic (fallback)", work.children[0].label)
	assert.True(t, work.children[0].checked, "nothing pinned")
	assert.Regexp(t, `^✗ `+regexp.QuoteMeta(dead)+` — .+`, work.children[2].label)
	assert.Regexp(t, `^✓ `+regexp.QuoteMeta(live.URL)+` — (<1|\d+) ms$`, work.children[3].label)
	assert.Equal(t, "Test now", work.children[5].label)
	status, _ := m.find("Forwarding on")
	assert.False(t, status.enabled, "the status line is not a command")

	// Choosing the dead member pins it (the strategy chooses while it is down).
	host.click(t, "✗ "+dead, func() bool {
		return strings.Contains(forwarderStatus(t, listen), `"pinned":"`+dead+`"`)
	})
	m = host.waitMenu(t, "the pin shown", func(m trayItem) bool { it, _ := m.find("✗ " + dead); return it.checked })
	work, _ = m.find("Pool work")
	assert.False(t, work.children[0].checked, "Automatic is no longer checked")

	host.click(t, "Direct connection", func() bool { return strings.Contains(forwarderStatus(t, listen), `"direct":true`) })
	host.waitMenu(t, "direct checked", func(m trayItem) bool { it, _ := m.find("Direct connection"); return it.checked })

	code, body := p.chat(t, listen)
	require.Equal(t, http.StatusOK, code, body)
	host.click(t, "Pause forwarding", host.offers("Resume forwarding"))
	code, body = p.chat(t, listen)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "Gatehouse is paused")
	host.click(t, "Resume forwarding", host.offers("Pause forwarding"))
	code, body = p.chat(t, listen)
	assert.Equal(t, http.StatusOK, code, body)

	host.click(t, "Quit", p.ended)
	require.NoError(t, p.end(t, "after Quit"), p.output())
	assert.NotContains(t, p.output(), e2eSecret)
}

func TestNoDisplayRunsTheForwarderAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the program")
	}
	cfgPath, listen, _, _, _ := desktopConfig(t)
	p := start(t, []string{"DISPLAY=", "WAYLAND_DISPLAY=", "GATEHOUSE_CONFIG=" + cfgPath, "E2E_OPENAI_KEY=" + e2eSecret})
	p.waitLine(t, regexp.MustCompile(`no display \(neither DISPLAY nor WAYLAND_DISPLAY is set\).*running the forwarder alone`))
	p.waitLine(t, regexp.MustCompile(`msg="forwarder listening"`))
	res, err := testClient.Get("http://" + listen + "/health")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	stop(t, p)
}

// TestDesktopQuitsOnASignalAtStart: SIGTERM as soon as the forwarder is
// up, before Fyne's own loop (which catches signals once it runs) has
// started, is Quit too. It used to be lost, and the app kept running
// (a session ending right after an autostart, or a test stopping it).
func TestDesktopQuitsOnASignalAtStart(t *testing.T) {
	need(t, "Xvfb", "dbus-daemon")
	cfgPath, _, _, _, _ := desktopConfig(t)
	env, _ := desktopEnv(t, cfgPath)
	p := start(t, env)
	p.waitLine(t, regexp.MustCompile(`msg="forwarder listening"`))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.end(t, "after SIGTERM at start"), p.output())
}

// TestTrayIconOpensTheWindow: a click on the tray icon itself (activate)
// opens the window of an app started in the tray.
func TestTrayIconOpensTheWindow(t *testing.T) {
	need(t, "Xvfb", "dbus-daemon")
	cfgPath, _, _, _, _ := desktopConfig(t)
	env, bus := desktopEnv(t, cfgPath)
	host := newTrayHost(t, bus)
	p := start(t, env, hiddenFlag)
	sender := host.registered(t, p)
	x := openX(t, strings.TrimPrefix(env[0], "DISPLAY="))
	if w := x.find("Gatehouse"); w != 0 {
		require.False(t, x.viewable(w), "started in the tray, the window is not shown")
	}
	host.activate(t, sender)
	waitUntil(t, "a window titled Gatehouse", func() bool {
		win := x.find("Gatehouse")
		return win != 0 && x.viewable(win)
	})
	stop(t, p)
}

// TestTrayAfterASignal: Fyne's own signal handler ends its loop while
// open requests are let finish, and the tray is still there meanwhile. A
// click on it then must neither crash the app (GLFW is gone) nor cut the
// open request short: on a menu item, or on the icon itself (activate).
func TestTrayAfterASignal(t *testing.T) {
	for _, item := range []string{"Open Gatehouse", "Quit", "Copy base URL", "activate"} {
		t.Run(item, func(t *testing.T) {
			need(t, "Xvfb", "dbus-daemon")
			got, release := make(chan struct{}, 1), make(chan struct{})
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- struct{}{}
				<-release
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"id":"x","object":"chat.completion","choices":[]}`)
			}))
			t.Cleanup(up.Close)
			defer close(release)
			listen := freeListen(t)
			cfgPath := filepath.Join(t.TempDir(), "config.toml")
			require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen = %q\n[[upstreams]]\nname = \"openai\"\nbase_url = \"%s/v1\"\nmodels = [\"gpt-*\"]\nkey_env = \"E2E_OPENAI_KEY\"\n", listen, up.URL)), 0o600))
			env, bus := desktopEnv(t, cfgPath)
			host := newTrayHost(t, bus)
			// In the tray only, as launch at login starts it: Fyne takes
			// the tray down at its loop's end only while a window has the
			// focus, and otherwise leaves it for the open requests' grace.
			p := start(t, env, hiddenFlag)
			sender := host.registered(t, p)
			host.waitMenu(t, "the menu", func(m trayItem) bool { _, ok := m.find("Quit"); return ok })
			status := make(chan int, 1)
			go func() {
				res, err := testClient.Post("http://"+listen+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
				if err != nil {
					status <- 0
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				status <- res.StatusCode
			}()
			<-got
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
			// Twice: the forwarder's line, then the app's, once Fyne's loop has ended.
			p.waitLine(t, regexp.MustCompile(`stopping; letting open requests finish`))
			p.waitLine(t, regexp.MustCompile(`stopping; letting open requests finish`))
			m, err := host.tryRead()
			require.NoError(t, err, "the tray is still there while the request finishes")
			if item == "activate" {
				host.activate(t, sender)
			} else {
				it, found := m.find(item)
				require.True(t, found, "%v", m.labels())
				require.NoError(t, host.call("Event", it.id, "clicked", dbus.MakeVariant(""), uint32(0)).Err)
			}
			// The click's action runs on a goroutine of its own; a read
			// after the click gives it its turn before the answer is
			// released (on the code before the fix, this failed with a
			// panic for all four, also under -race).
			_, err = host.tryRead()
			require.NoError(t, err)
			release <- struct{}{}
			assert.Equal(t, http.StatusOK, <-status, "the open request finished")
			require.NoError(t, p.end(t, "after SIGTERM"), p.output())
			assert.NotContains(t, p.output(), "panic")
		})
	}
}

// TestAStuckQuitEndsTheProcess: when quitting does not finish in time, the
// process ends with status 2 and says where it was stuck.
func TestAStuckQuitEndsTheProcess(t *testing.T) {
	var out bytes.Buffer
	c := &cli{log: slog.New(slog.NewTextHandler(&out, nil)), stderr: &out}
	code := make(chan int, 1)
	c.exitIfStuck(time.Millisecond, func(c int) { code <- c })
	assert.Equal(t, 2, <-code)
	assert.Contains(t, out.String(), `msg="quitting did not finish; exiting anyway, with where it was stuck" after=1ms`)
	assert.Contains(t, out.String(), "gatehouse.TestAStuckQuitEndsTheProcess(", "this goroutine's stack")
	assert.Contains(t, out.String(), "goroutine 1 [", "and every other one")
}

// TestAfterQuitsWorkTheProcessEnds: once Quit's own work has ended, a
// window system that does not finish closing does not keep the process.
func TestAfterQuitsWorkTheProcessEnds(t *testing.T) {
	var out bytes.Buffer
	c := &cli{log: slog.New(slog.NewTextHandler(&out, nil)), stderr: &out}
	code := make(chan int, 1)
	c.exitAfter(time.Millisecond, func(c int) { code <- c })
	assert.Equal(t, 0, <-code, "nothing of Gatehouse's was left undone")
	assert.Contains(t, out.String(), `msg="the window system did not finish closing; exiting" after=1ms`)
}
