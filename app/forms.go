package app

import (
	"errors"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

// form is a dialog that changes the setup: its fields, an error under
// each, and Save. Save reads the fields on Fyne's thread (collect), runs
// the change collect returns off it, and keeps the dialog open with the
// mistake shown next to its field, or closes it on success.
type form struct {
	u       *ui
	dlg     *dialog.CustomDialog
	grid    *fyne.Container
	errs    map[string]*widget.Label // by config key ("base_url")
	general *widget.Label
	save    *widget.Button
	body    *fyne.Container
	scroll  *container.Scroll
	// Saved, when set, is called on Fyne's thread after a save succeeded.
	Saved func()
}

func newForm(u *ui, title, action string, collect func() (work func() error)) *form {
	f := &form{u: u, grid: container.New(&columns{widths: []float32{170, 0}}), errs: map[string]*widget.Label{}, general: errorLabel()}
	f.save = widget.NewButton(action, func() { f.submit(collect()) })
	f.save.Importance = widget.HighImportance
	cancel := widget.NewButton(lang.L("Cancel"), func() { f.dlg.Hide() })
	f.body = container.NewVBox(f.grid, f.general)
	f.scroll = container.NewVScroll(f.body)
	f.dlg = dialog.NewCustomWithoutButtons(title, f.scroll, u.window)
	f.dlg.SetButtons([]fyne.CanvasObject{cancel, f.save})
	return f
}

func errorLabel() *widget.Label {
	l := widget.NewLabel("")
	l.Wrapping, l.Importance = fyne.TextWrapWord, widget.DangerImportance
	l.Hide()
	return l
}

// add puts a field in the form; key is the config key whose mistakes are
// shown under it ("" for none).
func (f *form) add(label string, obj fyne.CanvasObject, key string) {
	e := errorLabel()
	if key != "" {
		f.errs[key] = e
	}
	f.grid.Add(widget.NewLabel(label))
	f.grid.Add(container.NewVBox(obj, e))
}

// show opens the form as tall as its fields, or as the window allows
// (then it scrolls).
func (f *form) show() {
	room := f.u.window.Canvas().Size().Height - 160
	f.scroll.SetMinSize(fyne.NewSize(600, max(min(f.body.MinSize().Height, room), 120)))
	f.dlg.Show()
}

func (f *form) submit(work func() error) {
	for _, l := range f.errs {
		l.Hide()
	}
	f.general.Hide()
	f.save.Disable()
	f.u.run(work, func(err error) {
		f.save.Enable()
		if err == nil {
			f.dlg.Hide()
			if f.Saved != nil {
				f.Saved()
			}
			return
		}
		f.showError(err)
	})
}

// showError puts err next to its field, or under the form.
func (f *form) showError(err error) {
	if key, _, ok := proxy.FieldError(err); ok && f.errs[key] != nil {
		f.errs[key].SetText(localError(err))
		f.errs[key].Show()
		return
	}
	f.general.SetText(localError(err))
	f.general.Show()
}

// localError says err in the window's language where it is one Gatehouse
// knows (a config field, a failed test, a wrong passphrase), with the
// English detail after it; other errors are shown as they are.
func localError(err error) string {
	var te *proxy.TestError
	if errors.As(err, &te) {
		return testErrorText(te.Kind) + "\n" + err.Error()
	}
	if errors.Is(err, keystore.ErrBadExport) {
		return lang.L("The passphrase is wrong, or the file is not a Gatehouse export. Nothing was changed.")
	}
	if key, msg, ok := proxy.FieldError(err); ok {
		if hint := fieldHint(key); hint != "" {
			return hint + "\n(" + msg + ")"
		}
		return msg
	}
	return err.Error()
}

func fieldHint(key string) string {
	switch key {
	case "name":
		return lang.L("Use lower-case letters, digits and dashes, such as openai, and a name no other entry has.")
	case "base_url":
		return lang.L("Write the full address of the API, such as https://api.example.com/v1.")
	case "models":
		return lang.L("Write model patterns separated by commas, such as gpt-*, o3*.")
	case "via":
		return lang.L("Choose direct, system, a pool, or write one proxy URL such as socks5://127.0.0.1:1080.")
	case "listen":
		return lang.L("Write host:port, such as 127.0.0.1:4747. Another address than loopback shares Gatehouse with your network and needs an access token first.")
	case "proxies":
		return lang.L("Write one proxy URL per line: http://, https:// or socks5:// with host and port.")
	case "strategy":
		return lang.L("Choose fastest, fallback or round-robin.")
	case "interval", "timeout", "tolerance":
		return lang.L("Write a duration such as 30s, 5s or 2m.")
	case "check_url":
		return lang.L("Write an http:// or https:// address that answers quickly.")
	}
	return ""
}

func testErrorText(kind string) string {
	switch kind {
	case proxy.TestNoKey:
		return lang.L("No key: add this upstream's key first.")
	case proxy.TestWrongKey:
		return lang.L("Wrong key: the provider refused it.")
	case proxy.TestBadURL:
		return lang.L("The base URL looks wrong: there is no model list there.")
	case proxy.TestCertificate:
		return lang.L("Certificate refused: the upstream's certificate is not trusted.")
	case proxy.TestClientCert:
		return lang.L("Certificate refused: the upstream did not accept the client certificate.")
	case proxy.TestTimeout:
		return lang.L("Timeout: no answer in time.")
	case proxy.TestProxyDown:
		return lang.L("Proxy down: the route to the upstream failed.")
	}
	return lang.L("The upstream could not be reached.")
}
