package mockapi

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// windowReqs is n requests at a time on a simulated clock.
type windowReqs struct {
	at       time.Duration
	n        int
	admitted bool
}

// TestWindow feeds the window request times on a simulated clock.
func TestWindow(t *testing.T) {
	t.Parallel()
	type req = windowReqs
	tests := []struct {
		name                       string
		reqs                       []req
		wantReceived, wantAdmitted int64
	}{
		{"none", nil, 0, 0},
		{"one burst", []req{{0, 30, true}}, 30, 30},
		{"refused too", []req{{0, 30, false}, {time.Millisecond, 5, true}}, 35, 5},
		{
			// 10 per 100ms for 3s: any second holds 100.
			name:         "steady",
			reqs:         steady(3*time.Second, 100*time.Millisecond, 10),
			wantReceived: 100, wantAdmitted: 100,
		},
		{
			// 20 at 0 and 20 at 990ms share a second; 20 more at 1.5s
			// share one with those at 990ms only.
			name:         "sliding",
			reqs:         []req{{0, 20, true}, {990 * time.Millisecond, 20, true}, {1500 * time.Millisecond, 20, true}},
			wantReceived: 40, wantAdmitted: 40,
		},
		{
			// A second apart to the tick: never in one window.
			name:         "a second apart",
			reqs:         []req{{0, 20, true}, {time.Second, 20, true}, {2 * time.Second, 25, true}},
			wantReceived: 25, wantAdmitted: 25,
		},
		{
			// After a quiet minute the old buckets count for nothing.
			name:         "quiet gap",
			reqs:         []req{{0, 50, true}, {time.Minute, 10, true}, {time.Minute + 500*time.Millisecond, 10, true}},
			wantReceived: 50, wantAdmitted: 50,
		},
		{
			name:         "gap then more",
			reqs:         []req{{0, 50, true}, {time.Minute, 40, false}, {time.Minute + 500*time.Millisecond, 40, true}},
			wantReceived: 80, wantAdmitted: 50,
		},
		{
			// A request whose clock read came before a later one's that
			// locked first still counts in its own bucket: the window
			// ending at 1.15s holds all three.
			name:         "out of order",
			reqs:         []req{{500 * time.Millisecond, 10, true}, {200 * time.Millisecond, 10, true}, {1150 * time.Millisecond, 10, true}},
			wantReceived: 30, wantAdmitted: 30,
		},
		{
			// One read over a second before the newest counts as now.
			name:         "very late",
			reqs:         []req{{1500 * time.Millisecond, 10, true}, {200 * time.Millisecond, 10, true}, {2400 * time.Millisecond, 10, true}},
			wantReceived: 30, wantAdmitted: 30,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w window
			for _, r := range tt.reqs {
				for range r.n {
					w.add(int64(r.at), r.admitted)
				}
			}
			if got, gotAdmitted := w.maxima(); got != tt.wantReceived || gotAdmitted != tt.wantAdmitted {
				t.Errorf("maxima %d received, %d admitted; want %d and %d", got, gotAdmitted, tt.wantReceived, tt.wantAdmitted)
			}
			w.reset()
			if got, gotAdmitted := w.maxima(); got != 0 || gotAdmitted != 0 {
				t.Errorf("after reset: maxima %d, %d", got, gotAdmitted)
			}
		})
	}
}

// steady returns n admitted requests every step for d.
func steady(d, step time.Duration, n int) []windowReqs {
	var out []windowReqs
	for at := time.Duration(0); at < d; at += step {
		out = append(out, windowReqs{at, n, true})
	}
	return out
}

// TestWindowConcurrent: counts from many goroutines at one instant add up.
func TestWindowConcurrent(t *testing.T) {
	t.Parallel()
	var w window
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range 1000 {
				w.add(int64(time.Hour), i%2 == 0)
			}
		})
	}
	wg.Wait()
	if got, admitted := w.maxima(); got != 8000 || admitted != 4000 {
		t.Errorf("maxima %d, %d; want 8000 and 4000", got, admitted)
	}
}

// TestMaxPerSecondServer sends 30 requests at once over HTTP, then more on
// a clock the test moves, and checks what the server reports.
func TestMaxPerSecondServer(t *testing.T) {
	t.Parallel()
	var clock atomic.Int64
	s := New(Config{})
	s.now = clock.Load
	ts := serve(t, s)
	get := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if a := call(t, "GET", ts.URL+"/x", "", ""); a.status != http.StatusOK {
					t.Errorf("status %d", a.status)
				}
			})
		}
		wg.Wait()
	}
	get(30)
	if st := s.Stats(); st.MaxPerSecond != 30 || st.MaxAdmittedPerSecond != 30 {
		t.Errorf("after 30 at once: MaxPerSecond %d, MaxAdmittedPerSecond %d; want 30", st.MaxPerSecond, st.MaxAdmittedPerSecond)
	}
	// 20 more 600ms later share a second with the first 30.
	clock.Store(int64(600 * time.Millisecond))
	get(20)
	// 25 more at 1.5s share one with those 20 only: 45 is no new maximum.
	clock.Store(int64(1500 * time.Millisecond))
	get(25)
	if st := s.Stats(); st.MaxPerSecond != 50 || st.Requests != 75 {
		t.Errorf("MaxPerSecond %d of %d requests, want 50 of 75", st.MaxPerSecond, st.Requests)
	}
	// GET /_stats is no request.
	for range 5 {
		call(t, "GET", ts.URL+"/_stats", "", "")
	}
	if st := s.Stats(); st.MaxPerSecond != 50 {
		t.Errorf("after polling stats: MaxPerSecond %d, want 50", st.MaxPerSecond)
	}
	s.Reset()
	if st := s.Stats(); st.MaxPerSecond != 0 {
		t.Errorf("after Reset: MaxPerSecond %d", st.MaxPerSecond)
	}
}
