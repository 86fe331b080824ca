package app

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"fyne.io/fyne/v2/lang"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// States of the forwarder, as the window and the tray show them.
const (
	stateStarting = "starting"
	stateRunning  = "running"
	statePaused   = "paused"
	stateStopped  = "stopped"
)

// ShutdownGrace is how long Quit lets open requests and streams finish.
const ShutdownGrace = 10 * time.Second

// Snapshot is everything the window and the tray show, read at one moment.
type Snapshot struct {
	State      string
	Reason     string // why the forwarder is stopped
	Listen     string // host:port
	ConfigPath string
	Status     proxy.Status
	Keys       []proxy.KeyStatus
	Upstreams  []proxy.Upstream
	Pools      []proxy.Pool
	TokenList  []proxy.Token
	Tokens     bool           // local access tokens are required
	Recent     proxy.Activity // the last 10 minutes
	Hour       proxy.Activity // the last hour
}

// BaseURL is what clients point at.
func (s *Snapshot) BaseURL() string { return "http://" + s.Listen + "/v1" }

// backend runs the forwarder for the app: it starts proxy.Service (again
// and again while the config has a mistake or the port is taken) and
// answers snapshots. It owns no forwarding logic.
type backend struct {
	opts Options

	mu     sync.Mutex
	svc    *proxy.Service // nil until the config could be loaded
	state  string
	reason string
	listen string

	stopRun func() // ends the running service, for restart

	changed chan struct{} // coalescing: the state above changed
}

func newBackend(o Options) *backend {
	return &backend{opts: o, state: stateStarting, listen: o.Listen, changed: make(chan struct{}, 1)}
}

// retryStart is how often a start that failed is tried again: the config
// file may have been fixed, or the port freed.
const retryStart = time.Second

// run starts the service and keeps it running until ctx is done, then
// stops it gracefully (open requests get ShutdownGrace).
func (b *backend) run(ctx context.Context) {
	var svc *proxy.Service
	for ctx.Err() == nil {
		if svc == nil {
			s, err := b.opts.NewService()
			if err != nil {
				b.setStopped(err)
				if !sleepCtx(ctx, retryStart) {
					return
				}
				continue
			}
			s.ShutdownGrace = ShutdownGrace
			svc = s
		}
		s := svc
		s.Ready = func(addr net.Addr) {
			b.mu.Lock()
			b.svc, b.state, b.reason, b.listen = s, stateRunning, "", addr.String()
			b.mu.Unlock()
			b.notify()
		}
		runCtx, stop := context.WithCancel(ctx)
		b.mu.Lock()
		b.stopRun = stop
		b.mu.Unlock()
		err := s.Run(runCtx, nil)
		restarted := runCtx.Err() != nil
		stop()
		if ctx.Err() != nil {
			return
		}
		if restarted { // a new listen address
			s.Forwarder.Close()
			svc = nil
			continue
		}
		if err == nil {
			err = errors.New(lang.L("the forwarder stopped"))
		}
		b.opts.Log.Error("forwarder stopped", "err", err)
		b.setStopped(err)
		// The next try reads the config file again: the user may have
		// chosen another listen address because this one was taken.
		s.Forwarder.Close()
		svc = nil
		if !sleepCtx(ctx, 3*retryStart) {
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (b *backend) setStopped(err error) {
	b.mu.Lock()
	changed := b.state != stateStopped || b.reason != err.Error()
	b.state, b.reason = stateStopped, err.Error()
	b.mu.Unlock()
	if changed {
		b.notify()
	}
}

func (b *backend) notify() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// restart stops the running service (open requests get ShutdownGrace) and
// starts it again from the config file: a new listen address applies.
func (b *backend) restart() {
	b.mu.Lock()
	stop := b.stopRun
	b.state = stateStarting
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	b.notify()
}

// service is the running service, or nil.
func (b *backend) service() *proxy.Service {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != stateRunning {
		return nil
	}
	return b.svc
}

// editConfig changes the config through the running service (which
// serialises edits and applies them at once), or the file when the
// forwarder is not running.
func (b *backend) editConfig(change func(*proxy.Config) error) error {
	if svc := b.service(); svc != nil {
		return svc.Edit(change)
	}
	return (&setup.Setup{ConfigPath: b.opts.ConfigPath}).Edit(change)
}

// with runs fn with the running service, or fails.
func (b *backend) with(fn func(*proxy.Service) error) error {
	svc := b.service()
	if svc == nil {
		return errors.New(lang.L("The forwarder is not running; see its state on the Overview."))
	}
	return fn(svc)
}

func (b *backend) snapshot(now time.Time) Snapshot {
	b.mu.Lock()
	s := Snapshot{State: b.state, Reason: b.reason, Listen: b.listen, ConfigPath: b.opts.ConfigPath}
	svc := b.svc
	b.mu.Unlock()
	if svc != nil && s.State == stateRunning {
		f := svc.Forwarder
		cfg := f.Config()
		s.Status, s.Keys = f.Status(), f.KeyStatus()
		s.Upstreams, s.Pools, s.TokenList, s.Tokens = cfg.Upstreams, cfg.Pools, cfg.Tokens, len(cfg.Tokens) > 0
		if s.Status.Paused {
			s.State = statePaused
		}
	}
	if s.Listen == "" {
		s.Listen = proxy.DefaultListen
	}
	if l := b.opts.RequestLog; l != nil {
		s.Recent, s.Hour = l.Activity(10*time.Minute, now), l.Activity(time.Hour, now)
	}
	return s
}

// watch sends on out (without blocking) whenever the snapshot may have
// changed: the backend's state, the forwarder's status, a request that
// ended, or time passing. It returns when ctx is done.
func (b *backend) watch(ctx context.Context, out chan<- struct{}) {
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	var sub *proxy.Subscription
	var recs <-chan proxy.Record
	if b.opts.RequestLog != nil {
		sub = b.opts.RequestLog.Subscribe(64)
		defer sub.Close()
		recs = sub.C
	}
	var fwdChanges <-chan struct{}
	var stop func()
	var watched *proxy.Service
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	tick := time.NewTicker(5 * time.Second) // activity windows roll, coolings end
	defer tick.Stop()
	for {
		if svc := b.service(); svc != watched {
			if stop != nil {
				stop()
			}
			fwdChanges, stop, watched = nil, nil, svc
			if svc != nil {
				fwdChanges, stop = svc.Forwarder.Subscribe()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.changed:
		case <-fwdChanges:
		case <-recs:
		case <-tick.C:
		}
		signal()
	}
}
