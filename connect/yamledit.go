package connect

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// YAML files (Continue, Aider) are read with the node API, which knows
// each key's line; the change is then made on those lines only, so every
// comment, blank line and the indentation elsewhere stay as they were.

// yamlCheck says whether data parses, naming the line when it does not.
func yamlCheck(data []byte) error {
	_, err := yamlTop(data)
	return err
}

// yamlTop is the document's top mapping; nil for an empty document.
func yamlTop(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	top := doc.Content[0]
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil
	}
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not valid settings: line %d holds a YAML list or value, not a mapping", top.Line)
	}
	return top, nil
}

// yamlGet is the value node of key in mapping m, with its key node.
func yamlGet(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// yamlScalar renders s as YAML writes a string: plain when that reads
// back as the same string, quoted otherwise.
func yamlScalar(s string) string {
	b, _ := yaml.Marshal(s)
	return strings.TrimSuffix(string(b), "\n")
}

// lastLine is the last line any node under n sits on.
func lastLine(n *yaml.Node) int {
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}

// lines splits data into lines that keep their line ends.
func lines(data []byte) []string {
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, string(data))
			break
		}
		out = append(out, string(data[:i+1]))
		data = data[i+1:]
	}
	return out
}

// ensureNewline ends the last line with a newline, so lines can follow.
func ensureNewline(ls []string) []string {
	if n := len(ls); n > 0 && !strings.HasSuffix(ls[n-1], "\n") {
		ls[n-1] += "\n"
	}
	return ls
}

// yamlSetTop sets top-level scalar keys, in order: a key that exists gets
// its line rewritten (its comment kept), a new key is added at the end.
func yamlSetTop(data []byte, kv [][2]string) ([]byte, error) {
	top, err := yamlTop(data)
	if err != nil {
		return nil, err
	}
	ls := ensureNewline(lines(data))
	for _, e := range kv {
		k, v := yamlGet(top, e[0])
		switch {
		case k == nil:
			ls = append(ls, e[0]+": "+yamlScalar(e[1])+"\n")
		case v.Kind == yaml.ScalarNode && v.Value == e[1]:
			// already so
		case v.Kind != yaml.ScalarNode || v.Line != k.Line || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
			return nil, fmt.Errorf("line %d: %s is not a one-line value; change it by hand", k.Line, e[0])
		default:
			line := e[0] + ": " + yamlScalar(e[1])
			if c := v.LineComment + k.LineComment; c != "" {
				line += " " + c
			}
			ls[k.Line-1] = strings.Repeat(" ", k.Column-1) + line + "\n"
		}
	}
	return []byte(strings.Join(ls, "")), nil
}
