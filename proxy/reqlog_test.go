package proxy

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

func TestRecordLogAttrsHoldNoSecret(t *testing.T) {
	r := Record{ID: 1, Credential: "env:OPENAI_API_KEY", Error: "boom"}
	var keys []string
	for _, a := range r.LogAttrs() {
		keys = append(keys, a.Key)
	}
	require.Contains(t, keys, "key")
	require.Contains(t, keys, "error")
}

func ids(recs []Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}
