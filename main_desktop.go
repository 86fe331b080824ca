//go:build !headless

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"

	"github.com/gatehouse-app/gatehouse/app"
	"github.com/gatehouse-app/gatehouse/assets"
	"github.com/gatehouse-app/gatehouse/internal/instance"
	"github.com/gatehouse-app/gatehouse/proxy"
)

const flavour = "desktop"

// appID is the desktop app's reverse-DNS identity (preferences, the tray
// and notifications are keyed by it).
const appID = "io.github.gatehouse_app.gatehouse"

// runDefault starts the desktop app: window, tray and forwarder in one
// process, one per user. Without a display it runs the forwarder alone.
func (c *cli) runDefault(hidden bool) error {
	if !hasDisplay() {
		fmt.Fprintln(c.stderr, "gatehouse: no display (neither DISPLAY nor WAYLAND_DISPLAY is set), so no window or tray: running the forwarder alone, as `gatehouse serve` does")
		return c.serve(nil)
	}
	cfgPath, err := proxy.DefaultConfigPath()
	if err != nil {
		return err
	}
	sock, err := instance.DefaultSocket()
	if err != nil {
		return err
	}
	acquire := instance.Acquire
	if hidden {
		acquire = instance.AcquireQuiet // launch at login: the running one stays as it is
	}
	in, err := acquire(sock)
	if errors.Is(err, instance.ErrRunning) && hidden {
		return nil
	}
	if errors.Is(err, instance.ErrRunning) {
		fmt.Fprintln(c.stderr, "gatehouse: already running; its window is in front now")
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()

	exe, err := os.Executable()
	if err != nil {
		exe = "" // launch at login is then not offered
	}
	reqlog := proxy.NewRequestLog(0)
	a := fyneapp.NewWithID(appID)
	a.SetIcon(fyne.NewStaticResource("icon.png", assets.AppIcon))

	// SIGINT and SIGTERM (c.ctx) are Quit, through the app's own Quit so
	// that nothing is drawn after the tray is gone.
	return app.Run(a, app.Options{
		ConfigPath: cfgPath,
		RequestLog: reqlog,
		NewService: func() (*proxy.Service, error) { return c.newService(cfgPath, "", reqlog) },
		Show:       in.Show,
		Quitting:   in.Close,
		Log:        c.log,
		Store:      c.store,
		Executable: exe,
		Hidden:     hidden,
		Stop:       c.ctx.Done(),
	})
}

// hasDisplay reports whether a window can open: on Linux and the BSDs an X
// or Wayland display must be named; elsewhere there always is one.
func hasDisplay() bool {
	switch runtime.GOOS {
	case "linux", "freebsd", "openbsd", "netbsd":
		return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
	}
	return true
}
