package app

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/gatehouse-app/gatehouse/internal/testpki"
	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// pastedKey is a key typed into the window; tests look for it everywhere
// it must not be.
const pastedKey = "sk-pasted-in-the-window-5ecret-77aa01"

const commented = `# My Gatehouse. Keep this comment.
version = 1

# The main provider.
[[upstreams]]
name = "openai" # first
base_url = %q
models = ["gpt-*"]
key_env = "TEST_KEY"
`

// modelServer answers GET /v1/models with three models for pastedKey or
// testSecret, and 401 for any other key.
func modelServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if auth != "Bearer "+pastedKey && auth != "Bearer "+testSecret {
			http.Error(w, `{"error":{"message":"Incorrect API key provided"}}`, http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"data":[{"id":"m1"},{"id":"m2"},{"id":"m3"}]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// lockedStore is a keychain that refuses every write.
type lockedStore struct{ *keystore.Memory }

func (lockedStore) Set(string, string) error { return errors.New("the keychain is locked") }

func (h *harness) config(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(h.path)
	require.NoError(t, err)
	return string(b)
}

func TestAddAnUpstreamFromAPresetWithAKey(t *testing.T) {
	srv := modelServer(t)
	h := newHarness(t, fmt.Sprintf(commented, srv.URL+"/v1"))
	h.waitState(t, stateRunning)
	x := h.ui.upstreams

	// An invalid base URL is shown next to its field; nothing is saved.
	x.edit(nil)
	f := x.fields
	f.preset.SetSelected("DeepSeek")
	assert.Equal(t, "https://api.deepseek.com/v1", f.baseURL.Text)
	assert.Equal(t, "deepseek-*", f.models.Text)
	f.baseURL.SetText("api.deepseek.com")
	test.Type(f.key, pastedKey)
	test.Tap(x.form.save)
	require.True(t, x.form.errs["base_url"].Visible(), "the base URL's mistake is not shown next to it")
	assert.Contains(t, x.form.errs["base_url"].Text, "full address")
	assert.NotContains(t, h.config(t), "deepseek")
	assert.Equal(t, 0, h.store.Len())

	// A keychain that refuses: the config is as it was.
	before := h.config(t)
	h.ui.setup.Store = lockedStore{h.store}
	f.baseURL.SetText(srv.URL + "/v1")
	test.Tap(x.form.save)
	require.True(t, x.form.general.Visible())
	assert.Contains(t, x.form.general.Text, "locked")
	assert.Equal(t, before, h.config(t))
	h.ui.setup.Store = h.store

	// Saved: the key is in the keychain, the config names it and keeps its
	// comments.
	test.Tap(x.form.save)
	text := h.config(t)
	assert.Contains(t, text, "# My Gatehouse. Keep this comment.")
	assert.Contains(t, text, `name = "openai" # first`)
	assert.Contains(t, text, "name = 'deepseek'")
	assert.NotContains(t, text, pastedKey)
	v, err := keystore.Secrets{Store: h.store}.Get(keystore.KeyName("deepseek", "default"))
	require.NoError(t, err)
	assert.Equal(t, pastedKey, v)

	// The list shows it, masked, with its age; Test answers with the count.
	h.refresh()
	waitFor(t, "the keys read", func() bool { h.refresh(); return x.details["deepseek"] != nil })
	shown := strings.Join(labels(x.content), "\n")
	assert.Contains(t, shown, keystore.Mask(pastedKey))
	assert.Contains(t, shown, "added today")
	assert.NotContains(t, shown, pastedKey)
	x.test("deepseek", x.buttons["deepseek"])
	assert.Contains(t, x.tests["deepseek"], "3 models")

	// A wrong key: the Test says so in plain words.
	h.store.Set(keystore.KeyName("deepseek", "default"), "sk-wrong-key-000000000")
	require.NoError(t, h.ui.setup.Edit(func(*proxy.Config) error { return nil })) // applies: the cached key is dropped
	x.test("deepseek", x.buttons["deepseek"])
	assert.Contains(t, x.tests["deepseek"], "Wrong key")
	assert.NotContains(t, x.tests["deepseek"], "sk-wrong-key-000000000")

	// Removing it takes its key from the keychain; the comments stay.
	require.NoError(t, h.ui.setup.RemoveUpstream("deepseek"))
	assert.Equal(t, 0, h.store.Len())
	assert.Contains(t, h.config(t), "# The main provider.")
}

func TestImportCertificates(t *testing.T) {
	h := newHarness(t, fmt.Sprintf(commented, "https://127.0.0.1:9/v1"))
	h.waitState(t, stateRunning)
	ca := testpki.NewCA("Test CA")
	now := time.Now()
	good := ca.Client("gatehouse-user", now.Add(-time.Hour), now.AddDate(0, 0, 10))
	other := ca.Client("someone-else", now.Add(-time.Hour), now.AddDate(1, 0, 0))
	s := h.ui.setup

	// A key that is not the certificate's is refused, and nothing stored.
	err := (&certImport{certPEM: good.CertPEM, keyPEM: other.KeyPEM}).save(s, "openai", "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "key")
	assert.Equal(t, 0, h.store.Len())

	require.NoError(t, (&certImport{certPEM: good.CertPEM, keyPEM: good.KeyPEM}).save(s, "openai", ""))
	x := h.ui.upstreams
	x.done(nil)
	waitFor(t, "the certificate read", func() bool {
		h.refresh()
		d := x.details["openai"]
		return d != nil && d.cert != nil
	})
	shown := strings.Join(labels(x.content), "\n")
	assert.Contains(t, shown, "gatehouse-user")
	assert.Contains(t, shown, "Test CA")
	assert.Contains(t, shown, "SHA-256 ")
	assert.Contains(t, shown, "ask for a new one soon", "expires within 30 days")
	assert.Contains(t, h.config(t), "client_cert = true")

	p12, err := pkcs12.Modern.Encode(other.Key, other.Cert, []*x509.Certificate{ca.Cert}, "p12-pass")
	require.NoError(t, err)
	err = (&certImport{p12: p12}).save(s, "openai", "wrong")
	require.Error(t, err)
	require.NoError(t, (&certImport{p12: p12}).save(s, "openai", "p12-pass"))
	x.done(nil)
	waitFor(t, "the new certificate read", func() bool {
		h.refresh()
		d := x.details["openai"]
		return d != nil && d.cert != nil && strings.Contains(d.cert.Subject, "someone-else")
	})
	assert.NotContains(t, strings.Join(labels(x.content), "\n"), "ask for a new one soon")
}

func TestCreatingATokenShowsItOnceAndKeepsItsHash(t *testing.T) {
	h := newHarness(t, fmt.Sprintf(commented, "https://127.0.0.1:9/v1"))
	h.waitState(t, stateRunning)
	tk := h.ui.tokens
	test.Type(tk.name, "laptop-ide")
	tk.create()
	require.False(t, tk.err.Visible(), tk.err.Text)
	overlays := h.ui.window.Canvas().Overlays().List()
	require.NotEmpty(t, overlays, "the token is shown in a dialog")
	made := regexp.MustCompile(regexp.QuoteMeta(proxy.TokenPrefix) + `[A-Za-z0-9_-]{43}`).FindString(strings.Join(labels(overlays[len(overlays)-1]), "\n"))
	require.NotEmpty(t, made, "the dialog shows the token")
	text := h.config(t)
	assert.NotContains(t, text, made)
	assert.Contains(t, text, proxy.HashToken(made), "the config keeps the shown token's hash")
	assert.Contains(t, text, "# My Gatehouse. Keep this comment.")
	h.refresh()
	listed := strings.Join(labels(tk.content), "\n")
	assert.Contains(t, listed, "laptop-ide")
	assert.NotContains(t, listed, made, "the list shows the token again")

	// The same name again is refused next to the name.
	test.Type(tk.name, "laptop-ide")
	tk.create()
	assert.True(t, tk.err.Visible())
	assert.Contains(t, tk.err.Text, "exists")
}

func TestFirstRunFromAnEmptyConfigToAWorkingUpstream(t *testing.T) {
	srv := modelServer(t)
	h := newHarness(t, "")
	h.waitState(t, stateRunning)
	fr := h.ui.firstRun
	require.NotNil(t, fr)
	require.Equal(t, fr.content, h.ui.window.Content(), "the window opens on the guided setup")

	fr.fields.preset.SetSelected("Custom")
	require.True(t, fr.extra.Visible(), "Custom asks for the base URL")
	fr.fields.baseURL.SetText(srv.URL + "/v1")
	fr.fields.models.SetText("m*")
	test.Type(fr.fields.key, "sk-a-wrong-key-111111111")
	test.Tap(fr.test)
	assert.Contains(t, fr.result.Text, "Wrong key")
	assert.False(t, fr.done.Visible())

	fr.fields.key.SetText(pastedKey)
	test.Tap(fr.test)
	assert.Contains(t, fr.result.Text, "3 models")
	require.True(t, fr.done.Visible())
	test.Tap(fr.done)
	assert.Equal(t, h.ui.tabs, h.ui.window.Content())
	assert.Equal(t, h.ui.overview.content, h.ui.tabs.Selected().Content)

	s := h.refresh()
	require.Len(t, s.Upstreams, 1, "the retry replaced the first try")
	assert.Equal(t, []string{"default"}, s.Upstreams[0].Keys)
	assert.NotContains(t, h.config(t), pastedKey)
	assert.Equal(t, 1, h.store.Len())
	// The base URL now answers a client, with the key from the keychain.
	res, err := http.Get("http://" + s.Listen + "/v1/models")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, strings.Join(labels(h.ui.overview.content), "\n"), s.BaseURL())
}

func TestPresetsAreValidUpstreams(t *testing.T) {
	for _, p := range setup.Presets[:len(setup.Presets)-1] {
		cfg := proxy.DefaultConfig()
		cfg.Upstreams = []proxy.Upstream{{Name: p.Name, BaseURL: p.BaseURL, Auth: p.Auth, Models: p.Models}}
		assert.NoError(t, cfg.Check("config.toml"), p.Title)
	}
}

func TestUsageShowsTokensPerUpstreamAndModel(t *testing.T) {
	mock := &mockllm.Server{}
	up := httptest.NewServer(mock)
	defer up.Close()
	h := newHarness(t, fmt.Sprintf(commented, up.URL+"/v1"))
	s := h.waitState(t, stateRunning)
	for range 3 {
		res, err := http.Post("http://"+s.Listen+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	waitFor(t, "three records", func() bool { return len(h.reqlog.Records()) == 3 })
	u := h.ui.usage
	u.refresh()
	require.Len(t, u.rows, 1)
	r := u.rows[0]
	assert.Equal(t, "openai", r.Upstream)
	assert.Equal(t, "gpt-4o", r.Model)
	assert.EqualValues(t, 3, r.Requests)
	assert.Positive(t, r.In)
	assert.Positive(t, r.Out)
	shown := strings.Join(labels(u.content), "\n")
	assert.Contains(t, shown, "openai · gpt-4o")
	assert.Contains(t, shown, fmt.Sprint(r.In))

	// Older days count in the 7- and 30-day views, not today's.
	old := time.Now().AddDate(0, 0, -5).Format(time.DateOnly)
	u.totals = append(u.totals, proxy.UsageTotal{Day: old, Upstream: "openai", Model: "gpt-4o", Requests: 2, PromptTokens: 100, CompletionTokens: 50})
	u.period.SetSelected("Last 7 days")
	assert.EqualValues(t, 5, u.rows[0].Requests)
	u.period.SetSelected("Today")
	assert.EqualValues(t, 3, u.rows[0].Requests)
}

func TestSettingsListenAddress(t *testing.T) {
	h := newHarness(t, fmt.Sprintf("listen = %q\n", freePort(t))+fmt.Sprintf(commented, "https://127.0.0.1:9/v1"))
	h.waitState(t, stateRunning)
	st := h.ui.settings
	st.refresh()
	st.listen.SetText("0.0.0.0:4747")
	assert.True(t, st.share.Visible(), "sharing on the network is said plainly")
	st.applyListen()
	require.True(t, st.listenErr.Visible())
	assert.Contains(t, st.listenErr.Text, "access token")
	assert.NotContains(t, h.config(t), "0.0.0.0")

	// A new loopback port applies at once: the forwarder starts there.
	free := freePort(t)
	st.listen.SetText(free)
	assert.False(t, st.share.Visible())
	st.applyListen()
	assert.False(t, st.listenErr.Visible(), st.listenErr.Text)
	assert.Contains(t, h.config(t), free)
	assert.Contains(t, h.config(t), "# My Gatehouse. Keep this comment.")
	waitFor(t, "forwarding on the new port", func() bool {
		s := h.backend.snapshot(time.Now())
		return s.State == stateRunning && s.Listen == free
	})
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestAddAProxyPoolWithAPassword(t *testing.T) {
	h := newHarness(t, fmt.Sprintf(commented, "https://127.0.0.1:9/v1"))
	h.waitState(t, stateRunning)
	p := h.ui.proxies
	p.edit(nil)
	f := p.form
	entries := f.grid.Objects
	name := entries[1].(*fyne.Container).Objects[0].(*widget.Entry)
	members := entries[3].(*fyne.Container).Objects[0].(*widget.Entry)
	password := entries[5].(*fyne.Container).Objects[0].(*widget.Entry)
	name.SetText("office")
	members.SetText("ftp://127.0.0.1:21")
	test.Tap(f.save)
	require.True(t, f.errs["proxies"].Visible(), "the member's mistake is not next to the members")
	assert.NotContains(t, h.config(t), "office")

	members.SetText("http://127.0.0.1:3128\nsocks5://me@127.0.0.1:1080")
	password.SetText("proxy-pw-5ecret")
	test.Tap(f.save)
	require.False(t, f.general.Visible(), f.general.Text)
	text := h.config(t)
	assert.Contains(t, text, "name = 'office'")
	assert.NotContains(t, text, "proxy-pw-5ecret")
	pw, err := keystore.Secrets{Store: h.store}.Get(keystore.ProxyName("me@127.0.0.1:1080"))
	require.NoError(t, err)
	assert.Equal(t, "proxy-pw-5ecret", pw)
	s := h.refresh()
	require.Len(t, s.Status.Pools, 1)
	assert.Len(t, s.Status.Pools[0].Members, 2)
	assert.Contains(t, strings.Join(labels(p.content), "\n"), "Pool office")
}
