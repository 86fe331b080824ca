package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
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
		p.Interval, p.Timeout, p.Tolerance, fmt.Sprint(p.Lazy, p.FallbackDirect, p.MaxFails), p.FailDuration}, "\x00")
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
			failDuration, _ := parseDuration(pc.FailDuration, 0)
			s := pool.Settings{Name: pc.Name, Strategy: pc.Strategy, CheckURL: pc.CheckURL,
				Interval: interval, Timeout: timeout, Tolerance: tolerance, Lazy: pc.Lazy, FallbackDirect: pc.FallbackDirect,
				MaxFails: pc.MaxFails, FailDuration: failDuration}
			for _, raw := range pc.Proxies {
				u, _ := parseProxyURL(raw)
				s.Proxies = append(s.Proxies, u)
			}
			p = pool.New(s, memberProxyFunc(passwords), f.changes.notify)
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

// poolTransport sends a request through a member of a pool. When the
// member itself fails before any byte of the request was written — it
// cannot be dialled, its TLS handshake fails, it refuses our credentials
// or breaks the proxy handshake — the failure is counted against it and
// the request goes to the next member. An error past the member (the
// upstream's certificate, an upstream the proxy cannot reach or a name it
// cannot resolve) is the upstream's: the request gets it (502) and the
// members are untouched, so one broken upstream cannot take the pool down
// for the others.
type poolTransport struct {
	pool   *pool.Pool
	key    string // the upstream's TLS profile
	build  func() *http.Transport
	direct http.RoundTripper // with fallback_direct
}

// allDownError means no member of a pool could carry the request.
type allDownError struct {
	pool, errors string
}

func (e *allDownError) Error() string {
	return fmt.Sprintf("every proxy of pool %q is down or failed just now (%s)", e.pool, e.errors)
}

func (pt *poolTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var tried []*pool.Member
	for range len(pt.pool.Members) {
		m := pt.pool.PickExcept(tried)
		if m == nil {
			break
		}
		tried = append(tried, m)
		setRoute(req, "pool "+pt.pool.Name+" via "+m.Name)
		tp := &tunnelProgress{}
		ctx := context.WithValue(req.Context(), tunnelKey{}, tp)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
			tp.wrote.Store(true) // some or all of the request went out: never send it again
		}})
		res, err := m.Transport(pt.key, pt.build).RoundTrip(req.WithContext(ctx))
		if err == nil || tp.wrote.Load() || req.Context().Err() != nil || !tp.memberFailed(req, m, err) {
			return res, err
		}
		pt.pool.Failed(m, err) // nothing was sent: safe to try the next member
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

// tunnelProgress is what one attempt through a member got to.
type tunnelProgress struct {
	wrote    atomic.Bool // WroteRequest fired
	answered atomic.Bool // the proxy answered our CONNECT
}

type tunnelKey struct{}

// memberTransport is a pool member's transport for an upstream: it notes
// the proxy's answer to CONNECT, and turns a refusal into a connectError
// that says whose fault it was.
func memberTransport(t *http.Transport) *http.Transport {
	t.OnProxyConnectResponse = func(ctx context.Context, _ *url.URL, _ *http.Request, res *http.Response) error {
		if tp, _ := ctx.Value(tunnelKey{}).(*tunnelProgress); tp != nil {
			tp.answered.Store(true)
		}
		if res.StatusCode != http.StatusOK {
			return &connectError{status: res.StatusCode, text: res.Status}
		}
		return nil
	}
	return t
}

// connectError is a proxy's refusal of a CONNECT.
type connectError struct {
	status int
	text   string
}

func (e *connectError) Error() string { return "the proxy refused the tunnel: " + e.text }

// memberError is a failure of the member before anything was dialled
// (its password could not be read).
type memberError struct{ err error }

func (e *memberError) Error() string { return e.err.Error() }
func (e *memberError) Unwrap() error { return e.err }

// memberProxyFunc is a member's Proxy function: its URL with the password,
// and any failure to find that password marked as the member's own.
func memberProxyFunc(passwords ProxyPasswords) pool.ProxyFunc {
	return func(u *url.URL) func(*http.Request) (*url.URL, error) {
		f := proxyFunc(u, passwords)
		return func(r *http.Request) (*url.URL, error) {
			pu, err := f(r)
			if err != nil {
				return nil, &memberError{err}
			}
			return pu, nil
		}
	}
}

// memberFailed reports whether err, from an attempt through m that wrote
// nothing, is the member's own failure: it could not be dialled or its
// TLS handshake failed (the transport's "proxyconnect"), its password is
// missing, it refused our credentials (407, SOCKS authentication), or it
// broke the proxy handshake. A SOCKS reply code, or a CONNECT answered
// with any other error, is the proxy's report about the upstream, and an
// error after the tunnel (the upstream's TLS certificate) is the
// upstream's.
func (tp *tunnelProgress) memberFailed(req *http.Request, m *pool.Member, err error) bool {
	var me *memberError
	var ce *connectError
	var op *net.OpError
	switch {
	case errors.As(err, &me):
		return true
	case errors.As(err, &ce):
		return ce.status == http.StatusProxyAuthRequired
	case errors.As(err, &op) && op.Op == "proxyconnect":
		return true
	case errors.As(err, &op) && strings.HasPrefix(op.Op, "socks"):
		return !strings.HasPrefix(op.Err.Error(), "unknown error ") // the reply code: about the target
	case strings.HasPrefix(m.URL.Scheme, "http") && req.URL.Scheme == "https":
		return !tp.answered.Load() // the proxy never answered our CONNECT
	}
	return false
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

// RunChecks runs the health checks of every pool until ctx is done. After
// each Apply, the pools it made anew (a changed definition) start their
// checks at once and the ones it dropped stop theirs; a pool it kept goes
// on undisturbed, its checks under way included.
func (f *Forwarder) RunChecks(ctx context.Context) {
	running := map[*pool.Pool]context.CancelFunc{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		live := map[*pool.Pool]bool{}
		for _, p := range f.state.Load().pools {
			live[p] = true
			if running[p] == nil {
				pctx, cancel := context.WithCancel(ctx)
				running[p] = cancel
				wg.Go(func() { p.Run(pctx) })
			}
		}
		for p, cancel := range running {
			if !live[p] {
				cancel()
				delete(running, p)
			}
		}
		select {
		case <-ctx.Done():
			return // every pool's context ends with ctx
		case <-f.poolsChanged:
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
