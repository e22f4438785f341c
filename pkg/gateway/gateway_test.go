package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/pkg/gateway"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/streams"
)

// bundle is what setup starts: a NATS server, the gateway's connection,
// and the gateway serving on a real listener.
type bundle struct {
	srv  *natstest.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	gw   *gateway.Server
	url  string
	http *http.Client
}

type setupOptions struct {
	cfg func(*gateway.Config)
	// jobs, when set, creates this JOBS stream instead of applying the
	// Switchyard streams; noStreams creates none.
	jobs      *jetstream.StreamConfig
	noStreams bool
}

func setup(t *testing.T, o setupOptions) *bundle {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.Connect(t)
	switch {
	case o.jobs != nil:
		if _, err := js.CreateStream(testContext(t), *o.jobs); err != nil {
			t.Fatal(err)
		}
	case !o.noStreams:
		srv.ApplyStreams(t, js)
	}
	cfg := gateway.Config{Listen: "127.0.0.1:0", PublishTimeout: 5 * time.Second, Window: 8}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	gw, err := gateway.NewServer(nc, cfg, natstest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	client := &http.Client{Timeout: 60 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	return &bundle{srv: srv, nc: nc, js: js, gw: gw, url: gw.URL(), http: client}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// answer is one HTTP answer, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

// do sends a request to the gateway; headers come in name, value pairs.
func (b *bundle) do(t *testing.T, method, path, contentType string, body io.Reader, headers ...string) answer {
	t.Helper()
	a, err := b.send(testContext(t), method, path, contentType, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// send is do for another goroutine than the test's.
func (b *bundle) send(ctx context.Context, method, path, contentType string, body io.Reader, headers ...string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, body)
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (b *bundle) postJSON(t *testing.T, path, body string, headers ...string) answer {
	t.Helper()
	return b.do(t, http.MethodPost, path, "application/json", strings.NewReader(body), headers...)
}

func (b *bundle) postNDJSON(t *testing.T, path, body string, headers ...string) answer {
	t.Helper()
	return b.do(t, http.MethodPost, path, "application/x-ndjson", strings.NewReader(body), headers...)
}

// accepted decodes a 202 answer.
func accepted(t *testing.T, a answer) gateway.Accepted {
	t.Helper()
	if a.status != http.StatusAccepted || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %s (%s), want 202 application/json", a, a.header.Get("Content-Type"))
	}
	var acc gateway.Accepted
	if err := json.Unmarshal(a.body, &acc); err != nil {
		t.Fatal(err)
	}
	return acc
}

// problem decodes a problem answer of the given status.
func problem(t *testing.T, a answer, status int) *gateway.Problem {
	t.Helper()
	if a.status != status || a.header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("answer %s (%s), want %d application/problem+json", a, a.header.Get("Content-Type"), status)
	}
	var p gateway.Problem
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem %s: %v", a.body, err)
	}
	if p.Status != status || p.Type != "about:blank" || p.Title != http.StatusText(status) || p.Instance == "" {
		t.Errorf("problem %+v: type, title, status or instance wrong", p)
	}
	return &p
}

// report decodes a 200 NDJSON answer.
func report(t *testing.T, a answer) gateway.StreamReport {
	t.Helper()
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %s, want 200 application/json", a)
	}
	var rep gateway.StreamReport
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// streamMsgs is how many messages JOBS holds.
func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(testContext(t), streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// stored returns the message JOBS holds at seq.
func stored(t *testing.T, js jetstream.JetStream, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(testContext(t), streams.Jobs)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(testContext(t), seq)
	if err != nil {
		t.Fatalf("message %d: %v", seq, err)
	}
	return m
}

// envelope is a valid job for acme's create_invoice with the fields given
// as `"key": value` pairs added.
func envelope(fields ...string) string {
	extra := ""
	for _, f := range fields {
		extra += ", " + f
	}
	return `{"provider": "acme", "task": "create_invoice", "request": {"method": "POST", "path": "/v1/invoices", "body": {"amount": 1200}}` + extra + `}`
}
