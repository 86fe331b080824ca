package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// daemon is a proxy server from Debian's packages, started on loopback.
type daemon struct {
	url string
	cmd *exec.Cmd
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDaemon runs a proxy daemon and waits until it accepts connections.
// Without the binary it skips, except in CI, where make test installs it.
func startDaemon(t *testing.T, scheme string, port int, name string, args ...string) *daemon {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing; make test installs it (scripts/deps.sh)", name)
		}
		t.Skipf("%s is not installed (make test installs it)", name)
	}
	cmd := exec.Command(name, args...)
	require.NoError(t, cmd.Start())
	d := &daemon{url: fmt.Sprintf("%s://127.0.0.1:%d", scheme, port), cmd: cmd}
	t.Cleanup(d.stop)
	deadline := time.Now().Add(30 * time.Second) // a start-up guard, not a measurement
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return d
		}
		require.True(t, time.Now().Before(deadline), "%s did not start listening", name)
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) stop() {
	if d.cmd.ProcessState == nil {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	}
}

// TestDebianProxyDaemons routes through real proxy daemons, tinyproxy
// (HTTP) and microsocks (SOCKS5, with a password), and fails over from one
// to the other when it is killed.
func TestDebianProxyDaemons(t *testing.T) {
	dir := t.TempDir()
	httpPort, socksPort := freePort(t), freePort(t)
	conf := filepath.Join(dir, "tinyproxy.conf")
	tinyConf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nMaxClients 20\nLogLevel Critical\n", httpPort)
	if os.Geteuid() == 0 {
		tinyConf += "User nobody\nGroup nogroup\n" // tinyproxy will not keep root
	}
	require.NoError(t, os.WriteFile(conf, []byte(tinyConf), 0o644))
	tiny := startDaemon(t, "http", httpPort, "tinyproxy", "-d", "-c", conf)
	startDaemon(t, "socks5", socksPort, "microsocks", "-i", "127.0.0.1", "-p", fmt.Sprint(socksPort), "-u", "gate", "-P", "daemon-pass")
	socksMember := fmt.Sprintf("socks5://gate@127.0.0.1:%d", socksPort)

	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	check := generate204()
	defer check.Close()
	cfg := &Config{
		Pools: []Pool{{Name: "daemons", Strategy: "fallback", Proxies: []string{tiny.url, socksMember},
			CheckURL: check.URL, Interval: "1h", Timeout: "10s"}},
		Upstreams: []Upstream{{Name: "up", BaseURL: up.URL + "/v1", Models: []string{"m"}, Auth: AuthNone, Via: "pool:daemons"}},
	}
	cfg.applyDefaults()
	reqlog := NewRequestLog(0)
	f := NewForwarder(passwordCreds{fmt.Sprintf("gate@127.0.0.1:%d", socksPort): "daemon-pass"}, reqlog, nil)
	require.NoError(t, f.Apply(cfg, ""))
	defer f.Close()
	srv := httptest.NewServer(f)
	defer srv.Close()

	f.CheckNow(context.Background())
	for _, m := range f.Status().Pools[0].Members {
		assert.Equal(t, "up", m.State, "%s: %s", m.URL, m.LastError)
	}
	send := func() string {
		sub := reqlog.Subscribe(1)
		defer sub.Close()
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		return (<-sub.C).Route
	}
	assert.Equal(t, "pool daemons via "+tiny.url, send())
	tiny.stop()
	time.Sleep(100 * time.Millisecond) // let kept-alive connections to it be noticed as closed (see poolSetup.stop)
	assert.Equal(t, "pool daemons via "+socksMember, send(), "killed: the next member, with its password from the keychain")
	assert.Equal(t, "pool daemons via "+socksMember, send())
}
