// Command benchrun is `make bench`: it measures Gatehouse against a bare
// reverse proxy on this machine, side by side, and prints a table of
// ratios to that floor (so the result does not depend on how fast the
// machine is that day), then writes the figures as JSON.
//
// Every server is a program of its own in its own process, so that its
// CPU time and memory can be read from /proc: the mock upstream
// (internal/benchmock), the floor (internal/benchfloor, a bare
// httputil.ReverseProxy that only sets the key) and `gatehouse serve` with
// a realistic config. The load comes from this process, over loopback
// only.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/gatehouse-app/gatehouse/internal/xvfb"
	"github.com/gatehouse-app/gatehouse/proxy"
)

const benchKey = "sk-bench-not-a-real-key"

// profileDir, if set, receives a CPU profile of each gatehouse process.
var profileDir string

func main() {
	log.SetFlags(0)
	gatehouse := flag.String("gatehouse", "bin/gatehouse", "the gatehouse binary to measure")
	out := flag.String("out", "bench.json", "where the figures go as JSON")
	quick := flag.Bool("quick", false, "fewer requests, for a smoke run")
	flag.StringVar(&profileDir, "profile", "", "write each gatehouse process's CPU profile into this folder")
	soakFor := flag.Duration("soak", 0, "instead of measuring, run mixed traffic this long and check nothing leaks (make soak)")
	wrkOnly := flag.Int("wrk-only", 0, "instead of the whole run, only this many rounds of the outside measurement (wrk)")
	flag.Parse()
	if *wrkOnly > 0 {
		if err := wrkAlone(*gatehouse, *wrkOnly); err != nil {
			log.Fatal("benchrun: ", err)
		}
		return
	}
	if *soakFor > 0 {
		if err := soak(*gatehouse, *soakFor); err != nil {
			log.Fatal("soak: ", err)
		}
		return
	}
	if err := run(*gatehouse, *out, *quick); err != nil {
		log.Fatal("benchrun: ", err)
	}
}

// process is a server this run started.
type process struct {
	name   string
	cmd    *exec.Cmd
	url    string // base URL, ending before /v1
	config string // gatehouse's config file
}

// helper builds one of the programs the run starts besides gatehouse
// (internal/benchmock, internal/benchfloor) into dir.
func helper(dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", bin, "github.com/gatehouse-app/gatehouse/internal/"+name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", name, err, out)
	}
	return bin, nil
}

// startMock builds and starts the mock upstream.
func startMock(dir string) (*process, error) {
	bin, err := helper(dir, "benchmock")
	if err != nil {
		return nil, err
	}
	return start("mock", bin)
}

// start runs the program bin with args and reads the address it serves on
// from its first line of output.
func start(name, bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("%s did not start: %w", name, err)
	}
	return &process{name: name, cmd: cmd, url: "http://" + strings.TrimSpace(addr)}, nil
}

// startGatehouse runs `gatehouse serve` with cfg; its one log line per
// request goes to a file, as a user's terminal would take it. The config
// has a folder of its own, as it has at home: serve watches that folder,
// and a log written into it would wake the watcher on every line. With a
// display (an X server's ":N"), it runs the desktop app instead: window,
// tray and forwarder in one process, as `gatehouse` with no arguments.
func startGatehouse(bin, name, dir, cfg, display string) (*process, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := os.MkdirAll(filepath.Join(dir, name), 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name, "config.toml")
	if display != "" {
		cfg = fmt.Sprintf("listen = %q\n", addr) + cfg // the desktop app takes no --listen
	}
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", path, "--listen", addr)
	cmd.Env = append(os.Environ(), "BENCH_KEY="+benchKey, "XDG_CACHE_HOME="+dir, "GATEHOUSE_SETTLE_TOKEN="+settleToken)
	if display != "" {
		run := filepath.Join(dir, name, "run")
		if err := os.MkdirAll(run, 0o700); err != nil {
			return nil, err
		}
		env := cmd.Env
		cmd = exec.Command(bin)
		cmd.Env = append(env, "DISPLAY="+display, "WAYLAND_DISPLAY=",
			"GATEHOUSE_CONFIG="+path, "XDG_RUNTIME_DIR="+run, "XDG_CONFIG_HOME="+filepath.Join(dir, name))
	}
	if profileDir != "" {
		cmd.Env = append(cmd.Env, "GATEHOUSE_CPUPROFILE="+filepath.Join(profileDir, name+".pprof"))
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{name: name, cmd: cmd, url: "http://" + addr, config: path}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if res, err := http.Get(p.url + "/health"); err == nil {
			res.Body.Close()
			if display != "" {
				showRequests(display)
			}
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not start; see %s", name, logFile.Name())
		}
	}
}

func (p *process) stop() {
	if p != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

// cpu is the process's user+system time; rss its resident memory.
func (p *process) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func (p *process) rss() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// target is one path requests take.
type target struct {
	name   string
	url    string
	token  string
	server *process // whose CPU and allocations are counted; nil for direct
	// unique makes every request's body unique ({"user":"bench-<n>", …}),
	// so that a forwarder with a cache looks each one up, misses and
	// stores it (each run's cache folder is new).
	unique bool
}

// varied counts the bodies made unique, across paths and rounds.
var varied atomic.Int64

// body is what t sends for body.
func (t target) body(body string) string {
	if !t.unique || !strings.HasPrefix(body, "{") {
		return body
	}
	return fmt.Sprintf(`{"user":"bench-%d",`, varied.Add(1)) + body[1:]
}

// cachePath is gatehouse serve with the work of the limits on: a response
// cache that misses on every request (each body is unique) and stores
// every answer, local pacing that never has to wait, and upstream answers
// that carry OpenAI's rate-limit headers (the mock sends them to every
// path). Neither may show in the added latency.
const cachePath = "gatehouse serve, cache (all misses) and pacing on"

const cacheConfig = `cache = "10m"
requests_per_minute = 6000000
tokens_per_minute = 6000000000
`

// Result is one path's figures.
type Result struct {
	Path          string  `json:"path"`
	P50ms         float64 `json:"latency_p50_ms"`
	P99ms         float64 `json:"latency_p99_ms"`
	AddedP50ms    float64 `json:"added_latency_p50_ms"` // over going direct, request by request
	RPS32         float64 `json:"rps_c32"`
	OpenP50ms     float64 `json:"open_loop_p50_ms"`
	OpenP99ms     float64 `json:"open_loop_p99_ms"`
	OpenRate      float64 `json:"open_loop_rate"`
	TTFBp50ms     float64 `json:"stream_ttfb_p50_ms"`
	TTFBp99ms     float64 `json:"stream_ttfb_p99_ms"`
	GapP99ms      float64 `json:"stream_gap_p99_ms"`
	CPUPerReqUs   float64 `json:"cpu_per_request_us"`
	AllocsPerReq  float64 `json:"allocs_per_request"`
	BytesPerReq   float64 `json:"alloc_bytes_per_request"`
	BigBodyCopies float64 `json:"big_body_copies,omitempty"` // bytes allocated per 5 MB request, in 5 MBs
	Failed        int64   `json:"failed_requests"`
	ServerRSSIdle int64   `json:"server_rss_idle_bytes,omitempty"`
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}

func post(ctx context.Context, t target, body string, header map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/v1/chat/completions", strings.NewReader(t.body(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return client.Do(req)
}

const chatBody = `{"model":"gpt-4o","messages":[{"role":"user","content":"Say hello"}]}`

func once(t target) (time.Duration, error) {
	return send(t, chatBody)
}

func send(t target, body string) (time.Duration, error) {
	start := time.Now()
	res, err := post(context.Background(), t, body, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered %s", t.name, res.Status)
	}
	return time.Since(start), nil
}

// percentile of the latencies in d, leaving out failed requests (-1).
func percentile(d []time.Duration, p float64) float64 {
	s := slices.DeleteFunc(slices.Clone(d), func(x time.Duration) bool { return x < 0 })
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	i := min(int(p*float64(len(s))), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

// spent is a server's CPU time and allocations.
type spent struct {
	cpu            time.Duration
	mallocs, bytes uint64
}

// spentSoFar is what the path's server has spent since it started.
func (t target) spentSoFar() (spent, error) {
	if t.server == nil {
		return spent{}, nil
	}
	st, err := processStats(t.server.url, false)
	return spent{t.server.cpu(), st.Mallocs, st.AllocBytes}, err
}

func (s spent) plus(o spent) spent {
	return spent{s.cpu + o.cpu, s.mallocs + o.mallocs, s.bytes + o.bytes}
}

func (s spent) minus(o spent) spent {
	return spent{s.cpu - o.cpu, s.mallocs - o.mallocs, s.bytes - o.bytes}
}

// interleaved runs one round of f for every path, round after round, each
// round in another order, so that whatever else the shared machine is
// doing falls on every path alike and the ratios between them hold.
func interleaved(targets []target, rounds int, f func(i int, t target) error) error {
	for round := range rounds {
		for k := range targets {
			i := (round + k) % len(targets)
			if err := f(i, targets[i]); err != nil {
				return fmt.Errorf("%s: %w", targets[i].name, err)
			}
		}
	}
	return nil
}

// closedLoop sends requests from 32 clients for d and counts the answers
// and the failures.
func closedLoop(t target, d time.Duration) (answered, failed int64) {
	var ok, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if _, err := once(t); err != nil {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return ok.Load(), bad.Load()
}

// openLoop sends requests on a fixed schedule for d; each one's latency
// counts from when it was due, so a stall is not hidden. A failed
// request's latency is -1.
func openLoop(t target, d time.Duration, rate float64) []time.Duration {
	interval := time.Duration(float64(time.Second) / rate)
	lat := make([]time.Duration, int(d.Seconds()*rate))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range lat {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		wg.Go(func() {
			if _, err := once(t); err != nil {
				lat[i] = -1
			} else {
				lat[i] = time.Since(due)
			}
		})
	}
	wg.Wait()
	return lat
}

// stream reads one streamed answer of 6 events 2 ms apart and returns the
// time to its first event and the gaps between events.
func stream(t target) (time.Duration, []time.Duration, error) {
	start := time.Now()
	res, err := post(context.Background(), t, `{"model":"gpt-4o","stream":true}`, map[string]string{"X-Mock-Events": "6", "X-Mock-Gap": "2ms"})
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var ttfb time.Duration
	var gaps []time.Duration
	sc := bufio.NewScanner(res.Body)
	last := time.Time{}
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), "data: ") {
			continue
		}
		now := time.Now()
		if last.IsZero() {
			ttfb = now.Sub(start)
		} else {
			gaps = append(gaps, now.Sub(last))
		}
		last = now
	}
	return ttfb, gaps, sc.Err()
}

// bigBody is a chat request of about 5 MB.
func bigBody() string {
	return `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("lorem ipsum ", 5<<20/12) + `"}]}`
}

// measure runs every phase against every path, interleaved. targets[0] is
// the mock itself: added latency is counted against it. A failed request
// is counted, not measured; more than one in a hundred on a path is an
// error.
func measure(targets []target, n, rounds int, phase time.Duration, openRate float64) ([]Result, error) {
	results := make([]Result, len(targets))
	sent := make([]int64, len(targets))
	fail := func(i int, failed bool) {
		sent[i]++
		if failed {
			results[i].Failed++
		}
	}
	for i, t := range targets {
		results[i].Path = t.name
		for range n / 10 { // warm up connections
			if _, err := once(t); err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}

	// Latency at concurrency 1, request by request in turn; each path's
	// added latency is its time minus going direct in the same turn.
	lat := make([][]time.Duration, len(targets))
	if err := interleaved(targets, n, func(i int, t target) error {
		d, err := once(t)
		if fail(i, err != nil); err != nil {
			d = -1
		}
		lat[i] = append(lat[i], d)
		return nil
	}); err != nil {
		return nil, err
	}
	for i := range targets {
		r := &results[i]
		r.P50ms, r.P99ms = percentile(lat[i], 0.50), percentile(lat[i], 0.99)
		added := make([]time.Duration, n)
		for k := range n {
			added[k] = lat[i][k] - lat[0][k]
			if lat[i][k] < 0 || lat[0][k] < 0 {
				added[k] = -1
			}
		}
		r.AddedP50ms = percentile(added, 0.50)
	}

	// Closed loop at concurrency 32, with the server's CPU time and
	// allocations per request.
	count := make([]int64, len(targets))
	used := make([]spent, len(targets))
	if err := interleaved(targets, rounds, func(i int, t target) error {
		before, err := t.spentSoFar()
		if err != nil {
			return err
		}
		ok, bad := closedLoop(t, phase/time.Duration(rounds))
		after, err := t.spentSoFar()
		count[i] += ok
		sent[i] += ok + bad
		results[i].Failed += bad
		used[i] = used[i].plus(after.minus(before))
		return err
	}); err != nil {
		return nil, err
	}
	for i, t := range targets {
		r := &results[i]
		r.RPS32 = float64(count[i]) / phase.Seconds()
		if t.server != nil && count[i] > 0 {
			r.CPUPerReqUs = float64(used[i].cpu) / float64(time.Microsecond) / float64(count[i])
			r.AllocsPerReq = float64(used[i].mallocs) / float64(count[i])
			r.BytesPerReq = float64(used[i].bytes) / float64(count[i])
		}
	}

	// Open loop at a fixed rate.
	open := make([][]time.Duration, len(targets))
	if err := interleaved(targets, rounds, func(i int, t target) error {
		l := openLoop(t, phase/time.Duration(rounds), openRate)
		for _, d := range l {
			fail(i, d < 0)
		}
		open[i] = append(open[i], l...)
		return nil
	}); err != nil {
		return nil, err
	}
	for i := range targets {
		r := &results[i]
		r.OpenRate = openRate
		r.OpenP50ms, r.OpenP99ms = percentile(open[i], 0.50), percentile(open[i], 0.99)
	}

	// Streams: time to first event and the gaps between events.
	ttfb, gaps := make([][]time.Duration, len(targets)), make([][]time.Duration, len(targets))
	if err := interleaved(targets, max(n/4, 20), func(i int, t target) error {
		first, g, err := stream(t)
		if fail(i, err != nil); err == nil {
			ttfb[i], gaps[i] = append(ttfb[i], first), append(gaps[i], g...)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i := range targets {
		r := &results[i]
		r.TTFBp50ms, r.TTFBp99ms, r.GapP99ms = percentile(ttfb[i], 0.5), percentile(ttfb[i], 0.99), percentile(gaps[i], 0.99)
	}
	for i, r := range results {
		if r.Failed*100 > sent[i] {
			return nil, fmt.Errorf("%s: %d of %d requests failed", r.Path, r.Failed, sent[i])
		}
	}
	return results, nil
}

// bigBodies sends requests with a 5 MB body through every server and
// counts the bytes each allocates for one, in copies of the body. It runs
// last, since the heap it leaves behind would hide what streams cost.
func bigBodies(targets []target, results []Result) error {
	big := bigBody()
	const bigN = 8
	return interleaved(targets, 1, func(i int, t target) error {
		if t.server == nil {
			return nil
		}
		before, err := t.spentSoFar()
		if err != nil {
			return err
		}
		for range bigN {
			if _, err := send(t, big); err != nil {
				return err
			}
		}
		after, err := t.spentSoFar()
		results[i].BigBodyCopies = float64(after.minus(before).bytes) / bigN / float64(len(big))
		return err
	})
}

// Memory is the forwarder's RSS around 1,000 open streams.
type Memory struct {
	IdleRSS   int64 `json:"idle_rss_bytes"`
	Before    int64 `json:"before_bytes"`
	During    int64 `json:"during_bytes"`
	After     int64 `json:"after_bytes"`
	Streams   int   `json:"streams"`
	OpenFails int   `json:"failed_streams"`
}

func memory(t target, streams int) (Memory, error) {
	m := Memory{Streams: streams, Before: t.server.rss()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var opened, failed atomic.Int64
	var wg sync.WaitGroup
	for range streams {
		wg.Go(func() {
			res, err := post(ctx, t, `{"model":"gpt-4o","stream":true}`, map[string]string{"X-Mock-Events": "40", "X-Mock-Gap": "250ms"})
			if err != nil {
				failed.Add(1)
				return
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			if _, err := br.ReadString('\n'); err != nil {
				failed.Add(1)
				return
			}
			opened.Add(1)
			_, _ = io.Copy(io.Discard, br)
		})
	}
	for deadline := time.Now().Add(60 * time.Second); opened.Load()+failed.Load() < int64(streams) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	m.During = t.server.rss()
	cancel()
	wg.Wait()
	time.Sleep(2 * time.Second) // let the forwarder let go of them
	m.After = t.server.rss()
	m.OpenFails = int(failed.Load())
	return m, nil
}

func run(bin, out string, quick bool) error {
	n, phase, streams := 2000, 3*time.Second, 1000
	if quick {
		n, phase, streams = 100, 500*time.Millisecond, 50
	}
	bn, err := newBench()
	if err != nil {
		return err
	}
	defer bn.stop()
	dir, tok := bn.dir, bn.token
	targets := bn.targets()
	type path struct{ name, process, via, extra, display string }
	paths := []path{
		{"gatehouse serve", "gatehouse", "direct", "", ""},
		{cachePath, "gatehouse-cache", "direct", cacheConfig, ""},
		{"gatehouse, pool of 2 SOCKS5", "gatehouse-pool", "pool:bench", "", ""},
		{"gatehouse, one SOCKS5 hop", "gatehouse-socks5", bn.socksA.URL, "", ""},
	}
	// The desktop app, window open, under Xvfb when it is installed: it
	// must forward as fast as serve.
	stopX := func() {}
	if display, stop, err := xvfb.Start(); err == nil {
		stopX = stop
		defer stopX()
		paths = append(paths, path{"gatehouse desktop app (Xvfb)", "gatehouse-desktop", "direct", "", display})
	} else {
		fmt.Fprintf(os.Stderr, "not measuring the desktop app: %v\n", err)
	}
	for _, g := range paths {
		p, err := startGatehouse(bin, g.process, dir, bn.config(g.via, g.extra), g.display)
		if err != nil {
			return err
		}
		defer p.stop()
		targets = append(targets, target{name: g.name, url: p.url, token: tok, server: p, unique: g.extra != ""})
	}
	idle := targets[2].server.rss()

	// The open-loop rate is half of what the floor sustains.
	for _, t := range targets {
		if _, err := once(t); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
	}
	probe, _ := closedLoop(targets[1], phase/3)
	openRate := max(50, float64(probe)/(phase/3).Seconds()/2)
	fmt.Fprintf(os.Stderr, "measuring %d paths side by side…\n", len(targets))
	results, err := measure(targets, n, 6, phase, openRate)
	if err != nil {
		return err
	}
	results[2].ServerRSSIdle = idle
	fmt.Fprintf(os.Stderr, "holding %d streams open through gatehouse serve…\n", streams)
	mem, err := memory(targets[2], streams)
	if err != nil {
		return err
	}
	mem.IdleRSS = idle
	fmt.Fprintf(os.Stderr, "sending 5 MB bodies…\n")
	if err := bigBodies(targets, results); err != nil {
		return err
	}

	wrkN, wrkD := wrkRoundsN, wrkRoundTime
	if quick {
		wrkN, wrkD = 2, time.Second
	}
	// The outside measurement sees whole processes on these two cores, so
	// only those it measures run meanwhile: the other gatehouses (the
	// desktop app's window, the pools' checks) and Xvfb stop first.
	for _, t := range targets[4:] {
		t.server.stop()
	}
	stopX()
	wrk, err := wrkRounds(dir, targets[0], targets[1], targets[2], targets[3], wrkN, wrkD)
	if err != nil {
		return err
	}

	report(results, mem)
	reportWrk(wrk)
	data, err := json.MarshalIndent(struct {
		When    time.Time  `json:"when"`
		Results []Result   `json:"results"`
		Memory  Memory     `json:"memory"`
		Wrk     []WrkRound `json:"wrk_c1,omitempty"`
	}{time.Now().UTC(), results, mem, wrk}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(data, '\n'), 0o644)
}

// showRequests opens the desktop app's Requests section, so that the
// table takes every request as the bench sends them; without xdotool the
// window stays on the Overview.
func showRequests(display string) {
	env := append(os.Environ(), "DISPLAY="+display)
	for range 100 {
		find := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^Gatehouse$")
		find.Env = env
		out, err := find.Output()
		if errors.Is(err, exec.ErrNotFound) {
			fmt.Fprintln(os.Stderr, "xdotool is not installed: the desktop app is measured on its Overview")
			return
		}
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			click := exec.Command("xdotool", "mousemove", "--window", ids[0], "20", "75", "click", "1")
			click.Env = env
			_ = click.Run()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bench is what every measurement runs against: the mock, the floor, an
// access token and two SOCKS5 proxies for the pool, in a folder of its own.
type bench struct {
	dir            string
	mock, floor    *process
	token, hash    string
	socksA, socksB *testproxy.Proxy
}

func newBench() (b *bench, err error) {
	b = &bench{}
	defer func() {
		if err != nil {
			b.stop()
		}
	}()
	if b.dir, err = os.MkdirTemp("", "gatehouse-bench-"); err != nil {
		return b, err
	}
	if b.mock, err = startMock(b.dir); err != nil {
		return b, err
	}
	floorBin, err := helper(b.dir, "benchfloor")
	if err != nil {
		return b, err
	}
	if b.floor, err = start("floor", floorBin, b.mock.url, benchKey); err != nil {
		return b, err
	}
	if b.token, b.hash, err = proxy.NewToken(); err != nil {
		return b, err
	}
	b.socksA, b.socksB = testproxy.SOCKS5("", ""), testproxy.SOCKS5("", "")
	return b, nil
}

func (b *bench) stop() {
	for _, s := range []*testproxy.Proxy{b.socksA, b.socksB} {
		if s != nil {
			s.Stop()
		}
	}
	b.floor.stop()
	b.mock.stop()
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// targets are the two paths every gatehouse is measured against.
func (b *bench) targets() []target {
	return []target{
		{name: "direct to the mock", url: b.mock.url},
		{name: "floor: bare ReverseProxy", url: b.floor.url, server: b.floor},
	}
}

// config is gatehouse's config in the bench: three upstreams on the mock,
// reached through via, and a pool of the two SOCKS5 proxies.
// extra is added to the openai upstream, which the requests use.
func (b *bench) config(via, extra string) string {
	return benchConfig(b.hash, b.mock.url, via, b.socksA.URL, b.socksB.URL, extra)
}

func benchConfig(hash, mockURL, via, socksA, socksB, extra string) string {
	return fmt.Sprintf(`
[[tokens]]
name = "bench"
sha256 = %q

[[upstreams]]
name = "anthropic"
base_url = "%[2]s/v1"
models = ["claude-*"]
auth = "x-api-key"
key_env = "BENCH_KEY"
via = %[3]q

[[upstreams]]
name = "gemini"
base_url = "%[2]s/v1beta/openai"
models = ["gemini-*"]
auth = "x-goog-api-key"
key_env = "BENCH_KEY"
via = %[3]q

[[upstreams]]
name = "openai"
base_url = "%[2]s/v1"
models = ["gpt-*", "o3*"]
key_env = "BENCH_KEY"
via = %[3]q
%[6]s
[[pools]]
name = "bench"
strategy = "fastest"
proxies = [%[4]q, %[5]q]
check_url = "%[2]s/v1/models"
interval = "1m"
`, hash, mockURL, via, socksA, socksB, extra)
}

// report prints every figure as a ratio to the floor's, with the raw value.
func report(results []Result, mem Memory) {
	floor := results[1]
	ratio := func(v, f float64) string {
		if f == 0 {
			return fmt.Sprintf("%.3g", v)
		}
		return fmt.Sprintf("%.2f× (%.3g)", v/f, v)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PATH\tP50 c=1 ms\tADDED P50 ms\tP99 c=1 ms\tREQ/S c=32\tOPEN-LOOP P99 ms\tSTREAM TTFB P50 ms\tSTREAM TTFB P99 ms\tEVENT GAP P99 ms\tCPU/REQ µs\tALLOCS/REQ\tKB/REQ\t5 MB BODY COPIES\tFAILED")
	for _, r := range results {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%d\n", r.Path,
			ratio(r.P50ms, floor.P50ms), ratio(r.AddedP50ms, floor.AddedP50ms), ratio(r.P99ms, floor.P99ms), ratio(r.RPS32, floor.RPS32),
			ratio(r.OpenP99ms, floor.OpenP99ms), ratio(r.TTFBp50ms, floor.TTFBp50ms), ratio(r.TTFBp99ms, floor.TTFBp99ms), ratio(r.GapP99ms, floor.GapP99ms),
			ratio(r.CPUPerReqUs, floor.CPUPerReqUs), ratio(r.AllocsPerReq, floor.AllocsPerReq), ratio(r.BytesPerReq/1024, floor.BytesPerReq/1024), r.BigBodyCopies, r.Failed)
	}
	_ = w.Flush()
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Printf("\nOpen loop at %.0f req/s. gatehouse serve: idle RSS %.1f MB; %d open streams: %.1f MB before, %.1f MB during (+%.1f MB), %.1f MB after; %d failed to open.\n",
		results[1].OpenRate, mb(mem.IdleRSS), mem.Streams, mb(mem.Before), mb(mem.During), mb(mem.During-mem.Before), mb(mem.After), mem.OpenFails)
	g := results[2]
	fmt.Printf("Targets: p50 ≤ 1.2× (%.2f× end to end, %.2f× added), p99 ≤ 1.5× (%.2f×), req/s ≥ 0.85× (%.2f×), TTFB within 1 ms of the floor (p50 %+.2f ms, p99 %+.2f ms), event gap within 1 ms (%+.2f ms), 1,000 streams ≤ 64 MB (%.1f MB), idle < 30 MB (%.1f MB), a 5 MB body at most one extra copy (%.2f).\n",
		g.P50ms/floor.P50ms, g.AddedP50ms/floor.AddedP50ms, g.P99ms/floor.P99ms, g.RPS32/floor.RPS32, g.TTFBp50ms-floor.TTFBp50ms, g.TTFBp99ms-floor.TTFBp99ms, g.GapP99ms-floor.GapP99ms,
		mb(mem.During-mem.Before), mb(mem.IdleRSS), g.BigBodyCopies)
	c := results[3]
	fmt.Printf("%s: added p50 at concurrency 1 %.2f× the floor's (%.3f ms against %.3f ms); target within 1.10×.\n",
		c.Path, c.AddedP50ms/floor.AddedP50ms, c.AddedP50ms, floor.AddedP50ms)
	for _, r := range results[6:] {
		fmt.Printf("%s: added p50 at concurrency 1 %.2f× serve's (%.3f ms against %.3f ms); target within 1.10×.\n",
			r.Path, r.AddedP50ms/g.AddedP50ms, r.AddedP50ms, g.AddedP50ms)
	}
}
