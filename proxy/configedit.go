package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// A config edit (from the window, the tray or a command) changes only the
// lines it must: the user's comments, order and blank lines stay. The
// change is found by comparing the old config with the new one, both
// rendered the same way (toml.Marshal after defaults), key by key in the
// root table and in each [[upstreams]], [[pools]] and [[tokens]] entry
// (entries are matched by name). Each changed key is then edited in the
// user's text where it is: a changed value replaced (a comment after it
// stays), a new key added after the last key of its table, a removed key's
// line dropped, a removed entry's lines dropped, a new entry appended
// after the last one of its kind. The result is decoded again and must
// equal the config asked for; a file written in a form this does not edit
// (standard [tables], dotted keys, inline arrays of tables) is written
// whole instead, as before, which loses its comments.

// errNotEditable says the file uses a form mergeConfigText does not edit.
var errNotEditable = errors.New("config text not editable in place")

// tomlKV is one key = value line (or lines) of a table.
type tomlKV struct {
	key                string
	lineStart, lineEnd int // the whole lines, lineEnd past the newline
	valStart, valEnd   int // the value's text
	value              []byte
}

// tomlSection is the root table or one entry of an array of tables.
type tomlSection struct {
	start   int // the header line's start (0 for the root)
	lastEnd int // past the line of the last key, or of the header
	keys    []tomlKV
}

func (s *tomlSection) get(key string) *tomlKV {
	for i := range s.keys {
		if s.keys[i].key == key {
			return &s.keys[i]
		}
	}
	return nil
}

// name is the decoded value of the section's name key.
func (s *tomlSection) name() (string, bool) {
	kv := s.get("name")
	if kv == nil {
		return "", false
	}
	v, err := decodeValue(kv.value)
	str, ok := v.(string)
	return str, err == nil && ok
}

type tomlDoc struct {
	data        []byte
	root        tomlSection
	firstHeader int // the first header line's start, or len(data)
	arrays      map[string][]*tomlSection
	order       []string // array names in order of first appearance
}

func lineStartAt(data []byte, off int) int {
	return bytes.LastIndexByte(data[:off], '\n') + 1
}

func lineEndAt(data []byte, off int) int {
	if i := bytes.IndexByte(data[off:], '\n'); i >= 0 {
		return off + i + 1
	}
	return len(data)
}

// parseTOMLDoc locates every key of the root table and of the arrays of
// tables in data.
func parseTOMLDoc(data []byte) (*tomlDoc, error) {
	d := &tomlDoc{data: data, firstHeader: len(data), arrays: map[string][]*tomlSection{}}
	cur := &d.root
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable:
			keys := e.Key()
			if !keys.Next() {
				return nil, errNotEditable
			}
			k := keys.Node()
			if keys.Next() {
				return nil, errNotEditable
			}
			off := int(k.Raw.Offset)
			name := string(k.Data)
			start := lineStartAt(data, off)
			if d.firstHeader == len(data) {
				d.firstHeader = start
			}
			cur = &tomlSection{start: start, lastEnd: lineEndAt(data, off)}
			if _, seen := d.arrays[name]; !seen {
				d.order = append(d.order, name)
			}
			d.arrays[name] = append(d.arrays[name], cur)
		case unstable.KeyValue:
			keys := e.Key()
			if !keys.Next() {
				return nil, errNotEditable
			}
			k := keys.Node()
			if keys.Next() {
				return nil, errNotEditable // a dotted key
			}
			kvStart, kvEnd := int(e.Raw.Offset), int(e.Raw.Offset+e.Raw.Length)
			valStart := int(k.Raw.Offset + k.Raw.Length)
			for valStart < kvEnd && (data[valStart] == ' ' || data[valStart] == '\t' || data[valStart] == '=') {
				valStart++
			}
			cur.keys = append(cur.keys, tomlKV{
				key: string(k.Data), lineStart: lineStartAt(data, kvStart), lineEnd: lineEndAt(data, kvEnd),
				valStart: valStart, valEnd: kvEnd, value: data[valStart:kvEnd],
			})
			cur.lastEnd = lineEndAt(data, kvEnd)
		case unstable.Comment:
		default:
			return nil, errNotEditable // a standard [table]
		}
	}
	if err := p.Error(); err != nil {
		return nil, err
	}
	return d, nil
}

func decodeValue(raw []byte) (any, error) {
	var m map[string]any
	if err := toml.Unmarshal(append([]byte("v = "), raw...), &m); err != nil {
		return nil, err
	}
	return m["v"], nil
}

func sameValue(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, errA := decodeValue(a)
	vb, errB := decodeValue(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

type textEdit struct {
	start, end int
	text       string
}

// editSection turns the differences between base and next (the old and
// the new config, rendered) into edits of raw (the user's text of base).
func editSection(raw, base, next *tomlSection, insertAt int, edits []textEdit) []textEdit {
	for _, n := range next.keys {
		if b := base.get(n.key); b != nil && sameValue(b.value, n.value) {
			continue
		}
		if r := raw.get(n.key); r != nil {
			edits = append(edits, textEdit{r.valStart, r.valEnd, string(n.value)})
		} else {
			edits = append(edits, textEdit{insertAt, insertAt, n.key + " = " + string(n.value) + "\n"})
		}
	}
	for _, b := range base.keys {
		if next.get(b.key) != nil {
			continue
		}
		if r := raw.get(b.key); r != nil {
			edits = append(edits, textEdit{r.lineStart, r.lineEnd, ""})
		}
	}
	return edits
}

// matchEntries pairs the old entries of an array (base) with the new ones
// (next): by name, then the ones left over in order (a renamed entry).
// It fails when the pairs would change the entries' order or a new entry
// comes before an old one, which the edits cannot express.
func matchEntries(base, next []*tomlSection) (pairs [][2]int, added []int, removed []int, err error) {
	oldOf := make([]int, len(next))
	usedOld := make([]bool, len(base))
	for j := range next {
		oldOf[j] = -1
		name, ok := next[j].name()
		if !ok {
			continue
		}
		for i := range base {
			if n, ok := base[i].name(); ok && !usedOld[i] && n == name {
				oldOf[j], usedOld[i] = i, true
				break
			}
		}
	}
	var leftOld []int
	for i := range base {
		if !usedOld[i] {
			leftOld = append(leftOld, i)
		}
	}
	for j := range next {
		if oldOf[j] < 0 && len(leftOld) > 0 {
			oldOf[j], usedOld[leftOld[0]] = leftOld[0], true
			leftOld = leftOld[1:]
		}
	}
	last, sawAdded := -1, false
	for j, i := range oldOf {
		if i < 0 {
			added, sawAdded = append(added, j), true
			continue
		}
		if i < last || sawAdded {
			return nil, nil, nil, errNotEditable
		}
		last = i
		pairs = append(pairs, [2]int{i, j})
	}
	for i := range base {
		if !usedOld[i] {
			removed = append(removed, i)
		}
	}
	return pairs, added, removed, nil
}

// commentsAbove is the start of the comment lines right above the line
// at off (off itself when there are none).
func commentsAbove(data []byte, off int) int {
	for off > 0 {
		prev := lineStartAt(data, off-1)
		if !bytes.HasPrefix(bytes.TrimLeft(data[prev:off], " \t"), []byte("#")) {
			break
		}
		off = prev
	}
	return off
}

// mergeConfigText edits old (the user's file, which decodes to oldCfg)
// so that it decodes to newCfg.
func mergeConfigText(old []byte, oldCfg, newCfg *Config) ([]byte, error) {
	// New lines follow the file's own line ends; a file whose last line
	// has none gets one, so that a line added after it stands alone.
	nl := "\n"
	if bytes.Contains(old, []byte("\r\n")) {
		nl = "\r\n"
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(slices.Clip(old), nl...)
	}
	baseText, err := toml.Marshal(oldCfg)
	if err != nil {
		return nil, err
	}
	nextText, err := toml.Marshal(newCfg)
	if err != nil {
		return nil, err
	}
	raw, err := parseTOMLDoc(old)
	if err != nil {
		return nil, err
	}
	base, err := parseTOMLDoc(baseText)
	if err != nil {
		return nil, err
	}
	next, err := parseTOMLDoc(nextText)
	if err != nil {
		return nil, err
	}
	for _, name := range base.order {
		if len(raw.arrays[name]) != len(base.arrays[name]) {
			return nil, errNotEditable
		}
	}

	// New root keys go after the last root key, or above the first
	// header and the comments right above it.
	rootAt := raw.root.lastEnd
	rootSpacer := ""
	if len(raw.root.keys) == 0 {
		rootAt = commentsAbove(old, raw.firstHeader)
		if rootAt < len(old) {
			rootSpacer = "\n"
		}
	}
	var edits []textEdit
	n := len(edits)
	edits = editSection(&raw.root, &base.root, &next.root, rootAt, edits)
	if rootSpacer != "" {
		for i := n; i < len(edits); i++ {
			if edits[i].start == rootAt && edits[i].end == rootAt {
				edits = append(edits, textEdit{rootAt, rootAt, rootSpacer})
				break
			}
		}
	}

	names := slices.Clone(base.order)
	for _, name := range next.order {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	tail := len(old)
	for _, name := range names {
		rawEntries, baseEntries, nextEntries := raw.arrays[name], base.arrays[name], next.arrays[name]
		pairs, added, removed, err := matchEntries(baseEntries, nextEntries)
		if err != nil {
			return nil, err
		}
		for _, p := range pairs {
			r := rawEntries[p[0]]
			edits = editSection(r, baseEntries[p[0]], nextEntries[p[1]], r.lastEnd, edits)
		}
		for _, i := range removed {
			// The comment lines right above the header belong to the
			// entry and go with it; so do the blank lines after it.
			r := rawEntries[i]
			start, end := commentsAbove(old, r.start), r.lastEnd
			for {
				if bytes.HasPrefix(old[end:], []byte("\n")) {
					end++
				} else if bytes.HasPrefix(old[end:], []byte("\r\n")) {
					end += 2
				} else {
					break
				}
			}
			edits = append(edits, textEdit{start, end, ""})
		}
		at, lead := tail, "\n"
		if len(rawEntries) > 0 {
			at = rawEntries[len(rawEntries)-1].lastEnd
		} else if len(old) > 0 && old[len(old)-1] != '\n' {
			lead = "\n\n"
		}
		for _, j := range added {
			e := nextEntries[j]
			edits = append(edits, textEdit{at, at, lead + string(nextText[e.start:e.lastEnd])})
		}
	}
	if nl != "\n" {
		for i := range edits {
			edits[i].text = strings.ReplaceAll(edits[i].text, "\n", nl)
		}
	}
	return applyEdits(old, edits)
}

// applyEdits applies non-overlapping edits; insertions at one place keep
// the order they were made in.
func applyEdits(data []byte, edits []textEdit) ([]byte, error) {
	sort.SliceStable(edits, func(a, b int) bool { return edits[a].start < edits[b].start })
	var out bytes.Buffer
	pos := 0
	for _, e := range edits {
		if e.start < pos {
			return nil, errNotEditable
		}
		out.Write(data[pos:e.start])
		out.WriteString(e.text)
		pos = e.end
	}
	out.Write(data[pos:])
	return out.Bytes(), nil
}

// encodeConfig is the text SaveConfig writes for c at path: the file
// there edited in place when it can be, else c rendered whole.
func encodeConfig(path string, old []byte, c *Config) ([]byte, error) {
	whole, err := toml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if len(bytes.TrimSpace(old)) == 0 {
		return whole, nil
	}
	oldCfg, err := ParseConfig(path, old)
	if err != nil {
		return whole, nil // a file with a mistake is replaced, as before
	}
	merged, err := mergeConfigText(old, oldCfg, c)
	if err != nil {
		return whole, nil
	}
	got, err1 := ParseConfig(path, merged)
	want, err2 := ParseConfig(path, whole)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
		return whole, nil
	}
	return merged, nil
}
