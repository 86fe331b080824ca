package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueTimeout is how long a request waits for a free place at an
// upstream with max_concurrent before it gets 503.
const DefaultQueueTimeout = 60 * time.Second

// gate limits the requests in flight to one upstream; the others wait in
// line (first come, first served: blocked channel sends are woken in
// order) until a place is free or the queue timeout passes.
type gate struct {
	places   chan struct{} // nil: no limit
	inFlight atomic.Int64
	queued   atomic.Int64
}

// gates keeps each upstream's gate across reloads while its limit stays.
type gates struct {
	mu sync.Mutex
	m  map[string]*gate // by name and limit
}

func (g *gates) get(up *Upstream) *gate {
	key := fmt.Sprintf("%s\x00%d", up.Name, up.MaxConcurrent)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]*gate{}
	}
	gt := g.m[key]
	if gt == nil {
		gt = &gate{}
		if up.MaxConcurrent > 0 {
			gt.places = make(chan struct{}, up.MaxConcurrent)
		}
		g.m[key] = gt
	}
	return gt
}

// enter waits for a place; release gives it back.
func (gt *gate) enter(ctx context.Context, up *Upstream) (release func(), e *apiError) {
	if gt.places != nil {
		select {
		case gt.places <- struct{}{}:
		default:
			wait, _ := parseDuration(up.QueueTimeout, DefaultQueueTimeout)
			t := time.NewTimer(wait)
			defer t.Stop()
			gt.queued.Add(1)
			defer gt.queued.Add(-1)
			select {
			case gt.places <- struct{}{}:
			case <-t.C:
				return nil, newAPIError(http.StatusServiceUnavailable, "queue_full", fmt.Sprintf(
					"upstream %q already has %d requests in flight (max_concurrent) and this one waited %s in its queue; try again later, or raise max_concurrent or queue_timeout", up.Name, up.MaxConcurrent, wait))
			case <-ctx.Done():
				return nil, newAPIError(StatusClientClosed, "client_closed", "the client closed the request while it waited in the queue")
			}
		}
	}
	gt.inFlight.Add(1)
	return func() {
		gt.inFlight.Add(-1)
		if gt.places != nil {
			<-gt.places
		}
	}, nil
}

// QueueStatus is one upstream's line in GET /v1/queue.
type QueueStatus struct {
	Upstream      string `json:"upstream"`
	MaxConcurrent int    `json:"max_concurrent"` // 0: no limit
	InFlight      int64  `json:"in_flight"`
	Queued        int64  `json:"queued"`
	// Paced requests wait for requests_per_minute or tokens_per_minute;
	// Wait says which limit holds the first one back, and until when.
	Paced int64     `json:"paced"`
	Wait  *paceWait `json:"wait,omitempty"`
}

// Queue lists the requests in flight and waiting, per upstream.
func (f *Forwarder) Queue() []QueueStatus {
	rt := f.state.Load()
	out := make([]QueueStatus, 0, len(rt.upstreams))
	for _, u := range rt.upstreams {
		gt := u.gate
		q := QueueStatus{Upstream: u.cfg.Name, MaxConcurrent: u.cfg.MaxConcurrent, InFlight: gt.inFlight.Load(), Queued: gt.queued.Load()}
		if u.pacer != nil {
			if q.Paced = u.pacer.waiting.Load(); q.Paced > 0 {
				q.Wait = u.pacer.why.Load()
			}
		}
		out = append(out, q)
	}
	return out
}

func (f *Forwarder) serveQueue(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Object string        `json:"object"`
		Data   []QueueStatus `json:"data"`
	}{"list", f.Queue()})
}
