package proxy

import (
	"errors"
	"fmt"
	"strings"
)

// glob is a model name pattern. The syntax is that of path.Match — '*' any
// run of characters, '?' one character, '[a-z]' and '[!x]' classes, '\'
// escapes — except that '*' and '?' also match '/', because model names
// such as "meta-llama/Llama-3-70b" contain slashes.
type glob struct {
	pattern string
	literal bool // no meta characters: a plain string comparison
}

var errBadClass = errors.New("unclosed or empty character class")

func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, fmt.Errorf("an empty model pattern matches nothing; write a name or a glob such as \"gpt-*\"")
	}
	// Matching the pattern against itself walks every class and escape, so
	// a malformed pattern shows up here rather than on a request.
	if _, err := matchGlob(p, p); err != nil {
		return glob{}, fmt.Errorf("model pattern %q: %v; use '*', '?' and [a-z]", p, err)
	}
	return glob{pattern: p, literal: !strings.ContainsAny(p, `*?[\`)}, nil
}

func (g glob) match(name string) bool {
	if g.literal {
		return g.pattern == name
	}
	ok, _ := matchGlob(g.pattern, name)
	return ok
}

// matchGlob is the classic two-pointer wildcard match with one backtrack
// point for the last '*'. It allocates nothing.
func matchGlob(pattern, name string) (bool, error) {
	p, n := 0, 0
	starP, starN := -1, 0
	var err error
	for n < len(name) || p < len(pattern) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				if n < len(name) {
					p++
					n++
					continue
				}
			case '[':
				var ok bool
				var width int
				ok, width, err = matchClass(pattern[p:], name[min(n, len(name)):])
				if err != nil {
					return false, err
				}
				if ok && n < len(name) {
					p += width
					n++
					continue
				}
			case '\\':
				if p+1 >= len(pattern) {
					return false, errors.New("trailing backslash")
				}
				if n < len(name) && name[n] == pattern[p+1] {
					p += 2
					n++
					continue
				}
			default:
				if n < len(name) && name[n] == c {
					p++
					n++
					continue
				}
			}
		}
		if starP >= 0 && starN < len(name) {
			starN++
			p, n = starP+1, starN
			continue
		}
		if err == nil && p < len(pattern) {
			err = checkRest(pattern[p:])
		}
		return false, err
	}
	return true, nil
}

// matchClass matches name's first byte against the class at the start of
// pattern ("[...]") and returns the class's width in the pattern.
func matchClass(pattern, name string) (matched bool, width int, err error) {
	i := 1
	negate := i < len(pattern) && (pattern[i] == '!' || pattern[i] == '^')
	if negate {
		i++
	}
	start := i
	for i < len(pattern) && (pattern[i] != ']' || i == start) {
		lo := pattern[i]
		if lo == '\\' {
			i++
			if i >= len(pattern) {
				return false, 0, errBadClass
			}
			lo = pattern[i]
		}
		hi := lo
		if i+2 < len(pattern) && pattern[i+1] == '-' && pattern[i+2] != ']' {
			hi = pattern[i+2]
			i += 2
		}
		if lo > hi {
			return false, 0, errBadClass
		}
		if len(name) > 0 && lo <= name[0] && name[0] <= hi {
			matched = true
		}
		i++
	}
	if i >= len(pattern) {
		return false, 0, errBadClass
	}
	return matched != negate && len(name) > 0, i + 1, nil
}

// checkRest reports a malformed class or escape in the part of a pattern
// that matching never reached.
func checkRest(rest string) error {
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '\\':
			if i+1 >= len(rest) {
				return errors.New("trailing backslash")
			}
			i++
		case '[':
			_, w, err := matchClass(rest[i:], "")
			if err != nil {
				return err
			}
			i += w - 1
		}
	}
	return nil
}

// Routes reports whether some upstream's model patterns match model, that
// is whether the forwarder would route a request for it.
func (c *Config) Routes(model string) bool {
	for _, u := range c.Upstreams {
		for _, m := range u.Models {
			if g, err := compileGlob(m); err == nil && g.match(model) {
				return true
			}
		}
	}
	return false
}
