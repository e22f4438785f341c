package mockapi_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/mockapi"
)

func TestOutage(t *testing.T) {
	t.Parallel()
	s := mockapi.New(mockapi.Config{})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	get := func(key string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/x", nil)
		req.Header.Set(mockapi.DefaultIdempotencyHeader, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	s.Outage(503)
	if r := get("a"); r.StatusCode != 503 || r.Header.Get("Retry-After") != "" {
		t.Fatalf("during the outage: %d, Retry-After %q; want 503 without", r.StatusCode, r.Header.Get("Retry-After"))
	}
	s.Outage(0)
	if r := get("a"); r.StatusCode != 200 {
		t.Fatalf("after the outage: %d", r.StatusCode)
	}
	st := s.Stats()
	if st.Requests != 2 || st.Outage != 1 || st.ByStatus[503] != 1 || st.Keys != 1 || st.Duplicates != 0 {
		t.Fatalf("stats %+v: want 2 requests, 1 outage answer, 1 key, no duplicate", st)
	}
}

func TestOutageReset(t *testing.T) {
	t.Parallel()
	s := mockapi.New(mockapi.Config{})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	s.Outage(mockapi.OutageReset)
	if resp, err := http.Get(hs.URL + "/x"); err == nil {
		resp.Body.Close()
		t.Fatalf("during a reset outage: answered %d, want no answer", resp.StatusCode)
	}
	s.Outage(0)
	resp, err := http.Get(hs.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := s.Stats(); st.Outage != 1 || st.ByStatus[200] != 1 {
		t.Fatalf("stats %+v: want 1 outage, 1 answer", st)
	}
}
