package app

import (
	"fyne.io/fyne/v2/lang"

	"github.com/gatehouse-app/gatehouse/proxy"
	"github.com/gatehouse-app/gatehouse/proxy/pool"
)

// notice is one desktop notification.
type notice struct{ title, body string }

// notifier turns changes between two snapshots into notifications: a pool
// failed over to another member, every member of a pool went down, a key
// was rejected. Each is told once, when it happens, never per request.
type notifier struct{}

func (notifier) changes(prev, next Snapshot) []notice {
	if prev.State == "" {
		return nil // the first snapshot: nothing happened yet
	}
	var out []notice
	before := map[string]pool.Status{}
	for _, p := range prev.Status.Pools {
		before[p.Name] = p
	}
	for _, p := range next.Status.Pools {
		old, ok := before[p.Name]
		// Only a member known to work can fail over: before the first
		// check, every member counts as up without being so.
		if !ok || old.Selected == p.Selected || memberState(old, old.Selected) != "up" {
			continue
		}
		switch {
		case p.Selected == "" && anyEnabled(p):
			out = append(out, notice{lang.L("Every proxy of pool {{.Pool}} is down", map[string]any{"Pool": p.Name}),
				lang.L("Requests through it fail until one comes back. Last errors: {{.Errors}}",
					map[string]any{"Errors": shorten(lastErrors(p), 200)})})
		case p.Selected != "" && memberState(p, old.Selected) == "down":
			out = append(out, notice{lang.L("Pool {{.Pool}} switched proxies", map[string]any{"Pool": p.Name}),
				lang.L("{{.From}} is down; now using {{.To}}.", map[string]any{"From": old.Selected, "To": p.Selected})})
		}
	}
	was := map[string]string{}
	for _, k := range prev.Keys {
		was[k.Upstream+"\x00"+k.Label] = k.State
	}
	for _, k := range next.Keys {
		if k.State == proxy.KeyRejected && was[k.Upstream+"\x00"+k.Label] != proxy.KeyRejected {
			out = append(out, notice{lang.L("Key {{.Label}} of {{.Upstream}} was rejected", map[string]any{"Label": k.Label, "Upstream": k.Upstream}),
				lang.L("The upstream refused it ({{.Reason}}). Replace the key, or use it again from the window.",
					map[string]any{"Reason": shorten(k.Reason, 120)})})
		}
		if k.State == proxy.KeyExhausted && was[k.Upstream+"\x00"+k.Label] != proxy.KeyExhausted {
			out = append(out, notice{lang.L("Key {{.Label}} of {{.Upstream}} has used up its quota", map[string]any{"Label": k.Label, "Upstream": k.Upstream}),
				lang.L("The provider says: {{.Reason}}. Other keys and fallbacks take over; top it up, then use it again from the window.",
					map[string]any{"Reason": shorten(k.Reason, 120)})})
		}
	}
	return out
}

func anyEnabled(p pool.Status) bool {
	for _, m := range p.Members {
		if m.State != "disabled" {
			return true
		}
	}
	return false
}

func memberState(p pool.Status, url string) string {
	for _, m := range p.Members {
		if m.URL == url {
			return m.State
		}
	}
	return ""
}

func lastErrors(p pool.Status) string {
	var s string
	for _, m := range p.Members {
		if m.LastError == "" {
			continue
		}
		if s != "" {
			s += "; "
		}
		s += m.URL + ": " + m.LastError
	}
	return s
}
