package mockapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/switchyard-io/switchyard/pkg/mockapi"
)

// Two providers from one server: acme is rate limited (one call, then a
// token every 1,000 seconds), other answers everything.
func ExampleNewMulti() {
	m, err := mockapi.NewMulti(mockapi.Config{}, map[string]mockapi.Config{
		"acme": {RateLimit: 0.001, Burst: 1, RetryAfter: 2 * time.Second},
	})
	if err != nil {
		panic(err)
	}
	ts := httptest.NewServer(m)
	defer ts.Close()

	for _, path := range []string{"/acme/v1/charges", "/acme/v1/charges", "/other/v1/charges"} {
		resp, err := http.Post(ts.URL+path, "application/json", nil)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Printf("%s %d Retry-After=%q\n", path, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	st := m.Stats()
	fmt.Println("total:", st.Total.Requests, "requests,", st.Total.Throttled, "throttled")
	fmt.Println("acme:", st.Providers["acme"].ByStatus)
	// Output:
	// /acme/v1/charges 200 Retry-After=""
	// /acme/v1/charges 429 Retry-After="2"
	// /other/v1/charges 200 Retry-After=""
	// total: 3 requests, 1 throttled
	// acme: map[200:1 429:1]
}
