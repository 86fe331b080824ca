package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-app/gatehouse/proxy/pool"
)

// poolKey names everything a pool's members and checks depend on; a
// reload that keeps it keeps the pool, its health state and connections.
// Pinned and disabled members are applied to a kept pool in place.
func poolKey(p *Pool) string {
	return strings.Join([]string{p.Name, p.Strategy, strings.Join(p.Proxies, " "), p.CheckURL,
		p.Interval, p.Timeout, p.Tolerance, fmt.Sprint(p.Lazy, p.FallbackDirect)}, "\x00")
}

// buildPools makes the pools of cfg, keeping those whose settings did not
// change, and closes the ones that are gone.
func (f *Forwarder) buildPools(cfg *Config) map[string]*pool.Pool {
	pools := map[string]*pool.Pool{}
	keys := map[string]*pool.Pool{}
	passwords, _ := f.creds.(ProxyPasswords)
	for i := range cfg.Pools {
		pc := &cfg.Pools[i]
		key := poolKey(pc)
		p := f.poolsByKey[key]
		if p == nil {
			interval, _ := parseDuration(pc.Interval, 0) // validated
			timeout, _ := parseDuration(pc.Timeout, 0)
			tolerance, _ := parseDuration(pc.Tolerance, 0)
			s := pool.Settings{Name: pc.Name, Strategy: pc.Strategy, CheckURL: pc.CheckURL,
				Interval: interval, Timeout: timeout, Tolerance: tolerance, Lazy: pc.Lazy, FallbackDirect: pc.FallbackDirect}
			for _, raw := range pc.Proxies {
				u, _ := parseProxyURL(raw)
				s.Proxies = append(s.Proxies, u)
			}
			p = pool.New(s, func(u *url.URL) func(*http.Request) (*url.URL, error) { return proxyFunc(u, passwords) }, f.changes.notify)
		}
		p.SetDisabled(pc.Disabled)
		p.SetPinned(pc.Pinned)
		pools[pc.Name], keys[key] = p, p
	}
	for key, p := range f.poolsByKey {
		if keys[key] == nil {
			p.Close()
		}
	}
	f.poolsByKey = keys
	return pools
}

// poolTransport sends a request through a member of a pool. A member that
// fails before any byte of the request was written — dial, proxy connect,
// TLS handshake — is marked down and the request goes to the next one.
type poolTransport struct {
	pool   *pool.Pool
	key    string // the upstream's TLS profile
	build  func() *http.Transport
	direct http.RoundTripper // with fallback_direct
}

// allDownError means no member of a pool is available.
type allDownError struct {
	pool, errors string
}

func (e *allDownError) Error() string {
	return fmt.Sprintf("every proxy of pool %q is down (%s)", e.pool, e.errors)
}

func (pt *poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for range len(pt.pool.Members) {
		m := pt.pool.Pick()
		if m == nil {
			break
		}
		setRoute(req, "pool "+pt.pool.Name+" via "+m.Name)
		var wrote atomic.Bool
		trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				wrote.Store(true) // the whole request went out: never send it again
			}
		}}
		res, err := m.Transport(pt.key, pt.build).RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
		if err == nil || wrote.Load() || req.Context().Err() != nil {
			return res, err
		}
		pt.pool.MarkDown(m, err) // nothing was sent: safe to try the next member
		if req, err = rewound(req); err != nil {
			return nil, err
		}
	}
	if pt.pool.FallbackDirect {
		setRoute(req, "direct (every proxy of pool "+pt.pool.Name+" is down)")
		return pt.direct.RoundTrip(req)
	}
	return nil, &allDownError{pool: pt.pool.Name, errors: pt.pool.LastErrors()}
}

// rewound is req with a fresh body to send again.
func rewound(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errors.New("the request body cannot be sent again")
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Body = body
	return r, nil
}

func setRoute(req *http.Request, route string) {
	if st := stateFrom(req.Context()); st != nil {
		st.rec.Route = route
	}
}

// RunChecks runs the health checks of every pool until ctx is done; after
// each Apply the checks start again, the first of them at once.
func (f *Forwarder) RunChecks(ctx context.Context) {
	for {
		runCtx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, p := range f.state.Load().pools {
			wg.Go(func() { p.Run(runCtx) })
		}
		select {
		case <-ctx.Done():
		case <-f.poolsChanged:
		}
		cancel()
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
	}
}

// CheckNow checks every member of every pool once, concurrently.
func (f *Forwarder) CheckNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range f.state.Load().pools {
		wg.Go(func() { p.CheckNow(ctx) })
	}
	wg.Wait()
}

// Status is what the GUI and the tray show: the global direct switch and
// each pool.
type Status struct {
	Direct bool          `json:"direct"`
	Paused bool          `json:"paused"`
	Pools  []pool.Status `json:"pools"`
}

// Status is a snapshot of the pools, in config order.
func (f *Forwarder) Status() Status {
	rt := f.state.Load()
	s := Status{Direct: rt.cfg.Direct, Paused: f.paused.Load()}
	for _, pc := range rt.cfg.Pools {
		s.Pools = append(s.Pools, rt.pools[pc.Name].Status())
	}
	return s
}

// Pool is the pool named name in the snapshot, or a zero Status.
func (s Status) Pool(name string) pool.Status {
	for _, p := range s.Pools {
		if p.Name == name {
			return p
		}
	}
	return pool.Status{}
}

// Subscribe returns a channel that receives a value whenever the status
// may have changed (values coalesce; read Status again), and a function
// to stop.
func (f *Forwarder) Subscribe() (<-chan struct{}, func()) { return f.changes.subscribe() }

// notifier tells subscribers that something changed, never blocking.
type notifier struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (n *notifier) subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	n.mu.Lock()
	if n.subs == nil {
		n.subs = map[chan struct{}]struct{}{}
	}
	n.subs[c] = struct{}{}
	n.mu.Unlock()
	return c, func() {
		n.mu.Lock()
		delete(n.subs, c)
		n.mu.Unlock()
	}
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// UpstreamCheck is whether an upstream answers through its route.
type UpstreamCheck struct {
	Name   string
	Route  string
	Status int   // the HTTP status of GET base_url; 0 when unreachable
	Err    error // why it could not be reached
}

// CheckUpstreams asks every upstream's base URL once, through its route,
// concurrently. Any HTTP answer, even an error status, means reachable.
func (f *Forwarder) CheckUpstreams(ctx context.Context, timeout time.Duration) []UpstreamCheck {
	rt := f.state.Load()
	out := make([]UpstreamCheck, len(rt.upstreams))
	var wg sync.WaitGroup
	for i, u := range rt.upstreams {
		wg.Go(func() {
			rec := &Record{Route: u.route}
			ctx, cancel := context.WithTimeout(context.WithValue(ctx, ctxKey{}, &forwardState{rec: rec}), timeout)
			defer cancel()
			c := UpstreamCheck{Name: u.cfg.Name}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base.String(), nil)
			if err == nil {
				var res *http.Response
				if res, err = u.transport.RoundTrip(req); err == nil {
					res.Body.Close()
					c.Status = res.StatusCode
				}
			}
			c.Err, c.Route = err, rec.Route
			out[i] = c
		})
	}
	wg.Wait()
	return out
}
