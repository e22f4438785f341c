package worker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/internal/httpserve"
	"github.com/switchyard-io/switchyard/pkg/job"
	"github.com/switchyard-io/switchyard/pkg/mockapi"
	"github.com/switchyard-io/switchyard/pkg/natsx/natstest"
	"github.com/switchyard-io/switchyard/pkg/provider"
	"github.com/switchyard-io/switchyard/pkg/worker"
)

// serveOps serves w's metrics and health on a random loopback port, as
// the worker's main does, and returns its base URL.
func serveOps(t *testing.T, w *worker.Worker) string {
	t.Helper()
	reg := httpserve.NewRegistry()
	reg.MustRegister(w.Collector())
	ops := httpserve.NewOps("worker.http.listen", "127.0.0.1:0", reg, w.Ready, natstest.Logger(t))
	if err := ops.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ops.Shutdown(context.Background()) })
	return ops.URL()
}

// scrape reads /metrics as Prometheus does, into "name{labels}" → value
// with the labels sorted by name, as the text format writes them.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// series names one series: name{k="v",...} with the labels sorted.
func series(name string, labels ...string) string {
	var kv []string
	for i := 0; i+1 < len(labels); i += 2 {
		kv = append(kv, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	sort.Strings(kv)
	if len(kv) == 0 {
		return name
	}
	return name + "{" + strings.Join(kv, ",") + "}"
}

func TestMetricsCountCallsRetriesWaitsDeadLettersAndLag(t *testing.T) {
	b := setup(t, mockapi.Config{})
	hs := httptest.NewServer(&flaky{seen: map[string]bool{}})
	t.Cleanup(hs.Close)
	w := b.startWorker(t, worker.Config{}, map[string]provider.Config{
		"acme": b.provider(hs.URL),
		"rl": b.provider(b.url, func(c *provider.Config) {
			c.RateLimit = provider.RateLimit{Rate: 20, Per: time.Second, Burst: 1}
		}),
	})
	base := serveOps(t, w)

	var ids []string
	for i := range 5 {
		j := newJob(fmt.Sprintf("flaky-%d", i), "acme", "t", "/x")
		b.publish(t, j, job.LaneLive)
		ids = append(ids, j.ID)
	}
	for i := range 10 {
		j := newJob(fmt.Sprintf("rl-%d", i), "rl", "t", "/ok")
		b.publish(t, j, job.LaneBulk)
		ids = append(ids, j.ID)
	}
	for _, path := range []string{"/status/400", "/status/500"} {
		j := newJob("rl"+strings.ReplaceAll(path, "/", "-"), "rl", "t", path)
		b.publish(t, j, job.LaneBulk)
		ids = append(ids, j.ID)
	}
	b.publishRaw(t, job.Subject("rl", job.LaneBulk, "t"), "garbage", []byte("{not json"))
	b.waitFinal(t, 15*time.Second, ids...)

	var m map[string]float64
	want := map[string]float64{
		series("switchyard_calls_total", "provider", "acme", "lane", "live", "code", "503"):            5,
		series("switchyard_calls_total", "provider", "acme", "lane", "live", "code", "200"):            5,
		series("switchyard_retries_total", "provider", "acme", "lane", "live"):                         5,
		series("switchyard_call_duration_seconds_count", "provider", "acme", "lane", "live"):           10,
		series("switchyard_calls_in_flight", "provider", "acme", "lane", "live"):                       0,
		series("switchyard_calls_total", "provider", "rl", "lane", "bulk", "code", "200"):              10,
		series("switchyard_calls_total", "provider", "rl", "lane", "bulk", "code", "400"):              1,
		series("switchyard_calls_total", "provider", "rl", "lane", "bulk", "code", "500"):              3,
		series("switchyard_dead_letters_total", "provider", "rl", "lane", "bulk", "class", "http_5xx"): 1,
		series("switchyard_dead_letters_total", "provider", "rl", "lane", "bulk", "class", "invalid"):  1,
		series("switchyard_consumer_pending", "provider", "rl", "lane", "bulk"):                        0,
		series("switchyard_consumer_ack_pending", "provider", "rl", "lane", "bulk"):                    0,
		series("switchyard_consumer_paused", "provider", "rl", "lane", "bulk"):                         0,
		series("switchyard_provider_rate_limit", "provider", "rl", "scope", "fleet"):                   20,
		series("switchyard_provider_rate_limit", "provider", "acme", "scope", "fleet"):                 0,
		series("switchyard_provider_members", "provider", "rl"):                                        1,
		series("switchyard_provider_slots", "provider", "rl"):                                          50,
		series("switchyard_provider_paused", "provider", "rl"):                                         0,
		// 20/s × a few ms ÷ 50 slots: one replica is plenty.
		series("switchyard_provider_useful_workers", "provider", "rl"): 1,
	}
	// Outcomes are stored before their messages are settled, and the lag
	// is read at most every 5 s: poll.
	waitFor(t, 10*time.Second, func() (bool, string) {
		m = scrape(t, base)
		for k, v := range want {
			if got, ok := m[k]; !ok || got != v {
				return false, fmt.Sprintf("%s = %v (present %v), want %v", k, got, ok, v)
			}
		}
		return true, ""
	})
	// Fetches take only what can start within 50 ms, so a call waits at
	// most that long for its token, and on a slow machine often not at all.
	if n := m[series("switchyard_ratelimit_waits_total", "provider", "rl", "lane", "bulk")]; n < 1 {
		t.Errorf("%v calls waited for a rate token; want some of 14 at 20/s with a burst of 1", n)
	}
	if s := m[series("switchyard_ratelimit_wait_seconds_total", "provider", "rl", "lane", "bulk")]; s <= 0 {
		t.Errorf("rate-limit wait seconds = %v, want > 0", s)
	}
	if _, ok := m[series("switchyard_provider_useful_workers", "provider", "acme")]; ok {
		t.Errorf("useful workers reported for a provider without a rate limit: nothing caps it")
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Errorf("no Go runtime metrics")
	}
}

// TestReadyzFollowsTheNATSConnection: /healthz says the process is alive
// whatever happens; /readyz answers 503 while NATS is down and 200 again
// once the worker reconnected.
func TestReadyzFollowsTheNATSConnection(t *testing.T) {
	b := setup(t, mockapi.Config{})
	w := b.startWorker(t, worker.Config{}, map[string]provider.Config{"acme": b.provider(b.url)})
	base := serveOps(t, w)
	status := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	awaitStatus := func(path string, want int) {
		t.Helper()
		waitFor(t, 10*time.Second, func() (bool, string) {
			code, body := status(path)
			return code == want, fmt.Sprintf("GET %s = %d %s, want %d", path, code, body, want)
		})
	}
	awaitStatus("/readyz", http.StatusOK)
	b.nats.Stop()
	awaitStatus("/readyz", http.StatusServiceUnavailable)
	if code, body := status("/readyz"); !strings.Contains(body, "NATS") {
		t.Errorf("readyz while NATS is down = %d %s; want the reason", code, body)
	}
	if code, _ := status("/healthz"); code != http.StatusOK {
		t.Errorf("healthz while NATS is down = %d, want 200: the process is alive", code)
	}
	b.nats.Restart()
	awaitStatus("/readyz", http.StatusOK)

	w.Stop(context.Background())
	if code, body := status("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "stopping") {
		t.Errorf("readyz after Stop = %d %s, want 503 stopping", code, body)
	}
}
