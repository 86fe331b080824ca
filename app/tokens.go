package app

import (
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// tokens lists the local access tokens and makes new ones: a token is
// shown once, when it is made, with the lines to paste into a tool; only
// its hash is kept.
type tokens struct {
	u       *ui
	content fyne.CanvasObject
	list    *fyne.Container
	name    *widget.Entry
	err     *widget.Label
	shown   string
}

func newTokens(u *ui) *tokens {
	t := &tokens{u: u, list: container.New(&columns{widths: []float32{0, 260, 120}}), name: widget.NewEntry(), err: errorLabel()}
	t.name.SetPlaceHolder(lang.L("a name for the tool or machine, such as laptop-ide"))
	create := widget.NewButtonWithIcon(lang.L("Create token"), theme.ContentAddIcon(), t.create)
	create.Importance = widget.HighImportance
	intro := widget.NewLabel(lang.L("Without tokens, any program on this computer may use Gatehouse. With at least one, every client must send a token as its API key, on this computer too; sharing Gatehouse with your network needs them."))
	intro.Wrapping = fyne.TextWrapWord
	t.content = container.NewBorder(
		container.NewVBox(intro, container.NewBorder(nil, nil, nil, create, t.name), t.err, widget.NewSeparator()),
		nil, nil, nil, container.NewVScroll(container.NewPadded(t.list)))
	return t
}

// apply shows s. On Fyne's thread.
func (t *tokens) apply(s Snapshot) {
	if key := fmt.Sprint(s.TokenList); key != t.shown {
		t.shown = key
		t.list.RemoveAll()
		if len(s.TokenList) == 0 {
			t.list.Add(widget.NewLabel(lang.L("No tokens: clients on this computer need none.")))
			t.list.Add(widget.NewLabel(""))
			t.list.Add(widget.NewLabel(""))
		}
		for _, tok := range s.TokenList {
			name := tok.Name
			t.list.Add(widget.NewLabelWithStyle(name, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
			t.list.Add(widget.NewLabel(lang.L("made {{.Date}}", map[string]any{"Date": tok.Created})))
			t.list.Add(widget.NewButtonWithIcon(lang.L("Remove"), theme.DeleteIcon(), func() { t.remove(name) }))
		}
	}
}

func (t *tokens) create() {
	name := strings.TrimSpace(t.name.Text)
	t.err.Hide()
	var tok string
	t.u.run(func() (err error) {
		tok, _, err = t.u.setup.AddToken(name)
		return err
	}, func(err error) {
		if err != nil {
			t.err.SetText(localError(err))
			t.err.Show()
			return
		}
		t.name.SetText("")
		t.showOnce(name, tok)
		t.u.apply(t.u.backend.snapshot(time.Now()))
	})
}

// showOnce shows a new token with a copy button and what to paste.
func (t *tokens) showOnce(name, tok string) {
	code := widget.NewLabelWithStyle(tok, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	code.Selectable = true
	lines := fmt.Sprintf("Base URL: %s\nAPI key: %s", t.u.last.BaseURL(), tok)
	paste := widget.NewLabelWithStyle(lines, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	paste.Selectable = true
	body := container.NewVBox(
		widget.NewLabel(lang.L("Token {{.Name}} is made. It is shown only this once: copy it now.", map[string]any{"Name": name})),
		container.NewBorder(nil, nil, nil, widget.NewButtonWithIcon(lang.L("Copy"), theme.ContentCopyIcon(), func() { t.u.copy(tok) }), code),
		widget.NewLabel(lang.L("In your IDE or tool, an OpenAI-compatible provider with:")),
		container.NewBorder(nil, nil, nil, widget.NewButtonWithIcon(lang.L("Copy"), theme.ContentCopyIcon(), func() { t.u.copy(lines) }), paste),
	)
	d := dialog.NewCustom(lang.L("New access token"), lang.L("Done"), body, t.u.window)
	d.Resize(fyne.NewSize(720, 0))
	d.Show()
}

func (t *tokens) remove(name string) {
	dialog.ShowConfirm(lang.L("Remove token"), lang.L("Remove token {{.Name}}? Clients that use it are refused from then on.", map[string]any{"Name": name}),
		func(ok bool) {
			if ok {
				t.u.run(func() error { return t.u.setup.RemoveToken(name) }, func(err error) {
					if err != nil {
						t.u.showError(err)
					}
					t.u.apply(t.u.backend.snapshot(time.Now()))
				})
			}
		}, t.u.window)
}
