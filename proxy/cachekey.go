package proxy

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"slices"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
)

// cacheKey names a request: method, path, upstream, the headers that
// change its meaning (cacheKeyHeaders), and its canonical body.
func cacheKey(method, path, upstream string, header http.Header, body []byte) requestKey {
	c := canonicalizers.Get().(*canonicalizer)
	b := c.out[:0]
	for _, s := range [...]string{method, path, upstream} {
		b = append(append(b, s...), 0)
	}
	for _, k := range cacheKeyHeaders {
		b = append(append(b, k...), '=')
		for i, v := range header.Values(k) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, v...)
		}
		b = append(b, 0)
	}
	c.out = b
	sum := sha256.Sum256(c.appendJSON(body))
	c.in = nil
	if cap(c.out)+cap(c.tmp)+cap(c.members)*int(unsafe.Sizeof(member{})) <= maxPooledCanonical {
		canonicalizers.Put(c)
	}
	return sum
}

// canonicalOptions give a JSON body the order of members and the form of
// strings of RFC 8785, without white space, and keep numbers as written:
// RFC 8785's numbers are doubles, and two requests that differ in a
// large integer (a seed) must not share an answer.
var canonicalOptions = []jsontext.Options{
	jsontext.ReorderRawObjects(true),
	jsontext.CanonicalizeRawInts(false),
	jsontext.CanonicalizeRawFloats(false),
}

var canonicalizers = sync.Pool{New: func() any { return new(canonicalizer) }}

// maxPooledCanonical: buffers grown past this for one large body are let go.
const maxPooledCanonical = 1 << 20

// canonicalizer writes the canonical form of the bodies most requests
// send, in one pass and without a library: every request with the cache
// on pays for its key, and jsontext's AppendFormat took about 12 µs a
// request in a CPU profile under wrk (2 µs when measured alone, with warm
// caches), the largest of the cache's costs on the request's own path.
// It takes the body as it is
// when its canonical form can be written by copying: names without an
// escape or a non-ASCII byte (then byte order is RFC 8785's order of
// UTF-16 code units), strings whose escapes are those RFC 8785 writes
// (\" \\ \b \f \n \r \t, and \u00xx in lower case for the other control
// characters), numbers as written. Anything else — another escape, a
// name twice, invalid JSON or UTF-8, nesting deeper than maxFastDepth —
// goes to AppendFormat, as every body did before; FuzzCanonicalJSON
// checks that both write the same bytes whenever this one writes any.
type canonicalizer struct {
	out     []byte   // what is written
	tmp     []byte   // an object's members while they are put in order
	members []member // the members of the objects being read, innermost last
	in      []byte
	i       int // next byte of in
	depth   int
}

// member is an object's member written to out: its name from start to
// nameEnd (quotes included), then a colon and its value up to end.
type member struct{ start, nameEnd, end int }

// maxFastDepth: deeper bodies (no request has them) are left to jsontext.
const maxFastDepth = 100

// appendJSON appends body's canonical form to out. A body that is not
// one JSON value, or names a member twice, or holds invalid UTF-8, is
// appended as it is (AppendFormat does so on an error): a canonical form
// is none of those, so the two never meet.
func (c *canonicalizer) appendJSON(body []byte) []byte {
	mark := len(c.out)
	if !c.appendFast(body) {
		c.out, _ = jsontext.AppendFormat(c.out[:mark], body, canonicalOptions...)
	}
	return c.out
}

// appendFast writes body's canonical form by copying, if it can.
func (c *canonicalizer) appendFast(body []byte) bool {
	c.in, c.i, c.depth, c.members = body, 0, 0, c.members[:0]
	if !utf8.Valid(body) {
		return false
	}
	c.space()
	if !c.value() {
		return false
	}
	c.space()
	return c.i == len(c.in)
}

func (c *canonicalizer) space() {
	for c.i < len(c.in) {
		switch c.in[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *canonicalizer) value() bool {
	if c.i >= len(c.in) {
		return false
	}
	switch b := c.in[c.i]; {
	case b == '{':
		return c.object()
	case b == '[':
		return c.array()
	case b == '"':
		return c.string(false)
	case b == '-' || b >= '0' && b <= '9':
		return c.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(c.in[c.i:], []byte(lit)) {
				c.out = append(c.out, lit...)
				c.i += len(lit)
				return true
			}
		}
		return false
	}
}

// next skips white space and takes b if it comes next.
func (c *canonicalizer) next(b byte) bool {
	c.space()
	if c.i < len(c.in) && c.in[c.i] == b {
		c.i++
		return true
	}
	return false
}

// enter takes an object's or array's opening byte; false past maxFastDepth.
func (c *canonicalizer) enter() bool {
	if c.depth++; c.depth > maxFastDepth {
		return false
	}
	c.out = append(c.out, c.in[c.i])
	c.i++
	return true
}

// leave writes the closing byte that next has taken.
func (c *canonicalizer) leave(b byte) bool {
	c.out = append(c.out, b)
	c.depth--
	return true
}

func (c *canonicalizer) array() bool {
	if !c.enter() {
		return false
	}
	if !c.next(']') {
		for {
			c.space()
			if !c.value() {
				return false
			}
			if c.next(']') {
				break
			}
			if !c.next(',') {
				return false
			}
			c.out = append(c.out, ',')
		}
	}
	return c.leave(']')
}

func (c *canonicalizer) object() bool {
	if !c.enter() {
		return false
	}
	first, base := len(c.out), len(c.members)
	if !c.next('}') {
		for {
			c.space()
			start := len(c.out)
			if c.i >= len(c.in) || c.in[c.i] != '"' || !c.string(true) {
				return false
			}
			nameEnd := len(c.out)
			if !c.next(':') {
				return false
			}
			c.out = append(c.out, ':')
			c.space()
			if !c.value() {
				return false
			}
			c.members = append(c.members, member{start, nameEnd, len(c.out)})
			if c.next('}') {
				break
			}
			if !c.next(',') {
				return false
			}
			c.out = append(c.out, ',')
		}
	}
	if !c.order(first, c.members[base:]) {
		return false
	}
	c.members = c.members[:base]
	return c.leave('}')
}

// order puts an object's members, written to out from first, in the order
// of their names; false if a name comes twice.
func (c *canonicalizer) order(first int, ms []member) bool {
	byName := func(a, b member) int {
		return bytes.Compare(c.out[a.start+1:a.nameEnd-1], c.out[b.start+1:b.nameEnd-1])
	}
	sorted := slices.IsSortedFunc(ms, byName)
	if !sorted {
		slices.SortFunc(ms, byName)
	}
	for j := 1; j < len(ms); j++ {
		if byName(ms[j-1], ms[j]) == 0 {
			return false
		}
	}
	if sorted {
		return true
	}
	c.tmp = append(c.tmp[:0], c.out[first:]...)
	c.out = c.out[:first]
	for j, m := range ms {
		if j > 0 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, c.tmp[m.start-first:m.end-first]...)
	}
	return true
}

// string copies a string that is already in canonical form; a name must
// also be plain ASCII without an escape.
func (c *canonicalizer) string(name bool) bool {
	in, start := c.in, c.i
	for i := start + 1; i < len(in); {
		if plainByte[in[i]] {
			i++
			continue
		}
		switch b := in[i]; {
		case b == '"':
			c.out = append(c.out, in[start:i+1]...)
			c.i = i + 1
			return true
		case b < 0x20 || name && b >= 0x80:
			return false
		case b == '\\':
			if name || i+1 >= len(in) {
				return false
			}
			switch in[i+1] {
			case '"', '\\', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if !canonicalEscape(in[i+2:]) {
					return false
				}
				i += 6
			default:
				return false
			}
		default: // non-ASCII in a value
			i++
		}
	}
	return false
}

// plainByte: the bytes string copies without a look (printable ASCII but
// the quote and the backslash).
var plainByte = func() (t [256]bool) {
	for b := 0x20; b < 0x80; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// canonicalEscape: the four hex digits after \u are how RFC 8785 writes a
// control character that has no short escape (\u0000 to \u001f, lower case).
func canonicalEscape(h []byte) bool {
	if len(h) < 4 || h[0] != '0' || h[1] != '0' || h[2] != '0' && h[2] != '1' {
		return false
	}
	var v byte
	switch d := h[3]; {
	case d >= '0' && d <= '9':
		v = d - '0'
	case d >= 'a' && d <= 'f':
		v = d - 'a' + 10
	default:
		return false
	}
	switch v += (h[2] - '0') << 4; v {
	case '\b', '\t', '\n', '\f', '\r':
		return false
	}
	return true
}

// number copies a number as written, once it is one by JSON's grammar.
func (c *canonicalizer) number() bool {
	in, i := c.in, c.i
	digits := func() bool {
		j := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > j
	}
	if in[i] == '-' {
		i++
	}
	if i < len(in) && in[i] == '0' {
		i++
	} else if !digits() {
		return false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	c.out = append(c.out, in[c.i:i]...)
	c.i = i
	return true
}
