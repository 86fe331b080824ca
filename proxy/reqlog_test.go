package proxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRequestLogRingKeepsTheLast(t *testing.T) {
	l := NewRequestLog(3)
	assert.Empty(t, l.Records())
	for i := 1; i <= 2; i++ {
		l.Add(Record{ID: uint64(i)})
	}
	assert.Equal(t, []uint64{1, 2}, ids(l.Records()))
	for i := 3; i <= 7; i++ {
		l.Add(Record{ID: uint64(i)})
	}
	assert.Equal(t, []uint64{5, 6, 7}, ids(l.Records()), "oldest first, only the last three")
}

func TestRequestLogSlowSubscriberNeverBlocks(t *testing.T) {
	l := NewRequestLog(10)
	stuck := l.Subscribe(2) // never read
	live := l.Subscribe(1000)
	for i := 1; i <= 500; i++ {
		l.Add(Record{ID: uint64(i)}) // would deadlock if Add waited for stuck
	}
	assert.Equal(t, uint64(498), stuck.Dropped())
	assert.Equal(t, uint64(0), live.Dropped())
	first := <-live.C
	assert.Equal(t, uint64(1), first.ID)

	stuck.Close()
	stuck.Close() // twice is fine
	l.Add(Record{ID: 501})
	got := 0
	for range stuck.C {
		got++
	}
	assert.Equal(t, 2, got, "a closed subscription gets nothing new and its channel ends")
	live.Close()
}

func TestRecordLogLine(t *testing.T) {
	start := time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)
	r := Record{ID: 7, Client: "127.0.0.1:5000", Method: "POST", Path: "/v1/chat/completions", Model: "gpt-4o",
		Upstream: "openai", Credential: "env:OPENAI_API_KEY", Route: "proxy socks5://me@127.0.0.1:1080", Status: 502,
		TTFB: 1500 * time.Microsecond, Duration: 2 * time.Second, BytesIn: 17, BytesOut: 260, Stream: true,
		PromptTokens: 5, CompletionTokens: 3, Attempts: 2, Error: `upstream "openai" could not be reached`}
	assert.Equal(t, `time=2026-11-22T04:00:00.000Z level=INFO msg=request id=7 client=127.0.0.1:5000 method=POST path=/v1/chat/completions model=gpt-4o upstream=openai key=env:OPENAI_API_KEY route="proxy socks5://me@127.0.0.1:1080" status=502 ttfb=2ms duration=2s in=17 out=260 stream=true prompt_tokens=5 completion_tokens=3 attempts=2 error="upstream \"openai\" could not be reached"`+"\n",
		string(r.AppendLogLine(nil, start)))
	line := string(Record{ID: 1, Token: "ide"}.AppendLogLine(nil, start))
	assert.Contains(t, line, `model="" upstream="" key=""`)
	assert.Contains(t, line, "token=ide")
}

func ids(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}
