package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// testTimeout bounds the Test button's request.
const testTimeout = 15 * time.Second

// upstreams lists every upstream with its keys (masked, state, age), its
// client certificate and its route, and changes them: add from a provider
// preset, edit, remove, test, keys, certificates.
type upstreams struct {
	u       *ui
	content fyne.CanvasObject
	list    *fyne.Container
	shown   string // what the list shows, to rebuild only on a change

	// Read off Fyne's thread from the keychain (and the OS for the system
	// proxy), by upstream name; written on Fyne's thread.
	loaded  string // the upstreams the details below belong to
	details map[string]*upstreamDetails
	tests   map[string]string // the last Test's answer, by upstream

	// The form last opened and the Test buttons, for tests.
	form    *form
	fields  *upstreamFields
	buttons map[string]*widget.Button
}

type upstreamDetails struct {
	masked  map[string]string // by key label: "sk-ab…x9", or why not
	cert    *keystore.CertInfo
	certErr string
	system  string // where via = "system" goes now
}

func newUpstreams(u *ui) *upstreams {
	x := &upstreams{u: u, list: container.NewVBox(), details: map[string]*upstreamDetails{}, tests: map[string]string{},
		buttons: map[string]*widget.Button{}}
	add := widget.NewButtonWithIcon(lang.L("Add upstream…"), theme.ContentAddIcon(), func() { x.edit(nil) })
	add.Importance = widget.HighImportance
	intro := widget.NewLabel(lang.L("An upstream is an API Gatehouse forwards to. Requests go to the first upstream whose model patterns match the model asked for. Keys live in the system keychain, never in the config file."))
	intro.Wrapping = fyne.TextWrapWord
	x.content = container.NewBorder(container.NewVBox(intro, container.NewHBox(add)), nil, nil, nil,
		container.NewVScroll(container.NewPadded(x.list)))
	return x
}

// apply shows s. On Fyne's thread.
func (x *upstreams) apply(s Snapshot) {
	names := fmt.Sprint(s.Upstreams)
	if names != x.loaded {
		x.loaded = names
		x.load(s.Upstreams)
	}
	key := fmt.Sprint(s.State, s.Upstreams, s.Keys, s.Pools, len(x.details), x.tests)
	if key == x.shown {
		return
	}
	x.shown = key
	x.list.RemoveAll()
	if len(s.Upstreams) == 0 {
		x.list.Add(widget.NewLabel(lang.L("No upstream yet. Add one: pick your provider and paste its key.")))
	}
	for _, up := range s.Upstreams {
		x.list.Add(x.card(up, s))
		x.list.Add(widget.NewSeparator())
	}
}

// load reads the keys (masked) and certificates of ups from the keychain
// off Fyne's thread, then shows them.
func (x *upstreams) load(ups []proxy.Upstream) {
	if len(ups) == 0 {
		x.details = map[string]*upstreamDetails{}
		return
	}
	ups = slices.Clone(ups)
	x.u.async(func() {
		out := map[string]*upstreamDetails{}
		sec := keystore.Secrets{Store: x.u.setup.Store}
		for _, up := range ups {
			d := &upstreamDetails{masked: map[string]string{}}
			for _, label := range up.Keys {
				v, err := sec.Get(keystore.KeyName(up.Name, label))
				switch {
				case err == nil:
					d.masked[label] = keystore.Mask(v)
				case errors.Is(err, keystore.ErrNotFound):
					d.masked[label] = lang.L("missing from the keychain: add it again")
				default:
					d.masked[label] = lang.L("keychain unreachable")
				}
			}
			if up.ClientCert {
				if cc, err := x.u.setup.Cert(up.Name); err == nil {
					info := cc.Info()
					d.cert = &info
				} else {
					d.certErr = err.Error()
				}
			}
			if up.Via == proxy.ViaSystem {
				d.system = systemRoute(up.BaseURL)
			}
			out[up.Name] = d
		}
		fyne.Do(func() {
			x.details = out
			x.shown = ""
			x.apply(x.u.last)
		})
	})
}

// systemRoute says where via = "system" sends requests to base now.
func systemRoute(base string) string {
	p, err := proxy.SystemProxy(base)
	switch {
	case err != nil:
		return err.Error()
	case p == "":
		return lang.L("direct (the system names no proxy)")
	}
	return p
}

func (x *upstreams) card(up proxy.Upstream, s Snapshot) fyne.CanvasObject {
	d := x.details[up.Name]
	if d == nil {
		d = &upstreamDetails{}
	}
	title := widget.NewLabelWithStyle(up.Name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	base := widget.NewLabelWithStyle(up.BaseURL, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	base.Truncation = fyne.TextTruncateEllipsis
	models := strings.Join(up.Models, ", ")
	if models == "" {
		models = lang.L("none: reached only at /u/{{.Name}}/", map[string]any{"Name": up.Name})
	}
	route := routeName(up.Via)
	if up.Via == proxy.ViaSystem && d.system != "" {
		route += " — " + lang.L("now: {{.Proxy}}", map[string]any{"Proxy": d.system})
	}
	info := widget.NewLabel(lang.L("Models: {{.Models}}", map[string]any{"Models": models}) + "\n" +
		lang.L("Route: {{.Route}}", map[string]any{"Route": route}))
	info.Wrapping = fyne.TextWrapWord
	rows := container.NewVBox(container.NewBorder(nil, nil, title, nil, base), info)

	keys := container.New(&columns{widths: []float32{110, 170, 0, 100, 100}})
	now := time.Now()
	// One row per key: label, masked value, state and age, Use again
	// (while it is not ok), Remove (keychain keys only).
	row := func(label, shown, state string, remove fyne.CanvasObject) {
		keys.Add(widget.NewLabel(label))
		keys.Add(widget.NewLabelWithStyle(shown, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true}))
		st := widget.NewLabel(state)
		st.Wrapping = fyne.TextWrapWord
		keys.Add(st)
		if ks := keyState(s.Keys, up.Name, label); ks != nil && ks.State != proxy.KeyOK {
			upName := up.Name
			keys.Add(widget.NewButton(lang.L("Use again"), func() {
				x.u.act(func(s *proxy.Service) error { s.Forwarder.EnableKey(upName, label); return nil })
			}))
		} else {
			keys.Add(widget.NewLabel(""))
		}
		keys.Add(remove)
	}
	for _, label := range up.Keys {
		row(label, d.masked[label], keyLine(up, label, s.Keys, now), x.removeKeyButton(up.Name, label))
	}
	if up.KeyEnv != "" {
		env := "env:" + up.KeyEnv
		row(env, "", keyLine(up, env, s.Keys, now)+" · "+lang.L("from the environment variable {{.Name}}", map[string]any{"Name": up.KeyEnv}), widget.NewLabel(""))
	}
	if len(up.Keys) == 0 && up.KeyEnv == "" && up.Auth != proxy.AuthNone {
		rows.Add(widget.NewLabel(lang.L("No key yet: add one, or requests to this upstream fail.")))
	} else {
		rows.Add(keys)
	}
	if up.ClientCert {
		rows.Add(x.certRow(up.Name, d))
	}

	result := widget.NewLabel(x.tests[up.Name])
	result.Wrapping = fyne.TextWrapWord
	if result.Text == "" {
		result.Hide()
	}
	name := up.Name
	test := widget.NewButtonWithIcon(lang.L("Test"), theme.MediaPlayIcon(), nil)
	test.OnTapped = func() { x.test(name, test) }
	x.buttons[name] = test
	cur := up
	buttons := container.NewHBox(test,
		widget.NewButtonWithIcon(lang.L("Add key…"), theme.ContentAddIcon(), func() { x.addKey(cur) }),
		widget.NewButton(lang.L("Import certificate…"), func() { x.importCert(name) }),
		widget.NewButtonWithIcon(lang.L("Edit…"), theme.DocumentCreateIcon(), func() { x.edit(&cur) }),
		widget.NewButtonWithIcon(lang.L("Remove…"), theme.DeleteIcon(), func() { x.remove(name) }),
	)
	rows.Add(buttons)
	rows.Add(result)
	return rows
}

func routeName(via string) string {
	switch {
	case via == "" || via == proxy.ViaDirect:
		return lang.L("direct")
	case via == proxy.ViaSystem:
		return lang.L("system proxy settings")
	case strings.HasPrefix(via, "pool:"):
		return lang.L("pool {{.Pool}}", map[string]any{"Pool": strings.TrimPrefix(via, "pool:")})
	}
	return via
}

func keyState(keys []proxy.KeyStatus, upstream, label string) *proxy.KeyStatus {
	for i := range keys {
		if keys[i].Upstream == upstream && keys[i].Label == label {
			return &keys[i]
		}
	}
	return nil
}

// keyLine is a key's state and age: "ok · added 97 days ago — …".
func keyLine(up proxy.Upstream, label string, keys []proxy.KeyStatus, now time.Time) string {
	state := lang.L("ok")
	if st := keyState(keys, up.Name, label); st != nil {
		state = keyStateName(st.State)
		if !st.Until.IsZero() {
			state += " " + lang.L("until {{.Time}}", map[string]any{"Time": st.Until.Local().Format("15:04:05")})
		}
		if st.Reason != "" && st.State != proxy.KeyOK {
			state += " (" + st.Reason + ")"
		}
	}
	days, ok := setup.KeyAge(&up, label, now)
	switch {
	case !ok:
	case days >= setup.RotateAfterDays:
		state += " · " + lang.L("added {{.Days}} days ago — providers advise a new key now and then", map[string]any{"Days": days})
	case days == 0:
		state += " · " + lang.L("added today")
	default:
		state += " · " + lang.L("added {{.Days}} days ago", map[string]any{"Days": days})
	}
	return state
}

func (x *upstreams) removeKeyButton(upstream, label string) fyne.CanvasObject {
	return widget.NewButtonWithIcon(lang.L("Remove"), theme.DeleteIcon(), func() {
		dialog.ShowConfirm(lang.L("Remove key"),
			lang.L("Remove key {{.Label}} of {{.Upstream}} from the keychain and the config?", map[string]any{"Label": label, "Upstream": upstream}),
			func(ok bool) {
				if ok {
					x.u.run(func() error { return x.u.setup.RemoveKey(upstream, label) }, x.done)
				}
			}, x.u.window)
	})
}

// done shows err, if any, after a change; the list redraws from the next
// snapshot.
func (x *upstreams) done(err error) {
	x.loaded = "" // read the keychain again
	if err != nil {
		x.u.showError(err)
	}
	x.u.apply(x.u.backend.snapshot(time.Now()))
}

func (x *upstreams) certRow(upstream string, d *upstreamDetails) fyne.CanvasObject {
	var text string
	var warn bool
	switch {
	case d.cert != nil:
		left := time.Until(d.cert.NotAfter)
		text = lang.L("Client certificate: {{.Subject}}, issued by {{.Issuer}}, expires {{.Date}}",
			map[string]any{"Subject": d.cert.Subject, "Issuer": d.cert.Issuer, "Date": d.cert.NotAfter.Format(time.DateOnly)}) +
			"\nSHA-256 " + d.cert.Fingerprint
		if left < 30*24*time.Hour {
			warn = true
			text += "\n" + lang.L("It expires in {{.Days}} days: ask for a new one soon.", map[string]any{"Days": int(left.Hours() / 24)})
		}
	case d.certErr != "":
		warn, text = true, lang.L("Client certificate: {{.Error}}", map[string]any{"Error": d.certErr})
	default:
		text = lang.L("Client certificate: reading…")
	}
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	if warn {
		l.Importance = widget.WarningImportance
	}
	rm := widget.NewButtonWithIcon(lang.L("Remove certificate"), theme.DeleteIcon(), func() {
		dialog.ShowConfirm(lang.L("Remove certificate"), lang.L("Remove the client certificate of {{.Upstream}}?", map[string]any{"Upstream": upstream}),
			func(ok bool) {
				if ok {
					x.u.run(func() error { return x.u.setup.RemoveCert(upstream) }, x.done)
				}
			}, x.u.window)
	})
	return container.NewBorder(nil, nil, nil, rm, l)
}

// test asks the upstream for its model list through its route.
func (x *upstreams) test(name string, b *widget.Button) {
	b.Disable()
	x.tests[name] = lang.L("Testing…")
	x.shown = ""
	x.apply(x.u.last)
	var got proxy.UpstreamTest
	x.u.run(func() error {
		return x.u.backend.with(func(s *proxy.Service) (err error) {
			got, err = s.Forwarder.TestUpstream(context.Background(), name, testTimeout)
			return err
		})
	}, func(err error) {
		b.Enable()
		x.tests[name] = testResult(got, err)
		x.shown = ""
		x.apply(x.u.last)
	})
}

func testResult(got proxy.UpstreamTest, err error) string {
	if err != nil {
		return "✗ " + localError(err)
	}
	text := "✓ " + lang.L("It answers: {{.Count}} models, in {{.Time}} ({{.Route}}).",
		map[string]any{"Count": got.Models, "Time": got.Took.Round(time.Millisecond).String(), "Route": got.Route})
	if len(got.Refused) > 0 {
		text += "\n" + lang.L("Key {{.Key}} works; the upstream refused {{.Refused}}: remove or replace them.",
			map[string]any{"Key": got.Key, "Refused": strings.Join(got.Refused, ", ")})
	}
	return text
}

func (x *upstreams) remove(name string) {
	dialog.ShowConfirm(lang.L("Remove upstream"),
		lang.L("Remove {{.Upstream}} with its keys and certificate? Requests for its models will find no upstream.", map[string]any{"Upstream": name}),
		func(ok bool) {
			if ok {
				x.u.run(func() error { return x.u.setup.RemoveUpstream(name) }, x.done)
			}
		}, x.u.window)
}

// addKey asks for a key (a password entry) and stores it.
func (x *upstreams) addKey(up proxy.Upstream) {
	label := widget.NewEntry()
	label.SetText(setup.NextKeyLabel(up.Keys))
	secret := widget.NewPasswordEntry()
	secret.SetPlaceHolder(lang.L("paste the key"))
	f := newForm(x.u, lang.L("Add a key to {{.Upstream}}", map[string]any{"Upstream": up.Name}), lang.L("Save"), func() func() error {
		l, key := strings.TrimSpace(label.Text), strings.TrimSpace(secret.Text)
		return func() error {
			_, err := x.u.setup.AddKey(up.Name, l, key)
			return err
		}
	})
	f.add(lang.L("Label"), label, "keys")
	f.add(lang.L("Key"), secret, "")
	f.Saved = func() { x.done(nil) }
	x.form = f
	f.show()
}

// importCert imports a client certificate from PEM files or a .p12.
func (x *upstreams) importCert(upstream string) {
	ci := &certImport{}
	password := widget.NewPasswordEntry()
	f := newForm(x.u, lang.L("Client certificate for {{.Upstream}}", map[string]any{"Upstream": upstream}), lang.L("Import"), func() func() error {
		chosen, pw := *ci, password.Text
		return func() error { return chosen.save(x.u.setup, upstream, pw) }
	})
	pick := func(what *[]byte, name *widget.Label) fyne.CanvasObject {
		return container.NewBorder(nil, nil, nil, widget.NewButton(lang.L("Choose…"), func() {
			dialog.ShowFileOpen(func(r fyne.URIReadCloser, err error) {
				if err != nil || r == nil {
					return
				}
				defer r.Close()
				b, err := io.ReadAll(io.LimitReader(r, 1<<20))
				if err != nil {
					f.showError(err)
					return
				}
				*what = b
				name.SetText(r.URI().Name())
			}, x.u.window)
		}), name)
	}
	f.add(lang.L("Certificate (PEM)"), pick(&ci.certPEM, widget.NewLabel("")), "")
	f.add(lang.L("Private key (PEM)"), pick(&ci.keyPEM, widget.NewLabel("")), "")
	f.add(lang.L("or a .p12 / .pfx file"), pick(&ci.p12, widget.NewLabel("")), "")
	f.add(lang.L("Password of the .p12"), password, "")
	f.Saved = func() { x.done(nil) }
	f.show()
}

// certImport is what the certificate form read from the chosen files.
type certImport struct{ certPEM, keyPEM, p12 []byte }

func (ci *certImport) save(s *setup.Setup, upstream, password string) error {
	var cc *keystore.ClientCert
	var err error
	switch {
	case ci.p12 != nil:
		cc, err = keystore.ParseClientCertP12(ci.p12, password)
	case ci.certPEM != nil && ci.keyPEM != nil:
		cc, err = keystore.ParseClientCertPEM(ci.certPEM, ci.keyPEM)
	default:
		return errors.New(lang.L("Choose the certificate and its key, or one .p12 file."))
	}
	if err != nil {
		return err
	}
	_, _, err = s.ImportCert(upstream, cc)
	return err
}
