package connect

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Codex's config.toml is edited line by line: a key that exists gets its
// value replaced (a comment after it stays), a new key goes after the
// last key of its table, a new table at the end. Nothing else moves.

// tomlCheck says whether data parses, naming the line when it does not.
func tomlCheck(data []byte) error {
	_, err := tomlDoc(data)
	return err
}

func tomlDoc(data []byte) (map[string]any, error) {
	doc := map[string]any{}
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("not valid TOML: line %d, column %d: %s", row, col, de.Error())
		}
		return nil, fmt.Errorf("not valid TOML: %w", err)
	}
	return doc, nil
}

var tomlHeader = regexp.MustCompile(`^\s*\[`)

// tomlTable is the range [start, end) of the lines of a table's keys:
// for the root table the lines before the first header, for [name] the
// lines after its header up to the next one. ok is false when the file
// has no such header.
func tomlTable(ls []string, header *regexp.Regexp) (start, end int, ok bool) {
	if header == nil {
		for i, l := range ls {
			if tomlHeader.MatchString(l) {
				return 0, i, true
			}
		}
		return 0, len(ls), true
	}
	for i, l := range ls {
		if header.MatchString(l) {
			for j := i + 1; j < len(ls); j++ {
				if tomlHeader.MatchString(ls[j]) {
					return i + 1, j, true
				}
			}
			return i + 1, len(ls), true
		}
	}
	return 0, 0, false
}

// tomlString renders s as a TOML basic string.
func tomlString(s string) string { return strconv.Quote(s) }

// tomlSet sets key = "value" inside lines [start, end), returning the new
// lines and the new end of the table.
func tomlSet(ls []string, start, end int, key, value string) ([]string, int) {
	keyRe := regexp.MustCompile(`^(\s*)(` + regexp.QuoteMeta(key) + `|"` + regexp.QuoteMeta(key) + `")\s*=\s*`)
	want := key + " = " + tomlString(value)
	last := -1
	for i := start; i < end; i++ {
		l := ls[i]
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "#") {
			last = i
		}
		m := keyRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		rest := strings.TrimRight(l[len(m[0]):], "\r\n")
		if v, tail, ok := tomlBasicString(rest); ok {
			if v == value {
				return ls, end // already so
			}
			ls[i] = m[1] + want + tail + lineEnd(l)
		} else {
			ls[i] = m[1] + want + lineEnd(l)
		}
		return ls, end
	}
	at := last + 1
	if last < 0 {
		at = start
		if start == 0 {
			// No key in the root table yet: put it just before the
			// first table, above the comments that belong to it.
			at = end
			for at > 0 && strings.HasPrefix(strings.TrimSpace(ls[at-1]), "#") {
				at--
			}
		}
	}
	line := want + "\n"
	if last < 0 && start == 0 && at < len(ls) && strings.TrimSpace(ls[at]) != "" {
		line += "\n" // a blank line before the table that follows
	}
	ls = append(ls[:at], append([]string{line}, ls[at:]...)...)
	return ls, end + 1
}

// tomlBasicString reads a quoted string at the start of s and returns its
// value and what follows it (such as a comment).
func tomlBasicString(s string) (value, tail string, ok bool) {
	if len(s) == 0 || (s[0] != '"' && s[0] != '\'') {
		return "", "", false
	}
	q := s[0]
	for i := 1; i < len(s); i++ {
		if q == '"' && s[i] == '\\' {
			i++
			continue
		}
		if s[i] == q {
			if q == '\'' {
				return s[1:i], s[i+1:], true
			}
			v, err := strconv.Unquote(s[:i+1])
			if err != nil {
				return "", "", false
			}
			return v, s[i+1:], true
		}
	}
	return "", "", false
}

func lineEnd(l string) string {
	if strings.HasSuffix(l, "\r\n") {
		return "\r\n"
	}
	return "\n"
}
