//go:build !headless

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

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

	// SIGINT and SIGTERM (c.ctx) are Quit: app.Options.Stop.
	return app.Run(a, app.Options{
		ConfigPath: cfgPath,
		RequestLog: reqlog,
		NewService: func() (*proxy.Service, error) { return c.newService(cfgPath, "", reqlog) },
		Show:       in.Show,
		Quitting: func() {
			in.Close()
			go c.exitIfStuck(app.ShutdownGrace+quitSlack, os.Exit)
		},
		Finished:   func() { c.exitAfter(windowSlack, os.Exit) },
		Log:        c.log,
		Store:      c.store,
		Executable: exe,
		Hidden:     hidden,
		Stop:       c.ctx.Done(),
	})
}

// quitSlack is how long quitting may take beyond the open requests' grace
// before the process ends anyway.
const quitSlack = 15 * time.Second

// windowSlack is how long the window system may take to close after
// Gatehouse's own work has ended on Quit.
const windowSlack = 3 * time.Second

// exitAfter ends the process with status 0 when it is still running d
// after Quit's work has ended: nothing of Gatehouse's is left to do, and
// only Fyne's loop, which can hang at exit (app.Options.Finished), keeps
// it. Normally Run has returned and the process has ended before.
func (c *cli) exitAfter(d time.Duration, exit func(int)) {
	time.Sleep(d)
	c.log.Warn("the window system did not finish closing; exiting", "after", d)
	exit(0)
}

// exitIfStuck ends the process (through exit) when quitting has not
// finished after d: a window system or tray library stuck at exit must not
// leave a process without window or tray that holds the port and the
// single-instance lock, so that Gatehouse can neither be used nor started
// again. Where it was stuck goes to stderr, and the exit status is 2.
func (c *cli) exitIfStuck(d time.Duration, exit func(int)) {
	time.Sleep(d)
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	c.log.Error("quitting did not finish; exiting anyway, with where it was stuck", "after", d)
	_, _ = c.stderr.Write(buf)
	exit(2)
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
