package app

import (
	"errors"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/setup"
)

// prefNotifications is the preference that turns desktop notifications
// off; it is the window's own, not the forwarder's, so it lives in Fyne's
// preferences rather than config.toml.
const prefNotifications = "notifications"

func (u *ui) notificationsOn() bool {
	return u.app.Preferences().BoolWithFallback(prefNotifications, true)
}

// settings: where Gatehouse listens, launch at login, notifications,
// export and import of the whole setup, and where the config file is.
type settings struct {
	u         *ui
	content   fyne.CanvasObject
	listen    *widget.Entry
	listenErr *widget.Label
	share     *widget.Label // the warning while listen is not loopback
	autostart *widget.Check
	notify    *widget.Check
	status    *widget.Label      // what the last export or import did
	loading   bool               // autostart is being read; its check changes nothing
	saving    *dialog.FileDialog // the export's save dialog, once the export exists (for tests)
	asked     *form              // the passphrase form last shown (for tests)
}

func newSettings(u *ui) *settings {
	s := &settings{u: u, listen: widget.NewEntry(), listenErr: errorLabel(), share: widget.NewLabel(""), status: widget.NewLabel("")}
	s.share.Wrapping, s.share.Importance = fyne.TextWrapWord, widget.WarningImportance
	s.share.SetText(lang.L("Gatehouse is shared with your local network: every device on it can reach this port, and only clients with an access token get answers. Keys never leave this computer."))
	s.share.Hide()
	s.status.Wrapping = fyne.TextWrapWord
	s.listen.OnChanged = func(string) { s.showShare() }
	apply := widget.NewButton(lang.L("Apply"), s.applyListen)

	s.autostart = widget.NewCheck(lang.L("Start Gatehouse when I log in"), s.setAutostart)
	if u.backend.opts.Executable == "" {
		s.autostart.Disable()
	}
	s.notify = widget.NewCheck(lang.L("Show desktop notifications (a proxy pool fails over or goes down, a key is refused)"), func(on bool) {
		u.app.Preferences().SetBool(prefNotifications, on)
	})
	s.notify.SetChecked(u.notificationsOn())

	path := u.backend.opts.ConfigPath
	pathLabel := widget.NewLabelWithStyle(path, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	pathLabel.Truncation = fyne.TextTruncateEllipsis
	openFolder := widget.NewButtonWithIcon(lang.L("Open folder"), theme.FolderOpenIcon(), func() {
		if err := u.app.OpenURL(&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Dir(path))}); err != nil {
			u.showError(err)
		}
	})

	// Wrapped, so that the page fits an 800-pixel window in English too.
	moveText := widget.NewLabel(lang.L("Export writes the config and every key and certificate it names into one file, encrypted with a passphrase; Import puts them on this computer."))
	moveText.Wrapping = fyne.TextWrapWord
	s.content = container.NewVScroll(container.NewPadded(container.NewVBox(
		heading(lang.L("Listen address")),
		container.NewBorder(nil, nil, nil, apply, s.listen),
		s.listenErr,
		s.share,
		widget.NewSeparator(),
		heading(lang.L("Desktop")),
		s.autostart,
		s.notify,
		widget.NewSeparator(),
		heading(lang.L("Move your setup")),
		moveText,
		container.NewHBox(
			widget.NewButtonWithIcon(lang.L("Export…"), theme.UploadIcon(), s.export),
			widget.NewButtonWithIcon(lang.L("Import…"), theme.DownloadIcon(), s.importSetup)),
		s.status,
		widget.NewSeparator(),
		heading(lang.L("Config file")),
		container.NewBorder(nil, nil, nil, openFolder, pathLabel),
	)))
	return s
}

// refresh reads the current values (the autostart entry off Fyne's thread).
func (s *settings) refresh() {
	s.listen.SetText(s.u.last.Listen)
	if cfg, err := s.u.setup.Load(); err == nil {
		s.listen.SetText(cfg.Listen)
	}
	s.showShare()
	if s.u.backend.opts.Executable == "" {
		return
	}
	s.u.async(func() {
		on, _ := setup.Autostart()
		fyne.Do(func() {
			s.loading = true
			s.autostart.SetChecked(on)
			s.loading = false
		})
	})
}

func (s *settings) showShare() {
	host, _, err := net.SplitHostPort(strings.TrimSpace(s.listen.Text))
	ip := net.ParseIP(host)
	s.share.Hidden = err != nil || host == "localhost" || (ip != nil && ip.IsLoopback())
	s.share.Refresh()
}

func (s *settings) applyListen() {
	addr := strings.TrimSpace(s.listen.Text)
	s.listenErr.Hide()
	s.u.run(func() error { return s.u.setup.SetListen(addr) }, func(err error) {
		if err != nil {
			s.listenErr.SetText(localError(err))
			s.listenErr.Show()
			return
		}
		s.u.backend.restart()
	})
}

func (s *settings) setAutostart(on bool) {
	if s.loading {
		return
	}
	exe := s.u.backend.opts.Executable
	s.u.run(func() error { return setup.SetAutostart(on, exe) }, func(err error) {
		if err != nil {
			s.u.showError(err)
			s.refresh()
		}
	})
}

// passphrases asks for a passphrase (twice when confirm) and hands it on.
func (s *settings) passphrases(title string, confirm bool, then func(pass string)) {
	first, again := widget.NewPasswordEntry(), widget.NewPasswordEntry()
	var pass string
	f := newForm(s.u, title, lang.L("Continue"), func() func() error {
		p1, p2 := first.Text, again.Text
		return func() error {
			switch {
			case p1 == "":
				return errors.New(lang.L("Type a passphrase."))
			case confirm && p1 != p2:
				return errors.New(lang.L("The two passphrases differ."))
			}
			pass = p1
			return nil
		}
	})
	f.add(lang.L("Passphrase"), first, "")
	if confirm {
		f.add(lang.L("Passphrase again"), again, "")
	}
	f.Saved = func() { then(pass) }
	s.asked = f
	f.show()
}

// export makes the encrypted export first, off Fyne's thread, and only
// then asks where to save it: a refused passphrase or a keychain error
// never empties the file the user picked.
func (s *settings) export() {
	s.passphrases(lang.L("Export the setup"), true, s.exportWith)
}

func (s *settings) exportWith(pass string) {
	var data []byte
	var found, missing []string
	s.u.run(func() (err error) {
		data, found, missing, err = s.u.setup.ExportBytes(pass)
		return err
	}, func(err error) {
		if err != nil {
			s.u.showError(err)
			return
		}
		save := dialog.NewFileSave(func(w fyne.URIWriteCloser, err error) {
			if err != nil || w == nil {
				return
			}
			path := w.URI().Path()
			s.u.run(func() error {
				_, werr := w.Write(data)
				if cerr := w.Close(); werr == nil {
					werr = cerr
				}
				return werr
			}, func(err error) {
				if err != nil {
					s.u.showError(err)
					return
				}
				text := lang.L("Exported the config and {{.Count}} secrets to {{.Path}}.", map[string]any{"Count": len(found), "Path": path})
				if len(missing) > 0 {
					text += "\n" + lang.L("The keychain does not hold these, so they are not in the file: {{.Names}}", map[string]any{"Names": strings.Join(missing, ", ")})
				}
				s.status.SetText(text)
			})
		}, s.u.window)
		save.SetFileName("gatehouse-setup.age")
		save.Show()
		s.saving = save
	})
}

func (s *settings) importSetup() {
	open := dialog.NewFileOpen(func(r fyne.URIReadCloser, err error) {
		if err != nil || r == nil {
			return
		}
		path := r.URI().Path()
		r.Close()
		s.passphrases(lang.L("Import a setup"), false, func(pass string) { s.importFrom(path, pass) })
	}, s.u.window)
	open.Show()
}

func (s *settings) importFrom(path, pass string) {
	var got *setup.Imported
	s.u.run(func() (err error) {
		got, err = s.u.setup.Import(path, pass)
		return err
	}, func(err error) {
		if err != nil {
			s.u.showError(err)
			return
		}
		s.status.SetText(lang.L("Imported: the config is replaced; keychain entries: {{.Added}} added, {{.Replaced}} replaced.",
			map[string]any{"Added": len(got.Added), "Replaced": len(got.Replaced)}))
		s.u.backend.restart() // the imported listen address applies too
		s.refresh()
	})
}
