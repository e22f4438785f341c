package natsx

import (
	"net/url"
	"strings"
)

// RedactURL returns a comma-separated list of NATS URLs fit for logs and
// errors: any user info (a user and password, or a token written as the
// user) becomes "[REDACTED]".
func RedactURL(urls string) string {
	if !strings.Contains(urls, "@") {
		return urls
	}
	parts := strings.Split(urls, ",")
	for i, raw := range parts {
		if !strings.Contains(raw, "@") {
			continue
		}
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.User == nil {
			parts[i] = "[REDACTED URL]"
			continue
		}
		u.User = nil
		parts[i] = u.Scheme + "://[REDACTED]@" + strings.TrimPrefix(u.String(), u.Scheme+"://")
	}
	return strings.Join(parts, ",")
}
