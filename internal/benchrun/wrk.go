package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The outside measurement: wrk, one connection, against the mock directly,
// the floor and gatehouse serve, in rounds whose order rotates, so that
// whatever the machine does meanwhile falls on each path alike. It sees
// the whole process, as a client does (the request log's writer, the
// usage book, timers, GC), where the in-process timing sees one request.
// It runs when wrk is installed (Debian: apt-get install wrk).

// make bench runs wrkRoundsN rounds; in each, every path has wrkRoundTime.
// A single round's ratio ranges about ±15% on this shared machine; the
// median of nine moves less than that of seven did.
const (
	wrkRoundsN   = 9
	wrkRoundTime = 3 * time.Second
)

// WrkRound is one round's added p50 at concurrency 1, for gatehouse, the
// floor and gatehouse with the cache and pacing on, over going direct,
// and the CPU each of those processes spent per request meanwhile (user
// and system, all its threads: what wrk's p50 sees on a machine whose
// cores the client, the mock and the forwarder share).
type WrkRound struct {
	GatehouseAddedMs float64 `json:"gatehouse_added_p50_ms"`
	FloorAddedMs     float64 `json:"floor_added_p50_ms"`
	Ratio            float64 `json:"ratio"`
	CacheAddedMs     float64 `json:"cache_on_added_p50_ms"`
	CacheRatio       float64 `json:"cache_on_ratio"`
	FloorCPUUs       float64 `json:"floor_cpu_us_per_request"`
	GatehouseCPUUs   float64 `json:"gatehouse_cpu_us_per_request"`
	CacheCPUUs       float64 `json:"cache_on_cpu_us_per_request"`
}

var (
	wrkP50      = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkRequests = regexp.MustCompile(`(?m)^\s*([0-9]+) requests in `)
)

// wrkRun is what one wrk run saw: its p50, and the CPU the path's server
// spent per request (0 going direct). The CPU is read from /proc in
// clock ticks (10 ms): over a round of 3 s, about 1 µs per request.
type wrkRun struct {
	p50 time.Duration
	cpu time.Duration
}

// wrkLatency runs wrk against t for d.
func wrkLatency(dir string, t target, d time.Duration) (wrkRun, error) {
	script := filepath.Join(dir, "wrk-"+strings.NewReplacer(" ", "-", ":", "", ",", "").Replace(t.name)+".lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer %s\"\n", chatBody, t.token)
	if t.unique {
		// Every body unique, as target.body makes them ("bench-<this
		// wrk's number>-<n>", apart from theirs and from other rounds').
		// wrk starts a request's clock after request() has returned it.
		lua += fmt.Sprintf("local n = 0\nrequest = function()\n  n = n + 1\n  return wrk.format(nil, nil, nil, '{\"user\":\"bench-%d-' .. string.format(\"%%d\", n) .. '\",' .. string.sub(wrk.body, 2))\nend\n",
			varied.Add(1))
	}
	if err := os.WriteFile(script, []byte(lua), 0o600); err != nil {
		return wrkRun{}, err
	}
	var cpu0 time.Duration
	if t.server != nil {
		cpu0 = t.server.cpu()
	}
	out, err := exec.Command("wrk", "-t1", "-c1", "-d"+d.String(), "--latency", "-s", script, t.url+"/v1/chat/completions").CombinedOutput()
	if err != nil {
		return wrkRun{}, fmt.Errorf("wrk %s: %v\n%s", t.name, err, out)
	}
	var run wrkRun
	m, n := wrkP50.FindStringSubmatch(string(out)), wrkRequests.FindStringSubmatch(string(out))
	if m == nil || n == nil {
		return wrkRun{}, fmt.Errorf("wrk %s: no 50%% or requests line in\n%s", t.name, out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	run.p50 = time.Duration(v * float64(unit))
	if requests, _ := strconv.Atoi(n[1]); t.server != nil && requests > 0 {
		run.cpu = (t.server.cpu() - cpu0) / time.Duration(requests)
	}
	return run, nil
}

// wrkRounds measures direct, floor, gatehouse serve and gatehouse with the
// cache and pacing on in rotating order.
func wrkRounds(dir string, direct, floor, serve, cached target, rounds int, d time.Duration) ([]WrkRound, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "wrk is not installed: no outside measurement (apt-get install wrk)")
		return nil, nil
	}
	fmt.Fprintf(os.Stderr, "wrk: %d rounds of %s per path, one connection…\n", rounds, d)
	targets := []target{direct, floor, serve, cached}
	var out []WrkRound
	for i := range rounds {
		runs := map[string]wrkRun{}
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			v, err := wrkLatency(dir, t, d)
			if err != nil {
				return nil, err
			}
			runs[t.name] = v
		}
		ms := func(t target) float64 {
			return float64(runs[t.name].p50-runs[direct.name].p50) / float64(time.Millisecond)
		}
		us := func(t target) float64 { return float64(runs[t.name].cpu) / float64(time.Microsecond) }
		g, f, c := ms(serve), ms(floor), ms(cached)
		r := WrkRound{GatehouseAddedMs: g, FloorAddedMs: f, CacheAddedMs: c, FloorCPUUs: us(floor), GatehouseCPUUs: us(serve), CacheCPUUs: us(cached)}
		if f > 0 {
			r.Ratio, r.CacheRatio = g/f, c/f
		}
		out = append(out, r)
	}
	return out, nil
}

// wrkAlone runs only the outside measurement, with only the processes it
// measures (the mock, the floor, gatehouse serve and gatehouse with the
// cache and pacing on): for trying a change to the request path (make
// bench-wrk).
func wrkAlone(bin string, rounds int) error {
	bn, err := newBench()
	if err != nil {
		return err
	}
	defer bn.stop()
	g, err := startGatehouse(bin, "gatehouse", bn.dir, bn.config("direct", ""), "")
	if err != nil {
		return err
	}
	defer g.stop()
	c, err := startGatehouse(bin, "gatehouse-cache", bn.dir, bn.config("direct", cacheConfig), "")
	if err != nil {
		return err
	}
	defer c.stop()
	paths := append(bn.targets(), target{name: "gatehouse serve", url: g.url, token: bn.token, server: g},
		target{name: cachePath, url: c.url, token: bn.token, server: c, unique: true})
	for _, t := range paths {
		if _, err := once(t); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	res, err := wrkRounds(bn.dir, paths[0], paths[1], paths[2], paths[3], rounds, wrkRoundTime)
	if err != nil {
		return err
	}
	reportWrk(res)
	return nil
}

func reportWrk(rounds []WrkRound) {
	if len(rounds) == 0 {
		return
	}
	line := func(what string, ratio, added func(WrkRound) float64) {
		ratios, gAdded, fAdded := make([]float64, len(rounds)), make([]float64, len(rounds)), make([]float64, len(rounds))
		var parts []string
		within := 0
		for i, r := range rounds {
			ratios[i], gAdded[i], fAdded[i] = ratio(r), added(r), r.FloorAddedMs
			parts = append(parts, fmt.Sprintf("%.2f", ratios[i]))
			if ratios[i] <= 1.1 {
				within++
			}
		}
		fmt.Printf("wrk, one connection: %s added p50 over the floor's, per round: %s (median %.2f×; %d of %d rounds within 1.10×; median added p50 %.0f µs against %.0f µs).\n",
			what, strings.Join(parts, ", "), median(ratios), within, len(rounds), 1000*median(gAdded), 1000*median(fAdded))
	}
	line("gatehouse serve's", func(r WrkRound) float64 { return r.Ratio }, func(r WrkRound) float64 { return r.GatehouseAddedMs })
	line(cachePath+":", func(r WrkRound) float64 { return r.CacheRatio }, func(r WrkRound) float64 { return r.CacheAddedMs })
	cpu := func(of func(WrkRound) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = of(r)
		}
		return median(v)
	}
	fmt.Printf("wrk, one connection: CPU per request of the whole process, median of the rounds: the floor %.0f µs, gatehouse serve %.0f µs, %s %.0f µs.\n",
		cpu(func(r WrkRound) float64 { return r.FloorCPUUs }), cpu(func(r WrkRound) float64 { return r.GatehouseCPUUs }),
		cachePath, cpu(func(r WrkRound) float64 { return r.CacheCPUUs }))
}

// median sorts v and returns its middle value.
func median(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
