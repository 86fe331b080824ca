package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// testSecret is the key of TEST_KEY; tests scan what the app shows for it.
const testSecret = "sk-app-test-5ecret-31c7d0"

func testEnv(name string) (string, bool) {
	if name == "TEST_KEY" {
		return testSecret, true
	}
	return "", false
}

// harness is the app's UI on Fyne's test driver, over a real proxy.Service
// listening on a free loopback port with the given config file text.
type harness struct {
	ui      *ui
	backend *backend
	reqlog  *proxy.RequestLog
	path    string
	store   *keystore.Memory // the keychain the window's setup writes
	usage   *proxy.UsageBook
}

func newHarness(t *testing.T, configText string) *harness {
	t.Helper()
	test.NewTempApp(t)
	require.NoError(t, loadTranslations())
	path := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(configText), 0o600))
	h := &harness{reqlog: proxy.NewRequestLog(0), path: path, store: keystore.NewMemory()}
	var err error
	h.usage, err = proxy.OpenUsageBook(filepath.Join(t.TempDir(), "usage.json"))
	require.NoError(t, err)
	listen := "127.0.0.1:0" // a free port, unless the config names one
	if strings.Contains(configText, "listen =") {
		listen = ""
	}
	h.backend = newBackend(Options{
		ConfigPath: path,
		RequestLog: h.reqlog,
		NewService: func() (*proxy.Service, error) {
			creds := keystore.NewCredentials(h.store)
			creds.Env = proxy.EnvCredentials{LookupEnv: testEnv}
			svc, err := proxy.NewService(path, listen, creds, h.reqlog, nil)
			if svc != nil {
				svc.Usage = h.usage
			}
			return svc, err
		},
		Log:   slog.New(slog.DiscardHandler),
		Store: h.store,
	})
	h.ui = newUI(fyne.CurrentApp(), h.backend)
	h.ui.async = func(f func()) { f() } // Fyne's test driver has one thread: the test's
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.backend.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// waitState waits until the backend reaches state and applies its
// snapshot to the UI, as the UI's loop does.
func (h *harness) waitState(t *testing.T, state string) Snapshot {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // only stops a broken test from hanging
	for {
		s := h.backend.snapshot(time.Now())
		if s.State == state {
			h.ui.apply(s)
			return s
		}
		require.True(t, time.Now().Before(deadline), "state %q never came; last %q: %s", state, s.State, s.Reason)
		select {
		case <-h.backend.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// refresh applies a fresh snapshot, as the UI's loop does after a change.
func (h *harness) refresh() Snapshot {
	s := h.backend.snapshot(time.Now())
	h.ui.apply(s)
	return s
}

// labels returns the text of every label rendered inside o.
func labels(o fyne.CanvasObject) []string {
	var out []string
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch w := o.(type) {
		case *widget.Label:
			out = append(out, w.Text)
			return
		case *widget.Button:
			out = append(out, w.Text)
			return
		case *fyne.Container:
			for _, c := range w.Objects {
				walk(c)
			}
			return
		case fyne.Widget:
			for _, c := range test.WidgetRenderer(w).Objects() {
				walk(c)
			}
		}
	}
	walk(o)
	return out
}

// waitFor polls cond; the bound only stops a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		require.True(t, time.Now().Before(deadline), "gave up waiting for %s", what)
		time.Sleep(10 * time.Millisecond)
	}
}

func rowCell(row int) widget.TableCellID { return widget.TableCellID{Row: row} }

func timeNow() time.Time { return time.Now() }
