package logging

import (
	"log/slog"
	"net/http"
	"strings"
)

const redacted = "[REDACTED]"

// Secret is a string that logs as "[REDACTED]". Wrap a credential in it
// when its attribute name would not give it away:
//
//	log.Info("dialing", "dsn", logging.Secret(dsn))
type Secret string

// LogValue hides the secret from every slog handler.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// String hides the secret from fmt too; use string(s) for the value.
func (Secret) String() string { return redacted }

// sensitive are the endings of attribute names whose values are
// credentials, compared after lowercasing and dropping '_' and '-', so that
// "access_token", "X-Api-Key" and "Password" all match.
var sensitive = []string{
	"password", "passwd", "passphrase",
	"secret", "token", "auth", "authorization",
	"apikey", "privatekey", "cookie", "creds", "credential", "credentials",
}

var separators = strings.NewReplacer("_", "", "-", "")

func isSensitive(key string) bool {
	k := separators.Replace(strings.ToLower(key))
	for _, s := range sensitive {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// redact is a slog ReplaceAttr. Handlers call it for every attribute,
// including those inside groups, with values already resolved, so a
// Secret has become "[REDACTED]" before it gets here.
func redact(_ []string, a slog.Attr) slog.Attr {
	if isSensitive(a.Key) {
		return slog.String(a.Key, redacted)
	}
	if a.Value.Kind() != slog.KindAny {
		return a
	}
	// Request headers are the likeliest way a provider credential reaches a
	// log line, and the JSON handler would print them whole.
	if h, ok := a.Value.Any().(http.Header); ok {
		return slog.Any(a.Key, redactHeader(h))
	}
	return a
}

func redactHeader(h http.Header) http.Header {
	out := h.Clone()
	for k := range out {
		if isSensitive(k) {
			out[k] = []string{redacted}
		}
	}
	return out
}
