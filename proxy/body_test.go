package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
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
			got, err := extractModel(tc.contentType, []byte(tc.body))
			assert.Equal(t, tc.want, got)
			if tc.err == nil {
				assert.NoError(t, err)
			} else {
				assert.True(t, errors.Is(err, tc.err), "got %v", err)
			}
		})
	}
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
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, err := extractModel("application/json", []byte(body))
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
