package pool

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func noPassword(u *url.URL) func(*http.Request) (*url.URL, error) { return http.ProxyURL(u) }

func newTestPool(t testing.TB, strategy string, n int, tolerance time.Duration) *Pool {
	s := Settings{Name: "p", Strategy: strategy, Tolerance: tolerance, Interval: time.Minute, Timeout: time.Second}
	for i := range n {
		u, err := url.Parse(fmt.Sprintf("socks5://127.0.0.1:%d", 10000+i))
		require.NoError(t, err)
		s.Proxies = append(s.Proxies, u)
	}
	return New(s, noPassword, nil)
}

func picks(p *Pool, n int) []string {
	var out []string
	for range n {
		if m := p.Pick(); m != nil {
			out = append(out, m.URL.Port())
		} else {
			out = append(out, "none")
		}
	}
	return out
}

func TestFastestWithTolerance(t *testing.T) {
	p := newTestPool(t, Fastest, 3, 50*time.Millisecond)
	set := func(ms ...int) {
		for i, v := range ms {
			p.Members[i].latency.Store(int64(time.Duration(v) * time.Millisecond))
		}
	}
	set(100, 80, 120)
	assert.Equal(t, []string{"10001", "10001"}, picks(p, 2), "the fastest")
	set(100, 80, 20)
	assert.Equal(t, []string{"10002"}, picks(p, 1), "faster by more than the tolerance: switch")
	set(100, 10, 40)
	assert.Equal(t, []string{"10002"}, picks(p, 1), "faster by only 30ms: stay")
	p.MarkDown(p.Members[2], errors.New("dial failed"))
	assert.Equal(t, []string{"10001"}, picks(p, 1), "the current one is down: the next fastest")
	assert.Equal(t, "down", p.Status().Members[2].State)
	assert.Equal(t, "dial failed", p.Status().Members[2].LastError)
}

func TestFallbackAndRoundRobin(t *testing.T) {
	p := newTestPool(t, Fallback, 3, 0)
	assert.Equal(t, []string{"10000", "10000"}, picks(p, 2))
	p.MarkDown(p.Members[0], errors.New("x"))
	assert.Equal(t, []string{"10001"}, picks(p, 1), "the first healthy in order")

	rr := newTestPool(t, RoundRobin, 3, 0)
	counts := map[string]int{}
	for _, port := range picks(rr, 300) {
		counts[port]++
	}
	assert.Equal(t, map[string]int{"10000": 100, "10001": 100, "10002": 100}, counts)
	rr.MarkDown(rr.Members[1], errors.New("x"))
	for _, port := range picks(rr, 10) {
		assert.NotEqual(t, "10001", port)
	}
}

func TestPinAndDisable(t *testing.T) {
	p := newTestPool(t, Fastest, 3, 0)
	p.SetPinned("socks5://127.0.0.1:10002")
	assert.Equal(t, []string{"10002", "10002"}, picks(p, 2))
	st := p.Status()
	assert.Equal(t, "socks5://127.0.0.1:10002", st.Pinned)
	assert.False(t, st.PinnedDown)

	p.MarkDown(p.Members[2], errors.New("x"))
	assert.Equal(t, []string{"10000"}, picks(p, 1), "a pinned member that is down gives way")
	assert.True(t, p.Status().PinnedDown)

	p.SetPinned("")
	p.SetDisabled([]string{"socks5://127.0.0.1:10000"})
	assert.Equal(t, []string{"10001"}, picks(p, 1))
	assert.Equal(t, "disabled", p.Status().Members[0].State)
	p.SetDisabled([]string{"socks5://127.0.0.1:10000", "socks5://127.0.0.1:10001"})
	assert.Equal(t, []string{"none"}, picks(p, 1), "disabled and down: none left")
	assert.Empty(t, p.Status().Selected)
}

func TestLazyPoolSkipsUnusedIntervals(t *testing.T) {
	p := newTestPool(t, Fastest, 1, 0)
	p.Lazy = true
	assert.False(t, p.used.Swap(false))
	p.Pick()
	assert.True(t, p.used.Swap(false), "a pick marks the interval as used")
}

func TestCheckNowRecordsFailures(t *testing.T) {
	p := newTestPool(t, Fastest, 2, 0) // nothing listens on these ports
	p.CheckURL = "http://127.0.0.1:9/generate_204"
	p.CheckNow(context.Background())
	for _, m := range p.Status().Members {
		assert.Equal(t, "down", m.State)
		assert.NotEmpty(t, m.LastError)
		assert.False(t, m.LastCheck.IsZero())
	}
	assert.Nil(t, p.Pick())
}

// BenchmarkPick50 picks from a pool of 50 members; it must allocate
// nothing and take well under a microsecond.
func BenchmarkPick50(b *testing.B) {
	for _, strategy := range []string{Fastest, Fallback, RoundRobin} {
		b.Run(strategy, func(b *testing.B) {
			p := newTestPool(b, strategy, 50, 10*time.Millisecond)
			for i, m := range p.Members {
				m.latency.Store(int64(time.Duration(50-i) * time.Millisecond))
				if i%2 == 0 {
					m.up.Store(false)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if p.Pick() == nil {
					b.Fatal("nothing picked")
				}
			}
		})
	}
}
