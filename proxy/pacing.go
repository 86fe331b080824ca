package proxy

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Local pacing: requests_per_minute and tokens_per_minute of an upstream
// hold for each of its keys (token buckets, golang.org/x/time/rate; the
// requests' burst is a second's worth, the tokens' a minute's, so that one
// large request can pass). A request that would exceed them
// waits, in arrival order, until one of the upstream's keys has room —
// that key is then tried first — rather than going out to get a 429. It
// waits at most queue_timeout (counted with the max_concurrent queue),
// then gets 429 in OpenAI's shape saying which limit and when it frees up.
// Tokens are counted from the request's own estimate (its max_tokens,
// max_completion_tokens or max_output_tokens, plus a quarter of the
// body's bytes for the prompt) and corrected upward from the answer's
// usage (see pace.used).
// A later attempt (a retry, another key after a 429, a fallback upstream
// with pacing of its own) is paced too, for the key it goes to: after its
// backoff it waits for that key's room, out of line (it has waited its
// turn once), but only while the request's queue_timeout lasts (and, for
// an answer that is not a stream, its request_timeout). A key whose room
// comes later is passed over like a cooling one: the answer the client
// gets is then the last attempt's, or, when none went out, the same 429
// as above. While the routed upstream backs off as overloaded its
// fallbacks go first, so the request does not wait in its line: each
// attempt is paced on its own.

// pacer paces one upstream's keys.
type pacer struct {
	rpm, tpm int
	line     chan struct{} // one waiter at a time; blocked sends are woken in order

	mu   sync.Mutex
	keys map[string]*keyPace // by label

	waiting atomic.Int64
	why     atomic.Pointer[paceWait] // the first waiter's reason, for /v1/queue
}

type keyPace struct {
	mu       sync.Mutex // a reservation and its giving back are one step
	req, tok *rate.Limiter
}

// paceWait is why requests wait, and until when.
type paceWait struct {
	Limit string    `json:"limit"`
	Until time.Time `json:"until"`
}

// pacers keeps each upstream's pacer across reloads while its limits stay.
type pacers struct {
	mu sync.Mutex
	m  map[string]*pacer
}

func (p *pacers) get(up *Upstream) *pacer {
	if up.RequestsPerMinute <= 0 && up.TokensPerMinute <= 0 {
		return nil
	}
	key := fmt.Sprintf("%s\x00%d\x00%d", up.Name, up.RequestsPerMinute, up.TokensPerMinute)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]*pacer{}
	}
	pc := p.m[key]
	if pc == nil {
		pc = &pacer{rpm: up.RequestsPerMinute, tpm: up.TokensPerMinute, line: make(chan struct{}, 1), keys: map[string]*keyPace{}}
		p.m[key] = pc
	}
	return pc
}

func (pc *pacer) key(label string) *keyPace {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	k := pc.keys[label]
	if k == nil {
		k = &keyPace{}
		if pc.rpm > 0 {
			// A second's worth at once: providers enforce a per-minute
			// limit over shorter windows, so a minute's burst would
			// still meet 429s.
			k.req = rate.NewLimiter(rate.Limit(float64(pc.rpm)/60), max(1, (pc.rpm+59)/60))
		}
		if pc.tpm > 0 {
			k.tok = rate.NewLimiter(rate.Limit(float64(pc.tpm)/60), pc.tpm)
		}
		pc.keys[label] = k
	}
	return k
}

// pace is what a paced request holds: the key it may use now, and the
// tokens it was counted for, to correct from the answer's usage.
type pace struct {
	pc     *pacer
	label  string
	tokens int
	rs     [2]*rate.Reservation
}

// take waits until one of labels has room for a request of tokens, in
// arrival order, until deadline. It returns the key to use.
func (pc *pacer) take(ctx context.Context, upstream string, labels []string, tokens int, deadline time.Time) (*pace, *apiError) {
	tokens = pc.clip(tokens)
	pc.waiting.Add(1)
	defer pc.waiting.Add(-1)
	select {
	case pc.line <- struct{}{}: // nobody ahead: no timer to make
	default:
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case pc.line <- struct{}{}:
		case <-timer.C:
			return nil, paceError(upstream, pc.why.Load())
		case <-ctx.Done():
			return nil, newAPIError(StatusClientClosed, "client_closed", "the client closed the request while it waited for the upstream's pace")
		}
	}
	defer func() { <-pc.line }()
	for {
		var best *paceWait
		for _, label := range labels {
			now, rs, wait, limit, ok := pc.key(label).reserve(tokens, time.Time{}) // room now only
			if ok {
				pc.why.Store(nil)
				return &pace{pc: pc, label: label, tokens: tokens, rs: rs}, nil
			}
			if best == nil || now.Add(wait).Before(best.Until) {
				best = &paceWait{Limit: limit, Until: now.Add(wait)}
			}
		}
		if best == nil {
			return nil, nil // no key to pace
		}
		pc.why.Store(best)
		if best.Until.After(deadline) {
			pc.why.CompareAndSwap(best, nil)
			return nil, paceError(upstream, best)
		}
		t := time.NewTimer(time.Until(best.Until))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			pc.why.CompareAndSwap(best, nil)
			return nil, newAPIError(StatusClientClosed, "client_closed", "the client closed the request while it waited for the upstream's pace")
		}
	}
}

// clip bounds a request's tokens: one request never waits for more than
// a minute's worth.
func (pc *pacer) clip(tokens int) int {
	if pc.tpm > 0 {
		tokens = min(max(tokens, 1), pc.tpm)
	}
	return tokens
}

// reserve takes a request and tokens from the key's buckets if both have
// them by deadline (room now is always taken); otherwise it takes nothing
// (ok is false). It says how long until both have room, and which limit
// holds the request back. Taking and giving back are one step under the
// key's lock: another request's reservation between them would keep the
// room given back. It reads the present under the lock and returns it:
// the buckets must see time only go forward (x/time/rate takes a time
// before the latest it saw as no time passed, and would count a refill
// twice).
func (k *keyPace) reserve(tokens int, deadline time.Time) (now time.Time, rs [2]*rate.Reservation, wait time.Duration, limit string, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now = time.Now()
	if k.req != nil {
		rs[0] = k.req.ReserveN(now, 1)
		if d := rs[0].DelayFrom(now); d > wait {
			wait, limit = d, "requests_per_minute"
		}
	}
	if k.tok != nil {
		rs[1] = k.tok.ReserveN(now, tokens)
		if d := rs[1].DelayFrom(now); d > wait {
			wait, limit = d, "tokens_per_minute"
		}
	}
	if wait > 0 && now.Add(wait).After(deadline) {
		giveBack(rs, now)
		return now, rs, wait, limit, false
	}
	return now, rs, wait, limit, true
}

// giveBack returns what reserve took, as far as its time has not come.
func giveBack(rs [2]*rate.Reservation, now time.Time) {
	for _, r := range rs {
		if r != nil {
			r.CancelAt(now)
		}
	}
}

// retry paces a later attempt on label, after its backoff (see the top of
// this file): it takes room for a request of tokens and says how long to
// wait for it, or takes nothing when the room comes only after deadline
// (p is nil). why says what holds the attempt back, when it waits.
func (pc *pacer) retry(label string, tokens int, deadline time.Time) (p *pace, wait time.Duration, why *paceWait) {
	tokens = pc.clip(tokens)
	now, rs, wait, limit, ok := pc.key(label).reserve(tokens, deadline)
	if wait > 0 {
		why = &paceWait{Limit: limit, Until: now.Add(wait)}
	}
	if !ok {
		return nil, 0, why
	}
	return &pace{pc: pc, label: label, tokens: tokens, rs: rs}, wait, why
}

// hold waits d for the room retry took, counted in GET /v1/queue (and its
// reason shown when no other waits); a client that leaves gives it back.
func (pc *pacer) hold(ctx context.Context, p *pace, d time.Duration, why *paceWait) error {
	if d <= 0 {
		return nil
	}
	pc.waiting.Add(1)
	defer pc.waiting.Add(-1)
	if pc.why.CompareAndSwap(nil, why) {
		defer pc.why.CompareAndSwap(why, nil)
	}
	if err := sleep(ctx, d); err != nil {
		k := pc.key(p.label)
		k.mu.Lock()
		giveBack(p.rs, time.Now())
		k.mu.Unlock()
		return err
	}
	return nil
}

// used corrects the key's token count from the answer's usage: what the
// answer used beyond the estimate is taken from the bucket too. An answer
// that used less gives nothing back: providers count a request's
// max_tokens against the limit the same way (OpenAI documents it), so the
// estimate is what the limit sees.
func (p *pace) used(actual int64) {
	if p == nil || p.pc.tpm <= 0 {
		return
	}
	if diff := int(actual) - p.tokens; diff > 0 {
		p.pc.key(p.label).tok.ReserveN(time.Now(), min(diff, p.pc.tpm))
	}
}

func paceError(upstream string, w *paceWait) *apiError {
	msg := fmt.Sprintf("upstream %q is paced by this forwarder and this request waited its queue_timeout", upstream)
	if w != nil {
		msg = fmt.Sprintf("upstream %q: this request would exceed %s on every key; it frees up at %s (in %s). Gatehouse holds it back instead of letting the provider refuse it; wait, or raise the limit or queue_timeout",
			upstream, w.Limit, w.Until.Format(time.TimeOnly), time.Until(w.Until).Round(time.Second))
	}
	return newAPIError(http.StatusTooManyRequests, "rate_limit_exceeded", msg)
}

// estimateTokens is what a request may use: the most it may write, plus
// a quarter of its body's bytes for the prompt, where each embedded
// base64 file (an image, a PDF, audio) counts mediaTokens rather than its
// bytes.
func estimateTokens(body []byte, fields jsonFields) int {
	n, blobs := len(body), base64Blob.FindAllIndex(body, -1)
	for _, m := range blobs {
		n -= m[1] - m[0]
	}
	n = n/4 + mediaTokens*len(blobs)
	for i, v := range fields.maxTokens { // read in the body's one pass (scanJSON)
		if i == len(fields.maxTokens)-1 {
			v = v.Get("maxOutputTokens")
		}
		if v.Exists() {
			n += int(v.Int())
			break
		}
	}
	return n
}

// base64Blob is a JSON string holding a file in base64 (a data: URL or
// bare), at least 1,000 characters long.
var base64Blob = regexp.MustCompile(`"(data:[^";,]{1,100};base64,)?[A-Za-z0-9+/=]{1000,}"`)

// mediaTokens is what one embedded file counts for: about what providers
// charge for a large image (OpenAI 765 at high detail, Anthropic up to
// about 1,600).
const mediaTokens = 1000

// paceDeadline is until when an attempt at u may wait for its key's room:
// while queue_timeout lasts and, for an answer that is not a stream, while
// u's request_timeout does (the attempt would begin with no time left).
func (st *forwardState) paceDeadline(u *upstreamRT) time.Time {
	d := st.queueDeadline()
	if t := st.rec.Start.Add(u.waits.request); !st.stream && t.Before(d) {
		d = t
	}
	return d
}

// queueDeadline is the end of the routed upstream's queue_timeout, which
// counts from the request's arrival.
func (st *forwardState) queueDeadline() time.Time { return st.rec.Start.Add(st.up.waits.queue) }

// paced says whether a request routed to u may meet pacing: its own, or a
// fallback's.
func (u *upstreamRT) paced(rt *runtime) bool {
	return u.pacer != nil || slices.ContainsFunc(u.cfg.Fallback, func(name string) bool {
		f := rt.byName[name]
		return f != nil && f.pacer != nil
	})
}
