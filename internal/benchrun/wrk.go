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
// floor and gatehouse with the cache and pacing on, over going direct.
type WrkRound struct {
	GatehouseAddedMs float64 `json:"gatehouse_added_p50_ms"`
	FloorAddedMs     float64 `json:"floor_added_p50_ms"`
	Ratio            float64 `json:"ratio"`
	CacheAddedMs     float64 `json:"cache_on_added_p50_ms"`
	CacheRatio       float64 `json:"cache_on_ratio"`
}

var wrkP50 = regexp.MustCompile(`(?m)^\s+50%\s+([0-9.]+)(us|ms|s)\s*$`)

// wrkLatency runs wrk against t for d and returns its p50.
func wrkLatency(dir string, t target, d time.Duration) (time.Duration, error) {
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
		return 0, err
	}
	out, err := exec.Command("wrk", "-t1", "-c1", "-d"+d.String(), "--latency", "-s", script, t.url+"/v1/chat/completions").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("wrk %s: %v\n%s", t.name, err, out)
	}
	m := wrkP50.FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("wrk %s: no 50%% line in\n%s", t.name, out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
	return time.Duration(v * float64(unit)), nil
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
		p50 := map[string]time.Duration{}
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			v, err := wrkLatency(dir, t, d)
			if err != nil {
				return nil, err
			}
			p50[t.name] = v
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		g, f, c := ms(p50[serve.name]-p50[direct.name]), ms(p50[floor.name]-p50[direct.name]), ms(p50[cached.name]-p50[direct.name])
		r := WrkRound{GatehouseAddedMs: g, FloorAddedMs: f, CacheAddedMs: c}
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
		median := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		fmt.Printf("wrk, one connection: %s added p50 over the floor's, per round: %s (median %.2f×; %d of %d rounds within 1.10×; median added p50 %.0f µs against %.0f µs).\n",
			what, strings.Join(parts, ", "), median(ratios), within, len(rounds), 1000*median(gAdded), 1000*median(fAdded))
	}
	line("gatehouse serve's", func(r WrkRound) float64 { return r.Ratio }, func(r WrkRound) float64 { return r.GatehouseAddedMs })
	line(cachePath+":", func(r WrkRound) float64 { return r.CacheRatio }, func(r WrkRound) float64 { return r.CacheAddedMs })
}
