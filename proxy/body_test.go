package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/tidwall/gjson"
)

func TestExtractModel(t *testing.T) {
	tests := []struct {
		name, contentType, body, want string
		err                           error
	}{
		{"first field", "application/json", `{"model":"gpt-4o","messages":[]}`, "gpt-4o", nil},
		{"last field", "application/json", `{"messages":[{"role":"user","content":"{\"model\":\"x\"}","model":"nested"}],"model":"claude-3"}`, "claude-3", nil},
		{"escaped", "", `{"model":"a\u002fb"}`, "a/b", nil},
		{"whitespace", "", " {\n \"model\" : \"m\" } ", "m", nil},
		{"missing", "", `{"messages":[]}`, "", errNoModel},
		{"empty", "", `{"model":""}`, "", errNoModel},
		{"number", "", `{"model":4}`, "", errModelNotAText},
		{"null", "", `{"model":null}`, "", errModelNotAText},
		{"array body", "", `[{"model":"x"}]`, "", errNoModel},
		{"not json", "", `model=gpt`, "", errNoModel},
		{"no body", "", ``, "", errNoModel},
		{"multipart", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n", "whisper-1", nil},
		{"multipart without model", "multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxx\r\n--b--\r\n", "", errNoModel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := extractModel(tc.contentType, []byte(tc.body), scanJSON(tc.contentType, []byte(tc.body)))
			assert.Equal(t, tc.want, got)
			if tc.err == nil {
				assert.NoError(t, err)
			} else {
				assert.True(t, errors.Is(err, tc.err), "got %v", err)
			}
		})
	}
}

// TestScanJSON: the fields the forwarder reads, found in one pass as a
// lookup per field found them (the first of each), and nothing read from a
// multipart body.
func TestScanJSON(t *testing.T) {
	f := scanJSON("application/json", []byte(`{"messages":[{"model":"inner","stream":true}],"stream":true,"model":"m","stream":false,"stream_options":{"include_usage":false},"stream_options":{}}`))
	assert.Equal(t, "m", f.model.Str)
	assert.True(t, f.stream.Bool(), "the first stream counts")
	assert.True(t, f.usageOption)
	f = scanJSON("application/json", []byte(`{"model":"m","stream_options":{"x":1},"stream_options":{"include_usage":true}}`))
	assert.False(t, f.stream.Exists())
	assert.True(t, f.usageOption, "any stream_options, as gjson.Get looks on")
	f = scanJSON("multipart/form-data; boundary=b", []byte(`{"model":"m","stream":true}`))
	assert.False(t, f.model.Exists() || f.stream.Exists(), "a form is not scanned")
	f = scanJSON("multipart/mixed; boundary=b", []byte("--b\r\n\r\n{\"model\":\"m\"}\r\n--b--"))
	assert.Equal(t, "m", f.model.Str, "from the first brace, as gjson.Get read it")
	f = scanJSON("application/json", []byte("\ufeff{\"model\":\"m\",\"stream\":true}"))
	assert.Equal(t, "m", f.model.Str, "after a byte-order mark")
	assert.True(t, f.stream.Bool())
	f = scanJSON("application/json", []byte(`{"model":"m"} {"stream":true}`))
	assert.False(t, f.stream.Exists(), "nothing after the object")
	f = scanJSON("application/json", []byte(`{} "stream":true`))
	assert.False(t, f.stream.Exists(), "nothing after an empty object")
}

// FuzzExtractModel checks that model extraction never panics and, on valid
// JSON objects, agrees with a full decoder about the first top-level
// "model" string.
func FuzzExtractModel(f *testing.F) {
	for _, seed := range []string{
		`{"model":"gpt-4o"}`,
		`{"messages":[{"model":"inner"}],"model":"outer"}`,
		`{"model":"a\"b\\c\u00e9"}`,
		`{"model":1}`,
		`{"model":`,
		`[]`,
		`{"a":{"model":"x"},"b":[1,2,{"c":"}"}]}`,
		`{"stream":true,"model":"m","stream":false,"stream_options":{"include_usage":false},"stream_options":{}}`,
		`{"stream_options":{"x":1},"stream_options":{"include_usage":true}}`,
		"\ufeff{\"model\":\"bom\",\"stream\":true}",
		`{"model":"a"}{"stream":true}`,
		`{}"stream"10`,
		`x[{"model":"y"}]`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		fields := scanJSON("application/json", []byte(body))
		got, err := extractModel("application/json", []byte(body), fields)
		// The one pass finds what a lookup per field found, wherever the
		// JSON value begins and whatever follows it (a byte-order mark
		// before, another object after). Inside broken JSON the two read
		// differently, and neither is right.
		if i := strings.IndexAny(body, "{["); i >= 0 && json.NewDecoder(strings.NewReader(body[i:])).Decode(new(json.RawMessage)) == nil {
			results := map[string]gjson.Result{"model": fields.model, "stream": fields.stream}
			for i, name := range maxTokenFields {
				results[name] = fields.maxTokens[i]
			}
			for path, res := range results {
				if want := gjson.Get(body, path); res.Raw != want.Raw {
					t.Fatalf("body %q: %s is %q in one pass, %q by gjson.Get", body, path, res.Raw, want.Raw)
				}
			}
			if want := gjson.Get(body, "stream_options.include_usage").Exists(); fields.usageOption != want {
				t.Fatalf("body %q: include_usage %v in one pass, %v by gjson.Get", body, fields.usageOption, want)
			}
		}
		if !json.Valid([]byte(body)) || !utf8.ValidString(body) {
			return
		}
		want, ok := firstTopLevelModel(body)
		if ok && want != "" {
			if err != nil || got != want {
				t.Fatalf("body %q: got %q, %v; want %q", body, got, err, want)
			}
		} else if err == nil {
			t.Fatalf("body %q: got model %q where a decoder finds none", body, got)
		}
	})
}

// firstTopLevelModel walks a JSON document with encoding/json and returns
// the first top-level "model" value if it is a string.
func firstTopLevelModel(body string) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil && err != io.EOF {
			return "", false
		}
		if key == "model" {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return "", false
}
