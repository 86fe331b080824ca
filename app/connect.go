package app

import (
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/connect"
	"github.com/gatehouse-app/gatehouse/setup"
)

// connectSection points IDEs and CLIs at Gatehouse in one click, with the
// code `gatehouse connect` runs: one row per tool with its state, Connect
// (after showing the change) and Undo.
type connectSection struct {
	u       *ui
	content fyne.CanvasObject
	model   *widget.Entry
	rows    map[string]*toolRow

	// shown is the connection last shown for confirmation (for tests).
	shown *setup.Connection
}

type toolRow struct {
	state, path   *widget.Label
	connect, undo *widget.Button
}

func newConnectSection(u *ui) *connectSection {
	c := &connectSection{u: u, rows: map[string]*toolRow{}, model: widget.NewEntry()}
	c.model.SetPlaceHolder(lang.L("Model (empty: each tool's own default)"))
	grid := container.New(&columns{widths: []float32{190, 150, 0, 100, 90}})
	for _, t := range connect.Tools() {
		tool := t
		r := &toolRow{state: widget.NewLabel(""), path: widget.NewLabel("")}
		r.path.Truncation = fyne.TextTruncateEllipsis
		r.connect = widget.NewButton(lang.L("Connect"), func() { c.onConnect(tool) })
		r.undo = widget.NewButton(lang.L("Undo"), func() { c.onUndo(tool) })
		c.rows[t.Name] = r
		grid.Add(widget.NewLabelWithStyle(t.Title, fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
		grid.Add(r.state)
		grid.Add(r.path)
		grid.Add(r.connect)
		grid.Add(r.undo)
	}
	intro := widget.NewLabel(lang.L("Gatehouse writes each tool's settings file for you: it shows the change first, keeps everything else in the file, and Undo puts the file back exactly as it was. No upstream key is ever written there."))
	intro.Wrapping = fyne.TextWrapWord
	refresh := widget.NewButtonWithIcon(lang.L("Look again"), theme.ViewRefreshIcon(), c.refresh)
	c.content = container.NewBorder(
		container.NewVBox(intro, container.NewBorder(nil, nil, widget.NewLabel(lang.L("Model")), refresh, c.model)),
		nil, nil, nil, container.NewVScroll(container.NewPadded(grid)))
	return c
}

// refresh reads each tool's state off Fyne's thread (files and PATH).
func (c *connectSection) refresh() {
	base := setup.LoopbackURL(c.u.last.Listen)
	c.u.async(func() {
		states := map[string]connect.Status{}
		for _, t := range connect.Tools() {
			states[t.Name] = t.Status(base)
		}
		fyne.Do(func() { c.show(states) })
	})
}

func (c *connectSection) show(states map[string]connect.Status) {
	for name, st := range states {
		r := c.rows[name]
		r.state.SetText(toolStateName(st))
		r.path.SetText(st.Path)
		if st.Path == "" {
			r.path.SetText(lang.L("settings inside the IDE"))
		}
	}
}

func toolStateName(st connect.Status) string {
	switch st.State {
	case connect.Found:
		return lang.L("found")
	case connect.ConnectedHere:
		return "✓ " + lang.L("connected")
	case connect.ConnectedElsewhere:
		return lang.L("connected elsewhere")
	}
	return lang.L("not found")
}

func (c *connectSection) onConnect(tool *connect.Tool) {
	cfgPath, model := c.u.backend.opts.ConfigPath, strings.TrimSpace(c.model.Text)
	base := setup.LoopbackURL(c.u.last.Listen) // where this app listens
	c.u.async(func() {
		conn, err := setup.PrepareConnect(cfgPath, base, tool, model)
		if svc := c.u.backend.service(); conn != nil && svc != nil {
			conn.EditConfig = svc.Edit // one edit of the config at a time, with the window's
		}
		fyne.Do(func() {
			if err != nil {
				c.u.showError(err)
				return
			}
			c.ask(conn)
		})
	})
}

// ask shows what connecting will change and waits for the user's word.
func (c *connectSection) ask(conn *setup.Connection) {
	if !conn.Changed() {
		dialog.ShowInformation(conn.Tool.Title, lang.L("{{.Tool}} already points at Gatehouse ({{.Path}}): nothing to change.",
			map[string]any{"Tool": conn.Tool.Title, "Path": conn.Plan.Path}), c.u.window)
		return
	}
	var body []fyne.CanvasObject
	if conn.Warning != "" {
		w := widget.NewLabel(conn.Warning)
		w.Wrapping, w.Importance = fyne.TextWrapWord, widget.WarningImportance
		body = append(body, w)
	}
	text, action := conn.Plan.Diff, lang.L("Write")
	if text == "" { // the file stays as it is; only a new token is made
		text = lang.L("(no change to the file; a new access token is made for it)")
	}
	if conn.Tool.InIDE() {
		body = append(body, widget.NewLabel(lang.L("{{.Tool}} keeps its settings inside the IDE. Fill in:", map[string]any{"Tool": conn.Tool.Title})))
		text, action = fieldsText(conn, false), lang.L("Done")
	} else {
		body = append(body, widget.NewLabel(lang.L("This change will be written to {{.Path}}:", map[string]any{"Path": conn.Plan.Path})))
	}
	code := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	code.Selectable = true
	scroll := container.NewScroll(code)
	scroll.SetMinSize(fyne.NewSize(640, 300))
	c.shown = conn
	dialog.NewCustomConfirm(lang.L("Connect {{.Tool}}", map[string]any{"Tool": conn.Tool.Title}), action, lang.L("Cancel"),
		container.NewBorder(container.NewVBox(body...), nil, nil, nil, scroll),
		func(yes bool) { c.confirm(conn, yes) }, c.u.window).Show()
}

// confirm writes conn (yes) or drops it: each dialog writes its own.
func (c *connectSection) confirm(conn *setup.Connection, yes bool) {
	if !yes {
		return
	}
	c.u.async(func() {
		err := conn.Apply()
		fyne.Do(func() {
			if err != nil {
				c.u.showError(err)
				return
			}
			c.done(conn)
			c.refresh()
		})
	})
}

// done says what was written, and shows a new token this once.
func (c *connectSection) done(conn *setup.Connection) {
	msg := lang.L("{{.Tool}} now points at Gatehouse.", map[string]any{"Tool": conn.Tool.Title})
	if conn.NewToken == "" && !conn.Tool.InIDE() && conn.Tool.Name != "zed" {
		dialog.ShowInformation(conn.Tool.Title, msg, c.u.window)
		return
	}
	var text string
	switch {
	case conn.Tool.InIDE():
		text = fieldsText(conn, true)
	case conn.Tool.Name == "zed":
		msg += " " + lang.L("Zed keeps API keys in the system keychain: in its agent settings, enter this as the OpenAI API key:")
		text = conn.Target.Token
		if conn.NewToken == "" && conn.Target.TokenName != "" {
			text = lang.L("the token {{.Name}}, shown when it was made", map[string]any{"Name": conn.Target.TokenName})
		}
	default:
		msg += " " + lang.L("Gatehouse made the access token {{.Name}} for it and wrote it there.", map[string]any{"Name": conn.Target.TokenName})
	}
	if conn.NewToken != "" {
		msg += " " + lang.L("A new token is shown only this once.")
	}
	l := widget.NewLabel(msg)
	l.Wrapping = fyne.TextWrapWord
	content := []fyne.CanvasObject{l}
	if text != "" {
		code := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		code.Selectable = true
		content = append(content, container.NewBorder(nil, nil, nil,
			widget.NewButtonWithIcon(lang.L("Copy"), theme.ContentCopyIcon(), func() { c.u.copy(text) }), code))
	}
	d := dialog.NewCustom(conn.Tool.Title, lang.L("Close"), container.NewVBox(content...), c.u.window)
	d.Resize(fyne.NewSize(640, 0))
	d.Show()
}

// fieldsText lists the fields to fill in an IDE; the token's value only
// when it was just made and reveal is set (after Apply).
func fieldsText(conn *setup.Connection, reveal bool) string {
	var b strings.Builder
	for _, f := range conn.Tool.Fields(conn.Target) {
		v := f.Value
		if f.Secret && conn.Target.TokenName != "" && (conn.NewToken == "" || !reveal) {
			v = lang.L("the token {{.Name}}, shown when it was made", map[string]any{"Name": conn.Target.TokenName})
			if conn.NewToken != "" {
				v = lang.L("a new token {{.Name}}, shown once you choose Done", map[string]any{"Name": conn.Target.TokenName})
			}
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Label, v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func (c *connectSection) onUndo(tool *connect.Tool) {
	cfgPath := c.u.backend.opts.ConfigPath
	c.u.async(func() {
		d, err := setup.UndoConnect(cfgPath, tool)
		fyne.Do(func() {
			if err != nil {
				c.u.showError(err)
				return
			}
			msg := lang.L("{{.Tool}} keeps its settings inside the IDE: clear them there.", map[string]any{"Tool": tool.Title})
			switch {
			case d.Removed:
				msg = lang.L("Removed {{.Path}}, which Gatehouse had made.", map[string]any{"Path": d.Path})
			case d.Path != "":
				msg = lang.L("Put back {{.Path}} as it was.", map[string]any{"Path": d.Path})
			}
			if d.Revoked != "" {
				msg += " " + lang.L("Revoked the token {{.Name}}.", map[string]any{"Name": d.Revoked})
			}
			dialog.ShowInformation(tool.Title, msg, c.u.window)
			c.refresh()
		})
	})
}

// columns lays its objects out in rows of len(widths) cells; a width of 0
// takes an even share of what is left.
type columns struct{ widths []float32 }

func (l *columns) fixed() (sum float32, flex int) {
	for _, w := range l.widths {
		if w == 0 {
			flex++
		}
		sum += w
	}
	return sum, flex
}

func (l *columns) MinSize(objs []fyne.CanvasObject) fyne.Size {
	sum, flex := l.fixed()
	var h float32
	for i := 0; i < len(objs); i += len(l.widths) {
		h += rowHeight(objs[i:min(i+len(l.widths), len(objs))])
	}
	return fyne.NewSize(sum+float32(flex)*100, h)
}

func (l *columns) Layout(objs []fyne.CanvasObject, size fyne.Size) {
	sum, flex := l.fixed()
	share := float32(100)
	if flex > 0 {
		share = max((size.Width-sum)/float32(flex), 100)
	}
	var y float32
	for i := 0; i < len(objs); i += len(l.widths) {
		row := objs[i:min(i+len(l.widths), len(objs))]
		h := rowHeight(row)
		var x float32
		for j, o := range row {
			w := l.widths[j]
			if w == 0 {
				w = share
			}
			o.Move(fyne.NewPos(x, y))
			o.Resize(fyne.NewSize(w, h))
			x += w
		}
		y += h
	}
}
