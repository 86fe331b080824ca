package app

import (
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/gatehouse-app/gatehouse/proxy"
)

// overview is the first section: the base URL, the state with Pause and
// Resume, the last hour, the upstreams at a glance, and ready-to-copy
// setup for the tools people point at Gatehouse.
type overview struct {
	u       *ui
	content fyne.CanvasObject

	baseURL   *widget.Label
	state     *widget.Label
	problem   *widget.Label // the reason the forwarder is stopped, when it is
	pause     *widget.Button
	hour      *widget.Label
	upstreams *widget.Label
	rejected  *fyne.Container // "Use again" for each rejected key
	rejKey    string
	setup     *widget.Accordion
	setupKey  string
}

func newOverview(u *ui) *overview {
	o := &overview{
		u:         u,
		baseURL:   widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true}),
		state:     widget.NewLabel(""),
		problem:   widget.NewLabel(""),
		hour:      widget.NewLabel(""),
		upstreams: widget.NewLabel(""),
		rejected:  container.NewHBox(),
		setup:     widget.NewAccordion(),
	}
	o.problem.Wrapping = fyne.TextWrapWord
	o.problem.Importance = widget.DangerImportance
	o.upstreams.Wrapping = fyne.TextWrapWord
	o.pause = widget.NewButton("", o.onPause)
	copyURL := widget.NewButtonWithIcon(lang.L("Copy"), theme.ContentCopyIcon(), func() { u.copy(u.last.BaseURL()) })
	o.content = container.NewVScroll(container.NewPadded(container.NewVBox(
		heading(lang.L("Base URL")),
		container.NewHBox(o.baseURL, copyURL),
		widget.NewSeparator(),
		heading(lang.L("State")),
		container.NewHBox(o.state, o.pause),
		o.problem,
		o.hour,
		widget.NewSeparator(),
		heading(lang.L("Upstreams")),
		o.upstreams,
		o.rejected,
		widget.NewSeparator(),
		container.NewHBox(heading(lang.L("Set up your tools")),
			widget.NewButton(lang.L("Connect a tool in one click…"), u.showConnect)),
		o.setup,
	)))
	return o
}

func heading(text string) *widget.Label {
	return widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
}

func (o *overview) onPause() {
	o.u.setPaused(o.u.last.State == stateRunning)
}

// apply shows s. On Fyne's thread.
func (o *overview) apply(s Snapshot) {
	o.baseURL.SetText(s.BaseURL())
	o.state.SetText(statusLine(s))
	switch s.State {
	case statePaused:
		o.pause.SetText(lang.L("Resume forwarding"))
		o.pause.Enable()
	case stateRunning:
		o.pause.SetText(lang.L("Pause forwarding"))
		o.pause.Enable()
	default:
		o.pause.SetText(lang.L("Pause forwarding"))
		o.pause.Disable()
	}
	o.problem.SetText("")
	o.problem.Hide()
	if s.State == stateStopped {
		o.problem.SetText(lang.L("Gatehouse is not forwarding: {{.Reason}}. Fix it and it starts by itself; the config file is {{.Path}}.",
			map[string]any{"Reason": s.Reason, "Path": s.ConfigPath}))
		o.problem.Show()
	}
	o.hour.SetText(lang.L("Last hour: {{.Requests}} requests, {{.Failures}} failures, {{.Tokens}} tokens",
		map[string]any{"Requests": s.Hour.Requests, "Failures": s.Hour.Failures, "Tokens": s.Hour.Tokens}))
	o.upstreams.SetText(upstreamsText(s))
	var rej strings.Builder
	for _, k := range s.Keys {
		if k.State == proxy.KeyRejected || k.State == proxy.KeyExhausted {
			rej.WriteString(k.Upstream + "\x00" + k.Label + "\x00")
		}
	}
	if rej.String() != o.rejKey { // rebuilt only when it changes, so that a click is never lost
		o.rejKey = rej.String()
		o.showRejected(s.Keys)
	}
	if key := fmt.Sprint(s.BaseURL(), s.Tokens); key != o.setupKey {
		o.setupKey = key
		o.setup.Items = nil
		for _, sn := range setupSnippets(s.Listen, s.Tokens) {
			text := sn.text
			code := widget.NewLabelWithStyle(text, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
			code.Wrapping = fyne.TextWrapBreak
			body := container.NewBorder(nil, nil, nil,
				widget.NewButtonWithIcon(lang.L("Copy"), theme.ContentCopyIcon(), func() { o.u.copy(text) }), code)
			o.setup.Append(widget.NewAccordionItem(sn.tool, container.NewVBox(widget.NewLabel(sn.where), body)))
		}
	}
}

// showRejected offers "Use again" for each rejected or exhausted key.
func (o *overview) showRejected(keys []proxy.KeyStatus) {
	o.rejected.RemoveAll()
	for _, k := range keys {
		if k.State != proxy.KeyRejected && k.State != proxy.KeyExhausted {
			continue
		}
		up, label := k.Upstream, k.Label
		o.rejected.Add(widget.NewButton(lang.L("Use {{.Label}} of {{.Upstream}} again", map[string]any{"Label": label, "Upstream": up}), func() {
			o.u.act(func(s *proxy.Service) error { s.Forwarder.EnableKey(up, label); return nil })
		}))
	}
}

// upstreamsText lists each upstream: name, models, route and key states.
func upstreamsText(s Snapshot) string {
	if s.State == stateStopped && len(s.Upstreams) == 0 {
		return lang.L("Not known until the config loads.")
	}
	if len(s.Upstreams) == 0 {
		return lang.L("No upstream is configured yet: add one in Upstreams (pick your provider and paste its key).")
	}
	var b strings.Builder
	for _, up := range s.Upstreams {
		route := up.Via
		if route == "" {
			route = "direct"
		}
		models := strings.Join(up.Models, ", ")
		if models == "" {
			models = "/u/" + up.Name + "/"
		}
		fmt.Fprintf(&b, "%s — %s — %s — %s\n", up.Name, models, route, keysText(up.Name, s.Keys))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// keysText is one upstream's keys and their states.
func keysText(upstream string, keys []proxy.KeyStatus) string {
	var parts []string
	for _, k := range keys {
		if k.Upstream != upstream {
			continue
		}
		st := keyStateName(k.State)
		if !k.Until.IsZero() {
			st += " " + lang.L("until {{.Time}}", map[string]any{"Time": k.Until.Local().Format("15:04:05")})
		}
		parts = append(parts, k.Label+": "+st)
	}
	if len(parts) == 0 {
		return lang.L("no key")
	}
	return strings.Join(parts, ", ")
}

func keyStateName(s string) string {
	switch s {
	case proxy.KeyOK:
		return lang.L("ok")
	case proxy.KeyCooling:
		return lang.L("cooling")
	case proxy.KeyRejected:
		return lang.L("rejected")
	case proxy.KeyExhausted:
		return lang.L("exhausted")
	}
	return s
}

// snippet is the setup of one tool.
type snippet struct{ tool, where, text string }

// tokenPlaceholder stands where a local access token goes when tokens are
// on; the token itself is shown only once, when it is made.
const tokenPlaceholder = "<your gatehouse token>"

// setupSnippets are the lines that point each tool at Gatehouse at listen.
func setupSnippets(listen string, tokens bool) []snippet {
	base := "http://" + listen + "/v1"
	key := "gatehouse" // any value: Gatehouse injects the real key
	if tokens {
		key = tokenPlaceholder
	}
	return []snippet{
		{"Continue", lang.L("In ~/.continue/config.yaml, under models:"), fmt.Sprintf(
			"- name: Gatehouse\n  provider: openai\n  model: gpt-4o\n  apiBase: %s\n  apiKey: %s", base, key)},
		{"Cline / Roo Code", lang.L("In the extension's settings, API Provider \"OpenAI Compatible\":"), fmt.Sprintf(
			"Base URL: %s\nAPI Key: %s\nModel ID: gpt-4o", base, key)},
		{"Codex CLI", lang.L("In ~/.codex/config.toml:"), fmt.Sprintf(
			"model_provider = \"gatehouse\"\n\n[model_providers.gatehouse]\nname = \"Gatehouse\"\nbase_url = \"%s\"\nwire_api = \"responses\"\nenv_key = \"GATEHOUSE_KEY\"\n\n# and in your shell: export GATEHOUSE_KEY=%s", base, key)},
		{"Claude Code", lang.L("In your shell, or the env object of ~/.claude/settings.json:"), fmt.Sprintf(
			"export ANTHROPIC_BASE_URL=http://%s\nexport ANTHROPIC_AUTH_TOKEN=%s", listen, key)},
		{"Zed", lang.L("In Zed's settings.json:"), fmt.Sprintf(
			"\"language_models\": {\n  \"openai\": {\n    \"api_url\": \"%s\"\n  }\n}\n// and set the OpenAI API key in Zed's Agent settings to: %s", base, key)},
		{"curl", lang.L("From a terminal:"), fmt.Sprintf(
			"curl %s/chat/completions \\\n  -H 'Authorization: Bearer %s' \\\n  -H 'Content-Type: application/json' \\\n  -d '{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'", base, key)},
	}
}
