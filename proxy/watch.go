package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unsafe"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// Timeouts of an answer, per upstream (idle_timeout, request_timeout).
const (
	DefaultIdleTimeout    = 300 * time.Second
	DefaultRequestTimeout = 600 * time.Second
	usageTail             = 8 << 10 // usage is read from the end of a plain answer
)

var (
	errStalled  = errors.New("stalled")
	errTooLong  = errors.New("took too long")
	sseBoundary = []byte("\n\n")
)

// apiKind is which API an answer belongs to: it says which event closes a
// stream and where usage is.
type apiKind int

const (
	kindOther apiKind = iota
	kindChat
	kindCompletions
	kindMessages
	kindResponses
)

func kindOf(rest string) apiKind {
	switch {
	case strings.HasSuffix(rest, "chat/completions"):
		return kindChat
	case strings.HasSuffix(rest, "completions"):
		return kindCompletions
	case strings.HasSuffix(rest, "messages"):
		return kindMessages
	case strings.HasSuffix(rest, "responses"):
		return kindResponses
	}
	return kindOther
}

// closing names the event that ends a complete stream of the kind.
func (k apiKind) closing() string {
	switch k {
	case kindChat, kindCompletions:
		return "data: [DONE]"
	case kindMessages:
		return "message_stop"
	case kindResponses:
		return "response.completed"
	}
	return ""
}

// stallEvent is the SSE error event a stalled stream ends with, in the
// upstream's own format.
func (k apiKind) stallEvent(msg string) []byte {
	switch k {
	case kindMessages:
		return fmt.Appendf(nil, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"timeout_error\",\"message\":%q}}\n\n", msg)
	case kindResponses:
		return fmt.Appendf(nil, "event: error\ndata: {\"type\":\"error\",\"code\":\"timeout\",\"message\":%q}\n\n", msg)
	}
	return fmt.Appendf(nil, "data: {\"error\":{\"message\":%q,\"type\":\"timeout_error\",\"code\":\"stream_stalled\"}}\n\n", msg)
}

// watchedBody passes an upstream's answer through to the client while it
// reads it: a stream event by event (each handed on as soon as it is
// complete), a plain answer as it comes. It records token usage, tells a
// stream that ended without its closing event or carried an error from one
// that succeeded, ends a stream that stalls longer than the idle timeout
// with an error event, and drops the usage chunk Gatehouse asked for on a
// client's behalf.
type watchedBody struct {
	body      io.ReadCloser
	ctx       context.Context
	rec       *Record
	kind      apiKind
	stream    bool
	dropUsage bool // the usage chunk is ours, not the client's
	idle      time.Duration
	idleLimit *deadline // a stream's idle_timeout
	timeLimit *deadline // a plain answer's request_timeout
	remain    int64     // a plain answer's bytes still to come; -1: not known

	chunk    []byte // a pooled read buffer, for streams
	buf      []byte // read from upstream, not yet a complete event
	out      []byte // ready for the client
	tail     []byte // the last bytes of a plain answer
	sawClose bool
	failure  string
	done     bool
	err      error // returned once out is drained: EOF, or why the answer broke
}

func (w *watchedBody) Read(p []byte) (int, error) {
	if !w.stream {
		// A plain answer goes straight through; only its end is kept, for
		// the usage.
		n, err := w.body.Read(p)
		if w.remain >= 0 {
			// Its last byte is its end: HTTP/2 says so only in a later
			// read, and the usage is read (and the answer settled) at
			// the end.
			if w.remain -= int64(n); w.remain <= 0 && err == nil {
				err = io.EOF
			}
		}
		w.tail = append(w.tail, p[:n]...)
		if len(w.tail) > 2*usageTail {
			w.tail = append(w.tail[:0], w.tail[len(w.tail)-usageTail:]...)
		}
		if err != nil {
			w.stop(err)
		}
		return n, err
	}
	for len(w.out) == 0 {
		if w.done {
			return 0, w.err
		}
		w.fill()
	}
	n := copy(p, w.out)
	w.out = w.out[n:]
	return n, nil
}

// fill reads once from the upstream and moves the events that are
// complete to out.
func (w *watchedBody) fill() {
	if w.chunk == nil {
		w.chunk = copyBuffers.Get()
	}
	n, err := w.body.Read(w.chunk)
	if n > 0 && w.idleLimit != nil {
		timeLimits.extend(w.idleLimit, w.idle)
	}
	w.buf = append(w.buf, w.chunk[:n]...)
	w.events()
	if err != nil {
		w.done, w.err = true, err
		w.stop(err)
	}
}

// stop records how the answer ended.
func (w *watchedBody) stop(err error) {
	switch cause := context.Cause(w.ctx); {
	case errors.Is(err, io.EOF):
		w.ended()
	case errors.Is(cause, context.Canceled):
		// The client went away; the request's record says so.
	case w.stream && errors.Is(cause, errStalled):
		w.err = io.EOF // end the client's stream cleanly, after the error event
		msg := fmt.Sprintf("the upstream sent nothing for %s; Gatehouse ended the stream (idle_timeout)", w.idle)
		w.out = append(w.out, w.kind.stallEvent(msg)...)
		setOnce(&w.failure, msg)
	case errors.Is(cause, errTooLong):
		setOnce(&w.failure, "the answer took longer than request_timeout and was cut")
		w.out = nil
	default:
		setOnce(&w.failure, "the upstream's answer broke off: "+err.Error())
	}
	if w.failure != "" {
		setOnce(&w.rec.Error, w.failure)
	}
}

// events hands on every complete event in buf.
func (w *watchedBody) events() {
	for {
		end := eventEnd(w.buf)
		if end < 0 {
			return
		}
		ev := w.buf[:end]
		if w.inspect(ev) {
			w.out = append(w.out, ev...)
		}
		w.buf = w.buf[end:]
	}
}

// eventEnd is the index just after the blank line that ends the first
// event in b ("\n\n" or "\n\r\n"), or -1.
func eventEnd(b []byte) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if b[i+1] == '\n' {
			return i + 2
		}
		if b[i+1] == '\r' && i+2 < len(b) && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// inspect reads one event; it returns false for an event to drop.
func (w *watchedBody) inspect(ev []byte) bool {
	var name string
	var data []byte
	for line := range bytes.SplitSeq(bytes.TrimRight(ev, "\r\n"), []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(line[6:]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[5:])...)
		}
	}
	if name == "error" {
		setOnce(&w.failure, "the stream carried an error event: "+errorMessage(data))
	}
	if string(data) == "[DONE]" {
		w.sawClose = w.sawClose || w.kind == kindChat || w.kind == kindCompletions
		return true
	}
	if len(data) == 0 || data[0] != '{' {
		return true
	}
	if e := gjson.GetBytes(data, "error"); e.Exists() && e.Type != gjson.Null {
		setOnce(&w.failure, "the stream carried an error: "+errorMessage(data))
	}
	switch typ := gjson.GetBytes(data, "type").Str; typ {
	case "message_stop":
		w.sawClose = w.sawClose || w.kind == kindMessages
	case "response.completed":
		w.sawClose = w.sawClose || w.kind == kindResponses
	case "response.failed", "response.incomplete":
		w.sawClose = true
		setOnce(&w.failure, typ+": "+errorMessage(data))
	case "error":
		setOnce(&w.failure, "the stream carried an error: "+errorMessage(data))
	}
	if bytes.Contains(data, []byte(`"usage"`)) {
		w.usage(data)
		if w.dropUsage && w.kind == kindChat {
			if c := gjson.GetBytes(data, "choices"); c.IsArray() && len(c.Array()) == 0 {
				return false // the client did not ask for this chunk
			}
		}
	}
	return true
}

func errorMessage(data []byte) string {
	for _, path := range []string{"error.message", "message", "response.error.message", "error"} {
		if v := gjson.GetBytes(data, path); v.Exists() && v.String() != "" {
			return truncate(v.String(), 300)
		}
	}
	return truncate(string(data), 300)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// usage reads token counts from an event: the usage object at the top
// (chat, message_delta), in "message" (message_start) or in "response"
// (response.completed).
func (w *watchedBody) usage(data []byte) {
	for _, u := range gjson.GetManyBytes(data, "usage", "message.usage", "response.usage") {
		w.usageObject(u)
	}
}

// usageObject reads the token counts of one usage object, in OpenAI's
// names or Anthropic's.
func (w *watchedBody) usageObject(u gjson.Result) {
	if !u.IsObject() {
		return
	}
	u.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "prompt_tokens", "input_tokens":
			if n := v.Int(); n > 0 {
				w.rec.PromptTokens = n
			}
		case "completion_tokens", "output_tokens":
			if n := v.Int(); n > 0 {
				w.rec.CompletionTokens = n
			}
		}
		return true
	})
}

var usageKey = []byte(`"usage"`)

// ended checks a finished answer.
func (w *watchedBody) ended() {
	if !w.stream {
		// The usage object near the end of a plain answer: the last
		// "usage" (found forwards, which is vectorised, where LastIndex
		// hashes every byte), read in place.
		last := -1
		for from := 0; ; {
			i := bytes.Index(w.tail[from:], usageKey)
			if i < 0 {
				break
			}
			last = from + i
			from = last + len(usageKey)
		}
		if last >= 0 {
			if j := bytes.IndexByte(w.tail[last:], '{'); j >= 0 {
				obj := w.tail[last+j:]
				w.usageObject(gjson.Parse(unsafe.String(unsafe.SliceData(obj), len(obj))))
			}
		}
		return
	}
	if len(w.buf) > 0 { // a last event without its blank line
		ev := append(w.buf, sseBoundary...)
		w.buf = nil
		if w.inspect(ev) {
			w.out = append(w.out, ev[:len(ev)-2]...)
		}
	}
	if c := w.kind.closing(); c != "" && !w.sawClose && w.failure == "" {
		w.failure = "the stream ended without its closing event (" + c + ")"
	}
}

func (w *watchedBody) Close() error {
	for _, dl := range []*deadline{w.idleLimit, w.timeLimit} {
		if dl != nil {
			timeLimits.stop(dl)
		}
	}
	if w.chunk != nil {
		copyBuffers.Put(w.chunk)
		w.chunk = nil
	}
	return w.body.Close()
}

// watch wraps an upstream's answer in a watchedBody with its timers.
func watch(res *http.Response, st *forwardState) {
	up := st.answered().waits
	w := &watchedBody{
		body:      res.Body,
		ctx:       res.Request.Context(),
		rec:       st.rec,
		kind:      kindOf(st.rest),
		stream:    strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream"),
		dropUsage: st.injectedUsage,
		remain:    -1,
	}
	cancel := st.cancel // the attempt's, whose context the body reads under
	if w.stream {
		// Its events may be dropped or added (the usage chunk asked for,
		// a stall's error event): a length the upstream sent no longer
		// holds, and the client gets the stream chunked.
		res.Header.Del("Content-Length")
		res.ContentLength = -1
		w.idle = up.idle
		w.idleLimit = timeLimits.after(w.idle, func() { cancel(errStalled) })
	} else {
		if res.ContentLength < 0 {
			// A length the transport did not take (HTTP/2 ignores a
			// Content-Length it cannot parse, or one sent twice) is not
			// this answer's end: the recorder must not settle at it.
			res.Header.Del("Content-Length")
		}
		w.remain = res.ContentLength
		w.timeLimit = timeLimits.after(up.request-time.Since(st.rec.Start), func() { cancel(errTooLong) })
	}
	res.Body = w
}

// askForUsage adds stream_options.include_usage to an OpenAI-style chat
// stream request that does not ask for usage itself, unless the upstream
// says include_usage = false. It returns the body to send and whether it
// changed it.
func askForUsage(up *Upstream, rest string, body []byte, fields jsonFields) ([]byte, bool) {
	if !fields.stream.Bool() || fields.usageOption || up.IncludeUsage != nil && !*up.IncludeUsage || kindOf(rest) != kindChat {
		return body, false
	}
	out, err := sjson.SetBytes(body, "stream_options.include_usage", true)
	if err != nil {
		return body, false
	}
	return out, true
}

// isStreamRequest says whether a request asks for a streamed answer:
// "stream": true in its JSON body (OpenAI, Anthropic), or Gemini's
// streamGenerateContent or alt=sse.
func isStreamRequest(rest, rawQuery string, fields jsonFields) bool {
	return fields.stream.Bool() || strings.Contains(rest, "streamGenerateContent") ||
		strings.Contains(rawQuery, "alt=sse")
}
