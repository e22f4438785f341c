package provider_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// FuzzRequestStaysOnProviderHost checks the promise that a job can never
// choose where its call goes: any path ValidatePath accepts builds a request
// to the provider's scheme and host, under its base path, with no ".."
// segment; any path it rejects builds no request. For a job that Validate
// accepts, with a header the fuzzer chose, the request as written on the
// wire and read back names the provider's host once, carries the
// provider's credential and the job's idempotency key untouched, and no
// header the job did not set. The seeds run as an ordinary test.
func FuzzRequestStaysOnProviderHost(f *testing.F) {
	for _, seed := range []string{
		"/", "/users/42", "/v1/a%2Fb", "/a%20b", "/ünï", "/x/",
		"//evil.com", "/%2F%2Fevil.com", "/%2f/evil.com", "/a/../../b", "/..", "/.%2e/x", "/%2e%2e/x",
		"/\\evil", "/%5Cevil", "http://evil", "https://evil.com/x", "evil.com", "", "/@evil.com",
		"/user:pass@evil.com", "/:80", "/x;y", "/%00", "/%0d%0aHost:%20evil", "/x?y=1", "/x#f",
		"/%", "/%zz", "/\x7f", "/ x", "/a/./b", "/%3F", "/%23", "/;/..;/x",
		// Unicode dots and slashes, double encoding, IPv6 and userinfo tricks.
		"/\u3002evil.com", "/%E3%80%82evil", "/\uff0e\uff0e/x", "/\u2215\u2215evil", "/%252e%252e/x", "/%2e%2e%2fx",
		"/..%2f..%2fetc", "/[::1]/x", "/%5B::1%5D", "/@", "/%40evil.com", "/a@b:c", "//[::1]:80/", "/x/%2e", "/.%2E",
		"/\t/x", "/x\r\nHost: evil", "/%E2%80%AE", "/\u202e", "/%C0%AE%C0%AE/", "/%u002e", "HTTP://evil", "/x:y@z",
	} {
		f.Add(seed, "X-Tenant", "42")
	}
	f.Add("/x", "X-Tenant", "a\r\nHost: evil.com")
	f.Add("/x", "X-Tenant\r\nX-Injected", "1")
	f.Add("/x", "Host", "evil.com")
	f.Add("/x", "host", "evil.com")
	f.Add("/x", "X-Api-Key", "job-chosen")
	f.Add("/x", "Idempotency-Key", "other-id")
	f.Add("/x", "Transfer-Encoding", "chunked")
	f.Add("/x", "X-A", "\u00e9\u2028")
	f.Add("/x", ":authority", "evil.com")
	f.Setenv("SWITCHYARD_TEST_FUZZ_TOKEN", "fuzz-secret")
	bases := []string{"https://api.example.com/api/v2/", "http://127.0.0.1:8080", "https://api.example.com/a%2Fb%20c"}
	providers := make([]*provider.Provider, len(bases))
	for i, b := range bases {
		p, err := provider.New("acme", provider.Config{BaseURL: b, AllowPrivateNetwork: true,
			Auth: provider.AuthConfig{Header: "X-Api-Key", Env: "SWITCHYARD_TEST_FUZZ_TOKEN"}})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(p.Close)
		providers[i] = p
	}
	f.Fuzz(func(t *testing.T, path, hname, hvalue string) {
		valid := job.ValidatePath(path) == nil
		j := &job.Job{V: 1, ID: "j", Provider: "acme", Task: "t", Request: job.Request{Path: path, Headers: map[string]string{hname: hvalue}}}
		jobValid := j.Validate() == nil
		for _, p := range providers {
			base := p.Config().BaseURL
			req, err := p.NewRequest(context.Background(), j)
			if !valid {
				if err == nil {
					t.Fatalf("base %s: ValidatePath(%q) failed but NewRequest built %s", base, path, req.URL)
				}
				continue
			}
			if err != nil {
				t.Fatalf("base %s: ValidatePath(%q) passed but NewRequest failed: %v", base, path, err)
			}
			u := req.URL
			want, _ := req.URL.Parse(base) // an absolute URL: parsed as is
			if u.Scheme != want.Scheme || u.Host != want.Host || req.Host != want.Host {
				t.Fatalf("base %s, path %q: request goes to %s://%s (Host %q)", base, path, u.Scheme, u.Host, req.Host)
			}
			if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
				t.Fatalf("base %s, path %q: URL %s carries user info, query, fragment or opaque part", base, path, u)
			}
			prefix := strings.TrimSuffix(want.EscapedPath(), "/") + "/"
			if !strings.HasPrefix(u.EscapedPath(), prefix) {
				t.Fatalf("base %s, path %q: escaped path %q does not start with %q", base, path, u.EscapedPath(), prefix)
			}
			for _, seg := range strings.Split(u.Path, "/") {
				if seg == ".." {
					t.Fatalf("base %s, path %q: decoded path %q has a .. segment", base, path, u.Path)
				}
			}
			// What goes on the wire must name the same path.
			if got := u.RequestURI(); !strings.HasPrefix(got, prefix) {
				t.Fatalf("base %s, path %q: request URI %q does not start with %q", base, path, got, prefix)
			}
			if jobValid {
				checkWire(t, req, want.Host, prefix, hname)
			}
		}
	})
}

// checkWire writes req as it would go out, reads it back as a server
// would, and checks what the server sees.
func checkWire(t *testing.T, req *http.Request, host, prefix, jobHeader string) {
	t.Helper()
	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		return // refused to write: nothing goes out
	}
	got, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(wire.Bytes())))
	if err != nil {
		t.Fatalf("the request as written cannot be read back: %v\n%s", err, wire.Bytes())
	}
	if got.Host != host || len(got.Header.Values("Host")) > 0 {
		t.Fatalf("server sees Host %q (and header %q), want %q\n%s", got.Host, got.Header.Values("Host"), host, wire.Bytes())
	}
	if !strings.HasPrefix(got.URL.EscapedPath(), prefix) {
		t.Fatalf("server sees path %q, want under %q", got.URL.EscapedPath(), prefix)
	}
	if v := got.Header.Values("X-Api-Key"); len(v) != 1 || v[0] != "fuzz-secret" {
		t.Fatalf("server sees credential %q, want the provider's", v)
	}
	if v := got.Header.Values("Idempotency-Key"); len(v) != 1 || v[0] != "j" {
		t.Fatalf("server sees idempotency key %q, want the job id", v)
	}
	known := map[string]bool{"Host": true, "User-Agent": true, "X-Api-Key": true, "Idempotency-Key": true,
		"Content-Length": true, "Accept-Encoding": true, http.CanonicalHeaderKey(jobHeader): true}
	for k := range got.Header {
		if !known[k] {
			t.Fatalf("server sees header %q the job did not set\n%s", k, wire.Bytes())
		}
	}
}
