package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Classes of limit an answer can state, each with its own effect (see
// keyStates.observe and attempts.RoundTrip):
//   - LimitRate: a rate or token limit; the key cools until the stated
//     reset (headers, then the body, then Retry-After; 60 s when nothing is
//     stated). Also when a successful answer's headers say nothing is left.
//   - LimitQuota: a quota or balance used up; the key is exhausted until
//     the user enables it again, or until the stated reset.
//   - LimitOverloaded: the upstream is overloaded (Anthropic's 529, a 503
//     that says so); it backs off for a while, its keys are not marked, and
//     fallbacks are tried.
const (
	LimitRate       = "rate_limit"
	LimitQuota      = "quota_exhausted"
	LimitOverloaded = "overloaded"
)

// KeyExhausted is the state of a key whose quota or balance is used up.
const KeyExhausted = "exhausted"

// DefaultOverloadBackoff is how long an overloaded upstream goes after its
// fallbacks when it states no Retry-After.
const DefaultOverloadBackoff = 10 * time.Second

// limit is what one answer says about limits.
type limit struct {
	class  string    // "" when it says nothing
	until  time.Time // the stated reset; zero when none is stated
	reason string
}

// remainingHeaders pairs each provider's "remaining" header with its reset:
// OpenAI-style (OpenAI, Groq, DeepSeek, most relays) with durations such as
// "1s", "6m0s", "20ms"; Anthropic with RFC 3339 times.
var remainingHeaders = [][2]string{
	{"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
	{"X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
	{"Anthropic-Ratelimit-Requests-Remaining", "Anthropic-Ratelimit-Requests-Reset"},
	{"Anthropic-Ratelimit-Tokens-Remaining", "Anthropic-Ratelimit-Tokens-Reset"},
	{"Anthropic-Ratelimit-Input-Tokens-Remaining", "Anthropic-Ratelimit-Input-Tokens-Reset"},
	{"Anthropic-Ratelimit-Output-Tokens-Remaining", "Anthropic-Ratelimit-Output-Tokens-Reset"},
}

// headersExhausted reads the limit headers of an answer: when one says
// nothing is left, the latest reset of those that say so, and which.
func headersExhausted(h http.Header, now time.Time) (until time.Time, what string, ok bool) {
	for _, pair := range remainingHeaders {
		v := h[pair[0]] // canonical keys: no allocation for absent headers
		if len(v) == 0 || strings.TrimSpace(v[0]) != "0" {
			continue
		}
		reset := parseReset(h.Get(pair[1]), now)
		if reset.IsZero() {
			reset = now.Add(DefaultCooling)
		}
		if !ok || reset.After(until) {
			until, what = reset, strings.ToLower(pair[0])
		}
		ok = true
	}
	return until, what, ok
}

// parseReset reads a reset as a duration ("6m0s", "20ms", "1s"), an RFC
// 3339 time, or a number of seconds; zero when it is none of these.
func parseReset(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(d)
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 {
		return now.Add(time.Duration(secs * float64(time.Second)))
	}
	return time.Time{}
}

// quotaMarkers are what 429 (and 402) bodies say when a quota or balance
// is used up rather than a rate exceeded: OpenAI's code, relays' balance
// errors (English and Chinese).
var quotaMarkers = []string{"insufficient_quota", "Insufficient Balance", "insufficient balance", "insufficient_balance", "余额不足"}

// readLimit says what res says about limits. It reads the body (bounded,
// and put back whole) only for a 429, 402 or 503.
func readLimit(res *http.Response, now time.Time) limit {
	until, what, exhausted := headersExhausted(res.Header, now)
	switch res.StatusCode {
	case http.StatusTooManyRequests:
		body := peekBody(res)
		g := geminiLimit(body, now)
		if marker := containsAny(body, quotaMarkers); marker != "" || g.perDay {
			reason := "quota used up (" + marker + ")"
			if g.perDay {
				reason = "daily quota used up (" + g.quotaID + ")"
			}
			return limit{class: LimitQuota, until: g.until, reason: reason}
		}
		switch {
		case exhausted:
		case !g.until.IsZero():
			until, what = g.until, "retryDelay"
		default:
			until, what = now.Add(retryAfter(res, DefaultCooling, now)), "retry-after"
		}
		return limit{class: LimitRate, until: until, reason: res.Status + " (" + what + ")"}
	case http.StatusPaymentRequired:
		return limit{class: LimitQuota, reason: "balance used up (" + res.Status + ")"}
	case 529:
		return limit{class: LimitOverloaded, until: now.Add(retryAfter(res, DefaultOverloadBackoff, now)), reason: res.Status}
	case http.StatusServiceUnavailable:
		if bytes.Contains(bytes.ToLower(peekBody(res)), []byte("overloaded")) {
			return limit{class: LimitOverloaded, until: now.Add(retryAfter(res, DefaultOverloadBackoff, now)), reason: res.Status + " (overloaded)"}
		}
	}
	if exhausted {
		return limit{class: LimitRate, until: until, reason: "0 left (" + what + ")"}
	}
	return limit{}
}

func containsAny(b []byte, markers []string) string {
	for _, m := range markers {
		if bytes.Contains(b, []byte(m)) {
			return m
		}
	}
	return ""
}

// gemini is what a Gemini 429 body says: error.details[] with a
// google.rpc.RetryInfo (retryDelay "37s") and a google.rpc.QuotaFailure
// whose quota id names a per-day quota.
type gemini struct {
	until   time.Time
	perDay  bool
	quotaID string
}

func geminiLimit(body []byte, now time.Time) gemini {
	var g gemini
	if !bytes.Contains(body, []byte("google.rpc")) {
		return g
	}
	var e struct {
		Error struct {
			Details []struct {
				Type       string `json:"@type"`
				RetryDelay string `json:"retryDelay"`
				Violations []struct {
					QuotaID string `json:"quotaId"`
				} `json:"violations"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return g
	}
	for _, d := range e.Error.Details {
		switch {
		case strings.HasSuffix(d.Type, "google.rpc.RetryInfo"):
			g.until = parseReset(d.RetryDelay, now)
		case strings.HasSuffix(d.Type, "google.rpc.QuotaFailure"):
			for _, v := range d.Violations {
				if strings.Contains(v.QuotaID, "PerDay") {
					g.perDay, g.quotaID = true, v.QuotaID
				}
			}
		}
	}
	return g
}

// peekBody reads up to maxErrorPeek bytes of an error body and puts them
// back in front of the rest, so that the client still gets it whole. A
// compressed body is not read; a second call returns what the first read.
// The answer is judged on what has come when the body ends, sends nothing
// for errorBodyWait, or after errorBodyTotal in all, so that another key
// or upstream may be tried instead of the request waiting out
// request_timeout for a body that stalls or trickles. The body is not cut
// then: a goroutine reads on, and the client, if the answer is passed on,
// gets the rest as it comes (bounded as any answer is: request_timeout,
// idle_timeout for a stream); a retry closes it (closeLast), and so ends
// the goroutine.
func peekBody(res *http.Response) []byte {
	if b, ok := res.Body.(*peekedBody); ok {
		return b.head
	}
	if res.Body == nil || res.Header.Get("Content-Encoding") != "" {
		return nil
	}
	p := &peek{body: res.Body, progress: make(chan struct{}, 1), done: make(chan struct{})}
	p.more = sync.NewCond(&p.mu)
	go p.read()
	wait := time.NewTimer(errorBodyWait)
	defer wait.Stop()
	end := time.Now().Add(errorBodyTotal)
	for waiting := true; waiting; {
		select {
		case <-p.done:
			waiting = false
		case <-p.progress:
			wait.Reset(min(errorBodyWait, time.Until(end)))
		case <-wait.C:
			waiting = false
		}
	}
	p.mu.Lock()
	head := p.buf[:len(p.buf):len(p.buf)]
	p.mu.Unlock()
	rest := &lateReader{p: p, off: len(head)}
	res.Body = &peekedBody{io.MultiReader(bytes.NewReader(head), rest), res.Body, head, rest}
	return head
}

// errorBodyWait bounds how long an error body's start may send nothing
// before the answer is judged; errorBodyTotal how long it may take in all
// (a byte every 0.9 s would otherwise hold the request to
// request_timeout). Error bodies are a packet or two.
const (
	errorBodyWait  = time.Second
	errorBodyTotal = 5 * time.Second
)

// peek is the read of an error body's start, on its own goroutine.
type peek struct {
	body     io.ReadCloser
	progress chan struct{} // a read brought bytes
	done     chan struct{} // closed when the read ends

	mu   sync.Mutex
	more *sync.Cond // buf grew or the read ended
	buf  []byte
	end  bool
	err  error // how the read ended: io.EOF, nil after maxErrorPeek bytes, or the error
}

func (p *peek) read() {
	defer close(p.done)
	chunk := make([]byte, 4<<10)
	for {
		n, err := p.body.Read(chunk[:min(len(chunk), maxErrorPeek-len(p.buf))]) // only this goroutine changes buf's length
		p.mu.Lock()
		p.buf = append(p.buf, chunk[:n]...)
		if len(p.buf) >= maxErrorPeek && err == nil {
			p.end = true // the rest is read from the body
		} else if err != nil {
			p.end, p.err = true, err
		}
		end := p.end
		p.more.Broadcast()
		p.mu.Unlock()
		if n > 0 {
			nudge(p.progress)
		}
		if end {
			return
		}
	}
}

// lateReader is an error body past the head peekBody judged by: what the
// peek reads after it, then (past maxErrorPeek) the body itself.
type lateReader struct {
	p   *peek
	off int
}

func (l *lateReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	p := l.p
	p.mu.Lock()
	for l.off == len(p.buf) && !p.end {
		p.more.Wait()
	}
	n := copy(b, p.buf[l.off:])
	l.off += n
	err := p.err
	p.mu.Unlock()
	switch {
	case n > 0:
		return n, nil
	case err != nil:
		return 0, err
	}
	return p.body.Read(b) // maxErrorPeek bytes were read: the rest is the body's
}

// peekedBody is a body whose start peekBody has read.
type peekedBody struct {
	io.Reader
	io.Closer
	head []byte
	rest io.Reader // past head
}
