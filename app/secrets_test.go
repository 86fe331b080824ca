package app

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// TestNoSecretOnScreen forwards real requests (one the upstream refuses
// with a message that names the key) and scans everything the app shows —
// every section, the selected request's details, the tray menu — and the
// export, for the key.
func TestNoSecretOnScreen(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "refuse") {
			http.Error(w, `{"error":{"message":"Incorrect API key provided: `+r.Header.Get("Authorization")+`","code":"invalid_api_key"}}`, http.StatusUnauthorized)
			return
		}
		mock.ServeHTTP(w, r)
	}))
	defer up.Close()
	h := newHarness(t, fmt.Sprintf("version = 1\n[[upstreams]]\nname = \"openai\"\nbase_url = %q\nmodels = [\"gpt-*\"]\nkey_env = \"TEST_KEY\"\n", up.URL+"/v1"))
	s := h.waitState(t, stateRunning)
	for _, path := range []string{"/v1/chat/completions", "/u/openai/refuse"} {
		res, err := http.Post("http://"+s.Listen+path, "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	require.Equal(t, "Bearer "+testSecret, mock.Last().Header.Get("Authorization"), "the key did reach the upstream")
	waitFor(t, "two records", func() bool { return len(h.reqlog.Records()) == 2 })

	rq := h.ui.requests
	rq.receive()
	rq.flush()
	h.refresh()
	var shown []string
	// A key pasted into the window too: the Upstreams section shows it masked.
	_, err := h.ui.setup.AddKey("openai", "pasted", pastedKey)
	require.NoError(t, err)
	h.ui.upstreams.done(nil)
	waitFor(t, "the pasted key read", func() bool {
		h.refresh()
		d := h.ui.upstreams.details["openai"]
		return d != nil && d.masked["pasted"] != ""
	})
	h.ui.usage.refresh()
	h.ui.settings.refresh()
	for _, c := range []fyne.CanvasObject{h.ui.overview.content, rq.content, h.ui.proxies.content,
		h.ui.upstreams.content, h.ui.tokens.content, h.ui.usage.content, h.ui.settings.content} {
		w := test.NewTempWindow(t, c)
		w.Resize(fyne.NewSize(1280, 800))
		shown = append(shown, labels(c)...)
	}
	for row := range rq.shown {
		rq.onSelected(rowCell(row))
		shown = append(shown, rq.details.Text)
	}
	shown = append(shown, menuKey(h.ui.tray.menu))
	var export bytes.Buffer
	require.NoError(t, writeJSONLines(&export, rq.shown))
	shown = append(shown, export.String())

	all := strings.Join(shown, "\n")
	assert.Contains(t, all, "env:TEST_KEY", "the key is named by its label")
	assert.Contains(t, all, "401")
	assert.NotContains(t, all, testSecret)
	assert.NotContains(t, all, testSecret[len(testSecret)-8:], "not even its end")
	assert.Contains(t, all, keystore.Mask(pastedKey), "the pasted key is shown masked")
	assert.NotContains(t, all, pastedKey)
	assert.NotContains(t, all, pastedKey[len(pastedKey)-8:])

	// The refused key is rejected; "Use again" puts it back into use.
	require.Len(t, h.ui.overview.rejected.Objects, 1)
	again := h.ui.overview.rejected.Objects[0].(*widget.Button)
	assert.Equal(t, "Use env:TEST_KEY of openai again", again.Text)
	test.Tap(again)
	waitFor(t, "the key in use again", func() bool { return h.backend.service().Forwarder.KeyStatus()[0].State == proxy.KeyOK })
	h.refresh()
	assert.Empty(t, h.ui.overview.rejected.Objects)
}
