package provider_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// TestAnswersEchoingTheCredentialAreScrubbed: an API that quotes the key it
// was sent, in its body or its headers, does not get the key stored in a
// result.
func TestAnswersEchoingTheCredentialAreScrubbed(t *testing.T) {
	const secret, limit = "sk_live_0123456789abcdef", 200
	t.Setenv("SWITCHYARD_TEST_SCRUB_TOKEN", secret)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Authorization")
		w.Header().Set("X-Echo", "you sent "+key)
		w.Header().Set("X-Api-Key", key)
		switch r.URL.Path {
		case "/json":
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid key " + key})
		case "/text":
			_, _ = w.Write([]byte("key=" + key + "\n"))
		case "/cut":
			// The limit falls inside the secret: "Bearer sk_live" is kept.
			_, _ = w.Write([]byte(strings.Repeat("x", limit-14) + key))
		}
	}))
	t.Cleanup(srv.Close)
	p, err := provider.New("acme", provider.Config{BaseURL: srv.URL, AllowPrivateNetwork: true, ResponseBodyLimit: limit,
		Auth: provider.AuthConfig{Header: "Authorization", Prefix: "Bearer ", Env: "SWITCHYARD_TEST_SCRUB_TOKEN"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	for _, path := range []string{"/json", "/text", "/cut"} {
		reply, err := p.Call(t.Context(), newJob(job.Request{Path: path}))
		if reply == nil {
			t.Fatalf("%s: no reply: %v", path, err)
		}
		stored, _ := json.Marshal(reply.Response)
		if err != nil {
			stored = append(stored, err.Error()...)
		}
		for _, part := range []string{secret, secret[:7]} {
			if strings.Contains(string(stored), part) {
				t.Errorf("%s: stored answer holds %q: %s", path, part, stored)
			}
		}
		if path != "/cut" && !strings.Contains(string(stored), provider.Redacted) {
			t.Errorf("%s: stored answer does not show where the secret was: %s", path, stored)
		}
		if path == "/json" && !json.Valid(reply.Response.Body) {
			t.Errorf("scrubbing broke the JSON body: %s", reply.Response.Body)
		}
	}
}
