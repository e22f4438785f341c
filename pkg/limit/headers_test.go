package limit

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestReadSignal(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   signal
	}{
		{name: "nothing"},
		{name: "retry-after seconds", header: map[string]string{"Retry-After": "2"}, want: signal{retryAfter: 2 * time.Second}},
		{name: "retry-after fraction", header: map[string]string{"Retry-After": "0.5"}, want: signal{retryAfter: 500 * time.Millisecond}},
		{name: "retry-after date", header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, want: signal{retryAfter: 90 * time.Second}},
		{name: "retry-after in the past", header: map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}},
		{name: "retry-after garbage", header: map[string]string{"Retry-After": "soon"}},
		{name: "retry-after negative", header: map[string]string{"Retry-After": "-3"}},
		{name: "retry-after capped", header: map[string]string{"Retry-After": "99999999"}, want: signal{retryAfter: MaxPause}},
		{
			name:   "x-ratelimit with calls left",
			header: map[string]string{"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "1"},
			want:   signal{limitHeaders: true},
		},
		{
			name:   "x-ratelimit spent, reset in seconds",
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"},
			want:   signal{limitHeaders: true, exhausted: true, reset: 3 * time.Second},
		},
		{
			name:   "x-ratelimit spent, reset as a unix time",
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Add(30*time.Second).Unix(), 10)},
			want:   signal{limitHeaders: true, exhausted: true, reset: 30 * time.Second},
		},
		{
			name:   "x-ratelimit spent, reset in unix milliseconds",
			header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(now.Add(1500*time.Millisecond).UnixMilli(), 10)},
			want:   signal{limitHeaders: true, exhausted: true, reset: 1500 * time.Millisecond},
		},
		{
			name:   "ietf structured fields, as the mock sends them",
			header: map[string]string{"RateLimit-Policy": `"default";q=100;w=1`, "RateLimit": `"default";r=0;t=1`},
			want:   signal{limitHeaders: true, policyRate: 100, exhausted: true, reset: time.Second},
		},
		{
			name:   "ietf, calls left",
			header: map[string]string{"RateLimit-Policy": `"burst";q=100;w=60, "day";q=5000;w=86400`, "RateLimit": `"burst";r=40;t=20`},
			want:   signal{limitHeaders: true, policyRate: 100.0 / 60},
		},
		{
			name:   "ietf, the day's quota spent",
			header: map[string]string{"RateLimit": `"burst";r=40;t=20, "day";r=0;t=3600`},
			want:   signal{limitHeaders: true, exhausted: true, reset: time.Hour},
		},
		{
			name:   "earlier drafts",
			header: map[string]string{"RateLimit-Policy": "10;w=1", "RateLimit-Remaining": "0", "RateLimit-Reset": "2"},
			want:   signal{limitHeaders: true, policyRate: 10, exhausted: true, reset: 2 * time.Second},
		},
		{
			name:   "draft with named parameters",
			header: map[string]string{"RateLimit": "limit=10, remaining=0, reset=5"},
			want:   signal{limitHeaders: true, exhausted: true, reset: 5 * time.Second},
		},
		{
			name:   "a policy of a long window is no rate",
			header: map[string]string{"RateLimit-Policy": `"hour";q=1000;w=3600`},
			want:   signal{limitHeaders: true},
		},
		{
			name:   "garbage policy",
			header: map[string]string{"RateLimit-Policy": `"x";q=abc;w=;`, "RateLimit": `;;r;t=`},
			want:   signal{limitHeaders: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := readSignal(h, now); got != tt.want {
				t.Errorf("readSignal = %+v, want %+v", got, tt.want)
			}
			if got, want := hasLimitHeaders(h), tt.want.limitHeaders; got != want && h.Get("X-RateLimit-Limit") == "" {
				t.Errorf("hasLimitHeaders = %v, want %v", got, want)
			}
		})
	}
}

func FuzzReadSignal(f *testing.F) {
	f.Add("2", `"default";r=0;t=1`, `"default";q=100;w=1`, "0", "1700000000")
	f.Fuzz(func(t *testing.T, retryAfter, rateLimit, policy, remaining, reset string) {
		h := http.Header{"Retry-After": {retryAfter}, "Ratelimit": {rateLimit}, "Ratelimit-Policy": {policy},
			"X-Ratelimit-Remaining": {remaining}, "X-Ratelimit-Reset": {reset}}
		s := readSignal(h, time.Now())
		if s.retryAfter < 0 || s.retryAfter > MaxPause || s.reset < 0 || s.reset > MaxPause || s.policyRate < 0 {
			t.Fatalf("out of bounds: %+v", s)
		}
	})
}
