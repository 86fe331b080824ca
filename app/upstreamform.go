package app

import (
	"cmp"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// upstreamFields are the widgets of an upstream: the provider preset
// fills the others. The upstream form and the first run use them.
type upstreamFields struct {
	preset  *widget.Select
	note    *widget.Label
	name    *widget.Entry
	baseURL *widget.Entry
	auth    *widget.Select
	models  *widget.Entry
	route   *widget.Select
	proxy   *widget.Entry // the route's proxy URL, when it is one
	key     *widget.Entry
	system  *widget.Label // where "system" goes now
}

// routeProxyURL is the route choice that shows the proxy URL entry.
func routeProxyURL() string { return lang.L("one proxy URL…") }

func newUpstreamFields(u *ui, cur *proxy.Upstream) *upstreamFields {
	f := &upstreamFields{
		note: widget.NewLabel(""), name: widget.NewEntry(), baseURL: widget.NewEntry(), models: widget.NewEntry(),
		proxy: widget.NewEntry(), key: widget.NewPasswordEntry(), system: widget.NewLabel(""),
		auth: widget.NewSelect([]string{proxy.AuthBearer, proxy.AuthXAPIKey, proxy.AuthGoogAPIKey, proxy.AuthHMAC, proxy.AuthNone}, nil),
	}
	f.note.Wrapping, f.note.Importance = fyne.TextWrapWord, widget.WarningImportance
	f.note.Hide()
	f.system.Wrapping = fyne.TextWrapWord
	f.system.Hide()
	f.baseURL.SetPlaceHolder("https://api.example.com/v1")
	f.models.SetPlaceHolder("gpt-*, o3*")
	f.proxy.SetPlaceHolder("socks5://127.0.0.1:1080")
	f.proxy.Hide()
	f.key.SetPlaceHolder(lang.L("paste the key; it goes to the keychain"))

	routes := []string{proxy.ViaDirect, proxy.ViaSystem}
	for _, p := range u.last.Pools {
		routes = append(routes, "pool:"+p.Name)
	}
	routes = append(routes, routeProxyURL())
	f.route = widget.NewSelect(routes, func(r string) {
		f.proxy.Hidden = r != routeProxyURL()
		f.proxy.Refresh()
		f.system.Hide()
		if r == proxy.ViaSystem {
			base := f.baseURL.Text
			u.async(func() {
				text := lang.L("System proxy settings send it now: {{.Proxy}}", map[string]any{"Proxy": systemRoute(base)})
				fyne.Do(func() { f.system.SetText(text); f.system.Show() })
			})
		}
	})

	titles := make([]string, len(setup.Presets))
	for i, p := range setup.Presets {
		titles[i] = p.Title
	}
	f.preset = widget.NewSelect(titles, func(title string) {
		i := slices.IndexFunc(setup.Presets, func(p setup.Preset) bool { return p.Title == title })
		if i < 0 {
			return
		}
		f.fill(setup.Presets[i])
	})

	if cur != nil {
		f.name.SetText(cur.Name)
		f.name.Disable() // its keys are stored under its name
		f.baseURL.SetText(cur.BaseURL)
		f.auth.SetSelected(cur.Auth)
		f.models.SetText(strings.Join(cur.Models, ", "))
		switch via := cur.Via; {
		case via == "" || slices.Contains(routes, via):
			f.route.SetSelected(cmp.Or(via, proxy.ViaDirect))
		default:
			f.route.SetSelected(routeProxyURL())
			f.proxy.SetText(via)
		}
	} else {
		f.route.SetSelected(proxy.ViaDirect)
		f.preset.SetSelected(setup.Presets[0].Title)
	}
	return f
}

// fill puts a preset into the fields.
func (f *upstreamFields) fill(p setup.Preset) {
	f.name.SetText(p.Name)
	f.baseURL.SetText(p.BaseURL)
	f.auth.SetSelected(p.Auth)
	f.models.SetText(strings.Join(p.Models, ", "))
	f.note.SetText(presetNote(p))
	f.note.Hidden = f.note.Text == ""
	f.note.Refresh()
}

// presetNote says what to change in a preset before saving.
func presetNote(p setup.Preset) string {
	switch p.Name {
	case "ollama":
		return lang.L("Put the address of the machine that runs Ollama in the base URL; it needs no key.")
	case "lmstudio":
		return lang.L("Put the address of the machine that runs LM Studio's server in the base URL, and the models it serves in the patterns; it needs no key.")
	case "":
		return lang.L("Fill in the provider's OpenAI-compatible base URL and the models to send there.")
	}
	return ""
}

// upstream is what the fields say.
func (f *upstreamFields) upstream() proxy.Upstream {
	var models []string
	for _, m := range strings.Split(f.models.Text, ",") {
		if m = strings.TrimSpace(m); m != "" {
			models = append(models, m)
		}
	}
	via := f.route.Selected
	if via == routeProxyURL() {
		via = strings.TrimSpace(f.proxy.Text)
	}
	return proxy.Upstream{Name: strings.TrimSpace(f.name.Text), BaseURL: strings.TrimSpace(f.baseURL.Text),
		Auth: f.auth.Selected, Models: models, Via: via}
}

// edit opens the form for a new upstream (cur nil) or for cur.
func (x *upstreams) edit(cur *proxy.Upstream) {
	fields := newUpstreamFields(x.u, cur)
	title, old := lang.L("Add an upstream"), ""
	if cur != nil {
		title, old = lang.L("Change {{.Upstream}}", map[string]any{"Upstream": cur.Name}), cur.Name
	}
	f := newForm(x.u, title, lang.L("Save"), func() func() error {
		up, key := fields.upstream(), strings.TrimSpace(fields.key.Text)
		return func() error { return x.u.setup.SaveUpstream(old, up, key) }
	})
	if cur == nil {
		f.add(lang.L("Provider"), fields.preset, "")
		f.add("", fields.note, "")
	}
	f.add(lang.L("Name"), fields.name, "name")
	f.add(lang.L("Base URL"), fields.baseURL, "base_url")
	f.add(lang.L("Auth scheme"), fields.auth, "auth")
	f.add(lang.L("Models"), fields.models, "models")
	f.add(lang.L("Route"), container.NewVBox(fields.route, fields.proxy, fields.system), "via")
	if cur == nil {
		f.add(lang.L("Key"), fields.key, "keys")
	}
	f.Saved = func() { x.done(nil) }
	x.form, x.fields = f, fields
	f.show()
}
