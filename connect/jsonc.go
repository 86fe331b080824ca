package connect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tailscale/hujson"
)

// JSON files (Claude Code, Zed, opencode) may hold comments and trailing
// commas; hujson keeps them, and every byte of the members not touched.

// jsonCheck says whether data parses, naming the line when it does not.
func jsonCheck(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	v, err := hujson.Parse(data)
	if err != nil {
		return fmt.Errorf("not valid JSON: %s", strings.TrimPrefix(err.Error(), "hujson: "))
	}
	if _, ok := v.Value.(*hujson.Object); !ok {
		return fmt.Errorf("not valid settings: the file holds a JSON value starting with %q, not an object", v.Value.Kind())
	}
	return nil
}

// jsonDoc is the file's content as plain Go values.
func jsonDoc(data []byte) (map[string]any, error) {
	if err := jsonCheck(data); err != nil {
		return nil, err
	}
	doc := map[string]any{}
	if len(bytes.TrimSpace(data)) == 0 {
		return doc, nil
	}
	std, err := hujson.Standardize(bytes.Clone(data))
	if err != nil {
		return nil, err
	}
	return doc, json.Unmarshal(std, &doc)
}

// jsonString is the string at path, or "".
func jsonString(doc map[string]any, path ...string) string {
	var v any = doc
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

// jsonEdit is one member to set: path of object keys, value.
type jsonEdit struct {
	path []string
	val  any
	// onlyIfMissing leaves a member that exists as it is (a model entry
	// the user may have filled in).
	onlyIfMissing bool
}

// jsonApply sets each member, creating objects on the way, and keeps the
// rest of the file as it is. New members follow the indentation of their
// siblings.
func jsonApply(data []byte, edits []jsonEdit) ([]byte, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{\n}\n")
	}
	v, err := hujson.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %s", strings.TrimPrefix(err.Error(), "hujson: "))
	}
	unit := "  "
	if obj, ok := v.Value.(*hujson.Object); ok && len(obj.Members) > 0 {
		if ind := indentOf(obj.Members[0].Name.BeforeExtra); ind != "" {
			unit = ind
		}
	}
	for _, e := range edits {
		if err := jsonSet(&v, "", unit, e.path, e.val, e.onlyIfMissing); err != nil {
			return nil, err
		}
	}
	return v.Pack(), nil
}

// indentOf is what follows the last newline of extra, or "" when extra
// has no newline.
func indentOf(extra hujson.Extra) string {
	i := bytes.LastIndexByte(extra, '\n')
	if i < 0 {
		return ""
	}
	return string(extra[i+1:])
}

func jsonSet(v *hujson.Value, indent, unit string, path []string, val any, onlyIfMissing bool) error {
	obj, ok := v.Value.(*hujson.Object)
	if !ok {
		return fmt.Errorf("the settings are a JSON value starting with %q, not an object", v.Value.Kind())
	}
	for i := range obj.Members {
		m := &obj.Members[i]
		if lit, ok := m.Name.Value.(hujson.Literal); !ok || lit.String() != path[0] {
			continue
		}
		ind := indentOf(m.Name.BeforeExtra)
		if ind == "" {
			ind = indent + unit
		}
		if len(path) > 1 {
			if _, ok := m.Value.Value.(*hujson.Object); !ok {
				return fmt.Errorf("%q is a JSON value starting with %q, not an object; change it by hand", path[0], m.Value.Value.Kind())
			}
			return jsonSet(&m.Value, ind, unit, path[1:], val, onlyIfMissing)
		}
		if onlyIfMissing {
			return nil
		}
		nv, err := jsonValue(val, ind, unit)
		if err != nil {
			return err
		}
		if bytes.Equal(standard(m.Value), standard(nv)) {
			return nil // already so: leave its layout alone
		}
		m.Value.Value = nv.Value
		return nil
	}

	// A new member, after the last one, laid out like it.
	sep := hujson.Extra("\n" + indent + unit)
	ind := indent + unit
	if n := len(obj.Members); n > 0 {
		last := obj.Members[n-1].Name.BeforeExtra
		if i := indentOf(last); i != "" || bytes.ContainsRune(last, '\n') {
			sep, ind = hujson.Extra("\n"+i), i
		} else {
			sep = hujson.Extra(" ") // a one-line object stays on one line
		}
	} else if len(bytes.TrimSpace(obj.AfterExtra)) == 0 {
		obj.AfterExtra = hujson.Extra("\n" + indent)
	}
	var nv hujson.Value
	if len(path) > 1 {
		nv = hujson.Value{Value: &hujson.Object{AfterExtra: hujson.Extra("\n" + ind)}}
		if err := jsonSet(&nv, ind, unit, path[1:], val, onlyIfMissing); err != nil {
			return err
		}
	} else {
		var err error
		if nv, err = jsonValue(val, ind, unit); err != nil {
			return err
		}
	}
	m := hujson.ObjectMember{
		Name:  hujson.Value{BeforeExtra: sep, Value: hujson.String(path[0])},
		Value: hujson.Value{BeforeExtra: hujson.Extra(" "), Value: nv.Value},
	}
	if n := len(obj.Members); n > 0 && bytes.ContainsRune(sep, '\n') {
		// A comment on the old last member's line stays on that line.
		if i := bytes.IndexByte(obj.AfterExtra, '\n'); i > 0 && len(bytes.TrimSpace(obj.AfterExtra[:i])) > 0 {
			m.Name.BeforeExtra = append(bytes.Clone(obj.AfterExtra[:i]), sep...)
			obj.AfterExtra = obj.AfterExtra[i:]
		}
	}
	if n := len(obj.Members); n > 0 && obj.Members[n-1].Value.AfterExtra != nil {
		m.Value.AfterExtra = hujson.Extra{} // the file ends lists with a comma: so does the new last member
	}
	obj.Members = append(obj.Members, m)
	return nil
}

// jsonValue renders val indented for a member at indent.
func jsonValue(val any, indent, unit string) (hujson.Value, error) {
	b, err := json.MarshalIndent(val, indent, unit)
	if err != nil {
		return hujson.Value{}, err
	}
	return hujson.Parse(b)
}

func standard(v hujson.Value) []byte {
	c := v.Clone()
	c.Standardize()
	c.Minimize()
	return c.Pack()
}
