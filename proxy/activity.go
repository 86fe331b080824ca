package proxy

import (
	"net/http"
	"time"
)

// Pausing. While paused the listener stays up and every API request gets
// 503 in OpenAI's error shape, so a client shows why instead of "connection
// refused". The switch lives in memory: a restart always forwards.

// SetPaused pauses or resumes forwarding and tells subscribers.
func (f *Forwarder) SetPaused(on bool) {
	if f.paused.Swap(on) != on {
		f.changes.notify()
	}
}

// Paused reports whether forwarding is paused.
func (f *Forwarder) Paused() bool { return f.paused.Load() }

// errPaused is every API request's answer while paused.
var errPaused = newAPIError(http.StatusServiceUnavailable, "gatehouse_paused",
	"Gatehouse is paused: it forwards nothing until you choose Resume forwarding in its tray menu or window")

// Failed reports whether the request failed: an error status, or an error
// found in an answer that began well (a stream that broke or stalled).
func (r *Record) Failed() bool { return r.Status >= 400 || r.Error != "" }

// Activity counts requests over a recent span of time, for the tray and
// the window; the request log keeps it per minute for the last hour.
type Activity struct {
	Requests int   `json:"requests"`
	Failures int   `json:"failures"`
	Tokens   int64 `json:"tokens"` // prompt and completion tokens together
}

// activityMinutes is how far back Activity can look.
const activityMinutes = 60

// minuteCount is one minute of activity; minute is its Unix minute.
type minuteCount struct {
	minute int64
	Activity
}

// count adds r to the minute it ended in. The caller holds l.mu.
func (l *RequestLog) count(r *Record) {
	m := r.Start.Add(r.Duration).Unix() / 60
	c := &l.minutes[m%activityMinutes]
	if c.minute > m {
		return // older than the hour this slot now counts
	}
	if c.minute != m {
		*c = minuteCount{minute: m}
	}
	c.Requests++
	if r.Failed() {
		c.Failures++
	}
	c.Tokens += r.PromptTokens + r.CompletionTokens
}

// Activity totals the requests that ended within span before now (at most
// an hour, counted in whole minutes: the current one and span/1m before it).
func (l *RequestLog) Activity(span time.Duration, now time.Time) Activity {
	last := now.Unix() / 60
	first := last - int64(min(span, activityMinutes*time.Minute)/time.Minute) + 1
	var a Activity
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.minutes {
		if c.minute >= first && c.minute <= last {
			a.Requests += c.Requests
			a.Failures += c.Failures
			a.Tokens += c.Tokens
		}
	}
	return a
}
