package provider

import (
	"bytes"
	"net/http"
	"strings"
)

// Redacted replaces the provider's credential wherever its answer echoes it.
const Redacted = "[REDACTED]"

// minScrubLen is the shortest secret scrubbed from answers: a shorter one
// would match ordinary text and mangle it, and is no real credential.
const minScrubLen = 8

// scrubSecret replaces every copy of secret in body. Some APIs echo the
// request, headers included, in an error body (a 401 that quotes the key
// it refused, a debug endpoint); the result is stored and shown to whoever
// reads results, who must not learn the credential from it. When the body
// was truncated, a partial copy at its end is cut off as well.
func scrubSecret(body []byte, truncated bool, secret string) ([]byte, bool) {
	if len(secret) < minScrubLen || len(body) == 0 {
		return body, truncated
	}
	if bytes.Contains(body, []byte(secret)) {
		body = bytes.ReplaceAll(body, []byte(secret), []byte(Redacted))
	}
	if truncated {
		for n := min(len(secret)-1, len(body)); n > 0; n-- {
			if bytes.HasSuffix(body, []byte(secret[:n])) {
				body = body[:len(body)-n]
				break
			}
		}
	}
	return body, truncated
}

// scrubHeader replaces the secret in every response header value.
func scrubHeader(h http.Header, secret string) {
	if len(secret) < minScrubLen {
		return
	}
	for _, vs := range h {
		for i, v := range vs {
			if strings.Contains(v, secret) {
				vs[i] = strings.ReplaceAll(v, secret, Redacted)
			}
		}
	}
}
