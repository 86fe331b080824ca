package app

import (
	"context"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/setup"
)

// firstRun is the guided setup the window opens on while no upstream is
// configured: pick a provider, paste a key, Test, done — then the
// Overview with the base URL and the lines for the user's tools. It is
// offered once per start; Skip goes to the sections.
type firstRun struct {
	u       *ui
	content fyne.CanvasObject
	fields  *upstreamFields
	extra   *fyne.Container // base URL and models, for providers that need them
	result  *widget.Label
	test    *widget.Button
	done    *widget.Button
	saved   string // the upstream this guide saved, replaced on a retry
}

// firstRunCheck opens the guide the first time the forwarder runs with no
// upstream. On Fyne's thread.
func (u *ui) firstRunCheck(s Snapshot) {
	if u.firstRunSeen || s.State != stateRunning {
		return
	}
	u.firstRunSeen = true // decided at the first running snapshot, once
	if len(s.Upstreams) == 0 {
		u.firstRun = newFirstRun(u)
		u.window.SetContent(u.firstRun.content)
	}
}

func newFirstRun(u *ui) *firstRun {
	f := &firstRun{u: u, fields: newUpstreamFields(u, nil), result: widget.NewLabel("")}
	f.result.Wrapping = fyne.TextWrapWord
	f.result.Hide()
	f.extra = container.New(&columns{widths: []float32{170, 0}},
		widget.NewLabel(lang.L("Base URL")), f.fields.baseURL,
		widget.NewLabel(lang.L("Models")), f.fields.models)
	f.fields.preset.OnChanged = func(title string) {
		for _, p := range setup.Presets {
			if p.Title != title {
				continue
			}
			f.fields.fill(p)
			needs := p.Name == "" || p.Auth == proxy.AuthNone
			f.extra.Hidden = !needs
			f.fields.key.Hidden = p.Auth == proxy.AuthNone
			if p.Name == "" {
				f.fields.name.SetText("custom")
			}
			f.extra.Refresh()
			f.fields.key.Refresh()
		}
	}
	f.fields.preset.OnChanged(f.fields.preset.Selected)
	f.test = widget.NewButton(lang.L("Save and test"), f.saveAndTest)
	f.test.Importance = widget.HighImportance
	f.done = widget.NewButton(lang.L("Done: show my base URL"), f.finish)
	f.done.Importance = widget.SuccessImportance
	f.done.Hide()
	skip := widget.NewButton(lang.L("Skip"), f.finish)

	welcome := widget.NewLabelWithStyle(lang.L("Welcome to Gatehouse"), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	intro := widget.NewLabel(lang.L("Three steps to a base URL your IDE and tools can use. Your key goes to the system keychain; your tools never see it."))
	intro.Wrapping = fyne.TextWrapWord
	f.content = container.NewVScroll(container.NewPadded(container.NewVBox(
		welcome, intro, widget.NewSeparator(),
		heading(lang.L("1. Pick your provider")), f.fields.preset, f.fields.note, f.extra,
		heading(lang.L("2. Paste its key")), f.fields.key,
		heading(lang.L("3. Test it")), container.NewHBox(f.test, f.done, skip), f.result,
	)))
	return f
}

// saveAndTest saves the upstream with its key, then asks it for its models.
func (f *firstRun) saveAndTest() {
	up, key, prev := f.fields.upstream(), strings.TrimSpace(f.fields.key.Text), f.saved
	up.Via = proxy.ViaDirect
	f.test.Disable()
	f.result.SetText(lang.L("Testing…"))
	f.result.Show()
	var got proxy.UpstreamTest
	saved := prev
	f.u.run(func() error {
		switch {
		case prev == up.Name: // a second try changes the first, its key replaced
			if err := f.u.setup.SaveUpstream(prev, up, ""); err != nil {
				return err
			}
			if key != "" {
				if _, err := f.u.setup.AddKey(prev, "default", key); err != nil {
					return err
				}
			}
		case prev != "": // another provider: the first try goes
			if err := f.u.setup.RemoveUpstream(prev); err != nil {
				return err
			}
			saved = ""
			fallthrough
		default:
			if err := f.u.setup.SaveUpstream("", up, key); err != nil {
				return err
			}
			saved = up.Name
		}
		return f.u.backend.with(func(s *proxy.Service) (err error) {
			got, err = s.Forwarder.TestUpstream(context.Background(), up.Name, testTimeout)
			return err
		})
	}, func(err error) {
		f.saved = saved
		f.test.Enable()
		f.result.SetText(testResult(got, err))
		if err == nil {
			f.done.Show()
		}
	})
}

// finish shows the sections, on the Overview.
func (f *firstRun) finish() {
	f.u.window.SetContent(f.u.tabs)
	f.u.show(f.u.overview.content)
	f.u.apply(f.u.backend.snapshot(time.Now()))
}
