package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary doubles as the gatehouse binary: with GATEHOUSE_AS_MAIN
// set it runs main, so the end-to-end tests start the real program.
func TestMain(m *testing.M) {
	if os.Getenv("GATEHOUSE_AS_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const e2eSecret = "sk-e2e-SECRET-9d8c7b6a"

// process is a running `gatehouse` with its stderr collected.
type process struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	stderr  strings.Builder
	partial []byte // the last line, until its newline
	lines   chan string
	done    chan error
	exited  chan struct{} // closed when the program ended, before done is sent
}

func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	return startProgram(t, os.Args[0], env, args...)
}

// startProgram runs bin — this test binary as gatehouse, or an installed
// gatehouse — with env added to the test's own.
func startProgram(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), lines: make(chan string, 1000), done: make(chan error, 1),
		exited: make(chan struct{})}
	// The program's cache (usage totals) goes to the test's own folder.
	p.cmd.Env = append(append(os.Environ(), "GATEHOUSE_AS_MAIN=1", "XDG_CACHE_HOME="+t.TempDir()), env...)
	p.cmd.Stderr = p
	// A child the program left behind holding its stderr must not keep
	// the test waiting for the end of the output.
	p.cmd.WaitDelay = 5 * time.Second
	require.NoError(t, p.cmd.Start())
	go func() {
		err := p.cmd.Wait()
		close(p.exited)
		p.done <- err
	}()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

// Write takes the program's stderr: kept whole, and offered line by line
// to waitLine.
func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stderr.Write(b)
	p.partial = append(p.partial, b...)
	for {
		line, rest, ok := bytes.Cut(p.partial, []byte("\n"))
		if !ok {
			return len(b), nil
		}
		select {
		case p.lines <- string(line):
		default:
		}
		p.partial = rest
	}
}

// waitLine returns the first stderr line matching re; the bound only keeps
// a broken test from hanging.
func (p *process) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %s in:\n%s", re, p.output())
		}
	}
}

// end waits for the program to end and returns how it ended. One still
// running a minute later is shown with its goroutines (SIGQUIT) and fails
// the test: a hang fails with where it hangs instead of stalling the run.
func (p *process) end(t *testing.T, what string) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s: the program was still running a minute later:\n%s", what, p.dump())
		return nil
	}
}

// dump ends the program with SIGQUIT, which has Go print every goroutine,
// and returns its output: where a program that stopped answering is stuck.
func (p *process) dump() string {
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	return p.output()
}

// stop sends SIGINT and expects the program to end with status 0, and
// the key never in its output.
func stop(t *testing.T, p *process) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	require.NoError(t, p.end(t, "after SIGINT"), p.output())
	assert.NotContains(t, p.output(), e2eSecret)
}

// testClient bounds every request of these tests: a program that stops
// answering fails the test rather than stalling the run.
var testClient = &http.Client{Timeout: time.Minute}

// ended tells whether the program has ended, without taking how.
func (p *process) ended() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func TestServeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the program")
	}
	mock := &mockllm.Server{}
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "slow") {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-release
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		mock.ServeHTTP(w, r)
	}))
	defer up.Close()

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[[upstreams]]
name = "openai"
base_url = "%s/v1"
models = ["gpt-*"]
key_env = "E2E_OPENAI_KEY"
`, up.URL)), 0o600))

	p := start(t, []string{"E2E_OPENAI_KEY=" + e2eSecret}, "serve", "--config", cfgPath, "--listen", "127.0.0.1:0")
	base := p.waitLine(t, regexp.MustCompile(`msg="forwarder listening" url=(http://\S+)/v1`))[1]

	res, err := testClient.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	assert.Equal(t, "Bearer "+e2eSecret, mock.Last().Header.Get("Authorization"))
	line := p.waitLine(t, regexp.MustCompile(`msg=request .*path=/v1/chat/completions.*`))[0]
	assert.Contains(t, line, "model=gpt-4o upstream=openai key=env:E2E_OPENAI_KEY route=direct status=200")

	// A stream still open at SIGTERM finishes, then the program exits 0.
	res, err = testClient.Post(base+"/u/openai/slow", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	first, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "data: first\n", first)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.waitLine(t, regexp.MustCompile(`letting open requests finish`))
	close(release)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "\ndata: [DONE]\n\n", string(rest))
	require.NoError(t, p.end(t, "after SIGTERM"), p.output())
	assert.NotContains(t, p.output(), e2eSecret)
	cache := strings.TrimPrefix(p.cmd.Env[slices.IndexFunc(p.cmd.Env, func(e string) bool { return strings.HasPrefix(e, "XDG_CACHE_HOME=") })], "XDG_CACHE_HOME=")
	usage, err := os.ReadFile(filepath.Join(cache, "gatehouse", "usage.json"))
	require.NoError(t, err, "usage totals are saved when serve stops")
	assert.Contains(t, string(usage), `"upstream":"openai","model":"gpt-4o","requests":1,"prompt_tokens":5,"completion_tokens":3`)
}

// Gatehouse runs its goroutines on one processor unless GOMAXPROCS asks
// for more (setProcs), although a dependency's init sets every CPU: the
// Go runtime's scheduler trace of the running program says which.
func TestProcessors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the program")
	}
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("[[upstreams]]\nname = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodels = [\"gpt-*\"]\n"), 0o600))
	more := runtime.NumCPU() + 1 // neither 1 nor what the dependency sets
	for env, want := range map[string]int{"": 1, "0": 1, "1": 1, strconv.Itoa(more): more} {
		t.Run("GOMAXPROCS="+env, func(t *testing.T) {
			p := start(t, []string{"GOMAXPROCS=" + env, "GODEBUG=schedtrace=50"}, "serve", "--config", cfgPath, "--listen", "127.0.0.1:0")
			p.waitLine(t, regexp.MustCompile(`msg="forwarder listening"`))
			// A trace line written after the forwarder listens is past main's start.
			got := p.waitLine(t, regexp.MustCompile(`^SCHED \d+ms: gomaxprocs=(\d+)`))[1]
			assert.Equal(t, strconv.Itoa(want), got)
			stop(t, p)
		})
	}
}

func TestServeRefusesABadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the program")
	}
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("[[upstreams]]\nname = \"x\"\nbase_url = \"https://x.example\"\nauth = \"magic\"\n"), 0o600))
	p := start(t, nil, "serve", "--config", cfgPath)
	err := p.end(t, "with a bad config")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, p.output(), cfgPath+`:4: upstreams[0].auth: unknown auth scheme "magic"`)
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"version"}, 0, "gatehouse dev (" + flavour, ""},
		{[]string{"help"}, 0, "key add UPSTREAM", ""},
		{[]string{"bogus"}, 2, "", `unknown command "bogus"`},
		{[]string{"serve", "extra"}, 2, "", "serve takes no arguments"},
		{[]string{"serve", "--nope"}, 2, "", "flag provided but not defined: -nope"},
		{[]string{"serve", "--listen", "0.0.0.0:1", "--config", filepath.Join(t.TempDir(), "none.toml")}, 1, "", "is not a loopback address"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut strings.Builder
			assert.Equal(t, tc.code, run(tc.args, strings.NewReader(""), &out, &errOut))
			assert.Contains(t, out.String(), tc.stdout)
			assert.Contains(t, errOut.String(), tc.stderr)
		})
	}
}

// TestHeadlessBuild builds the static server binary the way
// `make build-headless` does and checks that it keeps the commands and
// leaves the desktop app out.
func TestHeadlessBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	bin := filepath.Join(t.TempDir(), "gatehouse")
	build := exec.Command("go", "build", "-tags", "headless", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	out, err = exec.Command(bin, "version").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "(headless,")

	info, err := exec.Command("go", "version", "-m", bin).Output()
	require.NoError(t, err)
	assert.Contains(t, string(info), "CGO_ENABLED=0", "a static binary")

	cmd := exec.Command(bin)
	stderr, _ := cmd.CombinedOutput()
	assert.Equal(t, 2, cmd.ProcessState.ExitCode())
	assert.Contains(t, string(stderr), "run `gatehouse serve`")
}

// TestSystemProxyAndHTTPSProxy: via = "system" follows HTTP_PROXY (Go never
// proxies loopback names, so the upstream has a test name the proxy
// resolves), and via = "https://…" speaks TLS to the proxy itself.
func TestSystemProxyAndHTTPSProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the program")
	}
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	_, upPort, _ := net.SplitHostPort(strings.TrimPrefix(up.URL, "http://"))
	resolve := func(addr string) string { return strings.Replace(addr, "upstream.test", "127.0.0.1", 1) }
	system := testproxy.HTTP("", "")
	system.Resolve = resolve
	defer system.Stop()
	ca := testpki.NewCA("Proxy CA")
	server := ca.Server()
	pair, err := tls.X509KeyPair(server.CertPEM, server.KeyPEM)
	require.NoError(t, err)
	secure := testproxy.HTTPS(&tls.Config{Certificates: []tls.Certificate{pair}}, "", "")
	secure.Resolve = resolve
	defer secure.Stop()

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "proxy-ca.pem"), ca.PEM, 0o600))
	cfgPath := filepath.Join(dir, "config.toml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[[upstreams]]
name = "sys"
base_url = "http://upstream.test:%[1]s/v1"
models = ["sys-*"]
auth = "none"
via = "system"

[[upstreams]]
name = "tls-proxy"
base_url = "http://upstream.test:%[1]s/v1"
models = ["tls-*"]
auth = "none"
via = %[2]q
ca_file = "proxy-ca.pem"
`, upPort, secure.URL)), 0o600))

	p := start(t, []string{"HTTP_PROXY=" + system.URL, "NO_PROXY="}, "serve", "--config", cfgPath, "--listen", "127.0.0.1:0")
	base := p.waitLine(t, regexp.MustCompile(`msg="forwarder listening" url=(http://\S+)/v1`))[1]
	for model, px := range map[string]*testproxy.Proxy{"sys-1": system, "tls-1": secure} {
		res, err := testClient.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"`+model+`"}`))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode, string(body))
		assert.Equal(t, int64(1), px.Carried(), model)
	}
	line := p.waitLine(t, regexp.MustCompile(`msg=request .*model=tls-1.*`))[0]
	assert.Contains(t, line, `route="proxy `+secure.URL+`"`)
}
