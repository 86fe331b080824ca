package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// poolSetup is an upstream reached through a pool of real proxies.
type poolSetup struct {
	h       *harness
	proxies []*testproxy.Proxy
	check   *httptest.Server
}

func generate204() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
}

func newPoolSetup(t *testing.T, strategy string, proxies []*testproxy.Proxy, edit func(*Config)) *poolSetup {
	t.Helper()
	up := httptest.NewServer(&mockllm.Server{})
	t.Cleanup(up.Close)
	check := generate204()
	t.Cleanup(check.Close)
	for _, p := range proxies {
		t.Cleanup(p.Stop)
	}
	p := Pool{Name: "work", Strategy: strategy, CheckURL: check.URL + "/generate_204", Interval: "1h", Timeout: "5s", Tolerance: "10ms"}
	for _, px := range proxies {
		p.Proxies = append(p.Proxies, px.URL)
	}
	cfg := &Config{
		Pools:     []Pool{p},
		Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, Via: "pool:work"}},
	}
	if edit != nil {
		edit(cfg)
	}
	return &poolSetup{h: newHarness(t, cfg), proxies: proxies, check: check}
}

// send posts n requests and returns the route each took; every one must
// succeed.
func (s *poolSetup) send(t *testing.T, n int) []string {
	t.Helper()
	var routes []string
	for range n {
		before := len(s.h.reqlog.Records())
		res, out := s.h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
		require.Equal(t, http.StatusOK, res.StatusCode, out)
		routes = append(routes, s.h.lastRecord(t, before+1).Route)
	}
	return routes
}

// stop stops proxy i and lets the forwarder's connection pool notice that
// the proxy closed its kept-alive connections (it does within microseconds
// of the close, on another goroutine). A request that raced with it would
// be written on a dead connection, and such a request is never sent again:
// the upstream may have received it.
func (s *poolSetup) stop(i int) {
	s.proxies[i].Stop()
	time.Sleep(100 * time.Millisecond)
}

func (s *poolSetup) via(i int) string { return "pool work via " + s.proxies[i].URL }

func (s *poolSetup) status() map[string]string {
	states := map[string]string{}
	for _, m := range s.h.fwd.Status().Pools[0].Members {
		states[m.URL] = m.State
	}
	return states
}

func TestPoolFailoverLosesNoRequest(t *testing.T) {
	s := newPoolSetup(t, "fallback", []*testproxy.Proxy{testproxy.SOCKS5("", ""), testproxy.HTTP("", ""), testproxy.SOCKS5("", "")}, nil)
	s.h.fwd.CheckNow(context.Background())
	assert.Equal(t, map[string]string{s.proxies[0].URL: "up", s.proxies[1].URL: "up", s.proxies[2].URL: "up"}, s.status())
	for _, r := range s.send(t, 5) {
		assert.Equal(t, s.via(0), r)
	}
	assert.Positive(t, s.proxies[0].Carried())

	s.stop(0)
	for _, r := range s.send(t, 20) { // zero failed requests
		assert.Equal(t, s.via(1), r, "the next member in order")
	}
	assert.Equal(t, "down", s.status()[s.proxies[0].URL])
	assert.Equal(t, s.proxies[1].URL, s.h.fwd.Status().Pools[0].Selected)
	assert.Positive(t, s.proxies[1].Carried())

	require.NoError(t, s.proxies[0].Restart())
	assert.Equal(t, "down", s.status()[s.proxies[0].URL], "back only after a check")
	s.h.fwd.CheckNow(context.Background())
	assert.Equal(t, "up", s.status()[s.proxies[0].URL])
	assert.Equal(t, []string{s.via(0)}, s.send(t, 1))
}

func TestPoolStrategies(t *testing.T) {
	t.Run("round-robin spreads", func(t *testing.T) {
		s := newPoolSetup(t, "round-robin", []*testproxy.Proxy{testproxy.SOCKS5("", ""), testproxy.HTTP("", ""), testproxy.SOCKS5("", "")}, nil)
		counts := map[string]int{}
		for _, r := range s.send(t, 30) {
			counts[r]++
		}
		assert.Equal(t, map[string]int{s.via(0): 10, s.via(1): 10, s.via(2): 10}, counts)
		for _, p := range s.proxies {
			assert.Positive(t, p.Carried())
		}
	})

	t.Run("fastest measures and switches", func(t *testing.T) {
		slow, fast := testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")
		slow.Delay.Store(int64(300 * time.Millisecond))
		s := newPoolSetup(t, "fastest", []*testproxy.Proxy{slow, fast}, nil)
		s.h.fwd.CheckNow(context.Background())
		st := s.h.fwd.Status().Pools[0]
		assert.Greater(t, st.Members[0].Latency, st.Members[1].Latency)
		assert.Equal(t, []string{s.via(1), s.via(1)}, s.send(t, 2))
	})

	t.Run("fastest keeps the current one within the tolerance", func(t *testing.T) {
		slow, fast := testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")
		slow.Delay.Store(int64(300 * time.Millisecond))
		s := newPoolSetup(t, "fastest", []*testproxy.Proxy{slow, fast}, func(c *Config) { c.Pools[0].Tolerance = "1h" })
		assert.Equal(t, []string{s.via(0)}, s.send(t, 1), "before any check, the first")
		s.h.fwd.CheckNow(context.Background())
		assert.Equal(t, []string{s.via(0), s.via(0)}, s.send(t, 2), "faster, but not by more than the tolerance")
	})

	t.Run("pin, disable and the global direct switch", func(t *testing.T) {
		s := newPoolSetup(t, "fallback", []*testproxy.Proxy{testproxy.SOCKS5("", ""), testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")}, func(c *Config) { c.Pools[0].MaxFails = 1 })
		apply := func(edit func(*Config)) {
			cfg := s.h.fwd.Config().Clone()
			edit(cfg)
			require.NoError(t, s.h.fwd.Apply(cfg, ""))
		}
		apply(func(c *Config) { c.Pools[0].Pinned = s.proxies[2].URL })
		assert.Equal(t, []string{s.via(2), s.via(2)}, s.send(t, 2))
		s.stop(2)
		assert.Equal(t, []string{s.via(0)}, s.send(t, 1), "the pinned member is down: the strategy chooses")
		assert.True(t, s.h.fwd.Status().Pools[0].PinnedDown)

		apply(func(c *Config) { c.Pools[0].Pinned = ""; c.Pools[0].Disabled = []string{s.proxies[0].URL} })
		assert.Equal(t, []string{s.via(1)}, s.send(t, 1), "a disabled member is never used")
		assert.Equal(t, "disabled", s.status()[s.proxies[0].URL])

		carried := s.proxies[1].Carried()
		apply(func(c *Config) { c.Direct = true })
		assert.Equal(t, []string{"direct (global switch)"}, s.send(t, 1))
		assert.True(t, s.h.fwd.Status().Direct)
		assert.Equal(t, carried, s.proxies[1].Carried(), "no proxy carried it")
	})
}

func TestPoolAllDown(t *testing.T) {
	s := newPoolSetup(t, "fastest", []*testproxy.Proxy{testproxy.SOCKS5("", ""), testproxy.HTTP("", "")}, nil)
	for _, p := range s.proxies {
		p.Stop()
	}
	res, out := s.h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`, nil)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, out)
	var e struct {
		Error struct{ Message, Code string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &e))
	assert.Equal(t, "pool_unavailable", e.Error.Code)
	assert.Contains(t, e.Error.Message, `every proxy of pool "work" is down`)
	for _, p := range s.proxies {
		assert.Contains(t, e.Error.Message, p.URL+": ")
	}
	assert.Contains(t, e.Error.Message, "connection refused")

	d := newPoolSetup(t, "fastest", []*testproxy.Proxy{testproxy.SOCKS5("", "")}, func(c *Config) { c.Pools[0].FallbackDirect = true })
	d.proxies[0].Stop()
	assert.Equal(t, []string{`direct (every proxy of pool work is down)`}, d.send(t, 1))
}

// passwordCreds gives proxy passwords, as the keystore does.
type passwordCreds map[string]string

func (passwordCreds) Credential(up *Upstream) (Credential, error) { return Credential{}, nil }
func (p passwordCreds) ProxyPassword(userHost string) (string, error) {
	if pw, ok := p[userHost]; ok {
		return pw, nil
	}
	return "", fmt.Errorf("no password for %s", userHost)
}

func TestPoolMemberWithPassword(t *testing.T) {
	const password = "pool-member-PASSWORD-8080"
	good, wrong := testproxy.SOCKS5("me", password), testproxy.HTTP("me", password)
	defer good.Stop()
	defer wrong.Stop()
	up := httptest.NewServer(&mockllm.Server{})
	defer up.Close()
	check := generate204()
	defer check.Close()
	memberGood, memberWrong := "socks5://me@"+good.Addr, "http://me@"+wrong.Addr
	cfg := &Config{
		Pools: []Pool{{Name: "work", Strategy: "fallback", Proxies: []string{memberWrong, memberGood},
			CheckURL: check.URL, Interval: "1h", Timeout: "5s"}},
		Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, Via: "pool:work"}},
	}
	cfg.applyDefaults()
	f := NewForwarder(passwordCreds{"me@" + good.Addr: password, "me@" + wrong.Addr: "not-it"}, NewRequestLog(0), nil)
	require.NoError(t, f.Apply(cfg, ""))
	defer f.Close()
	f.CheckNow(context.Background())
	st := f.Status().Pools[0]
	assert.Equal(t, "down", st.Members[0].State, "the wrong password fails the check")
	assert.Contains(t, st.Members[0].LastError, "Proxy Authentication Required")
	assert.Equal(t, "up", st.Members[1].State)
	assert.Equal(t, memberGood, st.Selected)
	b, _ := json.Marshal(f.Status())
	assert.NotContains(t, string(b), password)
	assert.NotContains(t, string(b), "not-it")
}

// TestChecksRunConcurrently: the check URL answers only once all 50
// members' checks have arrived, so checks one after another would all
// time out; concurrent ones all pass, within one timeout.
func TestChecksRunConcurrently(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	check := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived++
		if arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
			w.WriteHeader(http.StatusNoContent)
		case <-r.Context().Done():
		}
	}))
	defer check.Close()
	var proxies []*testproxy.Proxy
	for range n {
		proxies = append(proxies, testproxy.HTTP("", ""))
	}
	s := newPoolSetup(t, "fastest", proxies, func(c *Config) {
		c.Pools[0].CheckURL = check.URL
		c.Pools[0].Timeout = "30s" // a hang guard; sequential checks would block on the first
	})
	s.h.fwd.CheckNow(context.Background())
	for url, state := range s.status() {
		assert.Equal(t, "up", state, url)
	}
}

func TestStatusChangesAreNotified(t *testing.T) {
	s := newPoolSetup(t, "fallback", []*testproxy.Proxy{testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")}, func(c *Config) { c.Pools[0].MaxFails = 1 })
	changes, stop := s.h.fwd.Subscribe()
	defer stop()
	s.stop(0)
	s.send(t, 1)
	select {
	case <-changes:
	default:
		t.Fatal("marking a member down did not notify")
	}
	assert.Equal(t, "down", s.status()[s.proxies[0].URL])
}

func TestRunChecksRechecksAfterApply(t *testing.T) {
	s := newPoolSetup(t, "fallback", []*testproxy.Proxy{testproxy.SOCKS5("", "")}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.h.fwd.RunChecks(ctx); close(done) }()
	eventuallyState := func(want string) {
		deadline := time.Now().Add(30 * time.Second)
		for s.status()[s.proxies[0].URL] != want {
			require.True(t, time.Now().Before(deadline), "never became %s", want)
			time.Sleep(10 * time.Millisecond)
		}
	}
	eventuallyState("up") // the first check runs at start
	s.proxies[0].Stop()
	cfg := s.h.fwd.Config().Clone()
	cfg.Pools[0].Timeout = "2s" // a change: checks start again at once
	require.NoError(t, s.h.fwd.Apply(cfg, ""))
	eventuallyState("down")
	cancel()
	<-done
	assert.True(t, strings.HasPrefix(s.h.fwd.Status().Pools[0].Members[0].URL, "socks5://"))
}

// TestManualControlIsSaved: pin, disable and direct change the running
// forwarder and the config file, for the tray to use.
func TestManualControlIsSaved(t *testing.T) {
	a, b := testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")
	defer a.Stop()
	defer b.Stop()
	path := writeConfig(t, fmt.Sprintf("[[pools]]\nname = \"work\"\nproxies = [%q, %q]\n", a.URL, b.URL))
	svc, err := NewService(path, "", envCreds(nil), nil, nil)
	require.NoError(t, err)

	require.NoError(t, svc.SetPinned("work", b.URL))
	require.NoError(t, svc.SetDisabled("work", a.URL, true))
	require.NoError(t, svc.SetDirect(true))
	st := svc.Forwarder.Status()
	assert.True(t, st.Direct)
	assert.Equal(t, b.URL, st.Pools[0].Pinned)
	assert.Equal(t, "disabled", st.Pools[0].Members[0].State)

	saved, err := LoadConfig(path)
	require.NoError(t, err)
	assert.True(t, saved.Direct)
	assert.Equal(t, b.URL, saved.Pools[0].Pinned)
	assert.Equal(t, []string{a.URL}, saved.Pools[0].Disabled)

	require.NoError(t, svc.SetDisabled("work", a.URL, false))
	require.NoError(t, svc.SetPinned("work", ""))
	assert.Empty(t, svc.Forwarder.Status().Pools[0].Pinned)
	assert.ErrorContains(t, svc.SetPinned("nope", ""), `no pool named "nope"`)
	assert.ErrorContains(t, svc.SetPinned("work", "socks5://127.0.0.1:1"), "is not one of the pool's proxies")
	saved, _ = LoadConfig(path)
	assert.Empty(t, saved.Pools[0].Disabled, "a refused change saves nothing")
}
