// Package app is Gatehouse's desktop app: the window, its sections and the
// tray menu. It is the GUI only: it reads snapshots of proxy.Service,
// listens for changes and sends commands; forwarding lives in proxy/.
// Widgets change only on Fyne's thread (fyne.Do from other goroutines).
// It never imports Fyne's app driver, so its tests run on Fyne's test
// driver with no display; main builds the fyne.App and calls Run.
package app

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// Options are what main hands the app.
type Options struct {
	ConfigPath string
	Listen     string // the --listen override, or ""
	RequestLog *proxy.RequestLog
	// NewService makes the forwarder's service from the config file; it
	// fails while the file has a mistake, and is called again until the
	// file is fixed.
	NewService func() (*proxy.Service, error)
	// Show gets a value when another start of Gatehouse asks for the window.
	Show <-chan struct{}
	// Quitting, if set, is called once when Quit begins, before open
	// requests are let finish: a new start may then become the instance.
	Quitting func()
	// Finished, if set, is called once, on its own goroutine, when Quit
	// began and Gatehouse's own work has ended (open requests let finish,
	// the forwarder stopped). Run returns once Fyne's loop has ended too,
	// which Fyne 2.8.1 sometimes never does after SIGINT or SIGTERM: its
	// own signal handler quits the loop, and an event then waits for a
	// loop that is gone (seen under make screenshot: Run stuck in
	// Lifecycle.WaitForEvents for 16 minutes). So main ends the process
	// soon after Finished.
	Finished func()
	Log      *slog.Logger
	// Store is the keychain the window's setup writes keys to.
	Store keystore.Store
	// Executable is the program launch at login starts ("" disables it).
	Executable string
	// Hidden starts in the tray with the window closed (launch at login).
	Hidden bool
	// Stop, when it closes, is Quit (main closes it on SIGINT or SIGTERM;
	// Fyne catches them too, but only once its loop runs).
	Stop <-chan struct{}
}

// Run shows the window and the tray, runs the forwarder, and returns once
// the user chose Quit and the forwarder has stopped (open requests get
// ShutdownGrace).
func Run(a fyne.App, o Options) error {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if err := loadTranslations(); err != nil {
		o.Log.Warn("translations", "err", err)
	}
	b := newBackend(o)
	ctx, cancel := context.WithCancel(context.Background())
	u := newUI(a, b)
	u.stopping, u.stop = ctx.Done(), o.Stop
	var wg sync.WaitGroup
	var quitting sync.Once
	stopping := func() {
		quitting.Do(func() {
			cancel() // no more widget updates from here on
			if o.Quitting != nil {
				o.Quitting()
			}
			if o.Finished != nil {
				go func() { wg.Wait(); o.Finished() }()
			}
		})
	}
	// On Fyne's thread while its loop runs (the tray, the window's menu);
	// once the app is stopping the loop may have ended, and the app's
	// Quit would close a window on a terminated GLFW (ui.over).
	u.quit = func() {
		if u.over() {
			return // stopping already
		}
		stopping()
		a.Quit()
	}
	// Not Lifecycle().SetOnStopped: Fyne 2.8.1 queues that callback while
	// it drains its work queue at exit, and the app can then hang in
	// Run (seen here once in a few dozen quits). A signal ends Run too, and
	// stopping follows it below.

	wg.Go(func() { b.run(ctx) })
	wg.Go(func() { u.loop(ctx) })
	wg.Go(func() { u.requests.run(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-o.Show:
				fyne.Do(u.showWindow)
			case <-o.Stop:
				// Stopping begins here, not on Fyne's thread: Fyne's own
				// signal handler may end its loop before a queued
				// function runs. Its Quit is queued until the loop runs,
				// if it does not yet. The driver's Quit, as Fyne's own
				// handler calls it: once the loop has ended Fyne runs a
				// function at once, and the app's Quit would then close
				// a window on a GLFW already terminated (a panic, seen
				// on one processor).
				stopping()
				fyne.Do(a.Driver().Quit)
				return
			}
		}
	})
	if !o.Hidden {
		u.window.Show()
	}
	a.Run()
	stopping()
	o.Log.Info("stopping; letting open requests finish", "grace", ShutdownGrace)
	wg.Wait()
	return nil
}

// ui is the window and the tray.
type ui struct {
	app     fyne.App
	backend *backend
	window  fyne.Window
	tray    *tray
	quit    func()
	// stopping is closed when quitting begins; stop is the signal's
	// channel (Options.Stop). See over.
	stopping, stop <-chan struct{}
	// async runs slow work (files, the keychain, the network) off Fyne's
	// thread; its results come back through fyne.Do. Tests run it inline.
	async func(func())

	tabs         *container.AppTabs
	overview     *overview
	upstreams    *upstreams
	requests     *requests
	proxies      *proxies
	usage        *usage
	tokens       *tokens
	connect      *connectSection
	settings     *settings
	firstRun     *firstRun // the guided setup, while no upstream existed at start
	firstRunSeen bool
	notes        notifier
	setup        *setup.Setup

	last Snapshot
}

func newUI(a fyne.App, b *backend) *ui {
	u := &ui{app: a, backend: b, quit: a.Quit, async: func(f func()) { go f() }}
	u.window = a.NewWindow("Gatehouse")
	u.window.Resize(fyne.NewSize(1280, 800))
	u.setup = &setup.Setup{ConfigPath: b.opts.ConfigPath, Store: b.opts.Store, EditConfig: b.editConfig}
	u.overview = newOverview(u)
	u.upstreams = newUpstreams(u)
	u.requests = newRequests(u, b.opts.RequestLog)
	u.proxies = newProxies(u)
	u.usage = newUsage(u)
	u.tokens = newTokens(u)
	u.connect = newConnectSection(u)
	u.settings = newSettings(u)
	u.tabs = container.NewAppTabs(
		container.NewTabItem(lang.L("Overview"), u.overview.content),
		container.NewTabItem(lang.L("Upstreams"), u.upstreams.content),
		container.NewTabItem(lang.L("Requests"), u.requests.content),
		container.NewTabItem(lang.L("Proxies"), u.proxies.content),
		container.NewTabItem(lang.L("Usage"), u.usage.content),
		container.NewTabItem(lang.L("Access tokens"), u.tokens.content),
		container.NewTabItem(lang.L("Connect"), u.connect.content),
		container.NewTabItem(lang.L("Settings"), u.settings.content),
	)
	u.tabs.SetTabLocation(container.TabLocationLeading)
	u.tabs.OnSelected = func(t *container.TabItem) {
		switch t.Content {
		case u.connect.content:
			u.connect.refresh() // the tools' files may have changed meanwhile
		case u.usage.content:
			u.usage.refresh()
		case u.settings.content:
			u.settings.refresh()
		}
	}
	u.window.SetContent(u.tabs)
	quit := fyne.NewMenuItem(lang.L("Quit"), func() { u.quit() })
	quit.IsQuit = true
	u.window.SetMainMenu(fyne.NewMainMenu(fyne.NewMenu(lang.L("Gatehouse"), quit)))
	u.window.SetCloseIntercept(u.window.Hide) // the app lives on in the tray
	u.tray = newTray(u)
	u.apply(b.snapshot(time.Now()))
	return u
}

// loop redraws from a fresh snapshot whenever something changed, at most
// every refreshEvery however many requests end.
func (u *ui) loop(ctx context.Context) {
	changed := make(chan struct{}, 1)
	go u.backend.watch(ctx, changed)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		snap := u.backend.snapshot(time.Now())
		fyne.Do(func() {
			if ctx.Err() == nil {
				u.apply(snap)
			}
		})
		if !sleepCtx(ctx, refreshEvery) {
			return
		}
	}
}

// refreshEvery bounds how often the window and the tray redraw.
const refreshEvery = 250 * time.Millisecond

// apply shows s everywhere. On Fyne's thread.
func (u *ui) apply(s Snapshot) {
	for _, n := range u.notes.changes(u.last, s) {
		if u.notificationsOn() {
			u.app.SendNotification(fyne.NewNotification(n.title, n.body))
		}
	}
	u.last = s
	u.overview.apply(s)
	u.upstreams.apply(s)
	u.proxies.apply(s)
	u.tokens.apply(s)
	u.tray.apply(s)
	u.firstRunCheck(s)
}

// show opens the section whose content is c.
func (u *ui) show(c fyne.CanvasObject) {
	for _, t := range u.tabs.Items {
		if t.Content == c {
			u.tabs.Select(t)
		}
	}
}

// showConnect opens the Connect section.
func (u *ui) showConnect() { u.show(u.connect.content) }

// over tells whether the app is stopping: Quit was chosen or a signal
// came. Fyne's own signal handler may have ended its loop already, and
// then Fyne runs what the tray or a second start asks for at once, off its
// thread, on a terminated GLFW (a panic, and the open requests' grace cut
// short): showWindow, showError, copy, act and quit do nothing from here
// on.
func (u *ui) over() bool {
	select {
	case <-u.stopping:
		return true
	case <-u.stop:
		return true
	default:
		return false
	}
}

func (u *ui) showWindow() {
	if u.over() {
		return
	}
	u.window.Show()
	u.window.RequestFocus()
}

// act runs a command off Fyne's thread (it may save the config) and shows
// its error, if any, in the window.
func (u *ui) act(fn func(*proxy.Service) error) {
	if u.over() {
		return
	}
	u.async(func() {
		if err := u.backend.with(fn); err != nil {
			fyne.Do(func() { u.showError(err) })
		}
		u.backend.notify()
	})
}

func (u *ui) showError(err error) {
	if u.over() {
		return // the window may be gone (ui.over)
	}
	u.showWindow()
	dialog.ShowError(errors.New(localError(err)), u.window)
}

// run does slow setup work off Fyne's thread, then done on it with the
// error (nil on success); the snapshot is refreshed after it.
func (u *ui) run(work func() error, done func(error)) {
	u.async(func() {
		err := work()
		u.backend.notify()
		fyne.Do(func() { done(err) })
	})
}

func (u *ui) copy(text string) {
	if u.over() {
		return
	}
	u.app.Clipboard().SetContent(text)
}

func (u *ui) setPaused(on bool) {
	u.act(func(s *proxy.Service) error { s.Forwarder.SetPaused(on); return nil })
}
