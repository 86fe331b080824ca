package app

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProxiesShowsAPinMadeThroughTheService(t *testing.T) {
	a, b := "http://"+deadAddr(t), "socks5://"+deadAddr(t)
	h := newHarness(t, `version = 1
[[pools]]
name = "work"
strategy = "fastest"
proxies = ["`+a+`", "`+b+`"]
check_url = "http://`+deadAddr(t)+`/generate_204"
interval = "1h"
`)
	h.waitState(t, stateRunning)
	p := h.ui.proxies
	w := test.NewTempWindow(t, p.content)
	w.Resize(fyne.NewSize(1280, 800))
	require.Len(t, p.pools, 1)
	assert.Equal(t, "Pin", p.pools[0].members[1].pin.Text)
	assert.True(t, p.pools[0].auto.Disabled(), "nothing pinned: Automatic is in force")

	require.NoError(t, h.backend.service().SetPinned("work", b))
	s := h.refresh()
	assert.Equal(t, b, s.Status.Pools[0].Pinned)
	assert.Equal(t, "Pinned", p.pools[0].members[1].pin.Text)
	assert.True(t, p.pools[0].members[1].pin.Disabled())
	assert.Equal(t, "Pin", p.pools[0].members[0].pin.Text)
	assert.False(t, p.pools[0].auto.Disabled())
	assert.Contains(t, p.pools[0].title.Text, "pinned to "+b)
	text := strings.Join(labels(p.content), "|")
	assert.Contains(t, text, a)
	assert.Contains(t, text, b)

	// Unpinning from the window goes through the service and is saved.
	test.Tap(p.pools[0].auto)
	waitFor(t, "the unpin", func() bool { return h.backend.service().Forwarder.Status().Pools[0].Pinned == "" })
	cfg, err := proxy.LoadConfig(h.path)
	require.NoError(t, err)
	assert.Empty(t, cfg.Pools[0].Pinned, "saved in the config")
}

func TestAConfigMistakeAtStartShowsAndAFixStartsForwarding(t *testing.T) {
	h := newHarness(t, "version = 1\n\n[[upstreams]]\nname = \"openai\"\nbase_url = \"not a url\"\n")
	s := h.waitState(t, stateStopped)
	o := h.ui.overview
	assert.Contains(t, s.Reason, "config.toml:5", "the file and line")
	assert.Contains(t, s.Reason, "base_url", "the field")
	assert.True(t, o.problem.Visible())
	assert.Contains(t, o.problem.Text, "config.toml:5")
	assert.Contains(t, o.problem.Text, h.path, "where the file is")
	assert.True(t, o.pause.Disabled(), "nothing to pause")
	assert.True(t, strings.HasPrefix(h.ui.tray.menu.Items[0].Label, "Stopped: config.toml:5: upstreams[0].base_url:"), h.ui.tray.menu.Items[0].Label)
	assert.Equal(t, iconPaused, h.ui.tray.iconName)

	require.NoError(t, os.WriteFile(h.path, []byte("version = 1\n\n[[upstreams]]\nname = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"gpt-*\"]\n"), 0o600))
	s = h.waitState(t, stateRunning)
	assert.False(t, o.problem.Visible())
	assert.Contains(t, o.upstreams.Text, "openai — gpt-* — direct")
	assert.Equal(t, "Forwarding on "+s.Listen, h.ui.tray.menu.Items[0].Label)
}

func TestNoUpstreamSaysWhereToAddOne(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	h.waitState(t, stateRunning)
	assert.Contains(t, h.ui.overview.upstreams.Text, "No upstream is configured yet: add one in Upstreams")
	require.NotNil(t, h.ui.firstRun, "no upstream: the guided setup opens")
	assert.Equal(t, h.ui.firstRun.content, h.ui.window.Content())
}

func TestATakenPortShowsAndANewListenAddressStartsForwarding(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	h := newHarness(t, fmt.Sprintf("version = 1\nlisten = %q\n", taken.Addr().String()))
	s := h.waitState(t, stateStopped)
	assert.Contains(t, s.Reason, "the address is in use")

	free := deadAddr(t)
	require.NoError(t, os.WriteFile(h.path, []byte(fmt.Sprintf("version = 1\nlisten = %q\n", free)), 0o600))
	s = h.waitState(t, stateRunning)
	assert.Equal(t, free, s.Listen, "the file was read again")
}
