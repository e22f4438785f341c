package mockapi

import (
	"net/http"
	"sync/atomic"
)

// outage is the state of the outage switch.
type outage struct {
	status atomic.Int32 // 0: none
	count  atomic.Int64
}

// OutageReset, given to Outage, makes every request's connection close
// without an answer: the client sees a reset or an EOF, as from a
// provider that is not there at all.
const OutageReset = -1

// Outage switches an outage on: every request is answered status (500 to
// 599) at once, with no Retry-After and no latency, as a provider whose
// backends are down answers through its load balancer; or, with
// OutageReset, not answered at all. Outage(0) ends it.
// Requests answered so are counted in Requests, ByStatus and Stats.Outage,
// but not in Keys or Duplicates: the provider never worked on them. It is
// safe to call while serving; only the net/http Server (and Multi) follow
// it, not LeanServer.
func (s *Server) Outage(status int) {
	if status != 0 && status != OutageReset && (status < 500 || status > 599) {
		panic("mockapi: an outage answers 5xx, or OutageReset")
	}
	s.out.status.Store(int32(status))
}

// answerOutage answers r if an outage is on, and reports whether it did.
func (s *Server) answerOutage(w http.ResponseWriter, e *echo) bool {
	status := int(s.out.status.Load())
	if status == 0 {
		return false
	}
	s.out.count.Add(1)
	if status == OutageReset {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection
	}
	s.byStatus[status].Add(1)
	e.Status, e.Error = status, "simulated outage"
	writeEcho(w, e)
	return true
}
