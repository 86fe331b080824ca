// Command screenshot takes pictures of every section of the desktop app,
// at 1280×800 and 800×600, in English and in Simplified Chinese (make
// screenshot). It runs the real binary under Xvfb against a mock upstream
// and real in-process proxies, sends it some requests (a few of them
// failing), clicks the sidebar as a user would (xdotool) and saves the
// window with ImageMagick's import.
//
//	go run ./internal/screenshot --gatehouse bin/gatehouse --out DIR
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testproxy"
	"github.com/gatehouse-app/gatehouse/internal/xvfb"
)

// sections in the order of their tabs in the sidebar; tab i is at y =
// 44 + 31·i in the window's own coordinates, at every size and language.
var sections = []string{"overview", "upstreams", "requests", "proxies", "usage", "tokens", "connect", "settings"}

var sizes = [][2]int{{1280, 800}, {800, 600}}

var langs = []struct{ name, lang string }{{"en", "en_US.UTF-8"}, {"zh", "zh_CN.UTF-8"}}

func main() {
	bin := flag.String("gatehouse", "bin/gatehouse", "the desktop binary")
	out := flag.String("out", "screenshots", "folder for the PNGs")
	flag.Parse()
	log.SetFlags(0)
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	work, err := os.MkdirTemp("", "gatehouse-shots-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	mock := &mockllm.Server{Models: []string{"gpt-4o", "gpt-4o-mini"}}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/generate_204":
			w.WriteHeader(http.StatusNoContent)
		case strings.Contains(r.Header.Get("Authorization"), "wrong"):
			http.Error(w, `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`, http.StatusUnauthorized)
		default:
			mock.ServeHTTP(w, r)
		}
	}))
	defer up.Close()
	socks, httpProxy := testproxy.SOCKS5("", ""), testproxy.HTTP("", "")
	defer socks.Stop()
	defer httpProxy.Stop()
	dead := "http://" + freeAddr()

	display, stopX, err := xvfb.Start()
	must(err)
	defer stopX()
	for _, l := range langs {
		listen := freeAddr()
		cfg := filepath.Join(work, l.name, "config.toml")
		must(os.MkdirAll(filepath.Join(work, l.name, "run"), 0o700))
		must(os.WriteFile(cfg, []byte(fmt.Sprintf(`version = 1
listen = %q

[[upstreams]]
name = "openai"
base_url = "%[2]s/v1"
models = ["gpt-*", "o3*"]
key_env = "SHOT_OPENAI_KEY"
via = "pool:work"

[[upstreams]]
name = "deepseek"
base_url = "%[2]s/v1"
models = ["deepseek-*"]
key_env = "SHOT_DEEPSEEK_KEY"

[[pools]]
name = "work"
strategy = "fastest"
proxies = [%[3]q, %[4]q, %[5]q]
check_url = "%[2]s/generate_204"
interval = "1h"

[[pools]]
name = "home"
strategy = "fallback"
proxies = [%[4]q]
check_url = "%[2]s/generate_204"
interval = "1h"
`, listen, up.URL, socks.URL, httpProxy.URL, dead)), 0o600))
		// A home of its own, where two tools are installed, for the Connect
		// section.
		home := filepath.Join(work, l.name, "home")
		must(os.MkdirAll(filepath.Join(home, ".claude"), 0o700))
		must(os.MkdirAll(filepath.Join(home, ".codex"), 0o700))
		must(os.WriteFile(filepath.Join(home, ".claude", "settings.json"), []byte("{\n  \"theme\": \"dark\"\n}\n"), 0o600))
		env := append(os.Environ(), "HOME="+home, "CLAUDE_CONFIG_DIR=", "CODEX_HOME=", "DISPLAY="+display, "WAYLAND_DISPLAY=", "LANG="+l.lang, "LC_ALL="+l.lang, "LANGUAGE=",
			"GATEHOUSE_CONFIG="+cfg, "XDG_RUNTIME_DIR="+filepath.Join(work, l.name, "run"),
			"XDG_CONFIG_HOME="+filepath.Join(work, l.name, "cfg"), "XDG_CACHE_HOME="+filepath.Join(work, l.name, "cache"),
			"SHOT_OPENAI_KEY=sk-shot-not-a-real-key", "SHOT_DEEPSEEK_KEY=sk-wrong-shot-key")
		cmd := exec.Command(*bin)
		cmd.Env = env
		stderr, _ := cmd.StderrPipe()
		must(cmd.Start())
		waitFor(stderr, "forwarder listening")
		traffic(listen)
		win := window(env)
		for _, size := range sizes {
			run(env, "xdotool", "windowsize", win, fmt.Sprint(size[0]), fmt.Sprint(size[1]))
			time.Sleep(700 * time.Millisecond)
			for i, s := range sections {
				run(env, "xdotool", "mousemove", "--window", win, "20", fmt.Sprint(44+31*i), "click", "1")
				if s == "requests" {
					// Select the third row, to show a request's details.
					run(env, "xdotool", "mousemove", "--window", win, "300", "152", "click", "1")
				}
				time.Sleep(700 * time.Millisecond)
				name := filepath.Join(*out, fmt.Sprintf("%s-%s-%dx%d.png", s, l.name, size[0], size[1]))
				run(env, "import", "-window", win, name)
				fmt.Println(name)
			}
		}
		// The upstream form, as Add upstream… opens it.
		run(env, "xdotool", "windowsize", win, "1280", "800")
		time.Sleep(700 * time.Millisecond)
		run(env, "xdotool", "mousemove", "--window", win, "20", "75", "click", "1")
		time.Sleep(700 * time.Millisecond)
		run(env, "xdotool", "mousemove", "--window", win, "150", "100", "click", "1")
		time.Sleep(time.Second)
		name := filepath.Join(*out, fmt.Sprintf("upstream-form-%s-1280x800.png", l.name))
		run(env, "import", "-window", win, name)
		fmt.Println(name)
		quit(cmd)

		// A first start: no upstream yet, so the guided setup (on a free
		// port rather than the default one, which may be taken here).
		first := filepath.Join(work, l.name, "first")
		must(os.MkdirAll(filepath.Join(first, "run"), 0o700))
		must(os.WriteFile(filepath.Join(first, "config.toml"), []byte(fmt.Sprintf("listen = %q\n", freeAddr())), 0o600))
		cmd = exec.Command(*bin)
		cmd.Env = append(env, "GATEHOUSE_CONFIG="+filepath.Join(first, "config.toml"), "XDG_RUNTIME_DIR="+filepath.Join(first, "run"),
			"XDG_CONFIG_HOME="+filepath.Join(first, "cfg"), "XDG_CACHE_HOME="+filepath.Join(first, "cache"))
		stderr, _ = cmd.StderrPipe()
		must(cmd.Start())
		waitFor(stderr, "forwarder listening")
		win = window(cmd.Env)
		for _, size := range sizes {
			run(cmd.Env, "xdotool", "windowsize", win, fmt.Sprint(size[0]), fmt.Sprint(size[1]))
			time.Sleep(time.Second)
			name := filepath.Join(*out, fmt.Sprintf("firstrun-%s-%dx%d.png", l.name, size[0], size[1]))
			run(cmd.Env, "import", "-window", win, name)
			fmt.Println(name)
		}
		quit(cmd)
	}
}

// traffic sends requests that succeed and a few that fail.
func traffic(listen string) {
	base := "http://" + listen + "/v1/chat/completions"
	for i, model := range []string{"gpt-4o", "gpt-4o-mini", "deepseek-chat", "o3-mini", "gpt-4o", "claude-x", "gpt-4o"} {
		body := fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"hello"}]}`, model, i%2 == 0)
		res, err := http.Post(base, "application/json", strings.NewReader(body))
		if err == nil {
			_, _ = bufio.NewReader(res.Body).WriteTo(devNull{})
			res.Body.Close()
		}
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

func window(env []string) string {
	for range 200 {
		cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^Gatehouse$")
		cmd.Env = env
		if out, err := cmd.Output(); err == nil && len(strings.Fields(string(out))) > 0 {
			time.Sleep(time.Second) // the first frame
			return strings.Fields(string(out))[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatal("no window titled Gatehouse")
	return ""
}

// appOutput keeps what the running gatehouse writes after waitFor, for
// when it does not quit well; eof closes when its stderr ends.
var appOutput struct {
	sync.Mutex
	lines []string
	eof   chan struct{}
}

func waitFor(r interface{ Read([]byte) (int, error) }, text string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), text) {
			eof := make(chan struct{})
			appOutput.Lock()
			appOutput.lines, appOutput.eof = nil, eof
			appOutput.Unlock()
			go func() {
				defer close(eof)
				for sc.Scan() {
					appOutput.Lock()
					appOutput.lines = append(appOutput.lines, sc.Text())
					appOutput.Unlock()
				}
			}()
			return
		}
	}
	log.Fatalf("gatehouse ended before saying %q", text)
}

// quit sends SIGINT, as a session ending does, and waits for gatehouse to
// end with status 0. One still running a minute later is a bug: its
// goroutines (SIGQUIT) are printed and the run fails, rather than hanging;
// so does one that ends otherwise (status 2: its shutdown was stuck).
func quit(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	appOutput.Lock()
	eof := appOutput.eof
	appOutput.Unlock()
	select {
	case <-eof: // its stderr ended with it; Wait may close the pipe now
	case <-time.After(time.Minute):
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-eof:
		case <-time.After(5 * time.Second):
		}
		fail("gatehouse did not quit within a minute of SIGINT")
	}
	if err := cmd.Wait(); err != nil {
		fail(fmt.Sprintf("gatehouse did not quit cleanly: %v", err))
	}
}

func fail(msg string) {
	appOutput.Lock()
	defer appOutput.Unlock()
	log.Fatalf("%s; what it wrote:\n%s", msg, strings.Join(appOutput.lines, "\n"))
}

func run(env []string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().String()
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
