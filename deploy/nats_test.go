package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard-io/switchyard/internal/service"
	"github.com/switchyard-io/switchyard/pkg/batch"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/natsx"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/producer"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/recorder"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

// roles are the users of nats/auth.conf; each test run invents passwords.
var roles = []string{"producer", "worker", "recorder", "admin", "sys"}

// roleServer runs nats/cluster.conf, the real file with its real
// auth.conf, as a single node: listen, monitoring, cluster and store_dir
// are replaced after parsing so that it runs on loopback, on random ports,
// in t.TempDir(). It records every permission violation it logs.
type roleServer struct {
	srv        *server.Server
	passwords  map[string]string
	mu         sync.Mutex
	violations []string
}

func startRoleServer(t *testing.T) *roleServer {
	t.Helper()
	rs := &roleServer{passwords: map[string]string{}}
	t.Setenv("NATS_SERVER_NAME", "test-1")
	for _, r := range roles {
		rs.passwords[r] = r + "-pw-" + t.Name()
		t.Setenv("NATS_"+strings.ToUpper(r)+"_PASSWORD", rs.passwords[r])
	}
	opts, err := server.ProcessConfigFile(filepath.Join("nats", "cluster.conf"))
	if err != nil {
		t.Fatalf("nats/cluster.conf: %v", err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort = "", 0
	opts.Cluster = server.ClusterOpts{}
	opts.Routes = nil
	opts.RoutesStr = ""
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	srv.SetLoggerV2(rs, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(srv.Shutdown)
	rs.srv = srv
	return rs
}

func (rs *roleServer) Noticef(string, ...any) {}
func (rs *roleServer) Warnf(string, ...any)   {}
func (rs *roleServer) Fatalf(string, ...any)  {}
func (rs *roleServer) Debugf(string, ...any)  {}
func (rs *roleServer) Tracef(string, ...any)  {}
func (rs *roleServer) Errorf(format string, v ...any) {
	if strings.Contains(format, "Violation") {
		rs.mu.Lock()
		rs.violations = append(rs.violations, strings.TrimSpace(fmt.Sprintf(format, v...)))
		rs.mu.Unlock()
	}
}

func (rs *roleServer) Violations() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.violations...)
}

// config is how a service of the given role reaches the server.
func (rs *roleServer) config(role string) natsx.Config {
	return natsx.Config{URL: rs.srv.ClientURL(), Name: role, User: role, Password: rs.passwords[role]}.WithDefaults()
}

// connect connects as role and returns the connection's async errors,
// where permission violations arrive.
func (rs *roleServer) connect(t *testing.T, role string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := nats.Connect(rs.srv.ClientURL(), nats.UserInfo(role, rs.passwords[role]),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc, errs
}

// awaitViolation waits for a permission violation naming subject.
func awaitViolation(t *testing.T, errs <-chan error, subject string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case err := <-errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return
			}
			t.Logf("async error: %v", err)
		case <-timeout:
			t.Fatalf("no permission violation for %q", subject)
		}
	}
}

func TestProducerMayOnlyPublishJobs(t *testing.T) {
	rs := startRoleServer(t)
	ctx := t.Context()
	// On an empty server a producer cannot create the streams, and says
	// why rather than only timing out.
	{
		short, cancel := context.WithTimeout(ctx, time.Second)
		_, _, err := service.Connect(short, rs.config("producer"), natstest.Logger(t))
		cancel()
		t.Logf("producer on an empty server: %v", err)
		if err == nil || !strings.Contains(err.Error(), "Permissions Violation") || !strings.Contains(err.Error(), "$JS.API.STREAM.CREATE.JOBS") {
			t.Fatalf("producer on an empty server: err = %v, want the permission violation named", err)
		}
	}
	// An admin creates the streams, as a worker or recorder would.
	admin, _ := rs.connect(t, "admin")
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsx.ApplyStreams(ctx, ajs, 1, natstest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := ajs.Publish(ctx, "dlq.acme.secret", []byte(`{"secret":"in the DLQ"}`)); err != nil {
		t.Fatal(err)
	}

	nc, errs := rs.connect(t, "producer")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// What a producer is for works, including the start-up check of the
	// streams that every service does.
	if _, err := js.Publish(ctx, "jobs.acme.live.create_invoice", []byte(`{}`)); err != nil {
		t.Fatalf("publish a job: %v", err)
	}
	if err := natsx.ApplyStreams(ctx, js, 1, natstest.Logger(t)); err != nil {
		t.Fatalf("check streams as producer: %v", err)
	}

	// Results are the workers' to publish.
	if err := nc.Publish("results.acme.create_invoice", []byte(`{"status":"succeeded"}`)); err != nil {
		t.Fatal(err)
	}
	awaitViolation(t, errs, "results.acme.create_invoice")

	// The DLQ cannot be read: not by subscribing to its subjects, not
	// through a consumer, not by getting a message.
	if _, err := nc.SubscribeSync("dlq.>"); err != nil {
		t.Fatal(err)
	}
	awaitViolation(t, errs, "dlq.>")
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	if _, err := js.OrderedConsumer(short(), "DLQ", jetstream.OrderedConsumerConfig{}); err == nil {
		t.Fatal("producer created a consumer on DLQ")
	}
	awaitViolation(t, errs, "$JS.API.CONSUMER.CREATE.DLQ")
	s, err := js.Stream(short(), "DLQ")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetMsg(short(), 1); err == nil {
		t.Fatalf("producer read DLQ message: %s", m.Data)
	}
	awaitViolation(t, errs, "$JS.API.STREAM.MSG.GET.DLQ")
	// Nor may it change a stream.
	if _, err := js.UpdateStream(short(), jetstream.StreamConfig{Name: "DLQ", Subjects: []string{"dlq.>"}}); err == nil {
		t.Fatal("producer updated DLQ")
	}
	awaitViolation(t, errs, "$JS.API.STREAM.UPDATE.DLQ")
}

// TestRolesDoTheirJobs runs the real services' code, each as its own
// user: the worker and the recorder start on an empty server (they create
// the streams and their consumers), a producer enqueues a job and declares
// its batch, the worker calls the provider, the recorder records the
// outcome and completes the batch, and the server logs no permission
// violation on the way.
func TestRolesDoTheirJobs(t *testing.T) {
	rs := startRoleServer(t)
	ctx := t.Context()
	logger := natstest.Logger(t)

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusBadRequest)
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(api.Close)

	// Worker.
	_, wjs, err := service.Connect(ctx, rs.config("worker"), logger)
	if err != nil {
		t.Fatalf("worker connect: %v", err)
	}
	p, err := provider.New("acme", provider.Config{BaseURL: api.URL, AllowPrivateNetwork: true, Concurrency: 4, Timeout: 5 * time.Second}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(wjs, worker.Config{ID: "w1", UnroutedInterval: 100 * time.Millisecond}.WithDefaults(), []*provider.Provider{p}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatalf("worker start: %v", err)
	}
	t.Cleanup(func() { w.Stop(context.Background()) })

	// Recorder.
	store, err := recorder.Open(ctx, filepath.Join(t.TempDir(), "results.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	_, rjs, err := service.Connect(ctx, rs.config("recorder"), logger)
	if err != nil {
		t.Fatalf("recorder connect: %v", err)
	}
	if _, err := batch.Open(ctx, rjs); err != nil {
		t.Fatalf("recorder batches bucket: %v", err)
	}
	rcfg := recorder.Config{BatchCheckInterval: 50 * time.Millisecond}.WithDefaults()
	svc, err := recorder.StartService(ctx, rjs, store, rcfg, logger)
	if err != nil {
		t.Fatalf("recorder start: %v", err)
	}
	t.Cleanup(svc.Stop)

	// Producer: the gateway's start-up, then a declared batch of one job.
	pnc, _, err := service.Connect(ctx, rs.config("producer"), logger)
	if err != nil {
		t.Fatalf("producer connect: %v", err)
	}
	prod, err := producer.New(pnc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = prod.Close() })
	if err := prod.DeclareBatch(ctx, "b1", 1); err != nil {
		t.Fatalf("declare batch: %v", err)
	}
	j := &job.Job{V: 1, ID: "role-job-1", Provider: "acme", Task: "ping", Batch: "b1", Request: job.Request{Method: "GET", Path: "/ping"}}
	if _, err := prod.Enqueue(ctx, j); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	// A delayed job, held by the server as a schedule; and one the
	// provider refuses, dead-lettered with its attempts read back.
	delayed := &job.Job{V: 1, ID: "role-job-2", Provider: "acme", Task: "ping", Request: job.Request{Method: "GET", Path: "/ping"}}
	if _, err := prod.Enqueue(ctx, delayed, producer.Delay(500*time.Millisecond)); err != nil {
		t.Fatalf("enqueue delayed: %v", err)
	}
	refused := &job.Job{V: 1, ID: "role-job-3", Provider: "acme", Task: "ping", Request: job.Request{Method: "GET", Path: "/refuse"}}
	if _, err := prod.Enqueue(ctx, refused); err != nil {
		t.Fatalf("enqueue: %v", err)
	}

	deadline := time.Now().Add(10 * time.Second)
	for _, want := range []struct {
		id     string
		status job.Status
	}{{delayed.ID, job.StatusSucceeded}, {refused.ID, job.StatusFailed}} {
		for {
			row, err := store.Job(ctx, want.id)
			if err == nil && row.Status == want.status {
				break
			}
			if err != nil && !errors.Is(err, recorder.ErrNotFound) {
				t.Fatalf("store: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s not recorded %s: %+v, %v; violations: %q", want.id, want.status, row, err, rs.Violations())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for {
		row, err := store.Job(ctx, j.ID)
		if err == nil && row.Status == job.StatusSucceeded {
			break
		}
		if err != nil && !errors.Is(err, recorder.ErrNotFound) {
			t.Fatalf("store: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not recorded as succeeded: %+v, %v; violations: %q", row, err, rs.Violations())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The batch completes: the recorder published its event.
	admin, _ := rs.connect(t, "admin")
	ajs, _ := jetstream.New(admin)
	es, err := ajs.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	for es.CachedInfo().State.Msgs == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no batch completion event; violations: %q", rs.Violations())
		}
		time.Sleep(20 * time.Millisecond)
		if es, err = ajs.Stream(ctx, "EVENTS"); err != nil {
			t.Fatal(err)
		}
	}
	if v := rs.Violations(); len(v) > 0 {
		t.Fatalf("permission violations: %q", v)
	}
}
