package proxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDeadlinesFireInOrderAndStop: limits fire when due, in the order
// they come due, whatever order they were set in; a stopped one never
// fires, and stop tells whether it had.
func TestDeadlinesFireInOrderAndStop(t *testing.T) {
	ds := &deadlines{set: map[*deadline]struct{}{}}
	fired := make(chan string, 4)
	ds.after(time.Hour, func() { fired <- "hour" })
	late := ds.after(300*time.Millisecond, func() { fired <- "late" })
	ds.after(100*time.Millisecond, func() { fired <- "early" })
	stopped := ds.after(50*time.Millisecond, func() { fired <- "stopped" })
	assert.True(t, ds.stop(stopped), "not fired yet")
	assert.Equal(t, "early", <-fired, "the earliest first, though it was set after a later one")
	assert.Equal(t, "late", <-fired, "the timer is set again for what is left")
	assert.False(t, ds.stop(late), "it fired already")
	select {
	case f := <-fired:
		t.Fatalf("%s fired", f)
	default:
	}
	ds.mu.Lock()
	assert.Len(t, ds.set, 1, "only the hour is left")
	ds.mu.Unlock()
}

// TestDeadlinesExtend: a limit moved later fires later (a stream that
// keeps sending is not cut), and one moved earlier than the timer's wait
// fires on time.
func TestDeadlinesExtend(t *testing.T) {
	ds := &deadlines{set: map[*deadline]struct{}{}}
	fired := make(chan string, 2)
	idle := ds.after(time.Hour, func() { fired <- "idle" })
	ds.after(200*time.Millisecond, func() { fired <- "other" })
	ds.extend(idle, 20*time.Millisecond)
	assert.Equal(t, "idle", <-fired, "moved earlier than the timer's wait")

	kept := ds.after(100*time.Millisecond, func() { fired <- "kept" })
	ds.extend(kept, time.Hour)
	require.Equal(t, "other", <-fired)
	assert.True(t, ds.stop(kept), "moved later, it did not fire with the other")
}
