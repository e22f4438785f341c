package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problemContentType is the media type of RFC 9457 problem details.
const problemContentType = "application/problem+json"

// newProblem returns a problem detail of the given status. Its type is
// about:blank, so its title is the status text.
func newProblem(r *http.Request, status int, detail string, params ...InvalidParam) *Problem {
	return &Problem{
		Type:          "about:blank",
		Title:         http.StatusText(status),
		Status:        status,
		Detail:        detail,
		Instance:      r.URL.Path,
		InvalidParams: params,
	}
}

// writeProblem answers with p.
func writeProblem(w http.ResponseWriter, p *Problem) {
	writeBody(w, p.Status, problemContentType, p)
}

// retryLater sets Retry-After, for a 503.
func (h *Handler) retryLater(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(int(h.cfg.RetryAfter.Seconds())))
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Every answer is built from strings and numbers; this is a bug.
		status, contentType = http.StatusInternalServerError, problemContentType
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"the answer could not be encoded"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
