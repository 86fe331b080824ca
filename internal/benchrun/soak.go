package main

import (
	"bufio"
	"context"
	cryptorand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// soak runs mixed traffic through `gatehouse serve` for a while — streams,
// plain answers, clients that give up mid-stream, upstream errors, a pool
// member stopped and started again, config reloads — and then checks that
// every request got its answer or the error it should, and that the
// forwarder's goroutines and heap went back to where they started.
func soak(bin string, duration time.Duration) error {
	dir, err := os.MkdirTemp("", "gatehouse-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mock, err := startMock(dir)
	if err != nil {
		return err
	}
	defer mock.stop()
	a, b := testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")
	defer a.Stop()
	defer b.Stop()
	config := func(generation int) string {
		return fmt.Sprintf(`
allowed_hosts = ["soak-%d.localhost"]

[[upstreams]]
name = "openai"
base_url = "%[2]s/v1"
models = ["gpt-*"]
key_env = "BENCH_KEY"
via = "pool:soak"

[[upstreams]]
name = "flaky"
base_url = "%[2]s/v1"
models = ["err-*"]
key_env = "BENCH_KEY"
retry_backoff_cap = "20ms"

[[pools]]
name = "soak"
strategy = "fallback"
proxies = [%[3]q, %[4]q]
check_url = "%[2]s/v1/models"
interval = "2s"
timeout = "2s"
`, generation, mock.url, a.URL, b.URL)
	}
	gh, err := startGatehouse(bin, "gatehouse-soak", dir, config(0), "")
	if err != nil {
		return err
	}
	defer gh.stop()
	cfgPath := gh.config

	t := target{name: "gatehouse", url: gh.url, server: gh}
	for range 50 { // warm up, then take the baseline
		if _, err := once(t); err != nil {
			return err
		}
	}
	client.CloseIdleConnections()
	base, err := processStats(gh.url, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "soak for %s: baseline %d goroutines, %.1f MB heap\n", duration, base.Goroutines, float64(base.HeapBytes)/(1<<20))

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var mu sync.Mutex
	counts := map[string]int{}
	var unexpected []string
	note := func(kind string, err error) {
		mu.Lock()
		defer mu.Unlock()
		counts[kind]++
		if err != nil && len(unexpected) < 20 {
			unexpected = append(unexpected, kind+": "+err.Error())
		}
		if err != nil {
			counts["UNEXPECTED"]++
		}
	}
	var wg sync.WaitGroup
	// Chaos: the selected pool member goes away for a while and comes
	// back; the config is rewritten (and so reloaded) now and then.
	wg.Go(func() {
		tick := time.NewTicker(7 * time.Second)
		defer tick.Stop()
		for gen := 1; ; gen++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			stops.Add(1)
			a.Stop()
			stoppedAt.Store(time.Now().UnixNano())
			note("proxy stopped", nil)
			select {
			case <-ctx.Done():
			case <-time.After(3 * time.Second):
			}
			if err := a.Restart(); err != nil {
				note("proxy restart", err)
			}
			if err := os.WriteFile(cfgPath, []byte(config(gen)), 0o600); err != nil {
				note("config reload", err)
			}
			note("config rewritten", nil)
		}
	})
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				before := stops.Load()
				kind, err := soakRequest(t)
				if err != nil && (stops.Load() != before || time.Since(time.Unix(0, stoppedAt.Load())) < justStopped) {
					// The proxy carrying it was stopped while it ran, or
					// the request went out on a kept-alive connection the
					// proxy closed an instant before: a request that was
					// sent is never sent again, so the client sees the
					// error. That is the expected outcome.
					kind, err = kind+" cut by the proxy stop", nil
				}
				note(kind, err)
			}
		})
	}
	wg.Wait()
	client.CloseIdleConnections()

	// Everything that was open must close again.
	var end proxy.ProcessStats
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if end, err = processStats(gh.url, true); err != nil {
			return err
		}
		leaked := end.Goroutines > base.Goroutines+8
		grown := end.HeapBytes > 2*base.HeapBytes+4<<20
		if !leaked && !grown {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the soak: %d goroutines (baseline %d), %.1f MB heap (baseline %.1f MB)",
				end.Goroutines, base.Goroutines, float64(end.HeapBytes)/(1<<20), float64(base.HeapBytes)/(1<<20))
		}
	}
	total := 0
	for k, v := range counts {
		if k != "UNEXPECTED" && !strings.HasPrefix(k, "proxy") && !strings.HasPrefix(k, "config") {
			total += v
		}
	}
	fmt.Printf("soak: %d requests in %s: %v\n", total, duration, counts)
	fmt.Printf("soak: goroutines %d → %d, heap %.1f MB → %.1f MB\n", base.Goroutines, end.Goroutines,
		float64(base.HeapBytes)/(1<<20), float64(end.HeapBytes)/(1<<20))
	if len(unexpected) > 0 {
		return fmt.Errorf("%d requests did not get their answer or the expected error; first ones:\n  %s", counts["UNEXPECTED"], strings.Join(unexpected, "\n  "))
	}
	fmt.Println("soak: every request got its answer or the expected error; nothing leaked")
	return nil
}

// stops counts the times the soak stopped a proxy; stoppedAt is when it
// last did (Unix nanoseconds).
var stops, stoppedAt atomic.Int64

// justStopped is how soon after a proxy stop a request may still find a
// kept-alive connection to it that the forwarder has not yet seen close.
const justStopped = 250 * time.Millisecond

// soakRequest sends one request of a random kind and says whether it got
// what it should.
func soakRequest(t target) (string, error) {
	switch n := rand.IntN(10); {
	case n < 4:
		res, err := post(context.Background(), t, chatBody, nil)
		if err != nil {
			return "plain", err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "chat.completion") {
			return "plain", fmt.Errorf("%s: %.200s", res.Status, body)
		}
		return "plain", nil
	case n < 7:
		res, err := post(context.Background(), t, `{"model":"gpt-4o","stream":true}`, map[string]string{"X-Mock-Events": "20", "X-Mock-Gap": "5ms"})
		if err != nil {
			return "stream", err
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(body), "data: [DONE]") {
			return "stream", fmt.Errorf("%s %v: %.200s", res.Status, err, body)
		}
		return "stream", nil
	case n < 8:
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res, err := post(ctx, t, `{"model":"gpt-4o","stream":true}`, map[string]string{"X-Mock-Events": "50", "X-Mock-Gap": "20ms"})
		if err != nil {
			return "client gives up", err
		}
		br := bufio.NewReader(res.Body)
		_, err = br.ReadString('\n')
		cancel() // the client goes away mid-stream
		res.Body.Close()
		return "client gives up", err
	default:
		res, err := post(context.Background(), t, `{"model":"err-1"}`, map[string]string{"X-Mock-Status": "500"})
		if err != nil {
			return "upstream error", err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), "mock was asked for 500") {
			return "upstream error", fmt.Errorf("%s: %.200s", res.Status, body)
		}
		return "upstream error", nil
	}
}

// settleToken lets the gatehouse processes started here settle before
// their figures are read (see proxy.Forwarder.AllowSettle).
var settleToken = cryptorand.Text()

func processStats(base string, gc bool) (proxy.ProcessStats, error) {
	url := base + proxy.StatusPath
	if gc {
		url += "?settle=1"
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return proxy.ProcessStats{}, err
	}
	req.Header.Set(proxy.SettleHeader, settleToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return proxy.ProcessStats{}, err
	}
	defer res.Body.Close()
	var st proxy.FullStatus
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		return proxy.ProcessStats{}, err
	}
	return st.Process, nil
}
