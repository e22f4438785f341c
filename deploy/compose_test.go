package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadCompose(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := strict(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// interpolation is compose's ${VAR:-default}; the test takes the default,
// what a laptop without a .env gets.
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:-([^}]*))?\}`)

func interpolate(t *testing.T, s string) string {
	t.Helper()
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		if sub[2] == "" {
			t.Errorf("%s has no default: compose fails without a .env", m)
		}
		return sub[3]
	})
}

// hostPath maps a bind mount's source to a path in the repository.
func hostPath(src string) (string, bool) {
	if !strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "../") {
		return "", false // a named volume
	}
	return filepath.Clean(src), true
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if p, ok := hostPath(src); ok {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s mounts volume %s, which compose.yaml does not declare", name, src)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("service %s builds %s: %v", name, s.Build.Dockerfile, err)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond loopback", name, p)
			}
		}
	}

	// Three NATS nodes, each named, all routed to.
	clusterConf, err := os.ReadFile("nats/cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"nats-1", "nats-2", "nats-3"} {
		s, ok := c.Services[n]
		if !ok {
			t.Fatalf("no service %s", n)
		}
		if s.Environment["NATS_SERVER_NAME"] != n {
			t.Errorf("%s: NATS_SERVER_NAME %q", n, s.Environment["NATS_SERVER_NAME"])
		}
		if !strings.Contains(string(clusterConf), "nats://"+n+":6222") {
			t.Errorf("nats/cluster.conf has no route to %s", n)
		}
		for _, r := range roles {
			if _, ok := s.Environment["NATS_"+strings.ToUpper(r)+"_PASSWORD"]; !ok {
				t.Errorf("%s: no password for the %s user of nats/auth.conf", n, r)
			}
		}
	}

	// Workers scale: no fixed name, no host port.
	w := c.Services["worker"]
	if w.ContainerName != "" || len(w.Ports) > 0 {
		t.Errorf("worker has container_name %q or ports %v: `--scale worker=N` would collide", w.ContainerName, w.Ports)
	}

	// Each Switchyard service's config loads with its environment.
	ports := map[string]int{}
	for _, tt := range []struct{ service, user, listenKey string }{
		{"worker", "worker", "worker.http.listen"},
		{"recorder", "recorder", "recorder.api.listen"},
		{"gateway", "producer", "gateway.listen"},
	} {
		t.Run(tt.service, func(t *testing.T) {
			s := c.Services[tt.service]
			i := slices.Index(s.Command, "--config")
			if i < 0 {
				t.Fatalf("no --config in %q", s.Command)
			}
			file := ""
			for _, v := range s.Volumes {
				parts := strings.Split(v, ":")
				if len(parts) >= 2 && path.Dir(s.Command[i+1]) == parts[1] {
					file = filepath.Join(parts[0], path.Base(s.Command[i+1]))
				}
			}
			text, err := os.ReadFile(file)
			if file == "" || err != nil {
				t.Fatalf("%s is not mounted from deploy/config: %v", s.Command[i+1], err)
			}
			env := map[string]string{}
			for k, v := range s.Environment {
				env[k] = interpolate(t, v)
			}
			cfg, raw := loadConfig(t, file, string(text), env, nil)
			if cfg.NATS.User != tt.user {
				t.Errorf("nats.user %q, want %q", cfg.NATS.User, tt.user)
			}
			if cfg.NATS.Replicas != 3 {
				t.Errorf("nats.replicas %d on a 3-node cluster, want 3", cfg.NATS.Replicas)
			}
			ports[tt.service] = listenPort(t, mustString(t, raw, tt.listenKey))
			if tt.service == "worker" {
				grace, err := time.ParseDuration(s.StopGracePeriod)
				if err != nil || grace <= cfg.Worker.ShutdownGrace {
					t.Errorf("stop_grace_period %q must exceed worker.shutdown_grace %s", s.StopGracePeriod, cfg.Worker.ShutdownGrace)
				}
				for name, p := range cfg.Providers {
					if !strings.HasPrefix(p.BaseURL, "http://mockapi:") {
						t.Errorf("provider %s calls %s, not the mock API", name, p.BaseURL)
					}
				}
			}
		})
	}

	// Prometheus scrapes what the services listen on.
	var prom struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			Authorization *struct {
				Credentials string `yaml:"credentials"`
			} `yaml:"authorization"`
			DNSSDConfigs []struct {
				Names           []string `yaml:"names"`
				Type            string   `yaml:"type"`
				Port            int      `yaml:"port"`
				RefreshInterval string   `yaml:"refresh_interval"`
			} `yaml:"dns_sd_configs"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := strict(b, &prom); err != nil {
		t.Fatalf("prometheus/prometheus.yml: %v", err)
	}
	scraped := map[string]int{}
	for _, sc := range prom.ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				scraped[n] = d.Port
			}
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := strings.Cut(target, ":")
				if _, ok := c.Services[host]; !ok {
					t.Errorf("prometheus scrapes %s, which is no compose service", target)
				}
				n := 0
				for _, ch := range port {
					n = n*10 + int(ch-'0')
				}
				scraped[host] = n
			}
		}
	}
	for svc, port := range ports {
		if scraped[svc] != port {
			t.Errorf("prometheus scrapes %s on %d, it listens on %d", svc, scraped[svc], port)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile("grafana/provisioning/datasources/prometheus.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := strict(b, &ds); err != nil || len(ds.Datasources) != 1 {
		t.Fatalf("datasource: %v", err)
	}
	if !strings.HasPrefix(ds.Datasources[0].URL, "http://prometheus:") {
		t.Errorf("datasource URL %s is not the compose prometheus", ds.Datasources[0].URL)
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name            string `yaml:"name"`
			Folder          string `yaml:"folder"`
			Type            string `yaml:"type"`
			DisableDeletion bool   `yaml:"disableDeletion"`
			Options         struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if b, err = os.ReadFile("grafana/provisioning/dashboards/switchyard.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := strict(b, &prov); err != nil || len(prov.Providers) != 1 {
		t.Fatalf("dashboard provider: %v", err)
	}
	mounted := false
	for _, v := range loadCompose(t).Services["grafana"].Volumes {
		parts := strings.Split(v, ":")
		mounted = mounted || (filepath.Clean(parts[0]) == "grafana/dashboards" && parts[1] == prov.Providers[0].Options.Path)
	}
	if !mounted {
		t.Errorf("grafana/dashboards is not mounted at %s", prov.Providers[0].Options.Path)
	}

	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if b, err = os.ReadFile("grafana/dashboards/switchyard.json"); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Datasource.UID != ds.Datasources[0].UID {
			t.Errorf("panel %q uses datasource %q, provisioned is %q", p.Title, p.Datasource.UID, ds.Datasources[0].UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkMetricNames(t, "panel "+p.Title, tg.Expr)
			for _, m := range metricRef.FindAllString(tg.Expr, -1) {
				seen[m] = true
			}
		}
	}
	for _, v := range dash.Templating.List {
		checkMetricNames(t, "variable", v.Definition)
	}
	// What issue 9 asks the dashboard to show: lag, throughput, latency,
	// errors per provider.
	for _, m := range []string{"switchyard_consumer_pending", "switchyard_calls_total", "switchyard_call_duration_seconds_bucket"} {
		if !seen[m] {
			t.Errorf("no panel queries %s", m)
		}
	}
}

// TestDockerfile checks the stages and paths of deploy/Dockerfile, which
// cannot be built here: every package it builds is a main package, every
// binary it copies is built, and the image is static and non-root.
func TestDockerfile(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	cont := ""
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cont += s + " "
			continue
		}
		lines = append(lines, cont+l)
		cont = ""
	}
	stages := map[string]bool{}
	var last []string
	var built, copied []string
	cgoOff := false
	for _, l := range lines {
		fields := strings.Fields(l)
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				stages[fields[3]] = true
			}
			last = fields
		case "ENV":
			cgoOff = cgoOff || strings.Contains(l, "CGO_ENABLED=0")
		case "RUN":
			if i := slices.Index(fields, "build"); i > 0 && fields[i-1] == "go" {
				for _, a := range fields[i+1:] {
					if strings.HasPrefix(a, "./") {
						built = append(built, a)
					}
				}
			}
		case "COPY":
			if from, ok := strings.CutPrefix(fields[1], "--from="); ok {
				if !stages[from] {
					t.Errorf("COPY --from=%s: no such stage", from)
				}
				for _, a := range fields[2 : len(fields)-1] {
					if !strings.HasPrefix(a, "--") {
						copied = append(copied, path.Base(a))
					}
				}
			}
		case "USER":
			if fields[1] == "root" || strings.HasPrefix(fields[1], "0") {
				t.Errorf("the image runs as %s", fields[1])
			}
		}
	}
	if !cgoOff {
		t.Error("CGO_ENABLED=0 is not set: the binaries would not be static")
	}
	if len(last) < 2 || !(strings.Contains(last[1], "distroless/static") || last[1] == "scratch") {
		t.Errorf("final stage %v: want distroless/static or scratch", last)
	}
	if len(built) == 0 {
		t.Fatal("no go build in the Dockerfile")
	}
	var names []string
	for _, pkg := range built {
		dir := filepath.Join("..", pkg)
		matches, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		isMain := false
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err == nil && !strings.HasSuffix(m, "_test.go") && regexp.MustCompile(`(?m)^package main$`).Match(b) {
				isMain = true
			}
		}
		if !isMain {
			t.Errorf("the Dockerfile builds %s, which is no main package", pkg)
		}
		names = append(names, path.Base(pkg))
	}
	// Every deployable is in the image.
	services, _ := filepath.Glob("../services/*")
	for _, s := range services {
		if !slices.Contains(names, filepath.Base(s)) {
			t.Errorf("services/%s is not built into the image", filepath.Base(s))
		}
	}
	for _, c := range copied {
		if c != "data" && !slices.Contains(names, c) {
			t.Errorf("the final stage copies %s, which no go build produces", c)
		}
	}
	// The SQLite driver must not need cgo.
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(gomod), "mattn/go-sqlite3") || !strings.Contains(string(gomod), "modernc.org/sqlite") {
		t.Error("the SQLite driver is not modernc.org/sqlite: a CGO_ENABLED=0 build would lose it")
	}
}
