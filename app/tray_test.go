package app

import (
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/proxy/pool"
)

func twoPools() proxy.Status {
	return proxy.Status{Pools: []pool.Status{
		{Name: "work", Strategy: "fastest", Selected: "socks5://127.0.0.1:1080", Members: []pool.MemberStatus{
			{URL: "socks5://127.0.0.1:1080", State: "up", Latency: 12 * time.Millisecond},
			{URL: "http://proxy.corp:3128", State: "down", LastError: "connection refused"},
		}},
		{Name: "home", Strategy: "fallback", Pinned: "http://10.0.0.2:8080", Selected: "http://10.0.0.2:8080", Members: []pool.MemberStatus{
			{URL: "http://10.0.0.1:8080", State: "disabled"},
			{URL: "http://10.0.0.2:8080", State: "up", Latency: 300 * time.Microsecond},
			{URL: "http://10.0.0.3:8080", State: "unchecked"},
		}},
	}}
}

// item finds a menu item by label, failing the test without one.
func item(t *testing.T, m *fyne.Menu, label string) *fyne.MenuItem {
	t.Helper()
	for _, it := range m.Items {
		if it.Label == label {
			return it
		}
	}
	require.Failf(t, "no menu item", "%q in %q", label, menuLabels(m))
	return nil
}

func menuLabels(m *fyne.Menu) []string {
	var out []string
	for _, it := range m.Items {
		if it.IsSeparator {
			out = append(out, "---")
			continue
		}
		out = append(out, it.Label)
	}
	return out
}

func TestTrayMenuFromSnapshots(t *testing.T) {
	test.NewTempApp(t)
	var pinned [2]string
	var directTo *bool
	var paused *bool
	acts := trayActions{
		open: func() {}, copyURL: func() {}, quit: func() {}, checkNow: func() {},
		pause:  func(on bool) { paused = &on },
		pin:    func(p, m string) { pinned = [2]string{p, m} },
		direct: func(on bool) { directTo = &on },
	}

	t.Run("running with two pools", func(t *testing.T) {
		s := Snapshot{State: stateRunning, Listen: "127.0.0.1:4747", Status: twoPools()}
		m := trayMenu(s, acts)
		assert.Equal(t, []string{"Forwarding on 127.0.0.1:4747", "---", "Open Gatehouse", "Copy base URL", "Pause forwarding",
			"---", "Pool work", "Pool home", "Direct connection (bypass proxies)", "---", "Quit"}, menuLabels(m))
		assert.True(t, m.Items[0].Disabled, "the status line is not a command")
		quit := m.Items[len(m.Items)-1]
		assert.True(t, quit.IsQuit, "our own Quit is last, so Fyne adds none")

		work := item(t, m, "Pool work").ChildMenu
		assert.Equal(t, []string{"Automatic (fastest)", "---", "✓ socks5://127.0.0.1:1080 — 12 ms",
			"✗ http://proxy.corp:3128 — connection refused", "---", "Test now"}, menuLabels(work))
		assert.True(t, work.Items[0].Checked, "no pin: automatic")
		assert.False(t, work.Items[2].Checked)

		home := item(t, m, "Pool home").ChildMenu
		assert.Equal(t, []string{"Automatic (fallback)", "---", "– http://10.0.0.1:8080 — disabled",
			"✓ http://10.0.0.2:8080 — <1 ms", "… http://10.0.0.3:8080 — not checked yet", "---", "Test now"}, menuLabels(home))
		assert.False(t, home.Items[0].Checked)
		assert.True(t, home.Items[3].Checked, "the pinned member is checked")

		work.Items[3].Action()
		assert.Equal(t, [2]string{"work", "http://proxy.corp:3128"}, pinned, "choosing a member pins it")
		home.Items[0].Action()
		assert.Equal(t, [2]string{"home", ""}, pinned, "choosing Automatic unpins")

		d := item(t, m, "Direct connection (bypass proxies)")
		assert.False(t, d.Checked)
		d.Action()
		require.NotNil(t, directTo)
		assert.True(t, *directTo)
		item(t, m, "Pause forwarding").Action()
		require.NotNil(t, paused)
		assert.True(t, *paused)
		assert.Equal(t, iconDegraded, trayState(s), "a member is down")
	})

	t.Run("direct on, paused, failures", func(t *testing.T) {
		st := twoPools()
		st.Direct = true
		s := Snapshot{State: statePaused, Listen: "127.0.0.1:4747", Status: st, Recent: proxy.Activity{Requests: 9, Failures: 3}}
		m := trayMenu(s, acts)
		assert.Equal(t, "Paused", m.Items[0].Label)
		assert.Equal(t, "Failures in the last 10 minutes: 3", m.Items[1].Label)
		assert.True(t, item(t, m, "Direct connection (bypass proxies)").Checked)
		item(t, m, "Direct connection (bypass proxies)").Action()
		assert.False(t, *directTo, "a checked switch turns off")
		item(t, m, "Resume forwarding").Action()
		assert.False(t, *paused)
		assert.Equal(t, iconPaused, trayState(s))
	})

	t.Run("stopped by a config mistake, no pools", func(t *testing.T) {
		s := Snapshot{State: stateStopped, Reason: "config.toml:7: upstreams[0].base_url: not a URL", Listen: "127.0.0.1:4747"}
		m := trayMenu(s, acts)
		assert.Equal(t, []string{"Stopped: config.toml:7: upstreams[0].base_url: not a URL", "---", "Open Gatehouse", "Copy base URL",
			"---", "Direct connection (bypass proxies)", "---", "Quit"}, menuLabels(m))
	})

	t.Run("at most 20 members", func(t *testing.T) {
		var members []pool.MemberStatus
		for i := range 25 {
			members = append(members, pool.MemberStatus{URL: "http://127.0.0.1:" + string(rune('a'+i)), State: "up"})
		}
		s := Snapshot{State: stateRunning, Status: proxy.Status{Pools: []pool.Status{{Name: "big", Members: members}}}}
		sub := item(t, trayMenu(s, acts), "Pool big").ChildMenu
		assert.Len(t, sub.Items, 2+20+1+2)
		assert.Equal(t, "More in the window…", sub.Items[22].Label)
	})

	t.Run("all good", func(t *testing.T) {
		s := Snapshot{State: stateRunning, Keys: []proxy.KeyStatus{{Upstream: "a", Label: "k", State: proxy.KeyOK}}}
		assert.Equal(t, iconOK, trayState(s))
		s.Keys[0].State = proxy.KeyRejected
		assert.Equal(t, iconDegraded, trayState(s), "a key down")
	})
}

func TestTrayRebuildsOnlyWhenTheMenuChanges(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	h.waitState(t, stateRunning)
	first := h.ui.tray.menu
	require.NotNil(t, first)
	h.refresh()
	assert.Same(t, first, h.ui.tray.menu, "an equal snapshot keeps the menu")
	h.reqlog.Add(proxy.Record{Start: time.Now(), Status: 502})
	h.refresh()
	assert.NotSame(t, first, h.ui.tray.menu)
	assert.Equal(t, "Failures in the last 10 minutes: 1", h.ui.tray.menu.Items[1].Label)
}

// TestTrayMenuStaysWhileOnlyFiguresChange: a new count of failures waits
// trayCalm (a menu set anew loses a click on the old one); a change in
// what the menu offers does not.
func TestTrayMenuStaysWhileOnlyFiguresChange(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	h.waitState(t, stateRunning)
	now := time.Now()
	h.ui.tray.now = func() time.Time { return now }
	h.reqlog.Add(proxy.Record{Start: time.Now(), Status: 502})
	h.refresh()
	first := h.ui.tray.menu
	require.Equal(t, "Failures in the last 10 minutes: 1", first.Items[1].Label, "a new line is set at once")

	h.reqlog.Add(proxy.Record{Start: time.Now(), Status: 502})
	now = now.Add(trayCalm - time.Millisecond)
	h.refresh()
	assert.Same(t, first, h.ui.tray.menu, "only the count changed, within trayCalm")

	now = now.Add(time.Millisecond)
	h.refresh()
	assert.Equal(t, "Failures in the last 10 minutes: 2", h.ui.tray.menu.Items[1].Label, "the count follows after trayCalm")

	second := h.ui.tray.menu
	h.backend.service().Forwarder.SetPaused(true)
	h.refresh()
	assert.NotSame(t, second, h.ui.tray.menu, "pausing is shown at once")
	assert.Equal(t, "Paused", h.ui.tray.menu.Items[0].Label)

	// A member's latency is a figure; its address is not, digits or not.
	tr := h.ui.tray
	s := Snapshot{State: stateRunning, Listen: "127.0.0.1:4747", Status: twoPools()}
	tr.apply(s)
	pools := tr.menu
	s.Status = twoPools()
	s.Status.Pools[0].Members[0].Latency = 15 * time.Millisecond
	tr.apply(s)
	assert.Same(t, pools, tr.menu, "only a latency changed, within trayCalm")
	assert.Equal(t, tr.setAt.Add(trayCalm), tr.wake, "no redraw asked for when the calm is over")
	s.Status = twoPools()
	s.Status.Pools[0].Members[0].URL = "socks5://127.0.0.1:1081"
	tr.apply(s)
	assert.NotSame(t, pools, tr.menu, "a member's new port waited")
	s.Listen = "127.0.0.1:4848"
	tr.apply(s)
	assert.Equal(t, "Forwarding on 127.0.0.1:4848", tr.menu.Items[0].Label, "a new listen port waited")
}

func TestNotificationsOncePerEvent(t *testing.T) {
	test.NewTempApp(t)
	var n notifier
	up := twoPools()
	start := Snapshot{State: stateRunning, Status: up,
		Keys: []proxy.KeyStatus{{Upstream: "openai", Label: "main", State: proxy.KeyOK}}}
	assert.Empty(t, n.changes(Snapshot{}, start), "nothing at start")
	assert.Empty(t, n.changes(start, start))

	failed := twoPools()
	failed.Pools[0].Selected = "http://proxy.corp:3128"
	failed.Pools[0].Members[0].State, failed.Pools[0].Members[0].LastError = "down", "EOF"
	failed.Pools[0].Members[1].State = "up"
	next := start
	next.Status = failed
	got := n.changes(start, next)
	require.Len(t, got, 1)
	assert.Equal(t, "Pool work switched proxies", got[0].title)
	assert.Equal(t, "socks5://127.0.0.1:1080 is down; now using http://proxy.corp:3128.", got[0].body)
	assert.Empty(t, n.changes(next, next), "once, not again")

	down := twoPools()
	down.Pools[0].Selected = ""
	for i := range down.Pools[0].Members {
		down.Pools[0].Members[i].State = "down"
	}
	all := start
	all.Status = down
	got = n.changes(next, all)
	require.Len(t, got, 1)
	assert.Equal(t, "Every proxy of pool work is down", got[0].title)

	pinned := twoPools()
	pinned.Pools[0].Pinned, pinned.Pools[0].Selected = "http://proxy.corp:3128", "http://proxy.corp:3128"
	pinned.Pools[0].Members[1].State = "up"
	user := start
	user.Status = pinned
	assert.Empty(t, n.changes(start, user), "a pin the user made is no failover")

	// At start every member counts as up before its first check: a first
	// check that finds the selected one down is no failover.
	unchecked := twoPools()
	unchecked.Pools[0].Members[0].State, unchecked.Pools[0].Members[1].State = "unchecked", "unchecked"
	fresh := start
	fresh.Status = unchecked
	assert.Empty(t, n.changes(fresh, next), "the first check is no failover")
	assert.Empty(t, n.changes(fresh, all), "nor is every member down at the first check a change")

	rej := start
	rej.Keys = []proxy.KeyStatus{{Upstream: "openai", Label: "main", State: proxy.KeyRejected, Reason: "401 Unauthorized"}}
	got = n.changes(start, rej)
	require.Len(t, got, 1)
	assert.Equal(t, "Key main of openai was rejected", got[0].title)
	assert.Contains(t, got[0].body, "401 Unauthorized")
	assert.Empty(t, n.changes(rej, rej))

	spent := start
	spent.Keys = []proxy.KeyStatus{{Upstream: "openai", Label: "main", State: proxy.KeyExhausted, Reason: "quota used up (insufficient_quota)"}}
	got = n.changes(start, spent)
	require.Len(t, got, 1)
	assert.Equal(t, "Key main of openai has used up its quota", got[0].title)
	assert.Contains(t, got[0].body, "insufficient_quota")
	assert.Empty(t, n.changes(spent, spent), "once, not per snapshot")
}
