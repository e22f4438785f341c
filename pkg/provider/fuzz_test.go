package provider_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/provider"
)

// FuzzRequestStaysOnProviderHost checks the promise that a job can never
// choose where its call goes: any path ValidatePath accepts builds a request
// to the provider's scheme and host, under its base path, with no ".."
// segment; any path it rejects builds no request. The seeds run as an
// ordinary test.
func FuzzRequestStaysOnProviderHost(f *testing.F) {
	for _, seed := range []string{
		"/", "/users/42", "/v1/a%2Fb", "/a%20b", "/ünï", "/x/",
		"//evil.com", "/%2F%2Fevil.com", "/%2f/evil.com", "/a/../../b", "/..", "/.%2e/x", "/%2e%2e/x",
		"/\\evil", "/%5Cevil", "http://evil", "https://evil.com/x", "evil.com", "", "/@evil.com",
		"/user:pass@evil.com", "/:80", "/x;y", "/%00", "/%0d%0aHost:%20evil", "/x?y=1", "/x#f",
		"/%", "/%zz", "/\x7f", "/ x", "/a/./b", "/%3F", "/%23", "/;/..;/x",
	} {
		f.Add(seed)
	}
	bases := []string{"https://api.example.com/api/v2/", "http://127.0.0.1:8080", "https://api.example.com/a%2Fb%20c"}
	providers := make([]*provider.Provider, len(bases))
	for i, b := range bases {
		p, err := provider.New("acme", provider.Config{BaseURL: b})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(p.Close)
		providers[i] = p
	}
	f.Fuzz(func(t *testing.T, path string) {
		valid := job.ValidatePath(path) == nil
		for _, p := range providers {
			base := p.Config().BaseURL
			req, err := p.NewRequest(context.Background(), &job.Job{V: 1, ID: "j", Provider: "acme", Task: "t", Request: job.Request{Path: path}})
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
		}
	})
}
