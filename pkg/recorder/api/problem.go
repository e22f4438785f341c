package api

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// problemContentType is the media type of RFC 9457 problem details.
const problemContentType = "application/problem+json"

// writeProblem answers with a problem detail of the given status. Its type
// is about:blank, so its title is the status text.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string, params ...InvalidParam) {
	p := Problem{
		Type:          "about:blank",
		Title:         http.StatusText(status),
		Status:        status,
		Detail:        detail,
		Instance:      r.URL.Path,
		InvalidParams: params,
	}
	writeBody(w, status, problemContentType, &p)
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	writeBody(w, http.StatusOK, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a stored meta that is not JSON could get here; stores
		// keep what workers published, and workers publish JSON.
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
