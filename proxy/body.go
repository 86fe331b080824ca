package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// readBody reads the whole request body, at most limit bytes, into one
// buffer sized from Content-Length when the client sent one. The buffer is
// the only copy the forwarder holds: the model is read from it in place and
// it is sent upstream as it is (and replayed from it on a retry).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	var b bytes.Buffer
	_, err := b.ReadFrom(http.MaxBytesReader(nil, r.Body, limit))
	return b.Bytes(), err
}

// Reasons a body gives no model.
var (
	errNoModel       = errors.New("no model")
	errModelNotAText = errors.New("model is not a string")
)

// jsonFields are the top-level fields of a JSON request body that the
// forwarder reads. They are found in one pass over the body: a chat
// request's messages can run to megabytes, and a lookup per field would
// cross them once for each field (the model, then whether it streams,
// then its stream options).
type jsonFields struct {
	model, stream gjson.Result // the first of each, as gjson.Get finds it
	usageOption   bool         // a stream_options has include_usage
	// The first of each field that bounds the answer, in the order
	// estimateTokens reads them: max_tokens, max_completion_tokens,
	// max_output_tokens, generationConfig (its maxOutputTokens).
	maxTokens [4]gjson.Result
}

var maxTokenFields = [...]string{"max_tokens", "max_completion_tokens", "max_output_tokens", "generationConfig"}

// scanJSON reads the jsonFields of body, as gjson.Get would find them: from
// the first '{' (what comes before, a byte-order mark say, is skipped) to
// the object's closing brace (what follows is not read). A multipart form
// is not scanned: its model is a form field (extractModel), and a file
// part can be large.
func scanJSON(contentType string, body []byte) jsonFields {
	var f jsonFields
	i := bytes.IndexAny(body, "{[")
	if _, form := formBoundary(contentType); i < 0 || body[i] != '{' || form {
		return f
	}
	// Read in place: gjson.ParseBytes would first copy the whole body into
	// a string. The results point into body, which is not changed while
	// they are in use; what outlives the request (the model's name) is
	// copied out by extractModel.
	obj := unsafe.String(&body[i], len(body)-i)
	if first := strings.IndexAny(obj, "\"}"); first < 0 || obj[first] == '}' {
		return f // an empty object
	}
	gjson.Parse(obj).ForEach(func(k, v gjson.Result) bool {
		switch {
		case k.Str == "model" && !f.model.Exists():
			f.model = v
		case k.Str == "stream" && !f.stream.Exists():
			f.stream = v
		case k.Str == "stream_options" && !f.usageOption:
			f.usageOption = v.Get("include_usage").Exists()
		default:
			if i := slices.Index(maxTokenFields[:], k.Str); i >= 0 && !f.maxTokens[i].Exists() {
				f.maxTokens[i] = v
			}
		}
		// ForEach would go on past the closing brace to the next quote
		// (and past an empty object's, above).
		for j := v.Index + len(v.Raw); j < len(obj); j++ {
			switch obj[j] {
			case '"':
				return true
			case '}':
				return false
			}
		}
		return false
	})
	return f
}

// formBoundary is the boundary of a multipart form, which extractModel
// reads as a form; ok is false for any other body.
func formBoundary(contentType string) (boundary string, ok bool) {
	if len(contentType) < 10 || !strings.EqualFold(contentType[:10], "multipart/") {
		return "", false
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	return params["boundary"], err == nil && mediaType == "multipart/form-data"
}

// extractModel reads the model a request asks for: the top-level "model"
// field of a JSON body (fields, from scanJSON), or the "model" field of a
// multipart form (audio transcriptions). It does not copy or decode the
// rest of the body.
func extractModel(contentType string, body []byte, fields jsonFields) (string, error) {
	if len(body) == 0 {
		return "", errNoModel
	}
	if boundary, ok := formBoundary(contentType); ok {
		return multipartModel(body, boundary)
	}
	res := fields.model
	switch {
	case !res.Exists():
		return "", errNoModel
	case res.Type != gjson.String || !utf8.ValidString(res.Str):
		return "", errModelNotAText
	case res.Str == "":
		return "", errNoModel
	}
	return strings.Clone(res.Str), nil
}

// maxModelName bounds a model name read from a form part.
const maxModelName = 1024

func multipartModel(body []byte, boundary string) (string, error) {
	if boundary == "" {
		return "", fmt.Errorf("%w: multipart body without a boundary", errNoModel)
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for {
		part, err := mr.NextPart()
		if err != nil {
			return "", errNoModel
		}
		if part.FormName() != "model" {
			continue
		}
		name, err := io.ReadAll(io.LimitReader(part, maxModelName+1))
		if err != nil || len(name) == 0 || len(name) > maxModelName {
			return "", errNoModel
		}
		return string(name), nil
	}
}
