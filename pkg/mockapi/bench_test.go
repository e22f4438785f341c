package mockapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// benchWriter is a ResponseWriter that keeps its header map, as net/http's
// does per request, so the benchmark counts the handler's allocations only.
type benchWriter struct{ h http.Header }

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *benchWriter) WriteHeader(int)             {}

// BenchmarkServe measures the handler's own cost per request, without
// latency or network: what the mock takes from the system under test.
func BenchmarkServe(b *testing.B) {
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("0199a1b2-c3d4-7e5f-8a9b-%012x", i)
	}
	multi, err := NewMulti(Config{}, map[string]Config{"limited": {RateLimit: 1e9, LimitMode: LimitHeaders}})
	if err != nil {
		b.Fatal(err)
	}
	tests := []struct {
		name   string
		h      http.Handler
		method string
		path   string
		key    bool
	}{
		{"plain", New(Config{}), "GET", "/v1/x", false},
		{"key", New(Config{}), "POST", "/v1/x", true},
		{"rate-limit", New(Config{RateLimit: 1e9}), "POST", "/v1/x", true},
		{"rate-limit-headers", New(Config{RateLimit: 1e9, LimitMode: LimitHeaders}), "POST", "/v1/x", true},
		{"throttled", New(Config{RateLimit: 1e-3, Burst: 1}), "POST", "/v1/x", true},
		{"multi", multi, "POST", "/acme/v1/x", true},
		{"multi-limited-headers", multi, "POST", "/limited/v1/x", true},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(tt.method, tt.path, nil)
				req.Body = http.NoBody
				var key []string
				if tt.key {
					key = []string{""}
					req.Header[DefaultIdempotencyHeader] = key
				}
				w := &benchWriter{h: http.Header{}}
				for pb.Next() {
					if key != nil {
						key[0] = keys[next.Add(1)%uint64(len(keys))]
					}
					tt.h.ServeHTTP(w, req)
				}
			})
		})
	}
}

// BenchmarkServeHTTP is a whole request over loopback, for scale: most of
// it is net/http on both ends, not the mock.
func BenchmarkServeHTTP(b *testing.B) {
	ts := httptest.NewServer(New(Config{}))
	defer ts.Close()
	client := ts.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(ts.URL+"/v1/x", "application/json", strings.NewReader(`{"a":1}`))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
