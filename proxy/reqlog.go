package proxy

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// DefaultRequestLogSize is how many records the request log keeps.
const DefaultRequestLogSize = 1000

// Record is one forwarded request, written when it ends, whatever the
// outcome. It never holds a secret: Credential is the key's label. A
// request failed when Status is 400 or more or Error is set (a stream that
// broke, stalled, carried an error or lacked its closing event).
type Record struct {
	ID         uint64    `json:"id"`
	Start      time.Time `json:"start"`
	Client     string    `json:"client"`
	Token      string    `json:"token,omitempty"` // the access token's name
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Model      string    `json:"model,omitempty"`
	Upstream   string    `json:"upstream,omitempty"`
	Credential string    `json:"credential,omitempty"`
	Route      string    `json:"route,omitempty"`
	Attempts   int       `json:"attempts,omitempty"` // tries over keys and upstreams
	// Limit is the class of limit an upstream stated (ratelimit.go):
	// rate_limit, quota_exhausted or overloaded.
	Limit string `json:"limit,omitempty"`
	// Cache is "hit" when the answer came from the response cache (its
	// tokens are the ones it saved), "miss" when it was looked up and
	// not found.
	Cache    string        `json:"cache,omitempty"`
	Status   int           `json:"status"`
	TTFB     time.Duration `json:"ttfb"`
	Duration time.Duration `json:"duration"`
	BytesIn  int64         `json:"bytes_in"`
	BytesOut int64         `json:"bytes_out"`
	Stream   bool          `json:"stream"`
	// Token usage, as the upstream reported it.
	PromptTokens     int64  `json:"prompt_tokens,omitempty"`
	CompletionTokens int64  `json:"completion_tokens,omitempty"`
	Error            string `json:"error,omitempty"`
}

// RequestLog keeps the last records in a ring and hands new ones to live
// subscribers. Adding never waits for a subscriber: one that does not keep
// up misses records, and its Dropped count says how many.
type RequestLog struct {
	mu   sync.Mutex
	ring []Record
	next int  // where the next record goes
	full bool // the ring has wrapped
	subs map[*Subscription]struct{}

	minutes [activityMinutes]minuteCount // for Activity
}

// Subscription receives records as they are added.
type Subscription struct {
	C       <-chan Record
	c       chan Record
	dropped atomic.Uint64
	log     *RequestLog
	once    sync.Once
}

// NewRequestLog keeps the last size records (DefaultRequestLogSize if size
// is not positive).
func NewRequestLog(size int) *RequestLog {
	if size <= 0 {
		size = DefaultRequestLogSize
	}
	return &RequestLog{ring: make([]Record, size), subs: map[*Subscription]struct{}{}}
}

// Add stores r and offers it to every subscriber without blocking.
func (l *RequestLog) Add(r Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = r
	l.next++
	if l.next == len(l.ring) {
		l.next, l.full = 0, true
	}
	l.count(&r)
	for s := range l.subs {
		select {
		case s.c <- r:
		default:
			s.dropped.Add(1)
		}
	}
}

// Records returns a copy of the kept records, oldest first.
func (l *RequestLog) Records() []Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Record(nil), l.ring[:l.next]...)
	}
	out := make([]Record, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// Subscribe returns a subscription whose channel holds up to buffer records
// the subscriber has not read yet. Close it when done.
func (l *RequestLog) Subscribe(buffer int) *Subscription {
	c := make(chan Record, max(buffer, 1))
	s := &Subscription{C: c, c: c, log: l}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	return s
}

// Dropped counts the records this subscriber missed because its buffer was
// full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close stops delivery and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.log.mu.Lock()
		delete(s.log.subs, s)
		s.log.mu.Unlock()
		close(s.c)
	})
}

// AppendLogLine appends the record as one log line in the key=value form
// of log/slog's text handler ("time=… level=INFO msg=request id=… …\n"),
// written directly, since serve writes one for every request. It holds no
// secret: the key is named by its label.
func (r Record) AppendLogLine(b []byte, now time.Time) []byte {
	b = append(b, "time="...)
	b = now.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, " level=INFO msg=request id="...)
	b = strconv.AppendUint(b, r.ID, 10)
	b = appendField(b, "client", r.Client)
	b = appendField(b, "method", r.Method)
	b = appendField(b, "path", r.Path)
	b = appendField(b, "model", r.Model)
	b = appendField(b, "upstream", r.Upstream)
	b = appendField(b, "key", r.Credential)
	b = appendField(b, "route", r.Route)
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = appendField(b, "ttfb", r.TTFB.Round(time.Millisecond).String())
	b = appendField(b, "duration", r.Duration.Round(time.Millisecond).String())
	b = append(b, " in="...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, " out="...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	b = append(b, " stream="...)
	b = strconv.AppendBool(b, r.Stream)
	if r.PromptTokens > 0 || r.CompletionTokens > 0 {
		b = append(b, " prompt_tokens="...)
		b = strconv.AppendInt(b, r.PromptTokens, 10)
		b = append(b, " completion_tokens="...)
		b = strconv.AppendInt(b, r.CompletionTokens, 10)
	}
	if r.Attempts > 1 {
		b = append(b, " attempts="...)
		b = strconv.AppendInt(b, int64(r.Attempts), 10)
	}
	if r.Token != "" {
		b = appendField(b, "token", r.Token)
	}
	if r.Error != "" {
		b = appendField(b, "error", r.Error)
	}
	return append(b, '\n')
}

// appendField appends " key=value", quoting the value as slog does when it
// is empty or holds a space, a quote, an equals sign or a control character.
func appendField(b []byte, key, value string) []byte {
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	if value == "" || strings.ContainsFunc(value, func(c rune) bool {
		return c <= ' ' || c == '"' || c == '=' || c == 0x7f || !unicode.IsPrint(c)
	}) {
		return strconv.AppendQuote(b, value)
	}
	return append(b, value...)
}
