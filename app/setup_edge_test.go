package app

import (
	"fmt"
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/keystore"
)

// Editing an hmac-sha256 upstream in the window (only to change its models)
// keeps its auth scheme: the HMAC secret never goes out as a Bearer token.
func TestEditingAnHMACUpstreamKeepsItsAuth(t *testing.T) {
	var mu sync.Mutex
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = r.Header.Get("Authorization")
		mu.Unlock()
		fmt.Fprint(w, `{"data":[]}`)
	}))
	defer srv.Close()
	cfg := fmt.Sprintf(`version = 1

[[upstreams]]
name = "relay"
base_url = %q
models = ["relay-*"]
auth = "hmac-sha256"
keys = ["main"]
`, srv.URL+"/v1")
	h := newHarness(t, cfg)
	require.NoError(t, keystore.Secrets{Store: h.store}.Set(keystore.KeyName("relay", "main"), "hmac-signing-5ecret"))
	s := h.waitState(t, stateRunning)
	x := h.ui.upstreams
	cur := s.Upstreams[0]
	x.edit(&cur)
	assert.Equal(t, "hmac-sha256", x.fields.auth.Selected)
	x.fields.models.SetText("relay-*, relay2-*")
	test.Tap(x.form.save)
	require.False(t, x.form.general.Visible(), x.form.general.Text)
	assert.Contains(t, h.config(t), "relay2-*")
	s = h.refresh()
	resp, err := http.Post("http://"+s.Listen+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"relay-x","messages":[]}`))
	require.NoError(t, err)
	resp.Body.Close()
	mu.Lock()
	assert.NotContains(t, gotAuth, "hmac-signing-5ecret", "the HMAC secret went out as a bearer token")
	mu.Unlock()
	require.Contains(t, h.config(t), "hmac-sha256", "the upstream's auth scheme was changed by an edit of its models")
}

// Settings → Export makes the encrypted export before it asks where to
// save it: a refused passphrase never opens (and so never empties) a file.
func TestExportAsksWhereOnlyOnceTheExportExists(t *testing.T) {
	keystore.ScryptWorkFactor = 10 // fast; the real factor is keystore's own test
	h := newHarness(t, "version = 1\n")
	h.waitState(t, stateRunning)
	st := h.ui.settings
	st.exportWith("short") // keystore refuses passphrases under 8 characters
	assert.Nil(t, st.saving, "the save dialog opened for an export that failed")
	st.exportWith("a long enough passphrase")
	assert.NotNil(t, st.saving, "no save dialog after a good export")
}

// A form reads its fields on Fyne's thread when Save is tapped and hands
// only their values to the work that runs off it: what the user types
// while the save runs is neither read there nor saved.
func TestFormsReadTheirFieldsWhenSaveIsTapped(t *testing.T) {
	srv := modelServer(t)
	h := newHarness(t, fmt.Sprintf(commented, srv.URL+"/v1"))
	s := h.waitState(t, stateRunning)
	var pending func()
	h.ui.async = func(f func()) { pending = f } // the work waits until the test runs it
	x := h.ui.upstreams
	x.addKey(s.Upstreams[0])
	f := x.form
	secret := f.grid.Objects[3].(*fyne.Container).Objects[0].(*widget.Entry)
	test.Type(secret, pastedKey)
	test.Tap(f.save)
	require.NotNil(t, pending)
	secret.SetText("typed-while-saving-0000000")
	pending()
	v, err := keystore.Secrets{Store: h.store}.Get(keystore.KeyName("openai", "default"))
	require.NoError(t, err)
	assert.Equal(t, pastedKey, v, "the work read the field after Save was tapped")
}

// Settings → Apply with a port another program holds is refused next to
// the field; nothing is saved and the forwarder stays where it works.
func TestSettingsRefuseATakenPort(t *testing.T) {
	old := freePort(t)
	h := newHarness(t, fmt.Sprintf("listen = %q\n", old)+fmt.Sprintf(commented, "https://127.0.0.1:9/v1"))
	h.waitState(t, stateRunning)
	busy, err := net.Listen("tcp", "127.0.0.1:0") // another program's port
	require.NoError(t, err)
	defer busy.Close()
	st := h.ui.settings
	st.refresh()
	st.listen.SetText(busy.Addr().String())
	st.applyListen()
	require.True(t, st.listenErr.Visible(), "Apply reported success for a taken port")
	assert.Contains(t, st.listenErr.Text, "cannot be listened on")
	assert.NotContains(t, h.config(t), busy.Addr().String(), "the taken port was saved")
	res, err := http.Get("http://" + old + "/health")
	require.NoError(t, err, "the forwarder left its working address")
	res.Body.Close()
}

// Test tries each usable key: with a revoked first key and a good one just
// added, it says the upstream answers (and names the refused key), as the
// forwarder does when it moves past the 401.
func TestTheTestButtonTriesTheKeyJustAdded(t *testing.T) {
	srv := modelServer(t)
	h := newHarness(t, fmt.Sprintf("version = 1\n\n[[upstreams]]\nname = \"openai\"\nbase_url = %q\nmodels = [\"gpt-*\"]\nkeys = [\"old\"]\n", srv.URL+"/v1"))
	sec := keystore.Secrets{Store: h.store}
	require.NoError(t, sec.Set(keystore.KeyName("openai", "old"), "sk-revoked-key-000000000000"))
	h.waitState(t, stateRunning)
	_, err := h.ui.setup.AddKey("openai", "new", pastedKey)
	require.NoError(t, err)
	s := h.refresh()
	x := h.ui.upstreams
	waitFor(t, "the card", func() bool { h.refresh(); return x.buttons["openai"] != nil })
	x.test("openai", x.buttons["openai"])
	res, err := http.Get("http://" + s.Listen + "/u/openai/models")
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.True(t, strings.HasPrefix(x.tests["openai"], "✓"), "Test reports the upstream broken while it serves requests with the new key: %s", x.tests["openai"])
	assert.Contains(t, x.tests["openai"], "refused old")
}

func TestPassphrasesMustMatch(t *testing.T) {
	h := newHarness(t, "version = 1\n")
	h.waitState(t, stateRunning)
	st := h.ui.settings
	var got []string
	st.passphrases("Export", true, func(p string) { got = append(got, p) })
	f := st.asked
	first := f.grid.Objects[1].(*fyne.Container).Objects[0].(*widget.Entry)
	again := f.grid.Objects[3].(*fyne.Container).Objects[0].(*widget.Entry)
	test.Type(first, "one passphrase")
	test.Type(again, "another one")
	test.Tap(f.save)
	require.True(t, f.general.Visible())
	assert.Contains(t, f.general.Text, "differ")
	assert.Empty(t, got)
	again.SetText("one passphrase")
	test.Tap(f.save)
	assert.Equal(t, []string{"one passphrase"}, got)
}
