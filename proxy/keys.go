package proxy

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key strategies.
const (
	KeyRoundRobin = "round-robin"
	KeyFillFirst  = "fill-first"
)

// Key states.
const (
	KeyOK       = "ok"
	KeyCooling  = "cooling"
	KeyRejected = "rejected"
	// KeyExhausted (ratelimit.go): a quota or balance used up.
)

// DefaultCooling is how long a key rests after a 429 without Retry-After.
const DefaultCooling = 60 * time.Second

// KeyLister is implemented by Credentials that hold several keys for an
// upstream; the forwarder then rotates over them. Without it, the one key
// Credential gives is used.
type KeyLister interface {
	Credentials(up *Upstream) ([]Credential, error)
}

// KeyStatus is one key's state, for the request log's readers, `gatehouse
// key list`, the GUI and the tray.
type KeyStatus struct {
	Upstream string    `json:"upstream"`
	Label    string    `json:"label"`
	State    string    `json:"state"`
	Until    time.Time `json:"until,omitzero"` // end of cooling
	Reason   string    `json:"reason,omitempty"`
}

// keyState is what the forwarder learnt about one key from its upstream:
// a 429 makes it rest (cooling) until Retry-After, then one request tries
// it (half-open) before it is ok again; a 401 (or an error body that says
// the key is invalid) rejects it until its value changes or the user
// enables it again.
type keyState struct {
	state  string
	until  time.Time
	reason string
	secret [sha256.Size]byte // the value that was rejected
}

// probeHold is how long a half-open probe has the key to itself; a probe
// that never reports back (its request ended first) frees it after that.
const probeHold = 10 * time.Second

// keyStates holds every key's state across reloads, and each upstream's
// round-robin position.
type keyStates struct {
	mu    sync.Mutex
	m     map[keyID]*keyState
	turns map[string]uint64
}

// keyID names a key: its upstream and label (a struct, where a joined
// string was built three times a request).
type keyID struct{ upstream, label string }

// lock takes the mutex and makes the maps on first use.
func (ks *keyStates) lock() {
	ks.mu.Lock()
	if ks.m == nil {
		ks.m, ks.turns = map[keyID]*keyState{}, map[string]uint64{}
	}
}

// usable returns the keys of up that may be tried now, in the order of its
// key strategy. A cooling key whose time is up is included once, as the
// half-open probe. When none is usable, the error says why.
func (ks *keyStates) usable(up *Upstream, creds []Credential, now time.Time) ([]Credential, error) {
	ks.lock()
	defer ks.mu.Unlock()
	out := make([]Credential, 0, len(creds))
	var why []string
	for _, c := range creds {
		s := ks.m[keyID{up.Name, c.Label}]
		switch {
		case s == nil || s.state == KeyOK:
		case s.state == KeyRejected && s.secret != sha256.Sum256([]byte(c.Secret)):
			delete(ks.m, keyID{up.Name, c.Label}) // the key was replaced
		case s.state == KeyRejected:
			why = append(why, fmt.Sprintf("%s rejected (%s)", c.Label, s.reason))
			continue
		case s.state == KeyExhausted && s.until.IsZero():
			why = append(why, fmt.Sprintf("%s exhausted (%s; enable it again once topped up)", c.Label, s.reason))
			continue
		case s.state == KeyExhausted && now.Before(s.until):
			why = append(why, fmt.Sprintf("%s exhausted until %s (%s)", c.Label, s.until.Format(time.TimeOnly), s.reason))
			continue
		case now.Before(s.until):
			why = append(why, fmt.Sprintf("%s cooling until %s", c.Label, s.until.Format(time.TimeOnly)))
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no key of upstream %q can be used now: %s", up.Name, strings.Join(why, "; "))
	}
	if up.KeyStrategy != KeyFillFirst && len(out) > 1 {
		turn := ks.turns[up.Name]
		ks.turns[up.Name] = turn + 1
		start := int(turn % uint64(len(out)))
		out = append(out[start:], out[:start]...)
	}
	return out, nil
}

// trying notes that a request is about to use a key: a cooling key whose
// time is up is then the half-open probe, and other requests leave it
// alone until the probe reports (or probeHold passes).
func (ks *keyStates) trying(up *Upstream, c Credential, now time.Time) {
	ks.lock()
	defer ks.mu.Unlock()
	if s := ks.m[keyID{up.Name, c.Label}]; s != nil && (s.state == KeyCooling || s.state == KeyExhausted && !s.until.IsZero()) {
		s.state, s.until = KeyCooling, now.Add(probeHold) // the reset has come: this request probes
	}
}

// observe updates a key's state from the upstream's answer and reports
// whether it rejected the key, and what the answer said of limits; res is
// nil when the upstream could not be reached, which says nothing of the
// key. An overloaded upstream says nothing of the key either.
func (ks *keyStates) observe(up *Upstream, c Credential, res *http.Response, now time.Time) (rejected bool, lim limit) {
	if res != nil {
		lim = readLimit(res, now) // they read error bodies: not under the lock
	}
	if up.Auth == AuthNone {
		return false, lim
	}
	invalid := ""
	if res != nil {
		invalid = invalidKey(res)
	}
	ks.lock()
	defer ks.mu.Unlock()
	id := keyID{up.Name, c.Label}
	s := ks.m[id]
	switch {
	case res == nil:
		if s != nil && s.state == KeyCooling {
			s.until = now // unreachable says nothing of the key: let another request probe
		}
	case lim.class == LimitOverloaded:
	case lim.class == LimitQuota:
		ks.m[id] = &keyState{state: KeyExhausted, until: lim.until, reason: lim.reason}
	case lim.class == LimitRate:
		ks.m[id] = &keyState{state: KeyCooling, until: lim.until, reason: lim.reason}
	case invalid != "":
		ks.m[id] = &keyState{state: KeyRejected, reason: invalid, secret: sha256.Sum256([]byte(c.Secret))}
		return true, lim
	default:
		if s != nil {
			delete(ks.m, id) // it works (a 403 is about the request, not the key)
		}
	}
	return false, lim
}

// invalidKeyMarkers are what error bodies say when the key itself is
// invalid: OpenAI's code, Anthropic's type, Gemini's reason.
var invalidKeyMarkers = []string{"invalid_api_key", "authentication_error", "API_KEY_INVALID"}

// maxErrorPeek bounds how much of an error body (a 400's or 403's, for
// invalidKeyMarkers; a 429's or 503's, for its kind of limit) is read to
// judge it; the body is passed on whole.
const maxErrorPeek = 64 << 10

// invalidKey says why an answer rejects the key that was used, or "": a
// 401, or a 400 or 403 whose error body says the key is invalid. Any other
// 403 (a model the account may not use, a refused region) is about the
// request and says nothing of the key.
func invalidKey(res *http.Response) string {
	switch res.StatusCode {
	case http.StatusUnauthorized:
		return res.Status
	case http.StatusBadRequest, http.StatusForbidden:
	default:
		return ""
	}
	if m := containsAny(peekBody(res), invalidKeyMarkers); m != "" {
		return res.Status + " (" + m + ")"
	}
	return ""
}

// ok reports whether a key is known to work or untried: not cooling,
// rejected or being probed.
func (ks *keyStates) ok(up *Upstream, c Credential) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	s := ks.m[keyID{up.Name, c.Label}]
	return s == nil || s.state == KeyOK
}

// enable forgets what was learnt about a key.
func (ks *keyStates) enable(upstream, label string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	delete(ks.m, keyID{upstream, label})
}

// status lists the states of the given upstreams' keys.
func (ks *keyStates) status(ups []*Upstream, now time.Time) []KeyStatus {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	var out []KeyStatus
	for _, up := range ups {
		labels := up.Keys
		if up.KeyEnv != "" {
			labels = append(slices.Clip(labels), "env:"+up.KeyEnv)
		}
		for _, label := range labels {
			st := KeyStatus{Upstream: up.Name, Label: label, State: KeyOK}
			if s := ks.m[keyID{up.Name, label}]; s != nil {
				st.State, st.Reason = s.state, s.reason
				if (s.state == KeyCooling || s.state == KeyExhausted) && now.Before(s.until) {
					st.Until = s.until
				}
			}
			out = append(out, st)
		}
	}
	return out
}

// retryAfter reads Retry-After (seconds or an HTTP date), else def.
func retryAfter(res *http.Response, def time.Duration, now time.Time) time.Duration {
	v := res.Header.Get("Retry-After")
	if v == "" {
		return def
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return def
}

// KeyStatus lists the state of every configured key.
func (f *Forwarder) KeyStatus() []KeyStatus {
	rt := f.state.Load()
	ups := make([]*Upstream, len(rt.upstreams))
	for i, u := range rt.upstreams {
		ups[i] = u.cfg
	}
	return f.keys.status(ups, time.Now())
}

// EnableKey puts a cooling or rejected key back into use.
func (f *Forwarder) EnableKey(upstream, label string) {
	f.keys.enable(upstream, label)
	f.changes.notify()
}

// KeyEnablePath puts a rejected or cooling key back into use in the
// running forwarder (`gatehouse key enable UPSTREAM LABEL`): a POST with
// the JSON body {"upstream": "...", "label": "..."}. It answers clients on
// this machine only, and no web page: a request with an Origin header, or
// whose body is not declared as JSON (which a page cannot send without a
// CORS preflight, which is refused), is refused. Local access tokens are
// not asked for, as for StatusPath: a command on this machine has none.
const KeyEnablePath = "/gatehouse/keys/enable"

// KeyRef names one key of one upstream.
type KeyRef struct {
	Upstream string `json:"upstream"`
	Label    string `json:"label"`
}

func (f *Forwarder) serveKeyEnable(w http.ResponseWriter, r *http.Request) *apiError {
	switch {
	case !isLoopbackHost(clientIP(r)):
		return newAPIError(http.StatusForbidden, "not_local", "keys can be enabled only from the machine Gatehouse runs on")
	case r.Header.Get("Origin") != "":
		return newAPIError(http.StatusForbidden, "origin_not_allowed", "keys cannot be enabled from a web page")
	case r.Method != http.MethodPost:
		return newAPIError(http.StatusMethodNotAllowed, "method_not_allowed", "POST {\"upstream\": ..., \"label\": ...} to enable a key")
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"):
		return newAPIError(http.StatusUnsupportedMediaType, "bad_content_type", "send the key as JSON (Content-Type: application/json)")
	}
	var ref KeyRef
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&ref); err != nil {
		return newAPIError(http.StatusBadRequest, "bad_body", "the body must be JSON such as {\"upstream\": \"openai\", \"label\": \"main\"}")
	}
	for _, k := range f.KeyStatus() {
		if k.Upstream == ref.Upstream && k.Label == ref.Label {
			f.EnableKey(ref.Upstream, ref.Label)
			k.State, k.Reason, k.Until = KeyOK, "", time.Time{}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			_ = json.NewEncoder(w).Encode(k)
			return nil
		}
	}
	return newAPIError(http.StatusNotFound, "unknown_key",
		fmt.Sprintf("the running forwarder has no key %q of upstream %q; see gatehouse key list", ref.Label, ref.Upstream))
}
