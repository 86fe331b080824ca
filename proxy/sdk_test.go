package proxy

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/gatehouse-app/gatehouse/internal/mockllm"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sdkHarness puts an OpenAI-style and an Anthropic-style mock upstream
// behind one forwarder, the way a user would configure them.
func sdkHarness(t *testing.T) (h *harness, oai, anth *mockllm.Server) {
	oai, anth = &mockllm.Server{}, &mockllm.Server{}
	so, sa := httptest.NewServer(oai), httptest.NewServer(anth)
	t.Cleanup(so.Close)
	t.Cleanup(sa.Close)
	h = newHarness(t, &Config{Upstreams: []Upstream{
		{Name: "openai", BaseURL: so.URL + "/v1", Models: []string{"gpt-*", "text-embedding-*"}, KeyEnv: "TEST_OPENAI_KEY"},
		{Name: "anthropic", BaseURL: sa.URL + "/v1", Models: []string{"claude-*"}, Auth: AuthXAPIKey, KeyEnv: "TEST_ANTHROPIC_KEY"},
	}})
	return h, oai, anth
}

func TestOpenAISDKThroughForwarder(t *testing.T) {
	h, oai, anth := sdkHarness(t)
	client := openai.NewClient(option.WithBaseURL(h.url("/v1/")), option.WithAPIKey(clientToken), option.WithMaxRetries(0))
	ctx := context.Background()

	t.Run("chat", func(t *testing.T) {
		res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		require.NoError(t, err)
		require.Len(t, res.Choices, 1)
		assert.Equal(t, "Hello from mock", res.Choices[0].Message.Content)
		assert.Equal(t, "Bearer "+secretOpenAI, oai.Last().Header.Get("Authorization"))
	})

	t.Run("chat stream", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		acc := openai.ChatCompletionAccumulator{}
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		require.NoError(t, stream.Err())
		require.NoError(t, stream.Close())
		assert.Equal(t, 4, chunks, "three words and the finish chunk")
		assert.Equal(t, "Hello from mock", acc.Choices[0].Message.Content)
	})

	t.Run("embeddings", func(t *testing.T) {
		res, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: "text-embedding-3-small",
			Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("hello")},
		})
		require.NoError(t, err)
		require.Len(t, res.Data, 1)
		assert.Equal(t, []float64{0.25, -0.5, 1}, res.Data[0].Embedding)
		assert.Equal(t, "/v1/embeddings", oai.Last().Path)
	})

	t.Run("responses", func(t *testing.T) {
		res, err := client.Responses.New(ctx, responses.ResponseNewParams{
			Model: "gpt-5",
			Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
		})
		require.NoError(t, err)
		assert.Equal(t, "Hello from mock", res.OutputText())
		assert.Equal(t, "/v1/responses", oai.Last().Path)
	})

	t.Run("unknown model is a readable SDK error", func(t *testing.T) {
		_, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "llama-3",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var apiErr *openai.Error
		require.ErrorAs(t, err, &apiErr)
		assert.Equal(t, 404, apiErr.StatusCode)
		assert.Contains(t, apiErr.Message, `no upstream serves model "llama-3"`)
	})

	assert.Zero(t, anth.Hits("/messages"), "no OpenAI request went to the Anthropic upstream")
	assertNoSecrets(t, "logs", h.logs.String())
}

func TestAnthropicSDKStreamThroughForwarder(t *testing.T) {
	h, oai, anth := sdkHarness(t)
	client := anthropic.NewClient(anthropicoption.WithBaseURL(h.url("/")), anthropicoption.WithAPIKey(clientToken), anthropicoption.WithMaxRetries(0))
	stream := client.Messages.NewStreaming(context.Background(), anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 64,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	})
	msg := anthropic.Message{}
	for stream.Next() {
		require.NoError(t, msg.Accumulate(stream.Current()))
	}
	require.NoError(t, stream.Err())
	require.Len(t, msg.Content, 1)
	assert.Equal(t, "Hello from mock", msg.Content[0].Text)

	got := anth.Last()
	assert.Equal(t, "/v1/messages", got.Path)
	assert.Equal(t, secretAnthropic, got.Header.Get("X-Api-Key"))
	assert.NotEmpty(t, got.Header.Get("Anthropic-Version"), "the SDK's anthropic-version passes through")
	assert.NotContains(t, strings.Join(got.Header.Values("Authorization"), ""), clientToken)
	assert.Zero(t, oai.Hits("/messages"))

	rec := h.lastRecord(t, 1)
	assert.True(t, rec.Stream)
	assert.Equal(t, "claude-sonnet-4-5", rec.Model)
	assert.Equal(t, "env:TEST_ANTHROPIC_KEY", rec.Credential)
}
