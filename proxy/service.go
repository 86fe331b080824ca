package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultShutdownGrace is how long a stopping service lets open requests
// and streams finish.
const DefaultShutdownGrace = 30 * time.Second

// Service runs the forwarder on its listen address, applies the config file
// again when it changes, and stops gracefully. `gatehouse serve` and the
// desktop app both run one.
type Service struct {
	Forwarder *Forwarder
	// Ready, if set, is called with the bound address once the listener is
	// up (useful with listen port 0 in tests).
	Ready func(addr net.Addr)
	// ShutdownGrace bounds how long open requests may take after Run's ctx
	// is done; 0 means DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// Usage, if set, counts every request's tokens and is saved while Run
	// runs and when it ends.
	Usage *UsageBook
	// CachePath, if set, is where the response cache of upstreams with
	// cache = "…" is kept (cache.go); it is opened on first use and closed
	// when Run ends.
	CachePath string

	path   string
	listen string // --listen override, or ""
	log    *slog.Logger
	mu     sync.Mutex // serialises reloads
}

// NewService loads the config at path (a missing file means defaults) and
// prepares a forwarder for it. listen, if not empty, overrides the config's
// listen address.
func NewService(path, listen string, creds Credentials, reqlog *RequestLog, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{path: path, listen: listen, log: log, Forwarder: NewForwarder(creds, reqlog, log)}
	cfg, err := s.load()
	if err != nil {
		return nil, err
	}
	if listen != "" {
		if err := validateListen(listen, len(cfg.Tokens)); err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
	}
	if err := s.Forwarder.Apply(cfg, filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func (s *Service) load() (*Config, error) {
	cfg, err := LoadConfig(s.path)
	if err != nil {
		return nil, err
	}
	if s.listen != "" {
		cfg.Listen = s.listen
	}
	return cfg, nil
}

// Reload reads the config file again and applies it to new requests. On any
// error the config in use stays as it was.
func (s *Service) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.Forwarder.Config().Listen
	cfg, err := s.load()
	if err == nil && s.Forwarder.inUse(cfg, filepath.Dir(s.path)) {
		return nil // our own save, or a touch: nothing to do
	}
	if err == nil {
		err = s.Forwarder.Apply(cfg, filepath.Dir(s.path))
	}
	if err == nil && cfg.Listen != old {
		s.log.Warn("a new listen address applies after a restart", "listening", old, "configured", cfg.Listen)
	}
	if err != nil {
		s.log.Error("config not applied; keeping the last good one", "err", err)
		return err
	}
	s.log.Info("config applied", "path", s.path, "upstreams", len(cfg.Upstreams))
	return nil
}

// Edit changes the config file with change, saves it and applies it. It
// reads the file again, so that it never replaces what the user wrote
// with the config in use: a file with a mistake is left as it is and the
// edit refused, and a --listen override is applied but never saved.
// Nothing is saved or applied when change fails or the result is invalid.
func (s *Service) Edit(change func(*Config) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := LoadConfig(s.path)
	if err != nil {
		return fmt.Errorf("the config file has a mistake, so the change was not saved; fix the file first (it is left as it is): %w", err)
	}
	if err := change(cfg); err != nil {
		return err
	}
	if err := SaveConfig(s.path, cfg); err != nil {
		return err
	}
	if s.listen != "" {
		cfg.Listen = s.listen
	}
	return s.Forwarder.Apply(cfg, filepath.Dir(s.path))
}

// SetPinned pins member (a proxy URL as in the config) in a pool, or
// unpins with "". The pin lasts until unpinned; while the member is down
// the pool's strategy chooses, and the status says so.
func (s *Service) SetPinned(poolName, member string) error {
	return s.Edit(func(c *Config) error {
		p := c.Pool(poolName)
		if p == nil {
			return fmt.Errorf("no pool named %q", poolName)
		}
		p.Pinned = member
		return nil
	})
}

// SetDisabled takes a member out of a pool's use, or puts it back.
func (s *Service) SetDisabled(poolName, member string, disabled bool) error {
	return s.Edit(func(c *Config) error {
		p := c.Pool(poolName)
		if p == nil {
			return fmt.Errorf("no pool named %q", poolName)
		}
		p.Disabled = slices.DeleteFunc(p.Disabled, func(d string) bool { return d == member })
		if disabled {
			p.Disabled = append(p.Disabled, member)
		}
		return nil
	})
}

// SetDirect turns the global switch that bypasses every proxy on or off.
func (s *Service) SetDirect(on bool) error {
	return s.Edit(func(c *Config) error {
		c.Direct = on
		return nil
	})
}

// Run serves until ctx is done, then stops accepting connections and lets
// open requests finish for up to ShutdownGrace before closing them. A value
// on reload, or a change of the config file, applies the file again.
func (s *Service) Run(ctx context.Context, reload <-chan struct{}) error {
	addr := s.Forwarder.Config().Listen
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: the address is in use; another Gatehouse may be running there, or choose another port with listen in the config or --listen", addr)
		}
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:  s.Forwarder,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		// Shared on the network: a client that never finishes its
		// headers, or keeps a connection idle, must not hold it for
		// ever. On loopback only local programs connect (or what the
		// user forwards there, an SSH -R tunnel say), and the deadlines
		// these set, three per request, cost about 7 µs of its latency
		// at one connection (make bench-wrk).
		srv.ReadHeaderTimeout = 30 * time.Second
		srv.IdleTimeout = 5 * time.Minute
	}
	// The config folder is made if it is missing (as SaveConfig would), so
	// that a config.toml written there later is noticed; made before Ready,
	// so that whoever waits for Ready can write there at once.
	_ = os.MkdirAll(filepath.Dir(s.path), 0o700)
	s.log.Info("forwarder listening", "url", "http://"+ln.Addr().String()+"/v1", "config", s.path)
	if s.Ready != nil {
		s.Ready(ln.Addr())
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { s.watch(runCtx, reload) })
	wg.Go(func() { s.Forwarder.RunChecks(runCtx) })
	if s.CachePath != "" {
		lc := &lazyCache{path: s.CachePath}
		s.Forwarder.cache.Store(lc)
		defer func() {
			s.Forwarder.cache.Store(nil)
			if err := lc.close(); err != nil {
				s.log.Warn("response cache not closed cleanly", "err", err)
			}
		}()
	}
	if s.Usage != nil {
		s.Forwarder.usage.Store(s.Usage)
		usageCtx, stopUsage := context.WithCancel(context.Background())
		var saver sync.WaitGroup
		defer func() { stopUsage(); saver.Wait() }() // the last save, after open requests ended
		saver.Go(func() {
			s.Usage.Run(usageCtx, func(err error) { s.log.Warn("usage totals not saved", "err", err) })
		})
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		stop()
		wg.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop()
	wg.Wait()
	grace := s.ShutdownGrace
	if grace <= 0 {
		grace = DefaultShutdownGrace
	}
	s.log.Info("stopping; letting open requests finish", "grace", grace)
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		s.log.Warn("open requests did not finish in time; closing them", "err", err)
		_ = srv.Close()
	}
	s.Forwarder.Close()
	return nil
}

// newWatcher makes the config folder's watcher; tests replace it.
var newWatcher = fsnotify.NewWatcher

// watch applies the config again on a reload signal or when the file
// changes. It watches the folder, because editors and SaveConfig replace
// the file by renaming another over it, and waits for writes to settle.
func (s *Service) watch(ctx context.Context, reload <-chan struct{}) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	// The folder is made if it is missing (as SaveConfig would), so that a
	// config.toml written there later is noticed.
	_ = os.MkdirAll(filepath.Dir(s.path), 0o700)
	w, err := newWatcher()
	if err == nil {
		if err = w.Add(filepath.Dir(s.path)); err == nil {
			events, errs = w.Events, w.Errors
		}
		defer w.Close()
	}
	if err != nil {
		s.log.Warn("not watching the config file for changes; send SIGHUP to reload", "err", err)
	}
	const settle = 200 * time.Millisecond
	timer := time.NewTimer(settle)
	timer.Stop()
	if err == nil {
		// A file written between the start and the watch is read now
		// (Reload does nothing when it says what is in use).
		timer.Reset(settle)
	}
	target := filepath.Clean(s.path)
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-reload:
			_ = s.Reload()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) == target {
				timer.Reset(settle)
			}
		case err, ok := <-errs:
			// Read, or the watcher stops delivering events. After an
			// overflow some events are lost: read the file again anyway,
			// and watch the folder anew in case the watch was dropped.
			if !ok {
				errs = nil
				continue
			}
			s.log.Warn("watching the config file", "err", err)
			if aerr := w.Add(filepath.Dir(s.path)); aerr != nil {
				s.log.Warn("not watching the config file for changes; send SIGHUP to reload", "err", aerr)
			}
			timer.Reset(settle)
		case <-timer.C:
			if _, err := os.Stat(s.path); err == nil {
				_ = s.Reload()
			}
		}
	}
}
