package proxy

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultRequestLogSize is how many records the request log keeps.
const DefaultRequestLogSize = 1000

// Record is one forwarded request, written when it ends, whatever the
// outcome. It never holds a secret: Credential is the key's label. A
// request failed when Status is 400 or more or Error is set (a stream that
// broke, stalled, carried an error or lacked its closing event).
type Record struct {
	ID         uint64        `json:"id"`
	Start      time.Time     `json:"start"`
	Client     string        `json:"client"`
	Token      string        `json:"token,omitempty"` // the access token's name
	Method     string        `json:"method"`
	Path       string        `json:"path"`
	Model      string        `json:"model,omitempty"`
	Upstream   string        `json:"upstream,omitempty"`
	Credential string        `json:"credential,omitempty"`
	Route      string        `json:"route,omitempty"`
	Attempts   int           `json:"attempts,omitempty"` // tries over keys and upstreams
	Status     int           `json:"status"`
	TTFB       time.Duration `json:"ttfb"`
	Duration   time.Duration `json:"duration"`
	BytesIn    int64         `json:"bytes_in"`
	BytesOut   int64         `json:"bytes_out"`
	Stream     bool          `json:"stream"`
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

// LogAttrs renders the record for a log line; it holds no secret.
func (r Record) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.Uint64("id", r.ID),
		slog.String("client", r.Client),
		slog.String("method", r.Method),
		slog.String("path", r.Path),
		slog.String("model", r.Model),
		slog.String("upstream", r.Upstream),
		slog.String("key", r.Credential),
		slog.String("route", r.Route),
		slog.Int("status", r.Status),
		slog.Duration("ttfb", r.TTFB.Round(time.Millisecond)),
		slog.Duration("duration", r.Duration.Round(time.Millisecond)),
		slog.Int64("in", r.BytesIn),
		slog.Int64("out", r.BytesOut),
		slog.Bool("stream", r.Stream),
	}
	if r.PromptTokens > 0 || r.CompletionTokens > 0 {
		attrs = append(attrs, slog.Int64("prompt_tokens", r.PromptTokens), slog.Int64("completion_tokens", r.CompletionTokens))
	}
	if r.Attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", r.Attempts))
	}
	if r.Token != "" {
		attrs = append(attrs, slog.String("token", r.Token))
	}
	if r.Error != "" {
		attrs = append(attrs, slog.String("error", r.Error))
	}
	return attrs
}
