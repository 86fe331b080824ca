// Package pool keeps groups of outbound proxies and picks one per request:
// the fastest (with a tolerance before it switches), the first healthy one
// in order (fallback), or each in turn (round-robin). Members are checked
// actively — each fetches a check URL through itself, concurrently, every
// interval — and passively: MaxFails failures of the member itself (not
// of an upstream behind it) within FailDuration mark it down, until a
// check succeeds again. State lives in atomics on the member, so a pick
// takes no lock and allocates nothing.
package pool

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Strategies.
const (
	Fastest    = "fastest"
	Fallback   = "fallback"
	RoundRobin = "round-robin"
)

// ProxyFunc makes the Proxy function of a transport through member u; it
// adds the member's password, which the config does not hold.
type ProxyFunc func(u *url.URL) func(*http.Request) (*url.URL, error)

// Settings configure a pool.
type Settings struct {
	Name      string
	Strategy  string
	Proxies   []*url.URL
	CheckURL  string
	Interval  time.Duration
	Timeout   time.Duration
	Tolerance time.Duration
	Lazy      bool
	// FallbackDirect: when every member is down, go direct instead of
	// failing.
	FallbackDirect bool
	// MaxFails failures of a member within FailDuration mark it down
	// (passive health); 0 means 1.
	MaxFails     int
	FailDuration time.Duration
}

// Member is one proxy of a pool.
type Member struct {
	URL  *url.URL // without a password
	Name string   // URL.Redacted(), for logs and the status

	up        atomic.Bool
	checked   atomic.Bool
	disabled  atomic.Bool
	latency   atomic.Int64 // ns, of the last successful check
	lastCheck atomic.Int64 // unix ns
	lastErr   atomic.Pointer[string]

	proxy      func(*http.Request) (*url.URL, error)
	mu         sync.Mutex
	transports map[string]*http.Transport // by the upstream's TLS profile
	fails      []time.Time                // recent passive failures, under mu
}

// Available reports whether the member may be picked.
func (m *Member) Available() bool { return m.up.Load() && !m.disabled.Load() }

// Latency is the duration of the member's last successful check.
func (m *Member) Latency() time.Duration { return time.Duration(m.latency.Load()) }

// Transport returns the member's transport for one TLS profile (key),
// building it with build the first time. The member's proxy is set on it.
func (m *Member) Transport(key string, build func() *http.Transport) *http.Transport {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.transports[key]
	if t == nil {
		t = build()
		t.Proxy = m.proxy
		m.transports[key] = t
	}
	return t
}

// MarkDown takes a member out of use until a check succeeds.
func (p *Pool) MarkDown(m *Member, err error) {
	m.markDown(err)
	p.notify()
}

// Failed counts a failure of the member itself (it could not be reached,
// or refused to carry the request) and marks it down once MaxFails of
// them fell within FailDuration; it reports whether it did. The error is
// kept as the member's last error either way.
func (p *Pool) Failed(m *Member, err error) (down bool) {
	now := time.Now()
	m.mu.Lock()
	m.fails = slices.DeleteFunc(m.fails, func(t time.Time) bool { return now.Sub(t) >= p.FailDuration })
	m.fails = append(m.fails, now)
	down = len(m.fails) >= max(p.MaxFails, 1)
	if down {
		m.fails = m.fails[:0]
	}
	m.mu.Unlock()
	msg := err.Error()
	m.lastErr.Store(&msg)
	if down {
		m.up.Store(false)
	}
	p.notify()
	return down
}

func (m *Member) forgetFailures() {
	m.mu.Lock()
	m.fails = m.fails[:0]
	m.mu.Unlock()
}

func (m *Member) markDown(err error) {
	msg := err.Error()
	m.lastErr.Store(&msg)
	m.up.Store(false)
}

func (m *Member) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.transports {
		t.CloseIdleConnections()
	}
}

// Pool is a group of members with a strategy.
type Pool struct {
	Settings
	Members []*Member

	pinned   atomic.Int32 // index, or -1
	selected atomic.Int32 // the fastest strategy's current member, or -1
	next     atomic.Uint64
	used     atomic.Bool
	changed  func()
}

// New makes a pool. proxy adds passwords; changed is called whenever the
// status may have changed (it must not block).
func New(s Settings, proxy ProxyFunc, changed func()) *Pool {
	p := &Pool{Settings: s, changed: changed}
	p.pinned.Store(-1)
	p.selected.Store(-1)
	for _, u := range s.Proxies {
		m := &Member{URL: u, Name: u.Redacted(), proxy: proxy(u), transports: map[string]*http.Transport{}}
		m.up.Store(true) // until a check says otherwise
		p.Members = append(p.Members, m)
	}
	return p
}

// SetPinned pins the member with that URL ("" unpins); SetDisabled
// disables exactly the listed ones. Both take URLs as in the config.
func (p *Pool) SetPinned(raw string) {
	p.pinned.Store(int32(p.index(raw)))
	p.notify()
}

// SetDisabled disables exactly the members listed.
func (p *Pool) SetDisabled(raws []string) {
	for _, m := range p.Members {
		m.disabled.Store(slices.ContainsFunc(raws, func(r string) bool { return sameURL(r, m.URL) }))
	}
	p.notify()
}

func (p *Pool) index(raw string) int {
	for i, m := range p.Members {
		if raw != "" && sameURL(raw, m.URL) {
			return i
		}
	}
	return -1
}

func sameURL(raw string, u *url.URL) bool {
	v, err := url.Parse(raw)
	return err == nil && v.Scheme == u.Scheme && v.Host == u.Host && v.User.Username() == u.User.Username()
}

func (p *Pool) notify() {
	if p.changed != nil {
		p.changed()
	}
}

// Close drops the members' idle connections.
func (p *Pool) Close() {
	for _, m := range p.Members {
		m.close()
	}
}

// Pick returns the member to use now, or nil when none is available.
func (p *Pool) Pick() *Member { return p.PickExcept(nil) }

// PickExcept is Pick among the members not in tried: the ones a request
// has already failed through.
func (p *Pool) PickExcept(tried []*Member) *Member {
	p.used.Store(true)
	ok := func(m *Member) bool { return m.Available() && !slices.Contains(tried, m) }
	if i := p.pinned.Load(); i >= 0 && ok(p.Members[i]) {
		return p.Members[i]
	}
	switch p.Strategy {
	case Fallback:
		for _, m := range p.Members {
			if ok(m) {
				return m
			}
		}
	case RoundRobin:
		n := uint64(len(p.Members))
		start := p.next.Add(1)
		for k := range n {
			if m := p.Members[(start+k)%n]; ok(m) {
				return m
			}
		}
	default:
		if len(tried) == 0 {
			return p.fastest()
		}
		var best *Member // the fastest of the others, without switching to it
		for _, m := range p.Members {
			if ok(m) && (best == nil || m.latency.Load() < best.latency.Load()) {
				best = m
			}
		}
		return best
	}
	return nil
}

// fastest keeps the current member unless another is faster by more than
// the tolerance.
func (p *Pool) fastest() *Member {
	best := -1
	for i, m := range p.Members {
		if m.Available() && (best < 0 || m.latency.Load() < p.Members[best].latency.Load()) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	cur := p.selected.Load()
	if cur >= 0 && p.Members[cur].Available() &&
		p.Members[best].latency.Load()+int64(p.Tolerance) >= p.Members[cur].latency.Load() {
		return p.Members[cur]
	}
	if p.selected.CompareAndSwap(cur, int32(best)) && cur != int32(best) {
		p.notify()
	}
	return p.Members[best]
}

// Run checks the members at once and then every interval until ctx is
// done. With Lazy, an interval in which nobody picked a member is skipped.
func (p *Pool) Run(ctx context.Context) {
	p.CheckNow(ctx)
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if p.Lazy && !p.used.Swap(false) {
				continue
			}
			p.CheckNow(ctx)
		}
	}
}

// CheckNow checks every enabled member concurrently and returns when all
// are done; it takes about one timeout, however many members there are.
func (p *Pool) CheckNow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range p.Members {
		if !m.disabled.Load() {
			wg.Go(func() { p.check(ctx, m) })
		}
	}
	wg.Wait()
	p.notify()
}

// checkTransport is used for health checks: no TLS profile of any upstream.
const checkTransport = "\x00check"

func (p *Pool) check(parent context.Context, m *Member) {
	ctx, cancel := context.WithTimeout(parent, p.Timeout)
	defer cancel()
	t := m.Transport(checkTransport, func() *http.Transport {
		return &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 2 * p.Interval}
	})
	start := time.Now()
	err := fetch(ctx, t, p.CheckURL)
	if parent.Err() != nil {
		// The check was called off (a reload, a stop): its result says
		// nothing of the member, which stays as it was.
		return
	}
	m.lastCheck.Store(time.Now().UnixNano())
	m.checked.Store(true)
	if err != nil {
		m.markDown(err)
		return
	}
	m.latency.Store(int64(time.Since(start)))
	m.lastErr.Store(nil)
	m.forgetFailures()
	m.up.Store(true)
}

func fetch(ctx context.Context, t http.RoundTripper, target string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	res, err := t.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("check answered %s", res.Status)
	}
	return nil
}

// Status is a pool as the GUI, the tray and `gatehouse check` show it.
type Status struct {
	Name       string         `json:"name"`
	Strategy   string         `json:"strategy"`
	Selected   string         `json:"selected,omitempty"` // "" when none is available
	Pinned     string         `json:"pinned,omitempty"`
	PinnedDown bool           `json:"pinned_down,omitempty"`
	Members    []MemberStatus `json:"members"`
}

// MemberStatus is one member's state.
type MemberStatus struct {
	URL       string        `json:"url"`   // password redacted
	State     string        `json:"state"` // up, down, unchecked, disabled
	Latency   time.Duration `json:"latency"`
	LastCheck time.Time     `json:"last_check"`
	LastError string        `json:"last_error,omitempty"`
}

// Status is a snapshot of the pool.
func (p *Pool) Status() Status {
	s := Status{Name: p.Name, Strategy: p.Strategy}
	if i := p.pinned.Load(); i >= 0 {
		s.Pinned = p.Members[i].Name
		s.PinnedDown = !p.Members[i].Available()
	}
	if m := p.peek(); m != nil {
		s.Selected = m.Name
	}
	for _, m := range p.Members {
		ms := MemberStatus{URL: m.Name, Latency: m.Latency()}
		if t := m.lastCheck.Load(); t != 0 {
			ms.LastCheck = time.Unix(0, t)
		}
		if e := m.lastErr.Load(); e != nil {
			ms.LastError = *e
		}
		switch {
		case m.disabled.Load():
			ms.State = "disabled"
		case !m.up.Load():
			ms.State = "down"
		case !m.checked.Load():
			ms.State = "unchecked"
		default:
			ms.State = "up"
		}
		s.Members = append(s.Members, ms)
	}
	return s
}

// peek is what Pick would return, without moving round-robin on.
func (p *Pool) peek() *Member {
	if i := p.pinned.Load(); i >= 0 && p.Members[i].Available() {
		return p.Members[i]
	}
	if p.Strategy == Fastest {
		if cur := p.selected.Load(); cur >= 0 && p.Members[cur].Available() {
			return p.Members[cur]
		}
	}
	for _, m := range p.Members {
		if m.Available() {
			return m
		}
	}
	return nil
}

// LastErrors lists each member's last error, for the message when all are
// down.
func (p *Pool) LastErrors() string {
	var b []byte
	for i, m := range p.Members {
		if i > 0 {
			b = append(b, "; "...)
		}
		e := "disabled"
		if !m.disabled.Load() {
			e = "no error recorded"
			if le := m.lastErr.Load(); le != nil {
				e = *le
			}
		}
		b = fmt.Appendf(b, "%s: %s", m.Name, e)
	}
	return string(b)
}
