package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Retry defaults.
const (
	DefaultMaxAttempts     = 3
	DefaultRetryBackoffCap = 10 * time.Second
	firstBackoff           = 250 * time.Millisecond
)

// attempts is the transport of every upstream's reverse proxy. It tries the
// request on the upstream's usable keys in turn and then on its fallback
// upstreams, at most max_attempts times, while nothing has gone to the
// client yet: a 429 cools the key (or marks it exhausted, ratelimit.go)
// and moves to the next, a 529 or an overloaded 503 moves to the fallbacks, a 401 (or
// an error body that says the key is invalid) rejects it and moves on, a
// 403 goes back as it is, a 500, 502, 503 or 504 moves on after a
// backoff, and an upstream that cannot be reached gives way to the next
// fallback. Any other answer, 2xx or a client error such as 400, is
// returned as it is. When every attempt failed, the last upstream answer
// is returned, faithfully; without one, the last error.
type attempts struct{ f *Forwarder }

func (a attempts) RoundTrip(out *http.Request) (*http.Response, error) {
	ctx := out.Context()
	st := stateFrom(ctx)
	primary := st.up.cfg
	maxAttempts := primary.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	backoffCap := st.up.waits.backoffCap

	// The candidates: the upstream's usable keys in strategy order, then
	// each fallback's. They are tried in turn, and again from the start
	// while attempts remain (a 5xx may pass); a key that cooled or was
	// rejected meanwhile, or an upstream that could not be reached, is
	// skipped.
	type candidate struct {
		u   *upstreamRT
		key Credential
	}
	var cands []candidate
	var lastErr error
	add := func(u *upstreamRT) {
		keys := st.keys // local pacing has listed the routed upstream's keys
		if u != st.up || keys == nil {
			var err error
			if keys, err = a.f.keysFor(u.cfg); err != nil {
				lastErr = err
				return
			}
		}
		for _, k := range keys {
			cands = append(cands, candidate{u, k})
		}
	}
	// An upstream that said it is overloaded goes after its fallbacks
	// until its backoff ends.
	if !st.overloaded {
		add(st.up)
	}
	for _, name := range primary.Fallback {
		if u := st.rt.byName[name]; u != nil {
			add(u)
		}
	}
	if st.overloaded {
		add(st.up)
	}
	// Whether a failed attempt's request went out decides whether another
	// upstream may be tried; with one upstream among the candidates it
	// decides nothing (one that could not be reached is not tried again),
	// and the request is not traced for it.
	several := slices.ContainsFunc(cands, func(c candidate) bool { return c.u != cands[0].u })
	var last *http.Response
	var unreachable map[*upstreamRT]bool // made on the first failure
	pos := 0
	next := func() (candidate, bool) {
		for range len(cands) {
			c := cands[pos%len(cands)]
			pos++
			if unreachable[c.u] || pos > len(cands) && !a.f.keys.ok(c.u.cfg, c.key) {
				continue
			}
			return c, true
		}
		return candidate{}, false
	}
	firstPace := st.pace // forward paced the routed upstream's first key
	passed := 0          // candidates passed over in a row (no time left, or no room in time)
	passOver := func() bool { passed++; return passed >= len(cands) }
	backedOff := false // the backoff after last has been waited
	attempted := false // an attempt went: its error says more than pacing's
	closeLast := func() {
		if last == nil {
			return
		}
		if ctx.Err() == nil && last.ProtoMajor < 2 {
			// Its error body, read to its end (what has arrived by now;
			// bounded in bytes and time), frees its HTTP/1 connection: the
			// next attempt at the same upstream reuses it instead of
			// opening another (a new TLS handshake to a real provider).
			// HTTP/2 shares its connection anyway. A peeked body is read
			// on past its head, which is in memory.
			whole := last.Body
			var body io.Reader = whole
			if p, ok := whole.(*peekedBody); ok {
				body = p.rest
			}
			t := time.AfterFunc(drainWait, func() { whole.Close() })
			_, _ = io.CopyN(io.Discard, body, maxErrorPeek)
			t.Stop()
		}
		last.Body.Close()
		last = nil
	}
tries:
	for n := 0; n < maxAttempts; {
		c, ok := next()
		if !ok {
			break
		}
		if last != nil {
			var wait time.Duration // the backoff after last, waited once
			if !backedOff {
				wait = backoff(last, n, backoffCap)
			}
			if left, _, _ := st.answerWait(c.u); !st.stream && wait >= left {
				// This answer's time would be over before the attempt
				// began: the client gets the last answer, not a 504.
				if passOver() {
					break tries
				}
				continue
			}
			if err := sleep(ctx, wait); err != nil {
				closeLast()
				return nil, err
			}
			backedOff = true
		}
		// st.pace becomes this attempt's, whose key the answer's usage
		// corrects.
		switch {
		case c.u.pacer == nil:
			st.pace = nil
		case firstPace != nil && c.u == st.up && c.key.Label == firstPace.label:
			st.pace, firstPace = firstPace, nil // the attempt forward paced
		default:
			p, wait, why := c.u.pacer.retry(c.key.Label, st.tokens, st.paceDeadline(c.u))
			if p == nil {
				if last == nil && !attempted {
					lastErr = paceError(c.u.cfg.Name, why)
				}
				if passOver() {
					break tries
				}
				continue
			}
			if err := c.u.pacer.hold(ctx, p, wait, why); err != nil {
				closeLast()
				return nil, err
			}
			st.pace = p
		}
		passed, backedOff, attempted = 0, false, true
		closeLast()
		if err := ctx.Err(); err != nil {
			return nil, err // the client left while the last answer was read
		}
		n++
		st.rec.Attempts = n
		req, err := attempt(out, st, c.u, c.key, n == 1)
		if err != nil {
			return nil, err
		}
		a.f.keys.trying(c.u.cfg, c.key, time.Now())
		var rejected bool
		var lim limit
		res, sent, err := roundTrip(req, st, c.u, several, func(res *http.Response) {
			rejected, lim = a.f.keys.observe(c.u.cfg, c.key, res, time.Now())
		})
		if lim.class != "" {
			st.rec.Limit = lim.class
		}
		if err != nil {
			if ctx.Err() != nil || sent {
				// The upstream may have the request (and run and bill
				// it): it is never sent again, to any key or upstream.
				return nil, err
			}
			if unreachable == nil {
				unreachable = map[*upstreamRT]bool{}
			}
			lastErr, unreachable[c.u] = err, true // another key will not reach it either
			continue
		}
		if !rejected && lim.class != LimitQuota && !retryable(res.StatusCode) {
			return res, nil // a 402 whose balance is used up tries the next key too
		}
		if lim.class == LimitOverloaded {
			// The upstream is overloaded, not the key: its other keys are
			// not tried; the fallbacks are, and later requests try them
			// first for a while.
			a.f.overload.set(c.u.cfg.Name, lim.until)
			if unreachable == nil {
				unreachable = map[*upstreamRT]bool{}
			}
			unreachable[c.u] = true
		}
		last, lastErr = res, nil
	}
	return finish(last, lastErr)
}

// roundTrip sends one attempt and waits for the answer to begin: for a
// stream, first_byte_timeout; for a plain answer, which sends its headers
// only when it is complete, what is left of request_timeout. observe reads
// the answer (nil when there is none) within the same wait: it may read
// the start of an error body, and if the wait runs out during that read,
// the answer is cut off like one that never began. sent reports
// whether any of the request was written, so that it is never sent again;
// without track it is not watched for (a trace costs about 1.4 µs of each
// request, composed by reflection with the reverse proxy's own), and an
// error counts as sent.
func roundTrip(req *http.Request, st *forwardState, u *upstreamRT, track bool, observe func(*http.Response)) (*http.Response, bool, error) {
	wait, setting, what := st.answerWait(u)
	ctx, cancel := context.WithCancelCause(req.Context())
	var wrote *atomic.Bool // nil: not tracked
	if track {
		wrote = new(atomic.Bool)
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) }, // with an error too: part may be out
		})
	}
	limit := timeLimits.after(wait, func() { cancel(errNoAnswer) })
	res, err := u.transport.RoundTrip(req.WithContext(ctx))
	observe(res)
	if !timeLimits.stop(limit) {
		// The wait is over: whatever came back is cut off.
		if res != nil {
			res.Body.Close()
		}
		res, err = nil, &noAnswerError{setting: what, wait: setting}
	}
	if err != nil {
		cancel(nil)
		return nil, wrote == nil || wrote.Load(), err
	}
	// ctx lives on with the answer's body, and ends with the request's own
	// context; the answer's limits (watch) end it sooner. The answer
	// returned to the reverse proxy is always the latest one an attempt
	// got (an earlier one is closed before the next attempt), so this is
	// its attempt's cancel.
	st.cancel = cancel
	return res, true, nil
}

// drainWait bounds the reading of a failed answer's rest before the next
// attempt; one that takes longer loses its connection.
const drainWait = 100 * time.Millisecond

// errNoAnswer cancels an attempt whose answer did not begin in time.
var errNoAnswer = errors.New("no answer in time")

// noAnswerError is an attempt whose answer did not begin within the
// setting's wait; it is a timeout (504).
type noAnswerError struct {
	setting string
	wait    time.Duration
}

func (e *noAnswerError) Error() string {
	return fmt.Sprintf("no answer began within %s (%s)", e.wait, e.setting)
}
func (e *noAnswerError) Timeout() bool { return true }
func (e *noAnswerError) Unwrap() error { return context.DeadlineExceeded }

// answerWait is how long an attempt at u may wait for its answer to begin,
// the setting that says so, and the setting's name.
func (st *forwardState) answerWait(u *upstreamRT) (wait, setting time.Duration, name string) {
	if st.stream {
		return u.waits.firstByte, u.waits.firstByte, "first_byte_timeout"
	}
	return u.waits.request - time.Since(st.rec.Start), u.waits.request, "request_timeout"
}

func finish(last *http.Response, lastErr error) (*http.Response, error) {
	if last != nil {
		return last, nil
	}
	if lastErr == nil {
		lastErr = errors.New("no attempt was made")
	}
	return nil, lastErr
}

// attempt is the outbound request for one upstream and key: its URL, a
// fresh copy of the body, and the key.
// The first attempt uses out itself; a later one a copy of it without the
// credential headers an earlier attempt set, so that no key ever reaches
// an upstream it is not for.
func attempt(out *http.Request, st *forwardState, u *upstreamRT, key Credential, first bool) (*http.Request, error) {
	req := out
	if first && out.GetBody != nil && out.Body != nil {
		// The reverse proxy hides the body behind a wrapper of its own;
		// the body as it is in memory lets the transport send it in the
		// same write as the headers (one packet, not two).
		body, err := out.GetBody()
		if err != nil {
			return nil, err
		}
		req.Body = body
	}
	if !first {
		var err error
		if req, err = rewound(out); err != nil {
			return nil, err
		}
		if req == out {
			req = out.Clone(out.Context())
		}
		for _, h := range strippedRequestHeaders {
			req.Header.Del(h)
		}
		for _, up := range st.rt.upstreams {
			if up.cfg.Auth == AuthHMAC {
				req.Header.Del(up.cfg.HMACTimestampHeader)
				req.Header.Del(up.cfg.HMACSignatureHeader)
			}
		}
	}
	if !first || u != st.up {
		req.URL = u.target(st.rest, st.query) // the reverse proxy set st.up's
	}
	req.Host = ""
	applyAuth(req, u.cfg, key, st.body)
	st.rec.Upstream, st.rec.Credential, st.rec.Route = u.cfg.Name, key.Label, u.route
	return req, nil
}

// retryable says whether another key or upstream may do better, whatever
// the key: a rejected key (observe) is retried too.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, 529,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// backoff is the wait before attempt n+1 after res: none after a key's 429
// or rejection (the next key is another key), else Retry-After or an
// exponential step from 250 ms, capped.
func backoff(res *http.Response, n int, limit time.Duration) time.Duration {
	switch res.StatusCode {
	case http.StatusTooManyRequests, 529, http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest, http.StatusPaymentRequired:
		return 0
	}
	d := retryAfter(res, firstBackoff<<min(n-1, 10), time.Now())
	return min(d, limit)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// overloads holds the upstreams that said they are overloaded, until
// when they back off.
type overloads struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// overloaded says whether up backs off as overloaded now, so that its
// fallbacks go first.
func (f *Forwarder) overloaded(up *upstreamRT) bool {
	return len(up.cfg.Fallback) > 0 && f.overload.backingOff(up.cfg.Name, time.Now())
}

func (o *overloads) set(name string, until time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]time.Time{}
	}
	o.m[name] = until
}

func (o *overloads) backingOff(name string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	until, ok := o.m[name]
	if ok && !now.Before(until) {
		delete(o.m, name)
		return false
	}
	return ok
}

// keysFor lists the keys of an upstream that may be tried now; an upstream
// without auth has one empty key.
func (f *Forwarder) keysFor(up *Upstream) ([]Credential, error) {
	if up.Auth == AuthNone {
		return []Credential{{}}, nil
	}
	var creds []Credential
	var err error
	if l, ok := f.creds.(KeyLister); ok {
		creds, err = l.Credentials(up)
	} else {
		var c Credential
		c, err = f.creds.Credential(up)
		creds = []Credential{c}
	}
	if err != nil {
		return nil, newAPIError(http.StatusUnauthorized, "no_upstream_key", err.Error())
	}
	usable, err := f.keys.usable(up, creds, time.Now())
	if err != nil {
		return nil, newAPIError(http.StatusTooManyRequests, "no_usable_key", err.Error()+"; wait, add another key with `gatehouse key add "+up.Name+"`, or replace a rejected one")
	}
	return usable, nil
}
